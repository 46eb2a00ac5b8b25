"""``python -m harness doctor``: what a run on this host will measure, before it runs.

A read-only check of the host, per backend: Python and package versions, the Docker
engine and the worker images (stale or not against the current sources), GPU support in
Docker, NVML energy counters, RAPL domains and who may read them, what CodeCarbon will do
for CPU, GPU and RAM (measured by which counter, or estimated by which model), the
Slurm cluster, and for every hardware entry of the given scenario files which of its
figures will be measured and which estimated. Every check ends in a verdict (``ok``,
``degraded`` or ``missing``) and, where something can be done, the fix.

Read-only means: no tracker is started, no image is built or pulled, nothing is written.
The one container it may start is a GPU probe (``nvidia-smi`` in the base image, removed
at once), and only when the engine has NVIDIA support; without it no container starts.

Host side: it never imports TensorFlow (versions come from package metadata), Keras or
:mod:`harness.worker`. CodeCarbon's own functions and data decide the predictions
(``codecarbon.core.cpu``: ``TDP``, the CPU power table, ``is_rapl_available``; the RAM
model), so the doctor and the tracker cannot disagree about the rules; the probing
functions take their inputs (sysfs roots, a docker client, an NVML module, ``which``)
as parameters so tests pass stand-ins.

Exit status: 0 when every declared run can measure what it claims (the CPU figure, and
the GPU figure of a GPU entry, from energy counters); 1 when some of those figures will
be estimated or some runs will be refused (the summary names them); 2 on bad input.
RAM power is always a model in CodeCarbon, so it is reported but never decides the
status. Without scenario files, one plain CPU entry stands for "a run on this host".
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import importlib.util
import json
import logging
import os
import platform
import shutil
import stat
import subprocess
import sys
import tomllib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from harness.errors import UserError

FORMAT = "harness.doctor"
VERSION = 1
OK, DEGRADED, MISSING = "ok", "degraded", "missing"
BACKENDS = ("auto", "local", "docker", "slurm")
EXIT_MEASURED, EXIT_ESTIMATED = 0, 1
REPO_ROOT = Path(__file__).resolve().parent.parent
#: The sysfs trees CodeCarbon scans for RAPL (and the Docker backend mounts with the opt-in).
POWERCAP_ROOTS = ("/sys/class/powercap", "/sys/devices/virtual/powercap")
#: Where `make slurm-cluster` keeps the test cluster's state (slurm/README.md).
SLURM_STATE_DIR = Path(os.environ.get("HARNESS_SLURM_DIR") or "/var/tmp/harness-slurm")
#: What Docker's --gpus (device requests) needs on the engine's host.
NVIDIA_HOOKS = ("nvidia-container-runtime-hook", "nvidia-container-toolkit")
NVIDIA_FIX = ("install the NVIDIA driver and the NVIDIA Container Toolkit (then "
              "`nvidia-ctk runtime configure --runtime=docker` and restart Docker), or run "
              "only CPU scenarios on this host: GPU scenarios never run on the CPU")
RAPL_FIX = ("run the harness as root, or let your user read the counters (sudo chmod a+r "
            "/sys/class/powercap/intel-rapl:*/energy_uj, until the next boot; it lets every "
            "local user watch power, the Platypus side channel, CVE-2020-8694), or use the "
            "docker backend with `tracker: {rapl: true}` (README, RAPL in containers)")
# CodeCarbon methods, as harness.carbon.describe_power_methods records them in metrics.json.
M_RAPL, M_CPU_LOAD, M_CONSTANT, M_NVML, M_NONE, M_RAM = (
    "intel_rapl", "cpu_load", "constant", "nvml", "none", "ram_model")


# --- results of checks -------------------------------------------------------------------


@dataclass(frozen=True)
class Check:
    """One line of the doctor's table: a verdict on one thing, and the fix."""

    area: str
    name: str
    verdict: str
    detail: str
    fix: str = ""
    facts: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Component:
    """What CodeCarbon will do for one component of one run (the vocabulary of
    metrics.json's ``power``: measured, method, detail, fallback)."""

    component: str
    measured: bool
    method: str
    detail: str
    fallback: bool = False


@dataclass(frozen=True)
class Prediction:
    """One hardware entry under one backend: which figures are measured, which estimated."""

    scenario: str
    source: str
    hardware: str
    device: str
    backend: str
    cpu: Component
    gpu: Component
    ram: Component
    refused: str | None = None
    """Why the run will be refused (no engine, no GPU...); None when it can run."""
    notes: tuple[str, ...] = ()
    fix: str = ""
    """What would make every claimed figure measured (empty when nothing is needed)."""

    @property
    def label(self) -> str:
        return f"{self.scenario}/{self.hardware}"

    @property
    def estimated(self) -> list[str]:
        """The claimed figures that will be estimated: the CPU, and a GPU entry's GPU."""
        claimed = [self.cpu] + ([self.gpu] if self.device == "gpu" else [])
        return [c.component for c in claimed if not c.measured]

    @property
    def verdict(self) -> str:
        if self.refused:
            return MISSING
        return DEGRADED if self.estimated else OK


# --- Python and packages -----------------------------------------------------------------

#: (distribution names, the first installed one is reported; what it is for).
PACKAGES: tuple[tuple[tuple[str, ...], str], ...] = (
    (("tensorflow-cpu", "tensorflow"), "the worker's TensorFlow (local and Slurm backends; "
                                       "containers bring their own); read from package "
                                       "metadata, never imported here"),
    (("codecarbon",), "the tracker"),
    (("docker",), "the Docker SDK (docker backend)"),
    (("nvidia-ml-py",), "pynvml, CodeCarbon's NVML binding (GPU energy)"),
    (("py-cpuinfo",), "CodeCarbon's CPU model detection"),
    (("pydantic",), "file formats"),
    (("pyyaml",), "scenario files"),
    (("tabulate",), "tables"),
)


def pinned_versions(pyproject: Path = REPO_ROOT / "pyproject.toml") -> dict[str, str]:
    """``name==version`` pins of pyproject.toml (dependencies and extras), by name."""
    try:
        project = tomllib.loads(pyproject.read_text())["project"]
    except (OSError, KeyError, tomllib.TOMLDecodeError):
        return {}
    requirements = list(project.get("dependencies", []))
    for extra in project.get("optional-dependencies", {}).values():
        requirements += extra
    pins = {}
    for requirement in requirements:
        name, sep, version = requirement.partition("==")
        if sep:
            pins[name.strip().lower()] = version.strip()
    return pins


