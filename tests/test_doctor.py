"""`harness doctor` and `harness gpu-check`: host checks, predictions and their agreement
with what a run records.

Most tests run on constructed host states, said so in each docstring: stand-in powercap
trees in tmp_path (mode bits set with chmod; the reasoning is tested from the bits, since
root reads whatever the bits say), a stand-in NVML module, a stand-in Docker client with
a canned ``info()``, canned ``sinfo --json``. The CLI tests run the doctor for real on
this machine (2 AMD EPYC vCPUs, no RAPL, no GPU, a Docker engine without NVIDIA support).
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from harness import doctor, gpu_check
from harness.errors import UserError
from harness.scenario import HardwareSpec
from tests.conftest import REPO, run_cli

CPU = HardwareSpec(name="cpu-1", device="cpu")
GPU1 = HardwareSpec(name="gpu-1", device="gpu", gpus=1)
GPU3 = HardwareSpec(name="gpu-3", device="gpu", gpus=3)


# --- constructed host states -------------------------------------------------------------


def powercap_tree(root: Path, mode: int = 0o400) -> tuple[str, str]:
    """A stand-in for the two sysfs trees, laid out as the kernel does: the class directory
    holds a symlink to the package domain under devices/virtual/powercap/intel-rapl."""
    devices = root / "devices" / "virtual" / "powercap"
    package = devices / "intel-rapl" / "intel-rapl:0"
    core = package / "intel-rapl:0:0"
    for directory, name in ((package, "package-0"), (core, "core")):
        directory.mkdir(parents=True)
        (directory / "name").write_text(name + "\n")
        (directory / "energy_uj").write_text("123456789\n")
        (directory / "energy_uj").chmod(mode)
    classes = root / "class" / "powercap"
    classes.mkdir(parents=True)
    (classes / "intel-rapl:0").symlink_to(package)
    (devices / "intel-rapl" / "enabled").write_text("1\n")
    return str(classes), str(devices)


def cpu_facts(in_database: bool = False) -> doctor.CpuFacts:
    return doctor.CpuFacts(model="AMD EPYC" if not in_database else "Intel Xeon Gold 6248",
                           in_database=in_database,
                           database_name="Intel Xeon Gold 6248" if in_database else None,
                           database_tdp_w=150.0 if in_database else None, threads=2, sockets=1,
                           psutil=True, rapl_here=False)


def host(**changes: Any) -> doctor.Host:
    """A constructed host: no RAPL, no GPU, an engine without NVIDIA support, unless changed."""
    base = doctor.Host(cpu=cpu_facts(), ram=doctor.RamFacts(24.0, 4, 20.0), rapl=[],
                       uid=1000, gids=(1000,), nvml=[], nvml_error="NVML Shared Library Not "
                       "Found", nvidia_smi=False, tensorflow="cpu", docker=True)
    for key, value in changes.items():
        setattr(base, key, value)
    return base


class FakeNvml:
    """A stand-in for pynvml: two GPUs, the second without an energy counter."""

    class NVMLError(Exception):
        pass

    def __init__(self, init_error: str | None = None) -> None:
        self.init_error = init_error
        self.shut = False

    def nvmlInit(self) -> None:
        if self.init_error:
            raise self.NVMLError(self.init_error)

    def nvmlShutdown(self) -> None:
        self.shut = True

    def nvmlDeviceGetCount(self) -> int:
        return 2

    def nvmlDeviceGetHandleByIndex(self, index: int) -> int:
        return index

    def nvmlDeviceGetName(self, handle: int) -> bytes:
        return [b"NVIDIA A100-SXM4-40GB", b"Tesla P100-PCIE-16GB"][handle]

    def nvmlDeviceGetTotalEnergyConsumption(self, handle: int) -> int:
        if handle == 1:
            raise self.NVMLError("Not Supported")
        return 5_000_000  # mJ

    def nvmlDeviceGetPowerUsage(self, handle: int) -> int:
        return 61_000  # mW


class FakeImages:
    def __init__(self, tags: dict[str, str]) -> None:
        self.objects = [SimpleNamespace(id=image_id, tags=[tag]) for tag, image_id in tags.items()]

    def list(self, **_: Any) -> list[Any]:
        return self.objects


class FakeContainers:
    def create(self, *args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the doctor started a container although Docker has no NVIDIA "
                             "support")


class FakeDocker:
    """A stand-in Docker client: an engine whose canned info() lists only runc."""

    def __init__(self, tags: dict[str, str] | None = None, runtimes: dict | None = None,
                 driver: str = "overlay2") -> None:
        self._info = {"Driver": driver, "NCPU": 2, "MemTotal": 24 * 2**30,
                      "Runtimes": runtimes or {"runc": {"path": "runc"}},
                      "SecurityOptions": ["name=seccomp,profile=default"]}
        self.images = FakeImages(tags if tags is not None else
                                 {"harness-base:bookworm-py311": "sha256:base"})
        self.containers = FakeContainers()

    def info(self) -> dict:
        return self._info

    def version(self) -> dict:
        return {"Version": "20.10.24", "ApiVersion": "1.41"}


def _no_hook(name: str) -> None:
    return None


# --- RAPL: stand-in powercap trees ----------------------------------------------------------


def test_rapl_scan_follows_the_kernel_layout_once(tmp_path: Path) -> None:
    """Constructed: a powercap tree in tmp_path (class symlink + devices directory); each
    domain is found once, the package domain is CodeCarbon's main domain."""
    roots = powercap_tree(tmp_path)
    domains = doctor.scan_rapl(roots)
    assert sorted((Path(d.path).name, d.name, d.main, d.mode) for d in domains) == [
        ("intel-rapl:0", "package-0", True, 0o400),
        ("intel-rapl:0:0", "core", True, 0o400)]  # ":0" counts as main, as in CodeCarbon


