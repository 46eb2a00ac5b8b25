"""The Docker backend: each run in its own container, with the scenario's limits.

The only module that imports ``docker`` (the SDK). It builds the worker image when
its inputs changed (the tag carries a hash of them), runs one container per run
with the CPU quota, CPU set, memory limit and GPUs the scenario declares, streams
the container's output, enforces the timeout (SIGTERM, then SIGKILL), detects
out-of-memory kills, records what Docker actually applied, and removes its
containers, also when the user presses Ctrl-C.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import platform
import threading
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker
import docker.errors
import requests.exceptions
from docker.types import DeviceRequest

import harness
from harness.backends import STOP_GRACE_S, Backend, Job, LineSink, Outcome, worker_environment
from harness.backends.local import parse_cpuset
from harness.errors import UserError
from harness.results import mark_orphaned
from harness.schema import RunSpec
from harness.state import process_alive, process_start_ticks

OFFICIAL_BASE = "python:3.11-slim-bookworm"
LOCAL_BASE = "harness-base:bookworm-py311"
IMAGE_REPO = "harness-worker"
LABEL_SESSION = "harness.session"
"""The session directory's name (for people; names repeat across results directories)."""
LABEL_SESSION_ID = "harness.session-id"
"""The session's unique id: what stop and clean-up select on."""
LABEL_RUN = "harness.run"
LABEL_OWNER_PID = "harness.owner-pid"
"""The pid of the harness process that started the container, and its host: a later
harness finds containers whose owner is gone."""
LABEL_OWNER_HOST = "harness.owner-host"
LABEL_OWNER_START = "harness.owner-start"
"""The owner's start time (clock ticks after boot, /proc/PID/stat): a reused pid is not
mistaken for the owner."""
LABEL_RUN_DIR = "harness.run-dir"
"""The run directory on the owner's host, so a later harness can mark an orphan's run."""
#: The image's unprivileged user (Dockerfile.cpu/.gpu: useradd --uid 1000 bench).
WORKER_UID = 1000
#: Where the container sees the run directory and the datasets.
RUN_MOUNT, DATA_MOUNT = "/run-dir", "/data"
#: The RAPL trees: the class directory holds symlinks into the devices directory.
POWERCAP_TREES = ("/sys/class/powercap", "/sys/devices/virtual/powercap")
POWERCAP = POWERCAP_TREES[0]
#: Host variables a container must not inherit: it has its own paths and user.
_HOST_ONLY = ("PATH", "TMPDIR", "USER", "HOME", "PYTHONPATH")
BUILD_LOG_TAIL = 25

REPO_ROOT = Path(harness.__file__).resolve().parent.parent


def flavour_of(run: RunSpec) -> str:
    """The worker image a run needs: ``cpu`` or ``gpu``."""
    return "gpu" if run.hardware.device == "gpu" else "cpu"


def image_inputs(flavour: str, root: Path = REPO_ROOT) -> list[Path]:
    """Every file the image is built from; the tag hashes them."""
    # Not README.md: the Dockerfiles write a stub in its place, so editing the
    # documentation neither changes the tag nor rebuilds the image.
    files = [root / f"Dockerfile.{flavour}", root / f"docker/requirements-{flavour}.txt",
             root / "docker/constraints.txt", root / "pyproject.toml"]
    files += sorted((root / "harness").rglob("*.py"))
    return files


def image_tag(flavour: str, base_image_id: str, root: Path = REPO_ROOT) -> str:
    """``harness-worker:<flavour>-<hash>``: changes when any input or the base changes."""
    digest = hashlib.sha256(base_image_id.encode())
    for path in image_inputs(flavour, root):
        digest.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes() + b"\0")
    return f"{IMAGE_REPO}:{flavour}-{digest.hexdigest()[:12]}"