def _installed(name: str, version_of: Callable[[str], str]) -> str | None:
    try:
        return version_of(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def check_python(version_of: Callable[[str], str] = importlib.metadata.version,
                 pins: Mapping[str, str] | None = None,
                 python: tuple[int, int, int] | None = None) -> list[Check]:
    """The interpreter and the packages the harness depends on, against the pins."""
    pins = pinned_versions() if pins is None else pins
    major, minor, micro = python or tuple(sys.version_info[:3])
    checks = [Check("python", "python", OK if (major, minor) == (3, 11) else DEGRADED,
                    f"Python {major}.{minor}.{micro} ({sys.executable})",
                    "" if (major, minor) == (3, 11) else
                    "use Python 3.11 (pyproject.toml: >=3.11,<3.12): `make setup`",
                    {"version": f"{major}.{minor}.{micro}"})]
    for names, role in PACKAGES:
        found = next(((n, v) for n in names if (v := _installed(n, version_of))), None)
        if found is None:
            verdict = MISSING if names[0] == "codecarbon" else DEGRADED
            checks.append(Check("python", names[0], verdict, f"not installed: {role}",
                                "`make setup` installs the pinned versions",
                                {"installed": None}))
            continue
        name, version = found
        pin = pins.get(name)
        if pin is None or pin == version:
            checks.append(Check("python", name, OK, f"{version}: {role}", "",
                                {"installed": version, "pinned": pin}))
        else:
            checks.append(Check(
                "python", name, DEGRADED,
                f"{version}, pinned {pin}: {role}; results made with it are not comparable "
                "with the pinned ones", f"`make setup` installs {name}=={pin}",
                {"installed": version, "pinned": pin}))
    return checks


def tensorflow_flavour(version_of: Callable[[str], str] = importlib.metadata.version
                       ) -> str | None:
    """``cpu`` (tensorflow-cpu, which never sees a GPU), ``full`` or None (not installed)."""
    if _installed("tensorflow", version_of):
        return "full"
    return "cpu" if _installed("tensorflow-cpu", version_of) else None


# --- Docker -----------------------------------------------------------------------------


@dataclass
class DockerState:
    """A Docker client whose engine answered, or why none did."""

    client: Any = None
    error: str = ""
    fix: str = ""
    info: dict[str, Any] = field(default_factory=dict)
    version: dict[str, Any] = field(default_factory=dict)

    @property
    def answers(self) -> bool:
        return self.client is not None


def docker_state(connect: Callable[[], Any] | None = None) -> DockerState:
    """Connect to the engine (the Docker backend's own :func:`connect`) and read its info."""
    if connect is None:
        try:
            from harness.backends.docker_backend import connect as backend_connect
        except ImportError as exc:
            return DockerState(error=f"the Docker SDK does not import ({exc})",
                               fix="`make setup` installs docker==7.1.0")

        def connect() -> Any:
            return backend_connect(timeout_s=5)
    try:
        client = connect()
    except UserError as exc:
        return DockerState(error=exc.message, fix=exc.fix or "")
    try:
        return DockerState(client=client, info=dict(client.info()),
                           version=dict(client.version()))
    except Exception as exc:
        return DockerState(error=f"the engine answered a ping but not `info` ({exc})",
                           fix="check the Docker daemon's log")


def check_engine(state: DockerState) -> Check:
    if not state.answers:
        return Check("docker", "engine", MISSING, state.error or "no Docker engine answers",
                     state.fix or "start it (sudo docker/start-engine.sh), or use "
                     "--backend local")
    info, version = state.info, state.version
    driver = info.get("Driver", "?")
    facts = {"server_version": version.get("Version"), "api_version": version.get("ApiVersion"),
             "storage_driver": driver, "cpus": info.get("NCPU"),
             "memory_bytes": info.get("MemTotal"),
             "runtimes": sorted((info.get("Runtimes") or {}).keys()),
             "security_options": list(info.get("SecurityOptions") or [])}
    detail = (f"Docker {version.get('Version', '?')} (API {version.get('ApiVersion', '?')}), "
              f"storage driver {driver}, {info.get('NCPU', '?')} CPUs, "
              f"{(info.get('MemTotal') or 0) / 2**30:.1f} GiB")
    if driver == "vfs":
        return Check("docker", "engine", DEGRADED, detail + ": vfs copies every layer (slow "
                     "builds, several times the disk)", "restart the engine with overlay2 "
                     "(docker/start-engine.sh tries overlay2, then fuse-overlayfs)", facts)
    return Check("docker", "engine", OK, detail, "", facts)


def _tags(client: Any) -> dict[str, Any]:
    """Every tag the engine has, to its image object."""
    return {tag: image for image in client.images.list() for tag in (image.tags or [])}


def find_base_image(client: Any, base_image: str | None = None) -> Any | None:
    """The base image the Docker backend would use, if present (never pulled here)."""
    from harness.backends.docker_backend import LOCAL_BASE, OFFICIAL_BASE

    tags = _tags(client)
    for name in [base_image] if base_image else [OFFICIAL_BASE, LOCAL_BASE]:
        if name in tags:
            return tags[name]
    return None


def check_images(client: Any, base_image: str | None = None,
                 tag_for: Callable[[str, str], str] | None = None,
                 flavours: tuple[str, ...] = ("cpu", "gpu")) -> list[Check]:
    """The base image and each worker image, present and current against the sources
    (the tag embeds a hash of the Dockerfile, requirements, harness sources and base)."""
    from harness.backends.docker_backend import IMAGE_REPO, LOCAL_BASE, OFFICIAL_BASE, image_tag

    tag_for = tag_for or image_tag
    tags = _tags(client)
    base = find_base_image(client, base_image)
    wanted = base_image or f"{OFFICIAL_BASE} or {LOCAL_BASE}"
    if base is None:
        checks = [Check("docker", "base image", MISSING, f"{wanted}: not on this engine (a "
                        "run would try to pull it)", "`docker pull python:3.11-slim-bookworm`, "
                        "or `make base-image` where no registry answers")]
    else:
        name = next(t for t in base.tags if t in tags)
        checks = [Check("docker", "base image", OK, f"{name} ({base.id[:19]})", "",
                        {"tag": name, "id": base.id})]
    for flavour in flavours:
        what = f"{flavour} worker image"
        build = (f"`python -m harness image {flavour}` (or the first run builds it: "
                 f"{'CUDA about 150-215 s' if flavour == 'gpu' else 'about 65 s'}; after a "
                 "source change only the last layer, seconds)")
        if base is None:
            checks.append(Check("docker", what, DEGRADED, "cannot tell which tag the sources "
                                "need without the base image", "get the base image first"))
            continue
        tag = tag_for(flavour, base.id)
        others = sorted(t for t in tags if t.startswith(f"{IMAGE_REPO}:{flavour}-") and t != tag)
        facts = {"wanted": tag, "present": tag in tags, "other_tags": others}
        if tag in tags:
            checks.append(Check("docker", what, OK, f"{tag}: built from the current sources",
                                "", facts))
        elif others:
            checks.append(Check("docker", what, DEGRADED,
                                f"stale: {len(others)} image(s) of older sources "
                                f"({others[-1]}...); the current sources need {tag}", build,
                                facts))
        else:
            checks.append(Check("docker", what, MISSING, f"{tag} is not built", build, facts))
    return checks


def nvidia_hooks(info: Mapping[str, Any], which: Callable[[str], str | None] = shutil.which
                 ) -> list[str]:
    """What gives containers GPUs here: an ``nvidia`` runtime registered with the engine
    (``docker info``), or the hook Docker's ``--gpus`` (device requests, what the backend
    uses) calls, found on PATH (this process's PATH, which is usually the daemon's)."""
    runtimes = info.get("Runtimes") or {}
    found = []
    if "nvidia" in runtimes:
        path = runtimes["nvidia"].get("path", "?") if isinstance(runtimes["nvidia"], dict) else "?"
        found.append(f"runtime nvidia ({path})")
    found += [f"{name} ({path})" for name in NVIDIA_HOOKS if (path := which(name))]
    return found


def nvidia_message(info: Mapping[str, Any]) -> str:
    runtimes = ", ".join(sorted((info.get("Runtimes") or {}).keys())) or "none"
    return (f"no NVIDIA GPU support in Docker: the engine's runtimes are {runtimes} (no "
            f"nvidia) and no {' or '.join(NVIDIA_HOOKS)} is on PATH, so Docker cannot give "
            "a container a GPU")


def check_nvidia_runtime(state: DockerState,
                         which: Callable[[str], str | None] = shutil.which) -> Check:
    if not state.answers:
        return Check("docker", "NVIDIA runtime", MISSING, "no Docker engine answers",
                     state.fix)
    found = nvidia_hooks(state.info, which)
    if found:
        return Check("docker", "NVIDIA runtime", OK, "GPU support: " + ", ".join(found), "",
                     {"found": found})
    return Check("docker", "NVIDIA runtime", MISSING, nvidia_message(state.info), NVIDIA_FIX,
                 {"found": [], "runtimes": sorted((state.info.get("Runtimes") or {}).keys())})


def container_gpus(client: Any, image: Any, timeout_s: float = 120) -> tuple[list[str], str]:
    """The GPUs a container is given (``--gpus all``): ``nvidia-smi`` in ``image``.

    Returns (one ``index, name, uuid`` line per GPU, error text); the container is
    removed. Call it only when :func:`nvidia_hooks` found GPU support.
    """
    from harness.backends.docker_backend import LABEL_SESSION

    probe = client.containers.create(
        image.id, entrypoint=["nvidia-smi", "--query-gpu=index,name,uuid",
                              "--format=csv,noheader"],
        device_requests=[{"count": -1, "capabilities": [["gpu"]]}],
        labels={LABEL_SESSION: "doctor-gpu-probe"})
    try:
        probe.start()
        code = probe.wait(timeout=timeout_s).get("StatusCode")
        output = probe.logs().decode(errors="replace")
        lines = [line.strip() for line in output.splitlines() if line.strip()]
        if code != 0:
            return [], f"nvidia-smi in a container exited {code}: {' '.join(lines)[:200]}"
        return lines, ""
    except Exception as exc:
        return [], f"a container that requests GPUs does not start ({str(exc).strip()[:200]})"
    finally:
        with contextlib.suppress(Exception):
            probe.remove(force=True)


def check_container_gpus(state: DockerState, runtime: Check, base: Any | None,
                         probe: Callable[[Any, Any], tuple[list[str], str]] = container_gpus
                         ) -> tuple[Check, list[str] | None]:
    """The GPUs a container would see; None when not probed (no runtime: no container)."""
    if runtime.verdict != OK:
        return Check("docker", "GPUs in a container", MISSING, "not probed: without NVIDIA "
                     "support in Docker no container was started", runtime.fix), None
    if base is None:
        return Check("docker", "GPUs in a container", DEGRADED, "not probed: no base image "
                     "to run nvidia-smi in", "get the base image (see above)"), None
    gpus, error = probe(state.client, base)
    if error or not gpus:
        return Check("docker", "GPUs in a container", MISSING,
                     error or "nvidia-smi in a container lists no GPU", NVIDIA_FIX,
                     {"gpus": gpus}), gpus
    return Check("docker", "GPUs in a container", OK,
                 f"{len(gpus)} GPU(s), nvidia-smi works inside (CodeCarbon needs it): "
                 + "; ".join(gpus), "", {"gpus": gpus}), gpus


# --- NVML --------------------------------------------------------------------------------


@dataclass(frozen=True)
class NvmlGpu:
    """One GPU as NVML reports it."""

    index: int
    name: str
    energy_counter: bool
    """nvmlDeviceGetTotalEnergyConsumption answers (Volta and later)."""
    energy_j: float | None
    power_w: float | None
    error: str = ""


def _text(value: Any) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)