@pytest.mark.parametrize(("mode", "uid", "gids", "readable"), [
    (0o400, 0, (), True),          # root reads whatever the bits say
    (0o400, 1000, (1000,), False),  # root-only since CVE-2020-8694
    (0o440, 1000, (0,), True),      # group root, user in it
    (0o440, 1000, (1000,), False),
    (0o444, 1000, (1000,), True),   # chmod a+r
    (0o044, 0, (), True),
])
def test_rapl_readability_is_reasoned_from_mode_bits(tmp_path: Path, mode: int, uid: int,
                                                      gids: tuple[int, ...], readable: bool
                                                      ) -> None:
    """Constructed: energy_uj files chmod-ed in tmp_path, owned by whoever runs the test;
    the verdict for another uid comes from the bits, not from os.access."""
    roots = powercap_tree(tmp_path, mode)
    domains = doctor.scan_rapl(roots)
    owner = domains[0].uid
    as_other = [doctor.RaplDomain(d.path, d.name, d.main, d.mode, owner if owner != uid else
                                  uid + 1, 0) for d in domains]
    assert doctor.rapl_readable(as_other, uid, gids) is readable
    verdicts = {c.name: c for c in doctor.check_rapl(as_other, uid, gids, roots)}
    assert verdicts["RAPL for you"].verdict == (doctor.OK if readable else doctor.DEGRADED)
    if not readable:
        assert "CVE-2020-8694" in verdicts["RAPL for you"].detail
        assert "chmod a+r" in verdicts["RAPL for you"].fix
    assert verdicts["RAPL in containers"].verdict == doctor.OK


def test_rapl_owner_bits_decide_for_the_owner() -> None:
    """Constructed: a domain owned by uid 1000 with mode 0400 (owner read) and 0040."""
    mine = doctor.RaplDomain("/x/intel-rapl:0", "package-0", True, 0o400, 1000, 50)
    assert doctor.readable_by(mine, 1000, (50,))
    group_only = doctor.RaplDomain("/x/intel-rapl:0", "package-0", True, 0o040, 1000, 50)
    assert not doctor.readable_by(group_only, 1000, (50,))  # the owner class wins


def test_no_powercap_is_missing_everywhere(tmp_path: Path) -> None:
    """Constructed: powercap roots that do not exist (a VM, as on this machine)."""
    roots = (str(tmp_path / "none"), str(tmp_path / "none2"))
    (check,) = doctor.check_rapl(doctor.scan_rapl(roots), 0, (), roots)
    assert check.verdict == doctor.MISSING and "estimated on every backend" in check.detail