def connect(timeout_s: float = 10) -> docker.DockerClient:
    """A client whose daemon answers, or a UserError saying how to get one."""
    try:
        client = docker.from_env(timeout=timeout_s)
        client.ping()
        return client
    except docker.errors.DockerException as exc:
        text = str(exc)
        host = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
        if "Permission denied" in text or "PermissionError" in text:
            raise UserError(
                f"permission denied on the Docker socket ({host})", key="--backend docker",
                fix="add your user to the docker group (sudo usermod -aG docker $USER, then log "
                    "in again), run as root, or use --backend local",
            ) from None
        raise UserError(
            f"the Docker daemon does not answer at {host}", key="--backend docker",
            fix="start it (sudo systemctl start docker, or sudo docker/start-engine.sh), "
                "or use --backend local",
        ) from None


def docker_answers() -> bool:
    """True when a Docker daemon answers (used by --backend auto)."""
    try:
        connect(timeout_s=5).close()
        return True
    except UserError:
        return False


class DockerBackend(Backend):
    """Runs each worker in a container of the CPU or CUDA worker image."""

    name = "docker"

    def __init__(self, *, base_image: str | None = None, flavour: str | None = None,
                 log: LineSink = print, root: Path = REPO_ROOT) -> None:
        """
        Args:
            base_image: the Dockerfiles' BASE_IMAGE; default: the official Python 3.11
                slim image if present or pullable, else the local stand-in.
            flavour: force one worker image (``cpu`` or ``gpu``) for every run; default:
                by each run's device.
            log: where build output and notices go.
        """
        self.client = connect()
        self.root = root
        self.base_image = base_image
        self.flavour = flavour
        self.log = log
        self.images: dict[str, Any] = {}
        self._lock = threading.Lock()
        self._sessions: set[str] = set()

    # --- preflight -------------------------------------------------------------------

    def preflight(self, runs: list[RunSpec]) -> list[str]:
        warnings: list[str] = []
        info = self.client.info()
        host_cpus, host_mem = int(info.get("NCPU", 0)), int(info.get("MemTotal", 0))
        for run in runs:
            hw, where = run.hardware, f"hardware[{run.hardware.name}]"
            if hw.cpus is not None and host_cpus and hw.cpus > host_cpus:
                raise UserError(f"asks for {hw.cpus:g} CPUs; the Docker host has {host_cpus}",
                                source=run.scenario_file, key=f"{where}.cpus",
                                fix=f"set cpus to at most {host_cpus}")
            if hw.cpuset and host_cpus and max(parse_cpuset(hw.cpuset)) >= host_cpus:
                raise UserError(f"cpuset {hw.cpuset!r} names CPUs the Docker host does not have "
                                f"(it has 0-{host_cpus - 1})", source=run.scenario_file,
                                key=f"{where}.cpuset", fix="choose CPUs the host has")
            if hw.memory_bytes and host_mem and hw.memory_bytes > host_mem:
                raise UserError(f"asks for {hw.memory} of memory; the Docker host has "
                                f"{host_mem / 2**30:.1f} GiB", source=run.scenario_file,
                                key=f"{where}.memory", fix="lower the memory limit")
        if any(run.tracker.rapl for run in runs) and not Path(POWERCAP).is_dir():
            warnings.append(f"tracker.rapl is set but this host has no {POWERCAP}: CPU power "
                            "will be estimated, and the results will say so")
        if any(run.hardware.device == "gpu" for run in runs):
            # Before building the CUDA image (several GB): the base image suffices to ask
            # Docker for a GPU.
            self._probe_gpu(self._resolve_base())
        for flavour in sorted({self.flavour or flavour_of(run) for run in runs}):
            self.images[flavour] = self.ensure_image(flavour)
        return warnings

    def _resolve_base(self) -> Any:
        """The base image object, pulling the official one if a registry answers."""
        candidates = [self.base_image] if self.base_image else [OFFICIAL_BASE, LOCAL_BASE]
        for name in candidates:
            try:
                return self.client.images.get(name)
            except docker.errors.ImageNotFound:
                continue
        wanted = self.base_image or OFFICIAL_BASE
        try:
            self.log(f"pulling base image {wanted}...")
            return self.client.images.pull(wanted)
        except docker.errors.DockerException:
            raise UserError(
                f"base image {wanted} is not on this host and no registry answers",
                key="--base-image",
                fix="build the local stand-in from Debian packages with `make base-image` "
                    f"(it is tagged {LOCAL_BASE} and used automatically), or pass "
                    "--base-image with an image this host has",
            ) from None

    def ensure_image(self, flavour: str) -> Any:
        """The worker image for ``flavour``, built first if its inputs changed."""
        base = self._resolve_base()
        tag = image_tag(flavour, base.id, self.root)
        try:
            return self.client.images.get(tag)
        except docker.errors.ImageNotFound:
            pass
        base_name = base.tags[0] if base.tags else base.id
        self.log(f"building {tag} from Dockerfile.{flavour} on {base_name} "
                 "(the first build downloads TensorFlow; later ones reuse its layer)")
        tail: deque[str] = deque(maxlen=BUILD_LOG_TAIL)
        start = time.perf_counter()
        try:
            for chunk in self.client.api.build(
                path=str(self.root), dockerfile=f"Dockerfile.{flavour}", tag=tag,
                buildargs={"BASE_IMAGE": base_name}, rm=True, forcerm=True, decode=True,
                labels={"harness.flavour": flavour, "harness.base": base.id},
            ):
                text = chunk.get("stream") or chunk.get("status") or ""
                for line in text.splitlines():
                    if line.strip():
                        tail.append(line)
                        self.log(line)
                if "error" in chunk:
                    tail.append(str(chunk["error"]))
                    raise UserError(
                        f"building the {flavour} worker image failed: {chunk['error'].strip()}\n"
                        + "\n".join(f"  | {line}" for line in tail),
                        source=f"Dockerfile.{flavour}",
                        fix="read the build log above; a pip error usually means PyPI is "
                            "unreachable or a pin in docker/ does not exist",
                    )
        except docker.errors.APIError as exc:
            raise UserError(f"building the {flavour} worker image failed: {exc}",
                            source=f"Dockerfile.{flavour}",
                            fix="check the Docker daemon's log and the build output above") from None
        self.log(f"built {tag} in {time.perf_counter() - start:.0f} s")
        return self.client.images.get(tag)

    def _probe_gpu(self, image: Any) -> None:
        """Start a tiny container that requests a GPU; refuse GPU runs if it cannot."""
        probe = self.client.containers.create(
            image.id, entrypoint=["python3", "-c", "print('gpu probe')"],
            device_requests=[DeviceRequest(count=-1, capabilities=[["gpu"]])],
            labels={LABEL_SESSION: "gpu-probe"},
        )
        try:
            probe.start()
            if probe.wait(timeout=120).get("StatusCode") != 0:
                raise docker.errors.DockerException("the probe container exited with an error")
        except docker.errors.DockerException as exc:
            raise UserError(
                "a GPU scenario needs NVIDIA GPU support in Docker, and a container that "
                f"requests a GPU cannot start here ({str(exc).strip()[:200]})",
                key="hardware.device",
                fix="install the NVIDIA driver and the NVIDIA Container Toolkit (nvidia-ctk "
                    "runtime configure --runtime=docker, then restart Docker), or run only CPU "
                    "scenarios on this host; GPU scenarios never run on the CPU",
            ) from None
        finally:
            _remove(probe)

    # --- running ---------------------------------------------------------------------

    def container_config(self, job: Job, powercap_trees: tuple[str, ...] = POWERCAP_TREES
                         ) -> dict[str, Any]:
        """The keyword arguments of ``containers.create`` for one run.

        ``powercap_trees`` is a parameter only so a test can check the RAPL opt-in on a
        host without RAPL; the default is the host's real sysfs paths.
        """
        hw, tracker = job.run.hardware, job.run.tracker
        env = {k: v for k, v in worker_environment().items() if k not in _HOST_ONLY}
        env["HOME"] = "/tmp"  # the invoking user's uid has no home in the image
        volumes = {
            str(job.run_dir.resolve()): {"bind": RUN_MOUNT, "mode": "rw"},
            str(job.data_dir.resolve()): {"bind": DATA_MOUNT, "mode": "ro"},
        }
        # Never root inside the container: the invoking user's ids, or the image's
        # unprivileged user when the harness runs as root (files are handed back after).
        user = (f"{WORKER_UID}:{WORKER_UID}" if os.getuid() == 0
                else f"{os.getuid()}:{os.getgid()}")
        security_opt: list[str] = []
        if tracker.rapl and Path(powercap_trees[0]).is_dir():
            # Opt-in, with a security cost (README, "RAPL in containers"): the host's RAPL
            # counters, read-only; Docker masks /sys/devices/virtual/powercap by default
            # (the Platypus power side channel), so the mask is lifted for this container,
            # and energy_uj is readable by root only, so the worker runs as root and hands
            # its files back to the invoking user (HARNESS_OWNER).
            for tree in powercap_trees:
                if Path(tree).is_dir():
                    volumes[tree] = {"bind": tree, "mode": "ro"}
            security_opt.append("systempaths=unconfined")
            env["HARNESS_OWNER"] = f"{os.getuid()}:{os.getgid()}"
            user = "0:0"
        config: dict[str, Any] = {
            "command": [RUN_MOUNT, "--data-dir", DATA_MOUNT],
            "environment": env,
            "volumes": volumes,
            "user": user,
            "labels": {LABEL_SESSION: job.session, LABEL_SESSION_ID: job.session_id,
                       LABEL_RUN: job.run.run_id, LABEL_OWNER_PID: str(os.getpid()),
                       LABEL_OWNER_HOST: platform.node(),
                       LABEL_OWNER_START: str(process_start_ticks(os.getpid())),
                       LABEL_RUN_DIR: str(job.run_dir.resolve())},
            "working_dir": "/tmp",
            # stdin is the lifeline: attached by this process before the start and never
            # written; StdinOnce closes it when this process goes away, and the worker
            # then stops itself, writing partial results.
            "stdin_open": True,
            "detach": False,
        }
        if security_opt:
            config["security_opt"] = security_opt
        if hw.cpus is not None:
            config["nano_cpus"] = int(hw.cpus * 1e9)
        if hw.cpuset:
            config["cpuset_cpus"] = hw.cpuset
        if hw.memory_bytes:
            config["mem_limit"] = hw.memory_bytes
            config["memswap_limit"] = hw.memory_bytes  # no swap: a swapping run is not comparable
        if hw.device == "gpu":
            config["device_requests"] = [
                DeviceRequest(device_ids=[str(i) for i in hw.gpu_ids], capabilities=[["gpu"]])
                if hw.gpu_ids is not None
                else DeviceRequest(count=hw.gpu_count, capabilities=[["gpu"]])
            ]
        return config

    def execute(self, job: Job, on_line: LineSink) -> Outcome:
        flavour = self.flavour or flavour_of(job.run)
        image = self.images.get(flavour) or self.ensure_image(flavour)
        with self._lock:
            self._sessions.add(job.session_id)
        config = self.container_config(job)
        container = self.client.containers.create(image.id, **config)
        start = time.perf_counter()
        timed_out = False
        lifeline: Any = None
        handed_over = os.getuid() == 0 and config["user"] != "0:0"
        try:
            if handed_over:
                _chown_tree(job.run_dir, WORKER_UID, WORKER_UID)
            lifeline = self.client.api.attach_socket(container.id,
                                                     params={"stdin": 1, "stream": 1})
            container.start()
            reader = threading.Thread(target=_pump, args=(container, on_line), daemon=True)
            reader.start()
            try:
                timed_out = not _wait(container, job.run.timeout_s)
            except KeyboardInterrupt:
                # SIGTERM first, so the worker writes its partial results before removal.
                container.stop(timeout=int(STOP_GRACE_S))
                reader.join(timeout=10)
                raise
            if timed_out:
                container.stop(timeout=int(STOP_GRACE_S))  # SIGTERM, then SIGKILL
            reader.join(timeout=10)
            container.reload()
            state = container.attrs["State"]
            return Outcome(
                exit_code=state.get("ExitCode"), duration_s=time.perf_counter() - start,
                timed_out=timed_out, oom_killed=bool(state.get("OOMKilled")),
                provenance=self._provenance(container, image),
            )
        finally:
            _remove(container)
            _close(lifeline)
            if handed_over:
                _chown_tree(job.run_dir, os.getuid(), os.getgid())

    def _provenance(self, container: Any, image: Any) -> dict[str, Any]:
        host = container.attrs["HostConfig"]
        version = self.client.version()
        return {
            "backend": self.name,
            "image": image.tags[0] if image.tags else image.id,
            "image_id": image.id,
            "container_id": container.id,
            "docker_server_version": version.get("Version"),
            "limits": {
                "cpus": host.get("NanoCpus", 0) / 1e9 or None,
                "cpuset": host.get("CpusetCpus") or None,
                "memory_bytes": host.get("Memory") or None,
                "memory_swap_bytes": host.get("MemorySwap") or None,
                "device_requests": host.get("DeviceRequests"),
                "powercap_mounted": any(m.get("Destination") == POWERCAP
                                        for m in container.attrs.get("Mounts", [])),
                "security_opt": host.get("SecurityOpt"),
                "user": container.attrs["Config"].get("User"),
            },
        }

    def stop_all(self) -> None:
        with self._lock:
            sessions = set(self._sessions)
        for session_id in sessions:
            for container in self.client.containers.list(
                    all=True, filters={"label": f"{LABEL_SESSION_ID}={session_id}"}):
                with contextlib.suppress(docker.errors.DockerException):
                    container.stop(timeout=int(STOP_GRACE_S))
                _remove(container)

    def containers(self) -> list[ContainerInfo]:
        """Every container a harness started on this engine, with its owner's state."""
        return harness_containers(self.client)

    def reap(self, log: LineSink) -> list[ContainerInfo]:
        """Stop and remove the containers whose harness is gone, and mark their runs.

        Their worker got SIGTERM first (it writes its partial results); the run gets an
        outcome.json with status ``orphaned`` if it has none.
        """
        reaped = []
        for info in self.containers():
            if info.owner_alive:
                continue
            log(f"found {info.name} (run {info.run}, session {info.session}) still here "
                f"although its harness (pid {info.owner_pid} on {info.owner_host}) is gone: "
                "stopping and removing it")
            with contextlib.suppress(docker.errors.DockerException):
                info.container.stop(timeout=int(STOP_GRACE_S))
            exit_code: int | None = None
            tail: list[str] = []
            with contextlib.suppress(docker.errors.DockerException):
                info.container.reload()
                exit_code = info.container.attrs["State"].get("ExitCode")
                tail = info.container.logs(tail=20).decode(errors="replace").splitlines()
            _remove(info.container)
            mark_orphaned(Path(info.run_dir) if info.run_dir else None, exit_code, tail,
                          f"its harness (pid {info.owner_pid}) died during the run; a later "
                          "harness found the container still running and stopped it",
                          backend=self.name)
            reaped.append(info)
        return reaped

    def remove_unused_images(self, log: LineSink) -> list[str]:
        """Remove worker images whose tag is not the current sources' (never one a
        container still uses)."""
        base = self._resolve_base()
        current = {image_tag(flavour, base.id, self.root) for flavour in ("cpu", "gpu")}
        used = {c.image.id for c in self.client.containers.list(all=True)}
        removed = []
        for image in self.client.images.list(name=IMAGE_REPO):
            tags = set(image.tags)
            if tags & current or image.id in used:
                continue
            for tag in sorted(tags):
                with contextlib.suppress(docker.errors.APIError):
                    self.client.images.remove(tag)
                    log(f"removed {tag}")
                    removed.append(tag)
        return removed

    def describe(self) -> dict[str, Any]:
        version = self.client.version()
        info = self.client.info()
        return {
            "backend": self.name,
            "docker_server_version": version.get("Version"),
            "docker_api_version": version.get("ApiVersion"),
            "storage_driver": info.get("Driver"),
            "host_cpus": info.get("NCPU"),
            "host_memory_bytes": info.get("MemTotal"),
            "runtimes": sorted((info.get("Runtimes") or {}).keys()),
            "images": {flavour: {"tag": image.tags[0] if image.tags else None, "id": image.id}
                       for flavour, image in self.images.items()},
        }


