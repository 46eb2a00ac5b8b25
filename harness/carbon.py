"""CodeCarbon's tracker as the harness uses it, on both sides of the host/worker line.

- :func:`make_tracker`: an offline tracker with every location argument pinned to a
  validated region (CodeCarbon would otherwise read ``CODECARBON_*`` variables and
  ``.codecarbon.config`` files, or fall back to a world average);
- :func:`describe_power_methods`: which component was measured by a counter and which
  estimated by a model, read from the tracker's hardware list;
- :func:`energy_of`: a CodeCarbon EmissionsData as the schema's Energy record.

The worker's run tracker (:mod:`harness.tracking`) and the host's machine meter
(:mod:`harness.meter`) are both made here.
"""

from __future__ import annotations

import functools
import logging
from pathlib import Path
from typing import Any

from codecarbon import OfflineEmissionsTracker, OutputMethod

from harness.regions import parse_region
from harness.schema import Energy, PowerMethod

# CodeCarbon CPU modes that read an energy counter, i.e. measure rather than estimate.
_MEASURED_CPU_MODES = {
    "intel_rapl": "RAPL energy counters",
    "intel_power_gadget": "Intel Power Gadget",
    "windows_emi": "Windows Energy Meter Interface",
}
_ESTIMATED_CPU_MODES = {
    "cpu_load": "CPU load x TDP",
    "constant": "constant TDP",
}


def energy_of(data: Any) -> Energy:
    """A CodeCarbon EmissionsData (a task's or the total) as our Energy record."""
    return Energy(energy_kwh=float(data.energy_consumed), cpu_kwh=float(data.cpu_energy),
                  gpu_kwh=float(data.gpu_energy), ram_kwh=float(data.ram_energy),
                  co2_kg=float(data.emissions))


@functools.cache
def cpu_in_database(model: str) -> bool:
    """Whether CodeCarbon's CPU power database (cpu_power.csv) has ``model``, matched the
    way its TDP lookup matches it."""
    if not model:
        return False
    try:
        from codecarbon.core.cpu import TDP
        from codecarbon.input import DataSource

        tdp = TDP.__new__(TDP)  # the lookup only; TDP() would detect this host's CPU again
        table = DataSource().get_cpu_power_data()
        return tdp._get_matching_cpu(model, table) is not None
    except Exception:  # CodeCarbon's internals moved: say "not in it", never "known"
        return False


def prime_cpu_model() -> bool:
    """Give CodeCarbon the CPU's brand string from /proc/cpuinfo before it asks py-cpuinfo.

    CodeCarbon uses only py-cpuinfo's ``brand_raw`` (to look up the CPU's TDP), and
    py-cpuinfo gets it with a probe that runs for about a second in a subprocess (it
    times the clock), in every process that starts a tracker: the worker and the host's
    machine meter each paid it (README, "Performance"). On Linux x86 the kernel's
    ``model name`` is the same CPUID brand string. CodeCarbon caches the answer for the
    process (``detect_cpu_model`` is an ``lru_cache``): filling that cache once with our
    answer leaves py-cpuinfo itself untouched. Where there is no ``model name`` line, or
    CodeCarbon's function moved, nothing is done and CodeCarbon detects as it would.

    Returns:
        Whether CodeCarbon now has our answer.
    """
    from harness import hostinfo

    model = hostinfo.proc_cpu_model()
    try:
        import cpuinfo
        from codecarbon.core import util
    except ImportError:
        return False
    detect = getattr(util, "detect_cpu_model", None)
    if model is None or not hasattr(detect, "cache_info"):
        return False
    if detect.cache_info().currsize:  # already asked in this process
        return detect() == model
    probe = cpuinfo.get_cpu_info
    cpuinfo.get_cpu_info = lambda: {"brand_raw": model}
    try:
        return detect() == model
    finally:
        cpuinfo.get_cpu_info = probe


