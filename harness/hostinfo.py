"""Facts about the machine and the process's share of it, read from /proc and cgroups.

Shared by the host (attribution, doctor) and the worker (provenance, background load).
The parsers take text so they are unit-tested without a cgroup; the readers return None
where a file is absent (another kernel, another cgroup version, not Linux).
"""

from __future__ import annotations

import os
import platform
import resource
import time
from dataclasses import dataclass
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")
#: cgroup v1 writes this (or any value near 2**63) for "no memory limit".
_V1_UNLIMITED = 2**62


def parse_cpu_max(text: str) -> float | None:
    """cgroup v2 ``cpu.max`` ("QUOTA PERIOD" or "max PERIOD") -> CPUs, None if unlimited.

    Raises:
        ValueError: not two fields, or numbers that are not positive.
    """
    fields = text.split()
    if len(fields) != 2:
        raise ValueError(f"cpu.max must hold two fields, got {text!r}")
    quota, period = fields
    if quota == "max":
        return None
    quota_us, period_us = int(quota), int(period)
    if quota_us <= 0 or period_us <= 0:
        raise ValueError(f"cpu.max holds a non-positive quota or period: {text!r}")
    return quota_us / period_us


def parse_cfs(quota_text: str, period_text: str) -> float | None:
    """cgroup v1 ``cpu.cfs_quota_us`` / ``cpu.cfs_period_us`` -> CPUs, None if unlimited (-1)."""
    quota_us, period_us = int(quota_text.strip()), int(period_text.strip())
    if quota_us <= 0:
        return None
    if period_us <= 0:
        raise ValueError(f"cpu.cfs_period_us must be positive, got {period_text!r}")
    return quota_us / period_us


def parse_memory_limit(text: str) -> int | None:
    """``memory.max`` (v2: bytes or "max") or ``memory.limit_in_bytes`` (v1) -> bytes or None."""
    value = text.strip()
    if value == "max":
        return None
    number = int(value)
    if number <= 0:
        raise ValueError(f"memory limit must be positive, got {text!r}")
    return None if number >= _V1_UNLIMITED else number


def _read(path: Path) -> str | None:
    try:
        return path.read_text()
    except (OSError, UnicodeDecodeError):
        return None


def _own_cgroup_dirs(root: Path, controller: str) -> list[Path]:
    """Directories to look in for ``controller``: the process's own cgroup, then the root
    (inside a container the root *is* the container's cgroup)."""
    dirs = []
    text = _read(Path("/proc/self/cgroup")) or ""
    for line in text.splitlines():
        _, controllers, path = ([*line.split(":", 2), "", ""])[:3]
        names = controllers.split(",") if controllers else [""]
        if controller in names or controllers == "":
            base = root if controllers == "" else root / controllers
            dirs.append(base / path.lstrip("/"))
    dirs += [root, root / "cpu", root / "cpu,cpuacct", root / "memory"]
    return [d for d in dirs if d.is_dir()]


def cgroup_cpu_quota(root: Path = CGROUP_ROOT) -> float | None:
    """The CPU quota of this process's cgroup in CPUs (v2 or v1); None when unlimited."""
    for directory in _own_cgroup_dirs(root, "cpu"):
        text = _read(directory / "cpu.max")
        if text is not None:
            try:
                return parse_cpu_max(text)
            except ValueError:
                return None
        quota, period = _read(directory / "cpu.cfs_quota_us"), _read(directory / "cpu.cfs_period_us")
        if quota is not None and period is not None:
            try:
                return parse_cfs(quota, period)
            except ValueError:
                return None
    return None


def _with_ancestors(directory: Path, root: Path) -> list[Path]:
    """``directory`` and its parents up to ``root``'s level: a limit set on an enclosing
    cgroup binds too (a Slurm job's memory limit sits on ``job_N``, above the task's own
    ``step_0/task_0``, which reads unlimited)."""
    chain = [directory]
    while chain[-1] != chain[-1].parent and chain[-1].parent.is_relative_to(root) \
            and chain[-1].parent != root:
        chain.append(chain[-1].parent)
    return chain


def cgroup_memory_limit(root: Path = CGROUP_ROOT) -> int | None:
    """The memory limit of this process's cgroup in bytes (the smallest on the way up from
    its own cgroup); None when unlimited."""
    for directory in _own_cgroup_dirs(root, "memory"):
        limits: list[int] = []
        found = False
        for level in _with_ancestors(directory, root):
            for name in ("memory.max", "memory.limit_in_bytes"):
                text = _read(level / name)
                if text is None:
                    continue
                found = True
                try:
                    limit = parse_memory_limit(text)
                except ValueError:
                    limit = None
                if limit is not None:
                    limits.append(limit)
                break
        if found:
            return min(limits) if limits else None
    return None