def _pump(container: Any, on_line: LineSink) -> None:
    """Feed the container's output, line by line, to ``on_line``."""
    buffer = b""
    try:
        stream: Iterator[bytes] = container.logs(stream=True, follow=True, stdout=True, stderr=True)
        for chunk in stream:
            buffer += chunk
            *lines, buffer = buffer.split(b"\n")
            for line in lines:
                on_line(line.decode(errors="replace"))
    except (docker.errors.DockerException, requests.exceptions.RequestException):
        pass  # the container was removed under us (Ctrl-C); its log lines so far are kept
    if buffer:
        on_line(buffer.decode(errors="replace"))


def _wait(container: Any, timeout_s: float) -> bool:
    """Wait for the container to exit; False if ``timeout_s`` passed first.

    Polls instead of a blocking wait so that Ctrl-C reaches the runner at once.
    """
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            container.wait(timeout=1)
            return True
        except (requests.exceptions.ReadTimeout, requests.exceptions.ConnectionError):
            continue
    return False


@dataclass(frozen=True)
class ContainerInfo:
    """A harness container and what its labels say about its owner."""

    container: Any
    name: str
    status: str
    session: str
    session_id: str
    run: str
    run_dir: str
    owner_pid: int
    owner_host: str
    owner_alive: bool