def read_nvml(nvml: Any = None) -> tuple[list[NvmlGpu], str]:
    """Every GPU NVML sees and whether its energy counter reads; (GPUs, error).

    ``nvml`` is the pynvml module (nvidia-ml-py, what CodeCarbon 3.3.2 reads) or a
    stand-in with the same functions.
    """
    if nvml is None:
        try:
            import pynvml as nvml
        except ImportError:
            return [], "pynvml (nvidia-ml-py) is not installed"
    try:
        nvml.nvmlInit()
    except Exception as exc:
        return [], f"NVML does not initialise ({_text(exc) or type(exc).__name__}): no NVIDIA driver?"
    gpus = []
    try:
        for index in range(int(nvml.nvmlDeviceGetCount())):
            handle = nvml.nvmlDeviceGetHandleByIndex(index)
            name = _text(nvml.nvmlDeviceGetName(handle))
            energy, error = None, ""
            try:
                energy = float(nvml.nvmlDeviceGetTotalEnergyConsumption(handle)) / 1000
            except Exception as exc:
                error = _text(exc) or type(exc).__name__
            power = None
            with contextlib.suppress(Exception):
                power = float(nvml.nvmlDeviceGetPowerUsage(handle)) / 1000
            gpus.append(NvmlGpu(index, name, energy is not None, energy, power, error))
    except Exception as exc:
        return gpus, f"NVML failed while listing GPUs ({_text(exc)})"
    finally:
        with contextlib.suppress(Exception):
            nvml.nvmlShutdown()
    return gpus, ""


def check_nvml(gpus: list[NvmlGpu], error: str, nvidia_smi: str | None) -> list[Check]:
    checks = [Check("gpu", "nvidia-smi", OK if nvidia_smi else MISSING,
                    f"{nvidia_smi}: CodeCarbon tracks NVIDIA GPUs only where `nvidia-smi "
                    "--help` runs" if nvidia_smi else "not on PATH: CodeCarbon looks for "
                    "NVIDIA GPUs only where `nvidia-smi --help` runs (is_nvidia_system)",
                    "" if nvidia_smi else "install the NVIDIA driver (it brings nvidia-smi) "
                    "for GPU runs outside containers", {"path": nvidia_smi})]
    if error or not gpus:
        checks.append(Check("gpu", "NVML", MISSING, error or "NVML lists no GPU: no GPU "
                            "energy counter on this host", "GPU runs need an NVIDIA GPU and "
                            "driver; CPU runs are unaffected", {"gpus": []}))
        return checks
    for gpu in gpus:
        facts = asdict(gpu)
        if gpu.energy_counter:
            checks.append(Check("gpu", f"NVML GPU {gpu.index}", OK,
                                f"{gpu.name}: energy counter reads ({gpu.energy_j:.0f} J "
                                f"since the driver loaded), power "
                                f"{gpu.power_w if gpu.power_w is not None else '?'} W", "", facts))
        else:
            checks.append(Check(
                "gpu", f"NVML GPU {gpu.index}", DEGRADED,
                f"{gpu.name}: nvmlDeviceGetTotalEnergyConsumption fails ({gpu.error}); "
                "CodeCarbon falls back to averaging nvmlDeviceGetPowerUsage samples (still "
                "NVML, less accurate)", "a Volta or later GPU has the counter; a "
                "NoPermission error needs the driver's permission settings", facts))
    return checks