def test_predictions_follow_rapl_and_the_opt_in(tmp_path: Path) -> None:
    """Constructed: a RAPL tree readable by root only; the local backend as root and as
    uid 1000, the docker backend with and without `tracker.rapl`, and a userns engine."""
    domains = doctor.scan_rapl(powercap_tree(tmp_path, 0o400))
    domains = [doctor.RaplDomain(d.path, d.name, d.main, d.mode, 0, 0) for d in domains]
    as_root = doctor.predict(CPU, False, "local", host(rapl=domains, uid=0, gids=(0,)))
    assert (as_root.cpu.measured, as_root.cpu.method, as_root.verdict) == (True, "intel_rapl", "ok")
    as_user = doctor.predict(CPU, False, "local", host(rapl=domains))
    assert (as_user.cpu.measured, as_user.cpu.method) == (False, "cpu_load")
    assert "not readable by uid 1000" in as_user.cpu.detail and "chmod" in as_user.fix
    hidden = doctor.predict(CPU, False, "docker", host(rapl=domains, uid=0))
    assert not hidden.cpu.measured and "Docker hides" in hidden.cpu.detail
    assert "rapl: true" in hidden.fix
    opted = doctor.predict(CPU, True, "docker", host(rapl=domains))
    assert (opted.cpu.measured, opted.cpu.method) == (True, "intel_rapl")
    remapped = doctor.predict(CPU, True, "docker", host(rapl=domains, docker_userns=True))
    assert not remapped.cpu.measured and "remaps users" in remapped.cpu.detail
    assert doctor.predict(CPU, True, "docker", host()).cpu.measured is False  # opt-in, no RAPL


def test_cpu_estimate_names_the_tdp_source() -> None:
    """Constructed: a CPU CodeCarbon does not know (the generic 4 W per thread) and one
    it does (its database's TDP)."""
    generic = doctor.cpu_estimate(cpu_facts(False))
    assert generic.fallback and generic.method == "cpu_load"
    assert "4 W per thread x 2 threads" in generic.detail and "'AMD EPYC'" in generic.detail
    known = doctor.cpu_estimate(cpu_facts(True))
    assert not known.fallback and "TDP 150 W of 'Intel Xeon Gold 6248'" in known.detail


# --- NVML: a stand-in module -------------------------------------------------------------


def test_nvml_counters_per_gpu() -> None:
    """Constructed: a stand-in pynvml with two GPUs, the second without an energy counter."""
    fake = FakeNvml()
    gpus, error = doctor.read_nvml(fake)
    assert not error and fake.shut
    assert [(g.name, g.energy_counter, g.energy_j, g.power_w) for g in gpus] == [
        ("NVIDIA A100-SXM4-40GB", True, 5000.0, 61.0), ("Tesla P100-PCIE-16GB", False, None, 61.0)]
    checks = {c.name: c for c in doctor.check_nvml(gpus, error, "/usr/bin/nvidia-smi")}
    assert checks["NVML GPU 0"].verdict == doctor.OK
    assert checks["NVML GPU 1"].verdict == doctor.DEGRADED
    assert "averaging nvmlDeviceGetPowerUsage" in checks["NVML GPU 1"].detail


def test_nvml_without_a_driver_is_missing() -> None:
    """Constructed: a stand-in pynvml whose nvmlInit fails as without a driver."""
    gpus, error = doctor.read_nvml(FakeNvml(init_error="NVML Shared Library Not Found"))
    assert gpus == [] and "Shared Library Not Found" in error
    checks = {c.name: c for c in doctor.check_nvml(gpus, error, None)}
    assert checks["NVML"].verdict == checks["nvidia-smi"].verdict == doctor.MISSING