def effective_cpus() -> float:
    """CPUs this process may really use: the affinity set, capped by the cgroup quota."""
    count = float(len(os.sched_getaffinity(0)))
    quota = cgroup_cpu_quota()
    return min(count, quota) if quota else count


def process_age_s() -> float:
    """Seconds since this process started (its start time from /proc, so the interpreter's
    start and imports are counted); 0 where it cannot be read."""
    try:
        import psutil  # a CodeCarbon dependency

        return max(0.0, time.time() - psutil.Process().create_time())
    except Exception:
        return 0.0


def host_cpus() -> int:
    """Logical CPUs of the machine (not of this process's share)."""
    return os.cpu_count() or 1


def proc_cpu_model() -> str | None:
    """The CPU's brand string as /proc/cpuinfo's ``model name`` gives it (the kernel reads
    it from CPUID); None where there is no such line (not Linux, some ARM kernels)."""
    for line in (_read(Path("/proc/cpuinfo")) or "").splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip() or None
    return None


def cpu_model() -> str:
    """The exact CPU model string from /proc/cpuinfo, else what the platform says."""
    return proc_cpu_model() or platform.processor() or "unknown"


def cpu_flags() -> frozenset[str]:
    """The CPU's feature flags (avx2, avx512f...) from /proc/cpuinfo."""
    for line in (_read(Path("/proc/cpuinfo")) or "").splitlines():
        if line.startswith("flags"):
            return frozenset(line.split(":", 1)[1].split())
    return frozenset()


#: oneDNN's x86 instruction-set levels, lowest first, as ONEDNN_MAX_CPU_ISA names them
#: (oneDNN 3.x, the one TensorFlow 2.21 links), each with the /proc/cpuinfo flags it needs
#: on top of the level below it. oneDNN dispatches to the highest level the CPU has and the
#: cap allows.
ONEDNN_ISAS: tuple[tuple[str, frozenset[str]], ...] = (
    ("SSE41", frozenset({"sse4_1"})),
    ("AVX", frozenset({"avx"})),
    ("AVX2", frozenset({"avx2"})),
    ("AVX2_VNNI", frozenset({"avx_vnni"})),
    ("AVX2_VNNI_2", frozenset({"avx_vnni_int8", "avx_ne_convert"})),
    ("AVX512_CORE", frozenset({"avx512f", "avx512bw", "avx512vl", "avx512dq"})),
    ("AVX512_CORE_VNNI", frozenset({"avx512_vnni"})),
    ("AVX512_CORE_BF16", frozenset({"avx512_bf16"})),
    ("AVX10_1_512", frozenset({"avx512_fp16"})),
    ("AVX10_1_512_AMX", frozenset({"amx_tile", "amx_int8", "amx_bf16"})),
    ("AVX10_1_512_AMX_FP16", frozenset({"amx_fp16"})),
)
#: The level names alone, lowest first.
ONEDNN_ISA_NAMES: tuple[str, ...] = tuple(name for name, _ in ONEDNN_ISAS)
#: Cap values oneDNN reads as "no cap".
ONEDNN_NO_CAP = frozenset({"ALL", "DEFAULT"})
#: The variables oneDNN reads the cap from, in its order (the first one set wins).
ONEDNN_ISA_VARIABLES = ("ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA")


def _isa_needs(level: str) -> frozenset[str]:
    """Every flag ``level`` needs: its own and those of the levels it builds on (the
    AVX2_VNNI levels are a side branch on AVX2, not below AVX512_CORE)."""
    own = dict(ONEDNN_ISAS)
    if level.startswith("AVX2_VNNI"):
        return _isa_needs("AVX2") | own[level]
    chain = [n for n in ONEDNN_ISA_NAMES[:ONEDNN_ISA_NAMES.index(level) + 1]
             if not n.startswith("AVX2_VNNI")]
    return frozenset().union(*(own[n] for n in chain))


def _best_isa(flags: frozenset[str], levels: list[str]) -> str | None:
    supported = [level for level in levels if _isa_needs(level) <= flags]
    return supported[-1] if supported else None