# --- RAPL --------------------------------------------------------------------------------


@dataclass(frozen=True)
class RaplDomain:
    """One RAPL domain directory and its ``energy_uj`` file's owner and mode bits."""

    path: str
    name: str
    main: bool
    """CodeCarbon's rule (core/cpu.py ``_is_main_domain``): "package" in its name, or a
    directory name ending in ":0"; only a readable main domain makes RAPL available."""
    mode: int | None
    """Permission bits of energy_uj (0o400 since CVE-2020-8694); None: no such file."""
    uid: int | None
    gid: int | None


def scan_rapl(roots: tuple[str, ...] = POWERCAP_ROOTS) -> list[RaplDomain]:
    """The RAPL domains under ``roots``, as CodeCarbon scans them (``intel-rapl*``
    entries and their ``*:*`` subdomains), each real directory once."""
    seen: set[str] = set()
    domains = []

    def add(directory: Path) -> None:
        real = os.path.realpath(directory)
        if real in seen:
            return
        seen.add(real)
        try:
            name = (directory / "name").read_text().strip()
        except OSError:
            name = ""
        try:
            st = (directory / "energy_uj").stat()
            mode, uid, gid = stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid
        except OSError:
            mode = uid = gid = None
        domains.append(RaplDomain(str(directory), name,
                                  "package" in name.lower() or directory.name.endswith(":0"),
                                  mode, uid, gid))

    for root in map(Path, roots):
        for entry in _listdir(root):
            if not entry.name.startswith("intel-rapl") or not entry.is_dir():
                continue
            if ":" in entry.name:
                add(entry)
            for sub in _listdir(entry):
                if ":" in sub.name and sub.is_dir():
                    add(sub)
    return domains


def _listdir(path: Path) -> list[Path]:
    try:
        return sorted(path.iterdir())
    except OSError:
        return []


def readable_by(domain: RaplDomain, uid: int, gids: tuple[int, ...]) -> bool:
    """Whether ``uid`` (in groups ``gids``) may read the domain's energy_uj, from its mode
    bits: root always may (CAP_DAC_OVERRIDE; sysfs does not stop it); otherwise the owner's,
    the group's or the others' read bit, whichever class the user falls in."""
    if domain.mode is None:
        return False
    if uid == 0:
        return True
    if uid == domain.uid:
        return bool(domain.mode & stat.S_IRUSR)
    if domain.gid in gids:
        return bool(domain.mode & stat.S_IRGRP)
    return bool(domain.mode & stat.S_IROTH)


def rapl_readable(domains: list[RaplDomain], uid: int, gids: tuple[int, ...]) -> bool:
    """CodeCarbon would measure the CPU: a main domain whose energy_uj this user reads."""
    return any(d.main and readable_by(d, uid, gids) for d in domains)


def check_rapl(domains: list[RaplDomain], uid: int, gids: tuple[int, ...],
               roots: tuple[str, ...] = POWERCAP_ROOTS) -> list[Check]:
    if not domains:
        present = [root for root in roots if Path(root).is_dir()]
        where = (f"{', '.join(present)} holds no intel-rapl domain" if present else
                 f"no {roots[0]}: the kernel exposes no RAPL here (a VM, a container, or a "
                 "CPU without RAPL)")
        return [Check("rapl", "RAPL domains", MISSING, f"{where}; CPU power will be "
                      "estimated on every backend", "measure on bare metal (or a VM that "
                      "passes RAPL through, with the intel_rapl driver loaded) to have CPU "
                      "energy measured", {"domains": []})]
    listing = [{**asdict(d), "mode": f"{d.mode:04o}" if d.mode is not None else None,
                "readable_by_you": readable_by(d, uid, gids)} for d in domains]
    shown = ", ".join(f"{Path(d.path).name} ({d.name or '?'}) "
                      f"{format(d.mode, '04o') if d.mode is not None else 'no energy_uj'}"
                      for d in domains)
    checks = [Check("rapl", "RAPL domains", OK, f"{len(domains)} domain(s): {shown}", "",
                    {"domains": listing})]
    who = "root" if uid == 0 else f"uid {uid}"
    if rapl_readable(domains, uid, gids):
        checks.append(Check("rapl", "RAPL for you", OK, f"a package domain's energy_uj is "
                            f"readable by you ({who}): local runs measure CPU energy", ""))
    else:
        checks.append(Check("rapl", "RAPL for you", DEGRADED, f"no package domain's energy_uj "
                            f"is readable by {who} (mode bits; root-only since CVE-2020-8694): "
                            "local runs estimate CPU power", RAPL_FIX))
    main = any(d.main and d.mode is not None for d in domains)
    checks.append(Check(
        "rapl", "RAPL in containers", OK if main else MISSING,
        ("with `tracker.rapl: true` the Docker backend mounts the powercap trees read-only, "
         "unmasks them and runs the worker as root, who reads energy_uj; without it, "
         "containers estimate CPU power") if main else "no package domain to mount",
        "" if main else RAPL_FIX))
    return checks


# --- what CodeCarbon will do ------------------------------------------------------------


@dataclass(frozen=True)
class CpuFacts:
    """CodeCarbon's view of the CPU, from its own functions (no tracker started)."""

    model: str
    """``codecarbon.core.util.detect_cpu_model()``: /proc/cpuinfo's brand string where the
    harness gives it (:func:`harness.carbon.prime_cpu_model`), else py-cpuinfo's."""
    in_database: bool
    """Whether ``TDP._get_cpu_power_from_registry`` finds it in cpu_power.csv."""
    database_name: str | None
    database_tdp_w: float | None
    threads: int
    """``count_cpus()``: the machine's threads (a container sees the host's)."""
    sockets: int
    """``count_physical_cpus()``: CodeCarbon multiplies the TDP by it."""
    psutil: bool
    """``is_psutil_available()``: cpu_load mode needs it, else a constant."""
    rapl_here: bool
    """``is_rapl_available()`` in this process (this user, this host)."""

    @property
    def generic_w(self) -> float:
        """CodeCarbon's default for an unknown CPU: DEFAULT_POWER_PER_CORE per thread."""
        return float(self.threads * default_power_per_thread())

    @property
    def tdp_w(self) -> float:
        """The power CodeCarbon's estimate scales: the TDP x sockets (as it computes it,
        also for its per-thread default), or its global constant for an unknown CPU
        without psutil."""
        if self.in_database:
            return float(self.database_tdp_w or 0) * max(self.sockets, 1)
        if self.psutil:
            return self.generic_w * max(self.sockets, 1)
        from codecarbon.external.hardware import POWER_CONSTANT

        return float(POWER_CONSTANT)