def test_gpu_predictions_local_and_docker() -> None:
    """Constructed: NVML GPUs with and without the full TensorFlow, too few GPUs, and an
    engine with and without NVIDIA support."""
    gpus, _ = doctor.read_nvml(FakeNvml())
    ready = host(nvml=gpus, nvml_error="", nvidia_smi=True, tensorflow="full")
    local = doctor.predict(GPU1, False, "local", ready)
    assert (local.gpu.measured, local.gpu.method, local.refused) == (True, "nvml", None)
    assert "all 2 GPUs" in " ".join(local.notes)  # CodeCarbon reads every GPU of the host
    cpu_tf = doctor.predict(GPU1, False, "local", host(nvml=gpus, nvml_error="",
                                                       nvidia_smi=True, tensorflow="cpu"))
    assert cpu_tf.verdict == doctor.MISSING and "tensorflow-cpu" in str(cpu_tf.refused)
    assert doctor.predict(GPU3, False, "local", ready).refused
    no_support = doctor.predict(GPU1, False, "docker", ready)
    assert no_support.verdict == doctor.MISSING
    assert "GPU runs will be refused" in no_support.gpu.detail
    supported = doctor.predict(GPU1, False, "docker", host(
        nvml=gpus, gpu_support=True, container_gpus=["0, A100, GPU-x", "1, P100, GPU-y"]))
    assert supported.gpu.measured and supported.refused is None
    assert "without an energy counter on Tesla P100" in supported.gpu.detail
    assert doctor.predict(CPU, False, "docker", host(docker=False)).refused


# --- Docker: a stand-in client --------------------------------------------------------------


def test_engine_without_nvidia_runtime_starts_no_container() -> None:
    """Constructed: a stand-in client whose info() lists only runc; a container start would
    fail the test."""
    state = doctor.docker_state(connect=FakeDocker)
    assert doctor.check_engine(state).verdict == doctor.OK
    runtime = doctor.check_nvidia_runtime(state, which=_no_hook)
    assert runtime.verdict == doctor.MISSING
    assert "no NVIDIA GPU support in Docker" in runtime.detail and "runc" in runtime.detail
    check, gpus = doctor.check_container_gpus(state, runtime, object())
    assert check.verdict == doctor.MISSING and gpus is None
    assert "no container was started" in check.detail


def test_engine_with_nvidia_runtime_probes_the_gpus() -> None:
    """Constructed: a stand-in engine with the nvidia runtime and a stand-in probe."""
    state = doctor.docker_state(connect=lambda: FakeDocker(
        runtimes={"runc": {}, "nvidia": {"path": "nvidia-container-runtime"}}))
    runtime = doctor.check_nvidia_runtime(state, which=_no_hook)
    assert runtime.verdict == doctor.OK
    check, gpus = doctor.check_container_gpus(
        state, runtime, object(), probe=lambda client, image: (["0, NVIDIA H100, GPU-1"], ""))
    assert check.verdict == doctor.OK and gpus == ["0, NVIDIA H100, GPU-1"]
    hook = doctor.check_nvidia_runtime(doctor.docker_state(connect=FakeDocker),
                                       which=lambda name: f"/usr/bin/{name}")
    assert hook.verdict == doctor.OK and "nvidia-container-runtime-hook" in hook.detail


def test_engine_that_does_not_answer() -> None:
    """Constructed: the backend's connect raising its UserError."""
    def refuse() -> Any:
        raise UserError("the Docker daemon does not answer", fix="start it")

    state = doctor.docker_state(connect=refuse)
    assert not state.answers
    assert doctor.check_engine(state).verdict == doctor.MISSING
    assert doctor.predict(CPU, False, "docker", host(docker=False,
                                                     docker_error=state.error)).refused


def test_worker_images_current_stale_or_missing() -> None:
    """Constructed: image lists with the current tag, only older tags, and none."""
    def tag_for(flavour: str, base_id: str) -> str:
        return f"harness-worker:{flavour}-current"

    current = FakeDocker({"harness-base:bookworm-py311": "sha256:b",
                          "harness-worker:cpu-current": "sha256:c",
                          "harness-worker:gpu-old": "sha256:g"})
    checks = {c.name: c for c in doctor.check_images(current, tag_for=tag_for)}
    assert checks["base image"].verdict == doctor.OK
    assert checks["cpu worker image"].verdict == doctor.OK
    assert checks["gpu worker image"].verdict == doctor.DEGRADED
    assert "stale" in checks["gpu worker image"].detail
    assert "python -m harness image gpu" in checks["gpu worker image"].fix
    empty = {c.name: c for c in doctor.check_images(FakeDocker({}), tag_for=tag_for)}
    assert empty["base image"].verdict == doctor.MISSING
    assert "make base-image" in empty["base image"].fix