def make_tracker(output_dir: Path, output_file: str, *, home_region: str,
                 measure_power_secs: float, pue: float, project: str, experiment: str,
                  track_gpus: bool, log_level: str = "warning",
                 gpu_ids: list[int] | None = None) -> OfflineEmissionsTracker:
    """An offline, machine-mode tracker priced in ``home_region``, not yet started.

    ``track_gpus`` False drops the GPUs CodeCarbon finds (a CPU run on a GPU host must
    not be charged with GPUs it does not use; the machine scope counts them); ``gpu_ids``
    limits tracking to those NVML indices (a local GPU run on a multi-GPU host).
    """
    region = parse_region(home_region)
    prime_cpu_model()
    tracker = OfflineEmissionsTracker(
        project_name=project,
        experiment_name=experiment,
        output_dir=str(output_dir),
        output_file=output_file,
        output_methods=[OutputMethod.CSV],
        measure_power_secs=measure_power_secs,
        pue=pue,
        log_level=log_level,
        tracking_mode="machine",
        # Stale lock files from a killed process must not make the next tracker silently
        # track nothing, and the host's machine meter runs beside the worker's tracker.
        allow_multiple_runs=True,
        **({"gpu_ids": gpu_ids} if gpu_ids else {}),
        **region.tracker_kwargs(),
    )
    if not track_gpus:
        # CodeCarbon has no switch for "no GPU" (an empty gpu_ids means all of them):
        # its hardware list is the only place to say it.
        hardware = getattr(tracker, "_hardware", None)
        if isinstance(hardware, list):
            hardware[:] = [item for item in hardware if type(item).__name__ != "GPU"]
    return tracker


def describe_power_methods(tracker: OfflineEmissionsTracker) -> list[PowerMethod]:
    """Read the tracker's hardware objects to tell measured from estimated power.

    CodeCarbon does not expose this publicly; we read its hardware list and fall
    back to "unknown" (never "measured") if its internals change.
    """
    hardware = list(getattr(tracker, "_hardware", []) or [])
    methods: dict[str, PowerMethod] = {}
    for item in hardware:
        kind = type(item).__name__
        if kind == "CPU" or kind in ("AppleSiliconChip", "Raspberry"):
            mode = str(getattr(item, "_mode", "unknown"))
            tdp = getattr(item, "_tdp", None)
            # CodeCarbon flags its default only when it found no TDP at all; for a CPU
            # missing from its database it returns threads x 4 W as if it were a TDP.
            generic = (bool(getattr(item, "_is_generic_tdp", False))
                       or not cpu_in_database(str(getattr(item, "_model", "") or "")))
            if mode in _MEASURED_CPU_MODES:
                methods["cpu"] = PowerMethod(component="cpu", measured=True, method=mode,
                                             detail=_MEASURED_CPU_MODES[mode])
            else:
                label = _ESTIMATED_CPU_MODES.get(mode, mode)
                if generic:
                    tdp_text = (f"fallback TDP {tdp} W: CodeCarbon does not know this CPU "
                                "model and uses its default power per thread")
                else:
                    tdp_text = f"TDP {tdp} W from CodeCarbon's CPU database"
                methods["cpu"] = PowerMethod(component="cpu", measured=False, method=mode,
                                             detail=f"{label}; {tdp_text}", fallback=generic)
        elif kind == "GPU":
            count = getattr(item, "num_gpus", 0)
            methods["gpu"] = PowerMethod(component="gpu", measured=True, method="nvml",
                                         detail=f"NVML energy counters, {count} GPU(s)")
        elif kind == "RAM":
            forced = getattr(item, "_force_ram_power", None)
            detail = (f"constant {forced} W given by the user" if forced is not None
                      else "model of installed memory size (DIMM count x W per DIMM)")
            methods["ram"] = PowerMethod(component="ram", measured=False, method="ram_model",
                                         detail=detail)
    methods.setdefault("cpu", PowerMethod(component="cpu", measured=False, method="unknown",
                                          detail="no CPU hardware found by CodeCarbon"))
    methods.setdefault("gpu", PowerMethod(component="gpu", measured=False, method="none",
                                          detail="no GPU tracked"))
    methods.setdefault("ram", PowerMethod(component="ram", measured=False, method="unknown",
                                          detail="no RAM hardware found"))
    return [methods["cpu"], methods["gpu"], methods["ram"]]


def quiet_codecarbon(level: int = logging.WARNING) -> None:
    """Keep CodeCarbon's per-interval INFO chatter out of the run log."""
    logging.getLogger("codecarbon").setLevel(level)