@dataclass(frozen=True)
class RamFacts:
    """CodeCarbon's RAM model (external/ram.py) for this machine."""

    memory_gb: float
    dimms: int
    watts: float


def default_power_per_thread() -> float:
    from codecarbon.core.cpu import DEFAULT_POWER_PER_CORE

    return float(DEFAULT_POWER_PER_CORE)


@contextlib.contextmanager
def _quiet_codecarbon() -> Iterator[None]:
    """CodeCarbon warns (unknown CPU...) through its own logger: keep it out of the table."""
    import codecarbon  # noqa: F401  (its logger is configured on import)

    logger = logging.getLogger("codecarbon")
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        logger.setLevel(level)


def codecarbon_cpu() -> CpuFacts:
    """What CodeCarbon's ResourceTracker.set_CPU_tracking will find, without a tracker."""
    with _quiet_codecarbon():
        from codecarbon.core import cpu
        from codecarbon.core.util import count_cpus, count_physical_cpus
        from codecarbon.input import DataSource

        from harness.carbon import prime_cpu_model

        prime_cpu_model()  # the CPU model a run's tracker gets (from /proc/cpuinfo)
        tdp = cpu.TDP()  # detect_cpu_model() and the registry lookup, as the tracker does
        model = tdp.model or "Unknown"
        table = DataSource().get_cpu_power_data()
        match = tdp._get_matching_cpu(model, table) if tdp.model else None
        db_tdp = tdp._get_cpu_power_from_registry(model) if match else None
        try:
            sockets = int(count_physical_cpus() or 1)
        except Exception:
            sockets = 1
        return CpuFacts(model=model, in_database=db_tdp is not None, database_name=match,
                        database_tdp_w=float(db_tdp) if db_tdp is not None else None,
                        threads=int(count_cpus() or 1), sockets=sockets,
                        psutil=bool(cpu.is_psutil_available()),
                        rapl_here=bool(cpu.is_rapl_available()))


def codecarbon_ram() -> RamFacts:
    with _quiet_codecarbon():
        from codecarbon.external.ram import RAM

        ram = RAM(tracking_mode="machine")
        gb = float(ram.machine_memory_GB)
        return RamFacts(memory_gb=gb, dimms=int(ram._estimate_dimm_count(gb)),
                        watts=float(ram._calculate_ram_power(gb)))


def cpu_estimate(cpu: CpuFacts) -> Component:
    """The CPU component when no RAPL counter is read: CodeCarbon's cpu_load estimate
    (or a constant without psutil), with the TDP and where it comes from."""
    sockets = f" x {cpu.sockets} sockets" if cpu.sockets > 1 else ""
    if cpu.in_database:
        source = (f"TDP {cpu.database_tdp_w:g} W of '{cpu.database_name}' from CodeCarbon's "
                  f"CPU power database{sockets}")
    elif cpu.psutil:
        source = (f"CodeCarbon's generic default, {default_power_per_thread():g} W per thread x "
                  f"{cpu.threads} threads{sockets}: '{cpu.model}' is not in its CPU power "
                  "database")
    else:
        source = f"CodeCarbon's global constant: '{cpu.model}' is not in its CPU power database"
    if cpu.psutil:
        return Component("cpu", False, M_CPU_LOAD, f"CPU load x {cpu.tdp_w:g} W (at least "
                         f"10%), {source}", fallback=not cpu.in_database)
    return Component("cpu", False, M_CONSTANT, f"constant {cpu.tdp_w:g} W, {source}",
                     fallback=not cpu.in_database)


def component_text(component: Component, refused: str | None = None) -> str:
    """``measured (nvml): ...``, ``estimated (cpu_load): ...``, ``none: ...`` or
    ``missing: ...`` (a GPU that a refused run would not get)."""
    if component.measured:
        return f"measured ({component.method}): {component.detail}"
    if component.method == M_NONE:
        return f"{'missing' if refused and component.component == 'gpu' else 'none'}: " \
               f"{component.detail}"
    return f"estimated ({component.method}): {component.detail}"


def ram_component(ram: RamFacts) -> Component:
    return Component("ram", False, M_RAM, f"CodeCarbon's RAM model, {ram.dimms} "
                     f"DIMM(s) for {ram.memory_gb:.0f} GB = {ram.watts:g} W (RAM is never "
                     "measured; a memory limit does not change it)")


def check_codecarbon(cpu: CpuFacts, ram: RamFacts, rapl_for_you: bool,
                     nvml: list[NvmlGpu] | None = None, nvidia_smi: bool = False
                     ) -> list[Check]:
    """What CodeCarbon does for CPU, GPU and RAM on this host, outside containers."""
    if rapl_for_you:
        cpu_check = Check("codecarbon", "CPU", OK, f"measured ({M_RAPL}): RAPL energy "
                          f"counters for '{cpu.model}'", "", asdict(cpu))
    else:
        estimate = cpu_estimate(cpu)
        cpu_check = Check("codecarbon", "CPU", DEGRADED, component_text(estimate),
                          "have a readable RAPL package domain (see rapl)",
                          {**asdict(cpu), "tdp_w": cpu.tdp_w})
    if cpu.rapl_here != rapl_for_you:
        # CodeCarbon checks with os.access, the doctor with mode bits: say if they differ.
        cpu_check = Check(cpu_check.area, cpu_check.name, cpu_check.verdict,
                          cpu_check.detail + f" (note: CodeCarbon's is_rapl_available() says "
                          f"{cpu.rapl_here} in this process)", cpu_check.fix, cpu_check.facts)
    nvml = nvml or []
    if nvml and nvidia_smi:
        counters = sum(g.energy_counter for g in nvml)
        gpu_check = Check("codecarbon", "GPU", OK if counters == len(nvml) else DEGRADED,
                          f"measured ({M_NVML}): {len(nvml)} GPU(s), {counters} with an energy "
                          "counter (the others: averaged power samples)", "")
    else:
        gpu_check = Check("codecarbon", "GPU", MISSING, "none: CodeCarbon finds no "
                          "NVIDIA GPU here (needs nvidia-smi and NVML); a CPU run is "
                          "unaffected, a GPU run is refused", NVIDIA_FIX if not nvml else
                          "put nvidia-smi on PATH (the NVIDIA driver's utilities)")
    ram_check = Check("codecarbon", "RAM", DEGRADED, component_text(ram_component(ram)),
                      "none: CodeCarbon has no RAM counter; figures that include RAM are "
                      "labelled estimates", asdict(ram))
    return [cpu_check, gpu_check, ram_check]


# --- Slurm -------------------------------------------------------------------------------