def test_gpu_check_stops_before_building_without_nvidia_support() -> None:
    """Constructed: the stand-in engine without NVIDIA support; gpu-check's preconditions
    raise the NVIDIA message (exit 2 at the CLI) and start no container."""
    state = doctor.docker_state(connect=FakeDocker)
    with pytest.raises(UserError) as error:
        gpu_check.preconditions(state, which=_no_hook)
    assert "no NVIDIA GPU support in Docker" in error.value.message
    assert "nvidia-ctk" in (error.value.fix or "")


# --- Slurm and packages ------------------------------------------------------------------

SINFO_22_05 = {"meta": {"Slurm": {"release": "22.05.8"}}, "nodes": [
    {"name": "c1", "state": "idle", "partitions": ["harness", "cpu"]},
    {"name": "g1", "state": "down", "partitions": ["harness", "gpu"]}]}


def _sinfo(returncode: int, stdout: str = "", stderr: str = "") -> Any:
    def run(argv: list[str], **_: Any) -> subprocess.CompletedProcess[str]:
        assert argv[1:] == ["--json"]
        return subprocess.CompletedProcess(argv, returncode, stdout, stderr)
    return run


def test_slurm_states(tmp_path: Path) -> None:
    """Constructed: no sinfo, an unreachable controller and a canned `sinfo --json`."""
    which = {"sinfo": "/usr/bin/sinfo"}.get
    missing = doctor.check_slurm(which=lambda name: None, env={}, state_dir=tmp_path)
    assert missing.verdict == doctor.MISSING and "make slurm-cluster" in missing.fix
    (tmp_path / "slurm.conf").write_text("")
    down = doctor.check_slurm(which=which, env={}, state_dir=tmp_path,
                              run=_sinfo(1, stderr="sinfo: fatal: Could not establish a "
                                         "configuration source"))
    assert down.verdict == doctor.MISSING and f"SLURM_CONF={tmp_path}/slurm.conf" in down.fix
    up = doctor.check_slurm(which=which, env={"SLURM_CONF": "/x"}, state_dir=tmp_path,
                            run=_sinfo(0, json.dumps(SINFO_22_05)))
    assert up.verdict == doctor.OK
    assert up.facts["partitions"] == {"cpu": ["c1"], "gpu": ["g1"], "harness": ["c1", "g1"]}
    assert "1/2 node(s) up" in up.detail
    later = {"sinfo": [{"partition": {"name": "gpu"}, "nodes": {"nodes": ["g1"]},
                        "node": {"state": ["IDLE"]}}]}
    assert doctor.parse_sinfo(later) == ({"gpu": ["g1"]}, {"g1": "IDLE"})


def test_package_versions_against_pins() -> None:
    """Constructed: installed versions from a stand-in metadata lookup."""
    installed = {"tensorflow-cpu": "2.20.0", "codecarbon": "3.3.2"}

    def version_of(name: str) -> str:
        if name not in installed:
            raise importlib.metadata.PackageNotFoundError(name)
        return installed[name]

    checks = {c.name: c for c in doctor.check_python(
        version_of, {"tensorflow-cpu": "2.21.0", "codecarbon": "3.3.2"}, (3, 12, 1))}
    assert checks["python"].verdict == doctor.DEGRADED
    assert checks["tensorflow-cpu"].verdict == doctor.DEGRADED
    assert "pinned 2.21.0" in checks["tensorflow-cpu"].detail
    assert checks["codecarbon"].verdict == doctor.OK
    assert checks["docker"].verdict == doctor.DEGRADED and "not installed" in checks["docker"].detail