def harness_containers(client: docker.DockerClient) -> list[ContainerInfo]:
    """Every container labelled by a harness, running or not."""
    found = []
    for container in client.containers.list(all=True, filters={"label": LABEL_SESSION_ID}):
        labels = container.labels or {}
        host = labels.get(LABEL_OWNER_HOST, "")
        try:
            pid, ticks = int(labels.get(LABEL_OWNER_PID, "0")), int(labels.get(LABEL_OWNER_START, "0"))
        except ValueError:
            pid, ticks = 0, 0
        # A container of another host's harness (a shared engine) is never reaped from here.
        alive = host != platform.node() or (pid > 0 and process_alive(pid, ticks))
        found.append(ContainerInfo(
            container=container, name=container.name, status=container.status,
            session=labels.get(LABEL_SESSION, "?"), session_id=labels.get(LABEL_SESSION_ID, "?"),
            run=labels.get(LABEL_RUN, "?"), run_dir=labels.get(LABEL_RUN_DIR, ""),
            owner_pid=pid, owner_host=host, owner_alive=alive))
    return found


def _chown_tree(path: Path, uid: int, gid: int) -> None:
    """Give a run directory to ``uid:gid`` (root only): the container's unprivileged
    user writes there during the run, the invoking user owns it afterwards."""
    for item in [path, *path.rglob("*")]:
        with contextlib.suppress(FileNotFoundError):
            os.chown(item, uid, gid, follow_symlinks=False)


def _close(lifeline: Any) -> None:
    """Close the attached stdin stream of a finished container."""
    if lifeline is None:
        return
    for target in (getattr(lifeline, "_sock", None), lifeline):
        with contextlib.suppress(Exception):
            if target is not None:
                target.close()


def _remove(container: Any) -> None:
    try:
        container.remove(force=True)
    except docker.errors.NotFound:
        pass
    except docker.errors.APIError as exc:
        if "already in progress" not in str(exc):
            raise