def parse_sinfo(document: Mapping[str, Any]) -> tuple[dict[str, list[str]], dict[str, str]]:
    """Partitions (name -> nodes) and node states from ``sinfo --json`` (Slurm 22.05's
    ``nodes`` list, or the ``sinfo`` list of later versions)."""
    partitions: dict[str, list[str]] = {}
    states: dict[str, str] = {}
    for node in document.get("nodes") or []:
        name = str(node.get("name", "?"))
        state = node.get("state", "?")
        states[name] = "+".join(map(str, state)) if isinstance(state, list) else str(state)
        for partition in node.get("partitions") or []:
            partitions.setdefault(str(partition), []).append(name)
    for row in document.get("sinfo") or []:
        partition = str((row.get("partition") or {}).get("name", "?"))
        nodes = (row.get("nodes") or {}).get("nodes") or []
        state = (row.get("node") or {}).get("state") or []
        for name in nodes:
            partitions.setdefault(partition, []).append(str(name))
            states[str(name)] = "+".join(map(str, state)) if isinstance(state, list) else str(state)
    return {k: sorted(set(v)) for k, v in sorted(partitions.items())}, states


def check_slurm(which: Callable[[str], str | None] = shutil.which,
                run: Callable[..., subprocess.CompletedProcess[str]] = subprocess.run,
                env: Mapping[str, str] | None = None,
                state_dir: Path = SLURM_STATE_DIR) -> Check:
    """Whether a Slurm controller answers, and its partitions (``sinfo --json``).

    Kept apart from the rest so the Slurm backend can extend it (accounting, GRES...).
    """
    env = os.environ if env is None else env
    test_conf = state_dir / "slurm.conf"
    hint = (f"`export SLURM_CONF={test_conf}` (the test cluster's env.sh)"
            if test_conf.is_file() and env.get("SLURM_CONF") != str(test_conf) else
            "`make slurm-cluster` (as root) starts a single-host test cluster; then "
            f"`export SLURM_CONF={test_conf}`")
    sinfo = which("sinfo")
    if not sinfo:
        return Check("slurm", "cluster", MISSING, "no Slurm client (sinfo) on PATH",
                     "install Slurm's client and point SLURM_CONF at the cluster's slurm.conf; "
                     "for a test cluster on this machine: " + hint)
    try:
        proc = run([sinfo, "--json"], capture_output=True, text=True, timeout=20, env=dict(env))
    except (OSError, subprocess.TimeoutExpired) as exc:
        return Check("slurm", "cluster", MISSING, f"sinfo --json did not answer ({exc})", hint)
    conf = env.get("SLURM_CONF", "(default)")
    if proc.returncode != 0:
        lines = [line for line in (proc.stderr or "").splitlines() if line.strip()]
        return Check("slurm", "cluster", MISSING, f"sinfo cannot reach a controller "
                     f"(SLURM_CONF={conf}): {(lines[-1] if lines else '')[:160]}", hint)
    try:
        document = json.loads(proc.stdout)
    except ValueError:
        return Check("slurm", "cluster", DEGRADED, "sinfo --json printed no JSON (Slurm "
                     "older than 21.08?)", "use Slurm 21.08 or later")
    partitions, states = parse_sinfo(document)
    release = ((document.get("meta") or {}).get("Slurm") or {}).get("release", "?")
    up = [n for n, s in states.items()
          if not any(w in s.lower() for w in ("down", "drain", "fail", "unknown"))]
    detail = (f"Slurm {release} answers (SLURM_CONF={conf}): partitions "
              + ", ".join(f"{p} ({','.join(n)})" for p, n in partitions.items())
              + f"; {len(up)}/{len(states)} node(s) up")
    facts = {"release": release, "partitions": partitions, "nodes": states,
             "backend_available": _slurm_backend_available()}
    detail += _slurm_config(which, run, env, facts)
    if not facts["backend_available"]:
        detail += "; this harness has no Slurm backend yet (`harness run` cannot use it)"
    if not up:
        return Check("slurm", "cluster", DEGRADED, detail + ": no node is up",
                     "scontrol update nodename=... state=resume, or restart the cluster", facts)
    return Check("slurm", "cluster", OK, detail, "", facts)


def _slurm_config(which: Callable[[str], str | None],
                  run: Callable[..., subprocess.CompletedProcess[str]],
                  env: Mapping[str, str], facts: dict[str, Any]) -> str:
    """What the Slurm backend depends on beyond a controller that answers: accounting
    (sacct: final states, OUT_OF_MEMORY on the step, energy) and an energy plugin
    (Slurm's ConsumedEnergy beside CodeCarbon's figure). Text for the check's detail."""
    scontrol = which("scontrol")
    if not scontrol:
        return ""
    try:
        proc = run([scontrol, "show", "config"], capture_output=True, text=True, timeout=20,
                   env=dict(env))
    except (OSError, subprocess.TimeoutExpired):
        return ""
    if proc.returncode != 0:
        return ""
    config = {key.strip(): value.strip() for key, sep, value in
              (line.partition("=") for line in proc.stdout.splitlines()) if sep}
    storage = config.get("AccountingStorageType", "accounting_storage/none")
    energy = config.get("AcctGatherEnergyType", "acct_gather_energy/none")
    facts.update(accounting=storage, energy_plugin=energy, sacct=bool(which("sacct")))
    text = ("; accounting: " + (f"{storage} (sacct)" if not storage.endswith("/none")
                                and which("sacct") else
                                "none (final states from squeue/scontrol and the worker's "
                                "files)"))
    text += ("; energy: " + ("not gathered (AcctGatherEnergyType none): no Slurm energy to "
                             "cross-check CodeCarbon's" if energy.endswith("/none") else
                             f"{energy} (ConsumedEnergy recorded beside CodeCarbon's)"))
    return text


def _slurm_backend_available() -> bool:
    try:
        return importlib.util.find_spec("harness.backends.slurm_backend") is not None
    except ImportError:
        return False


# --- the host, gathered once ---------------------------------------------------------------


@dataclass
class Host:
    """Everything the predictions depend on, gathered once (tests build it by hand)."""

    cpu: CpuFacts
    ram: RamFacts
    rapl: list[RaplDomain]
    uid: int
    gids: tuple[int, ...]
    nvml: list[NvmlGpu]
    nvml_error: str
    nvidia_smi: bool
    tensorflow: str | None
    """``full``, ``cpu`` (tensorflow-cpu: no GPU) or None, in this venv."""
    docker: bool
    docker_error: str = ""
    docker_userns: bool = False
    """Rootless engine or user-namespace remapping: root in a container is not root."""
    gpu_support: bool = False
    """An NVIDIA runtime or hook gives containers GPUs."""
    container_gpus: list[str] | None = None
    """What nvidia-smi listed in a container; None when not probed."""
    slurm: bool = False
    slurm_error: str = ""
    slurm_backend: bool = False
    """``harness run`` has a Slurm backend (harness/backends/slurm_backend.py)."""