def test_exit_status_counts_cpu_and_gpu_not_ram() -> None:
    """Constructed: predictions with a measured CPU (RAM still modelled), an estimated CPU,
    and a refused GPU entry."""
    rapl = [doctor.RaplDomain("/x/intel-rapl:0", "package-0", True, 0o400, 0, 0)]
    measured = doctor.predict(CPU, False, "local", host(rapl=rapl, uid=0))
    report = doctor.Report("local", "local", "test", [], [measured])
    assert report.exit_status == 0 and "every CPU and GPU figure will be measured" in report.summary()
    estimated = doctor.predict(CPU, False, "local", host())
    refused = doctor.predict(GPU1, False, "docker", host())
    report = doctor.Report("auto", "docker", "test", [], [estimated, refused])
    assert report.exit_status == 1
    assert "estimated: host/cpu-1 CPU (cpu_load, generic TDP)" in report.summary()
    assert "refused: host/gpu-1" in report.summary()


# --- the placement probe's parser (no TensorFlow) ----------------------------------------


def _probe_module() -> Any:
    spec = importlib.util.spec_from_file_location("gpu_probe", REPO / "docker" / "gpu_probe.py")
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


def test_placement_log_is_parsed_and_judged() -> None:
    """Constructed: placer lines as TensorFlow prints them (stdout, and glog on stderr)."""
    probe = _probe_module()
    device = "/job:localhost/replica:0/task:0/device:{}"
    lines = []
    for gpu in (0, 1):
        for op in probe.HEAVY_OPS:
            line = f"while/body/replica_{gpu}/{op}_1: ({op}): {device.format(f'GPU:{gpu}')}\n"
            lines += [line, "I0000 00:00:1.0   1 placer.cc:162] " + line]
    lines.append(f"IteratorGetNext: (IteratorGetNext): {device.format('CPU:0')}\n")
    placement = probe.parse_placement(lines)
    assert placement["Conv2D"] == {"GPU:0": 1, "GPU:1": 1}  # each node once
    assert probe.judge(placement, 2) == (True, "every heavy kernel on the GPU (GPU:0, GPU:1)")
    ok, reason = probe.judge(placement, 3)
    assert not ok and "GPU:2" in reason
    on_cpu = {**placement, "MatMul": {"CPU:0": 2, "GPU:0": 1}}
    assert probe.judge(on_cpu, 1)[0] is False
    assert probe.judge({}, 1) == (False, "no placement logged for " + ", ".join(probe.HEAVY_OPS))


# --- gpu-check's verdicts on recorded files ------------------------------------------------


def _metrics(gpu_count: int, method: str, gpu_kwh: float) -> Any:
    """A stand-in for a read metrics.json (the attributes gpu-check looks at)."""
    energy = SimpleNamespace(gpu_kwh=gpu_kwh)
    return SimpleNamespace(
        status=SimpleNamespace(value="ok"), error=None,
        environment=SimpleNamespace(gpu_count=gpu_count, gpu_models=["NVIDIA A100"] * gpu_count),
        power=[SimpleNamespace(component="gpu", measured=method == "nvml", method=method)],
        scopes=SimpleNamespace(run=SimpleNamespace(energy=energy),
                               training=SimpleNamespace(energy=energy)))


def test_gpu_check_judges_a_gpu_run() -> None:
    """Constructed: stand-ins for the metrics of a GPU run that saw its GPU and read NVML,
    and of one that did not."""
    runs = {"gpu-1": {"metrics": _metrics(1, "nvml", 1.5e-5), "problems": []},
            "gpu-all": {"metrics": _metrics(1, "none", 0.0), "problems": []}}
    seen, nvml = gpu_check.judge_run(runs, "gpu-1", 1)
    assert seen.ok and "NVIDIA A100" in seen.detail
    assert nvml.ok and "power method nvml (measured), GPU energy 54.0 J" in nvml.detail
    seen, nvml = gpu_check.judge_run(runs, "gpu-all", 2)
    assert seen.ok is False and nvml.ok is False
    assert gpu_check.judge_run(runs, "gpu-9", 1)[0].ok is False