def native_onednn_isa(flags: frozenset[str]) -> str | None:
    """The highest oneDNN ISA level ``flags`` support (None: not x86 or no SSE4.1)."""
    return _best_isa(flags, list(ONEDNN_ISA_NAMES))


@dataclass(frozen=True)
class IsaInfo:
    """Which instruction set oneDNN dispatches to in a process with this environment."""

    native: str | None
    """The host's best oneDNN level (from the CPUID flags in /proc/cpuinfo)."""
    cap: str | None
    """The cap as given (ONEDNN_MAX_CPU_ISA, else DNNL_MAX_CPU_ISA), None if unset."""
    effective: str | None
    """The level oneDNN uses: the highest the host has that the cap allows."""

    @property
    def capped(self) -> bool:
        """Whether the cap lowers the level below the host's."""
        return self.effective != self.native


def onednn_isa(environ: dict[str, str] | None = None,
               flags: frozenset[str] | None = None) -> IsaInfo:
    """oneDNN's instruction set in a process started with ``environ`` on this host.

    oneDNN reads the name in any case (``avx2`` caps as ``AVX2`` does: seen in its verbose
    output) and ignores names it does not know, which leaves it uncapped. TensorFlow's
    own Eigen kernels are compiled for a fixed instruction set and ignore the cap, except
    their matrix products, which call oneDNN's sgemm (README, "Performance").
    """
    environ = dict(os.environ if environ is None else environ)
    flags = cpu_flags() if flags is None else flags
    names = list(ONEDNN_ISA_NAMES)
    native = native_onednn_isa(flags)
    cap = next((environ[v] for v in ONEDNN_ISA_VARIABLES if environ.get(v)), None)
    name = cap.strip().upper() if cap is not None else None
    if native is None or name is None or name in ONEDNN_NO_CAP or name not in names:
        return IsaInfo(native=native, cap=cap, effective=native)
    return IsaInfo(native=native, cap=cap,
                   effective=_best_isa(flags, names[:names.index(name) + 1]))


def parse_meminfo_total(text: str) -> int | None:
    """``MemTotal`` of /proc/meminfo in bytes."""
    for line in text.splitlines():
        if line.startswith("MemTotal:"):
            fields = line.split()
            return int(fields[1]) * 1024
    return None


def ram_total_bytes() -> int:
    """Memory installed in the machine, bytes (the host's, also inside a container)."""
    return parse_meminfo_total(_read(Path("/proc/meminfo")) or "") or 0


@dataclass(frozen=True)
class CpuTimes:
    """A snapshot of the whole machine's and this process's CPU time, in seconds."""

    wall: float
    host_busy_s: float
    own_s: float
    """This process's CPU time and its finished children's (where CodeCarbon detects the
    CPU itself, py-cpuinfo's subprocess burns about a CPU-second that is ours, not
    background)."""


def parse_proc_stat(text: str, ticks_per_s: float) -> float:
    """Busy CPU seconds of the whole machine from /proc/stat's aggregate ``cpu`` line
    (user + nice + system + irq + softirq + steal; idle and iowait are not busy)."""
    for line in text.splitlines():
        if line.startswith("cpu "):
            values = [int(v) for v in line.split()[1:]]
            user, nice, system, _idle, _iowait, irq, softirq, steal = (values + [0] * 8)[:8]
            return (user + nice + system + irq + softirq + steal) / ticks_per_s
    raise ValueError("no aggregate cpu line in /proc/stat")


def cpu_times() -> CpuTimes | None:
    """Snapshot for :func:`background_load`; None where /proc/stat is unreadable."""
    text = _read(Path("/proc/stat"))
    if text is None:
        return None
    own = sum(usage.ru_utime + usage.ru_stime
              for usage in (resource.getrusage(resource.RUSAGE_SELF),
                            resource.getrusage(resource.RUSAGE_CHILDREN)))
    try:
        busy = parse_proc_stat(text, float(os.sysconf("SC_CLK_TCK")))
    except ValueError:
        return None
    return CpuTimes(wall=time.monotonic(), host_busy_s=busy, own_s=own)


def background_load(start: CpuTimes, end: CpuTimes) -> tuple[float, float]:
    """(background CPUs, own CPUs) between two snapshots: the machine's busy CPU time not
    spent by this process, and this process's, each divided by the wall time."""
    wall = max(end.wall - start.wall, 1e-9)
    own = max(end.own_s - start.own_s, 0.0)
    busy = max(end.host_busy_s - start.host_busy_s, 0.0)
    return max(busy - own, 0.0) / wall, own / wall