def predict(hardware: Any, rapl_opt_in: bool, backend: str, host: Host, *,
            scenario: str = "host", source: str = "") -> Prediction:
    """What CodeCarbon will measure or estimate for one hardware entry under ``backend``.

    ``hardware`` is a :class:`harness.scenario.HardwareSpec` (name, device, gpu_count,
    gpu_ids). The rules are CodeCarbon's (resource_tracker.py): RAPL when a readable
    package domain exists, else CPU load x TDP; NVML for GPUs where nvidia-smi runs; the
    RAM model always.
    """
    notes: list[str] = []
    fixes: list[str] = []
    refused: str | None = None
    host_rapl = any(d.main and d.mode is not None for d in host.rapl)
    # CPU
    if backend == "docker":
        if not rapl_opt_in:
            why = ("Docker hides the host's RAPL counters" if host_rapl
                   else "this host has no RAPL either")
            cpu = _with_reason(cpu_estimate(host.cpu), why)
            fixes.append("add `tracker: {rapl: true}` to the scenario (README, RAPL in "
                         "containers: a security cost)" if host_rapl else
                         "measure on a host with RAPL (bare metal) to have CPU energy measured")
        elif not host_rapl:
            cpu = _with_reason(cpu_estimate(host.cpu), "tracker.rapl is set but this host has "
                               "no RAPL package domain to mount")
            fixes.append("measure on a host with RAPL (bare metal)")
        elif host.docker_userns:
            cpu = _with_reason(cpu_estimate(host.cpu), "tracker.rapl is set but the engine "
                               "remaps users (rootless or userns): root in the container "
                               "cannot read energy_uj")
            fixes.append("a rootful engine without userns-remap, or --backend local as root")
        else:
            cpu = Component("cpu", True, M_RAPL, "RAPL energy counters, mounted into the "
                            "container (tracker.rapl, worker as root)")
    elif rapl_readable(host.rapl, host.uid, host.gids):
        cpu = Component("cpu", True, M_RAPL, "RAPL energy counters")
    else:
        why = ("no RAPL on this host" if not host.rapl else
               f"RAPL's energy_uj is not readable by uid {host.uid}")
        cpu = _with_reason(cpu_estimate(host.cpu), why)
        fixes.append(RAPL_FIX if host_rapl else
                     "measure on a host with RAPL (bare metal) to have CPU energy measured")
    cpus, cpuset = getattr(hardware, "cpus", None), getattr(hardware, "cpuset", None)
    limits = ", ".join(([f"cpus {cpus:g}"] if cpus else []) + ([f"cpuset {cpuset}"] if cpuset
                                                                else []))
    if backend == "docker" and limits and not cpu.measured:
        notes.append(f"cpu_load reads the whole host's CPU load and CPU count, not the "
                     f"container's share ({limits}): the CPU figure is the machine's estimate")
    # GPU
    if hardware.device != "gpu":
        gpu = Component("gpu", False, M_NONE, "a CPU entry tracks no GPU")
    else:
        gpu, refused, more = _predict_gpu(hardware, hardware.gpu_count, backend, host)
        notes += more
        if refused:
            fixes.insert(0, NVIDIA_FIX if backend == "docker" else
                         "a host with an NVIDIA GPU, its driver (nvidia-smi) and the full "
                         "TensorFlow, or the docker backend on a host with the NVIDIA "
                         "Container Toolkit")
    # Backend
    if backend == "docker" and not host.docker:
        refused = f"no Docker engine answers ({host.docker_error or 'not running'})"
        fixes.insert(0, "start the engine (sudo docker/start-engine.sh), or --backend local")
    if backend == "slurm":
        notes.append("Slurm: assumes the compute nodes are like this host"
                     + ("" if host.slurm_backend else "; `harness run` has no Slurm backend "
                        "yet"))
        if not host.slurm:
            refused = f"no Slurm controller answers ({host.slurm_error or 'no sinfo'})"
            fixes.insert(0, "see the slurm line above")
    return Prediction(scenario=scenario, source=source, hardware=hardware.name,
                      device=hardware.device, backend=backend, cpu=cpu, gpu=gpu,
                      ram=ram_component(host.ram), refused=refused, notes=tuple(notes),
                      fix="; ".join(fixes))


def _with_reason(component: Component, reason: str) -> Component:
    return Component(component.component, component.measured, component.method,
                     f"{component.detail} ({reason})", component.fallback)


def _predict_gpu(hardware: Any, wanted: int, backend: str, host: Host
                 ) -> tuple[Component, str | None, list[str]]:
    notes: list[str] = []
    ids = list(hardware.gpu_ids) if hardware.gpu_ids is not None else None
    if backend == "docker":
        seen = len(host.container_gpus or [])
        if not host.gpu_support:
            reason = "no NVIDIA GPU support in Docker"
        elif host.container_gpus is None:
            reason = "the GPUs a container sees were not probed"
        elif seen < wanted or (ids and max(ids) >= seen):
            reason = f"a container sees {seen} GPU(s), the entry asks for {ids or wanted}"
        else:
            reason = ""
    else:
        seen = len(host.nvml)
        if host.nvml_error or not seen:
            reason = host.nvml_error or "NVML lists no GPU"
        elif seen < wanted or (ids and max(ids) >= seen):
            reason = f"NVML sees {seen} GPU(s), the entry asks for {ids or wanted}"
        elif not host.nvidia_smi:
            reason = "nvidia-smi is not on PATH (CodeCarbon would not track the GPU)"
        elif host.tensorflow != "full":
            reason = ("this venv has " + ("tensorflow-cpu, which sees no GPU"
                                          if host.tensorflow == "cpu" else "no TensorFlow")
                      + ": pip install 'tensorflow[and-cuda]==2.21.0', or use the docker backend")
        else:
            reason = ""
            if seen > wanted:
                notes.append(f"the local worker's CodeCarbon reads all {seen} GPUs of the "
                             f"host, not only the entry's {wanted}")
    if reason:
        return (Component("gpu", False, M_NONE, f"{reason}: GPU runs will be refused"),
                f"GPU runs will be refused: {reason}", notes)
    counters = [g for g in host.nvml if g.energy_counter]
    if host.nvml and len(counters) < len(host.nvml):
        detail = ("NVML, but without an energy counter on "
                  + ", ".join(g.name for g in host.nvml if not g.energy_counter)
                  + " (power samples averaged)")
    else:
        detail = "NVML energy counter (nvmlDeviceGetTotalEnergyConsumption)"
    return Component("gpu", True, M_NVML, f"{detail}, {wanted} GPU(s)"), None, notes