def test_gpu_check_reads_the_report(tmp_path: Path) -> None:
    """Constructed: summary.json files (format harness.report) with and without the GPU
    columns and the comparison against the CPU baseline."""
    good = {"groups": [{"hardware": "gpu-1", "power": {"gpu": "measured (nvml)"}},
                       {"hardware": "cpu-ref", "power": {"gpu": "none"}}],
            "comparisons": [{"hardware": "gpu-1", "baseline": "gpu-check/cpu-ref",
                             "speedup": {"estimate": 7.5}, "energy_ratio": {"estimate": 0.4}}]}
    path = tmp_path / "summary.json"
    path.write_text(json.dumps(good))
    columns, compared = gpu_check.judge_report(path, ["gpu-1"])
    assert columns.ok and compared.ok and "speed-up 7.50x" in compared.detail
    bad = {"groups": [{"hardware": "gpu-1", "power": {"gpu": "none"}}], "comparisons": []}
    path.write_text(json.dumps(bad))
    columns, compared = gpu_check.judge_report(path, ["gpu-1"])
    assert columns.ok is False and compared.ok is False
    assert "gpu-1: none" not in gpu_check.scenario_text(1)
    assert "gpu-all, device: gpu, gpus: 4" in gpu_check.scenario_text(4)


# --- the doctor for real on this machine --------------------------------------------------


def _doctor_json(*args: str) -> tuple[int, dict]:
    proc = run_cli("doctor", *args, "--json", timeout=120)
    assert proc.returncode in (0, 1), proc.stderr
    return proc.returncode, json.loads(proc.stdout)


def test_doctor_on_this_machine_cpu_scenario() -> None:
    """This machine: AMD EPYC (not in CodeCarbon's database), no RAPL, no GPU, a Docker
    engine without NVIDIA support: CPU and RAM estimated, the model named, exit 1."""
    proc = run_cli("doctor", "scenarios/cpu.yaml", timeout=120)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    text = proc.stdout
    assert "estimated (cpu_load)" in text and "estimated (ram_model)" in text
    assert "'AMD EPYC'" in text and "generic" in text  # the table wraps long details
    assert text.splitlines()[-1].startswith("doctor: 2 hardware entries")
    assert "exit 1" in text.splitlines()[-1]
    code, document = _doctor_json("scenarios/cpu.yaml")
    assert (document["format"], document["version"], code) == ("harness.doctor", 1, 1)
    checks = {(c["area"], c["name"]): c for c in document["checks"]}
    assert checks[("docker", "NVIDIA runtime")]["verdict"] == "missing"
    assert checks[("gpu", "NVML")]["verdict"] == "missing"
    assert checks[("rapl", "RAPL domains")]["verdict"] == "missing"
    assert checks[("regions", "CAN/quebec")]["facts"]["g_per_kwh"] > 0
    for prediction in document["predictions"]:
        cpu, ram = prediction["components"]["cpu"], prediction["components"]["ram"]
        assert (cpu["measured"], cpu["method"], cpu["fallback"]) == (False, "cpu_load", True)
        assert "4 W per thread x 2 threads: 'AMD EPYC' is not in its CPU power" in cpu["detail"]
        assert (ram["measured"], ram["method"]) == (False, "ram_model")
        assert prediction["estimated"] == ["cpu"] and prediction["verdict"] == "degraded"


def test_doctor_on_this_machine_gpu_scenario() -> None:
    """This machine has no GPU: the GPU entry is reported missing (refused), per backend."""
    for backend in ("docker", "local"):
        code, document = _doctor_json("scenarios/gpu.yaml", "--backend", backend)
        (prediction,) = document["predictions"]
        assert code == 1 and prediction["verdict"] == "missing"
        assert "GPU runs will be refused" in prediction["refused"]
    proc = run_cli("doctor", "scenarios/gpu.yaml", timeout=120)
    assert "GPU: missing:" in proc.stdout


def test_doctor_bad_input_exits_2_without_traceback(write_yaml) -> None:
    broken = write_yaml("name: x\nhardware: [", "broken.yaml")
    for args in (["missing.yaml"], [str(broken)], ["--backend", "k8s"]):
        proc = run_cli("doctor", *args, timeout=120)
        assert proc.returncode == 2, (args, proc.stdout, proc.stderr)
        assert proc.stderr.startswith("error: ") and "Traceback" not in proc.stderr


