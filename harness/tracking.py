"""CodeCarbon tracking of one run, phase by phase, and how each power figure was obtained.

Worker side only. CodeCarbon's quirks are handled here rather than trusted:
- with tasks, the total row of ``emissions.csv`` carries the summed energy but only
  the last task's duration, so durations come from our own clock;
- ``stop()`` swallows its own errors and may return None, so the CSV is checked;
- an unknown country silently becomes the world average, so regions are validated
  by the host (harness.regions) before a run is planned;
- its scheduler thread can add energy during ``stop()`` that is never priced, so the
  worker re-prices the total row and records whether the two agree.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from codecarbon import OfflineEmissionsTracker, OutputMethod

from harness.regions import parse_region

EMISSIONS_CSV = "emissions.csv"

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


@dataclass
class PhaseRecord:
    """Time and energy of one phase (a CodeCarbon task), in seconds and kWh."""

    name: str
    duration_s: float
    """Our own wall clock (time.perf_counter), not CodeCarbon's."""
    tracker_duration_s: float | None = None
    energy_kwh: float | None = None
    cpu_energy_kwh: float | None = None
    gpu_energy_kwh: float | None = None
    ram_energy_kwh: float | None = None
    emissions_kg: float | None = None


@dataclass
class PowerMethod:
    """How CodeCarbon obtained one component's power."""

    component: str
    measured: bool
    method: str
    detail: str = ""


@dataclass
class Tracking:
    """A started tracker and the phases recorded so far."""

    tracker: OfflineEmissionsTracker
    phases: list[PhaseRecord] = field(default_factory=list)
    _phase_name: str | None = None
    _phase_start: float = 0.0

    def start_phase(self, name: str) -> None:
        """Start a CodeCarbon task; a running phase is stopped first."""
        if self._phase_name is not None:
            self.stop_phase()
        self.tracker.start_task(name)
        self._phase_name, self._phase_start = name, time.perf_counter()

    def stop_phase(self) -> PhaseRecord | None:
        """Stop the running task and record its time and energy (None if no phase ran)."""
        if self._phase_name is None:
            return None
        name, started = self._phase_name, self._phase_start
        self._phase_name = None
        data = self.tracker.stop_task(name)
        record = PhaseRecord(name=name, duration_s=time.perf_counter() - started)
        if data is not None:
            record.tracker_duration_s = float(data.duration)
            record.energy_kwh = float(data.energy_consumed)
            record.cpu_energy_kwh = float(data.cpu_energy)
            record.gpu_energy_kwh = float(data.gpu_energy)
            record.ram_energy_kwh = float(data.ram_energy)
            record.emissions_kg = float(data.emissions)
        self.phases.append(record)
        return record

    def stop(self) -> float | None:
        """Stop the tracker (and any running phase); CodeCarbon writes emissions.csv.

        Returns:
            Total emissions in kg CO2eq as CodeCarbon returns them (may be None).
        """
        self.stop_phase()
        return self.tracker.stop()

    def power_methods(self) -> list[PowerMethod]:
        """Which method produced the CPU, GPU and RAM power figures."""
        return describe_power_methods(self.tracker)


def start_tracking(run_dir: Path, *, home_region: str, measure_power_secs: float, pue: float,
                   project: str, experiment: str) -> Tracking:
    """Start an offline tracker for the home region, writing ``run_dir/emissions.csv``."""
    region = parse_region(home_region)
    tracker = OfflineEmissionsTracker(
        project_name=project,
        experiment_name=experiment,
        output_dir=str(run_dir),
        output_file=EMISSIONS_CSV,
        output_methods=[OutputMethod.CSV],
        measure_power_secs=measure_power_secs,
        pue=pue,
        log_level="warning",
        tracking_mode="machine",
        # The host never runs two workers at once, but stale lock files from a killed
        # worker must not make the next run silently track nothing.
        allow_multiple_runs=True,
        **region.tracker_kwargs(),
    )
    tracker.start()
    return Tracking(tracker=tracker)


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
            generic = bool(getattr(item, "_is_generic_tdp", False))
            if mode in _MEASURED_CPU_MODES:
                methods["cpu"] = PowerMethod("cpu", True, mode, _MEASURED_CPU_MODES[mode])
            else:
                label = _ESTIMATED_CPU_MODES.get(mode, mode)
                tdp_text = f"TDP {tdp} W" + (" (generic default, CPU model unknown to CodeCarbon)"
                                             if generic else "")
                methods["cpu"] = PowerMethod("cpu", False, mode, f"{label}; {tdp_text}")
        elif kind == "GPU":
            count = getattr(item, "num_gpus", 0)
            methods["gpu"] = PowerMethod("gpu", True, "nvml", f"NVML energy counters, {count} GPU(s)")
        elif kind == "RAM":
            forced = getattr(item, "_force_ram_power", None)
            detail = (f"constant {forced} W given by the user" if forced is not None
                      else "model of installed memory size (DIMM count x W per DIMM)")
            methods["ram"] = PowerMethod("ram", False, "ram_model", detail)
    methods.setdefault("cpu", PowerMethod("cpu", False, "unknown", "no CPU hardware found by CodeCarbon"))
    methods.setdefault("gpu", PowerMethod("gpu", False, "none", "no GPU seen by CodeCarbon"))
    methods.setdefault("ram", PowerMethod("ram", False, "unknown", "no RAM hardware found"))
    return [methods["cpu"], methods["gpu"], methods["ram"]]


def as_dicts(items: list[Any]) -> list[dict[str, Any]]:
    """Dataclasses to plain dicts for JSON."""
    return [asdict(item) for item in items]


def quiet_codecarbon() -> None:
    """Keep CodeCarbon's per-interval INFO chatter out of the run log."""
    logging.getLogger("codecarbon").setLevel(logging.WARNING)