def gather_host(*, uid: int | None = None, gids: tuple[int, ...] | None = None,
                docker: DockerState | None = None, gpu_probe: bool = True,
                slurm: Check | None = None, base_image: str | None = None
                ) -> tuple[Host, list[Check]]:
    """Probe this host once: the Host the predictions use, and every check's line."""
    uid = os.geteuid() if uid is None else uid
    gids = tuple(os.getgroups()) if gids is None else gids
    checks = check_python()
    docker = docker_state() if docker is None else docker
    checks.append(check_engine(docker))
    base = None
    if docker.answers:
        base = find_base_image(docker.client, base_image)
        checks += check_images(docker.client, base_image)
    runtime = check_nvidia_runtime(docker)
    checks.append(runtime)
    container_check, gpus_in_container = (
        check_container_gpus(docker, runtime, base) if gpu_probe else
        (Check("docker", "GPUs in a container", DEGRADED, "not probed"), None))
    checks.append(container_check)
    nvml, nvml_error = read_nvml()
    nvidia_smi = shutil.which("nvidia-smi")
    checks += check_nvml(nvml, nvml_error, nvidia_smi)
    domains = scan_rapl()
    checks += check_rapl(domains, uid, gids)
    cpu, ram = codecarbon_cpu(), codecarbon_ram()
    checks += check_codecarbon(cpu, ram, rapl_readable(domains, uid, gids), nvml,
                               bool(nvidia_smi))
    slurm = check_slurm() if slurm is None else slurm
    checks.append(slurm)
    security = " ".join(docker.info.get("SecurityOptions") or [])
    host = Host(cpu=cpu, ram=ram, rapl=domains, uid=uid, gids=gids, nvml=nvml,
                nvml_error=nvml_error, nvidia_smi=bool(nvidia_smi),
                tensorflow=tensorflow_flavour(), docker=docker.answers,
                docker_error=docker.error, docker_userns="rootless" in security
                or "userns" in security, gpu_support=runtime.verdict == OK,
                container_gpus=gpus_in_container, slurm=slurm.verdict == OK,
                slurm_error=slurm.detail if slurm.verdict != OK else "",
                slurm_backend=_slurm_backend_available())
    return host, checks


# --- scenarios and regions ----------------------------------------------------------------


def check_regions(labels: list[str]) -> list[Check]:
    """Each declared region: its carbon intensity and CodeCarbon's data source."""
    from harness.regions import carbon_intensity, parse_region

    checks = []
    for label in dict.fromkeys(labels):
        intensity = carbon_intensity(parse_region(label))
        checks.append(Check("regions", label, OK,
                            f"{intensity.g_per_kwh:.1f} g CO2/kWh, {intensity.method}, "
                            f"{intensity.year or 'year not given'}: {intensity.source}", "",
                            asdict(intensity)))
    return checks


@dataclass
class Report:
    """The doctor's findings: checks, predictions and the exit status they imply."""

    backend_requested: str
    backend: str
    backend_reason: str
    checks: list[Check]
    predictions: list[Prediction]
    created_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat(
        timespec="seconds"))

    @property
    def exit_status(self) -> int:
        return EXIT_ESTIMATED if any(p.verdict != OK for p in self.predictions) else EXIT_MEASURED

    def summary(self) -> str:
        entries = len(self.predictions)
        refused = [p for p in self.predictions if p.refused]
        estimated = [p for p in self.predictions if not p.refused and p.estimated]
        parts = [f"{entries} hardware entr{'y' if entries == 1 else 'ies'} under {self.backend}"]
        if refused:
            parts.append("refused: " + ", ".join(f"{p.label} ({p.refused})" for p in refused))
        if estimated:
            parts.append("estimated: " + ", ".join(
                f"{p.label} {'+'.join(c.upper() for c in p.estimated)} "
                f"({p.cpu.method if 'cpu' in p.estimated else p.gpu.method}"
                f"{', generic TDP' if 'cpu' in p.estimated and p.cpu.fallback else ''})"
                for p in estimated))
        if not refused and not estimated:
            parts.append("every CPU and GPU figure will be measured")
        parts.append("RAM is always modelled")
        return f"doctor: {'; '.join(parts)}; exit {self.exit_status}"

    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT, "version": VERSION, "created_at": self.created_at,
            "host": {"hostname": platform.node(), "platform": platform.platform(),
                     "python": platform.python_version()},
            "backend": {"requested": self.backend_requested, "used": self.backend,
                        "reason": self.backend_reason},
            "checks": [asdict(c) for c in self.checks],
            "predictions": [{**{k: v for k, v in asdict(p).items()
                                if k not in ("cpu", "gpu", "ram")},
                             "components": {c.component: asdict(c) for c in (p.cpu, p.gpu, p.ram)},
                             "estimated": p.estimated, "verdict": p.verdict}
                            for p in self.predictions],
            "exit_status": self.exit_status,
            "summary": self.summary(),
        }


def resolve_backend(requested: str, host: Host) -> tuple[str, str]:
    """The backend ``harness run --backend requested`` would use, and why."""
    if requested != "auto":
        return requested, f"--backend {requested}"
    if host.docker:
        return "docker", "--backend auto: a Docker engine answers"
    return "local", "--backend auto: no Docker engine answers"


def diagnose(files: list[Path], backend: str = "auto", *, host: Host | None = None,
             checks: list[Check] | None = None) -> Report:
    """Load the scenarios (bad input raises UserError), probe the host, predict each entry."""
    if backend not in BACKENDS:
        raise UserError(f"unknown backend {backend!r}", key="--backend",
                        fix="use --backend auto, local, docker or slurm")
    loaded = []
    if files:
        from harness.scenario import load_scenarios

        loaded = load_scenarios(files)
    if host is None:
        host, checks = gather_host()
    checks = list(checks or [])
    used, reason = resolve_backend(backend, host)
    predictions = []
    if loaded:
        for item in loaded:
            scenario = item.scenario
            for hardware in scenario.hardware:
                predictions.append(predict(hardware, scenario.tracker.rapl, used, host,
                                           scenario=scenario.name, source=str(item.path)))
        checks += check_regions([label for item in loaded for label in item.scenario.regions.all])
    else:
        from harness.scenario import HardwareSpec

        predictions.append(predict(HardwareSpec(name="any-cpu", device="cpu"), False, used,
                                   host))
    return Report(backend, used, reason, checks, predictions)


# --- output -----------------------------------------------------------------------------


def prediction_rows(report: Report) -> list[Check]:
    """Each prediction as a line of the table (area ``measure``)."""
    rows = []
    for p in report.predictions:
        detail = "\n".join(
            [f"{c.component.upper()}: {component_text(c, p.refused)}" for c in (p.cpu, p.gpu, p.ram)]
            + [f"note: {n}" for n in p.notes])
        rows.append(Check("measure", f"{p.label} ({p.backend})", p.verdict, detail, p.fix))
    return rows


def render_text(report: Report) -> str:
    from tabulate import tabulate

    rows = [[c.area, c.name, c.verdict, c.detail, c.fix]
            for c in [*report.checks, *prediction_rows(report)]]
    table = tabulate(rows, headers=["area", "check", "verdict", "detail", "fix"],
                     tablefmt="simple", maxcolwidths=[None, 24, None, 70, 44])
    return (f"backend: {report.backend} ({report.backend_reason})\n\n{table}\n\n"
            f"{report.summary()}")


def main(files: list[Path], backend: str = "auto", *, as_json: bool = False) -> int:
    """``python -m harness doctor``: print the report; the exit status of the module doc."""
    report = diagnose(files, backend)
    if as_json:
        print(json.dumps(report.to_json(), indent=2, default=str))
    else:
        print(render_text(report))
    return report.exit_status