def test_doctor_imports_no_tensorflow_and_writes_nothing(tmp_path: Path) -> None:
    """The doctor's process never imports TensorFlow, Keras or the worker, and leaves its
    working directory as it found it (no tracker, no CSV, no lock file)."""
    code = ("import contextlib, io, sys\nfrom harness.cli import main\n"
            "with contextlib.redirect_stdout(io.StringIO()):\n"
            f"    main(['doctor', {str(REPO / 'scenarios/cpu.yaml')!r}, '--json'])\n"
            "print(' '.join(sys.modules))")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True,
                          text=True, timeout=120, env=env)
    assert proc.returncode == 0, proc.stderr
    loaded = proc.stdout.split()
    assert not [m for m in loaded if m.split(".")[0] in ("tensorflow", "keras")
                or m.startswith("harness.worker")]
    assert list(tmp_path.iterdir()) == []


# --- slow and docker ---------------------------------------------------------------------


def _no_idle() -> list[str]:
    return ["--no-idle"] if "--no-idle" in run_cli("run", "--help").stdout else []


@pytest.mark.slow
def test_doctor_agrees_with_what_a_run_records(tmp_path: Path, write_yaml) -> None:
    """A real worker run (local backend, 1 epoch on 600 generated images): each component's
    measured flag and method in metrics.json's power equal the doctor's prediction."""
    from tests.conftest import MINIMAL

    scenario = write_yaml(MINIMAL)
    run = run_cli("run", str(scenario), "--backend", "local", "--session", "s",
                  "--results-dir", str(tmp_path / "results"), "--data-dir",
                  str(tmp_path / "data"), *_no_idle(), timeout=600)
    metrics_path = tmp_path / "results" / "s" / "mini__cpu-a__r01" / "metrics.json"
    assert metrics_path.is_file(), run.stdout[-2000:] + run.stderr[-2000:]
    metrics = json.loads(metrics_path.read_text())
    assert metrics["status"] == "ok", metrics.get("error")
    recorded = {p["component"]: p for p in metrics["power"]}
    _, document = _doctor_json(str(scenario), "--backend", "local")
    (prediction,) = document["predictions"]
    for component in ("cpu", "gpu", "ram"):
        predicted = prediction["components"][component]
        assert (predicted["measured"], predicted["method"]) == (
            recorded[component]["measured"], recorded[component]["method"]), component
    # gpu-check reads the same files through the checked reader.
    runs = gpu_check.read_runs(tmp_path / "results" / "s")
    assert runs["cpu-a"]["problems"] == [] and runs["cpu-a"]["metrics"].status.value == "ok"


@pytest.mark.slow
def test_placement_probe_runs_on_the_cpu() -> None:
    """The real probe with this venv's TensorFlow, asked for no GPU: the placer's log is
    read and every heavy kernel is found on the CPU (the machinery gpu-check relies on)."""
    proc = subprocess.run([sys.executable, str(REPO / "docker" / "gpu_probe.py"), "--gpus", "0"],
                          capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    line = next(line for line in proc.stdout.splitlines() if line.startswith("GPU_PROBE "))
    result = json.loads(line[len("GPU_PROBE "):])
    assert proc.returncode == 0 and result["ok"], result
    assert set(result["placement"]["Conv2D"]) == {"CPU:0"}


def _docker_count(*args: str) -> int:
    proc = subprocess.run(["docker", *args, "-q"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return len(proc.stdout.split())


@pytest.mark.docker
def test_gpu_check_here_stops_at_once(tmp_path: Path) -> None:
    """This machine's engine has no NVIDIA support: gpu-check exits 2 with the NVIDIA
    message within seconds, builds no image, starts no container, writes no folder."""
    images, containers = _docker_count("images"), _docker_count("ps", "-a")
    start = time.monotonic()
    proc = run_cli("gpu-check", "--results-dir", str(tmp_path), timeout=120)
    elapsed = time.monotonic() - start
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "no NVIDIA GPU support in Docker" in proc.stderr and "nvidia-ctk" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert elapsed < 20
    assert _docker_count("images") == images and _docker_count("ps", "-a") == containers
    assert list(tmp_path.iterdir()) == []
    # The doctor, too, starts no container where Docker has no NVIDIA support.
    run_cli("doctor", "scenarios/gpu.yaml", timeout=120)
    assert _docker_count("ps", "-a") == containers
