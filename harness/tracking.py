"""CodeCarbon tracking of one run, window by window, and how each power figure was obtained.

Worker side only. The run is cut into CodeCarbon tasks on our own clock: ``setup``,
``epoch-1`` .. ``epoch-N`` (each epoch's training steps and validation), ``fit-end``
(from the last epoch's end until fit returns) and ``evaluation``. The training scope is
the sum of the epoch windows and fit-end; the run scope is the tracker's total row.

CodeCarbon's quirks are handled here rather than trusted:
- with tasks, the total row of ``emissions.csv`` carries the summed energy but only
  the last task's duration, so durations come from our own clock;
- its ``cpu_utilization_percent`` is the mean of a history it clears at every task start,
  so the total row written after the last task says 0; the worker measures the CPU use
  itself (/proc/stat, :mod:`harness.hostinfo`) and records that instead;
- ``stop()`` swallows its own errors and may return None, so the CSV is checked;
- an unknown country silently becomes the world average, so regions are validated
  by the host (harness.regions) before a run is planned;
- its scheduler thread can add energy during ``stop()`` that is never priced, so the
  worker re-prices the total row and records whether the two agree.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from codecarbon import OfflineEmissionsTracker, OutputMethod

from harness.regions import parse_region
from harness.schema import EMISSIONS_CSV, Energy, PowerMethod, Window

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


@dataclass
class Tracking:
    """A started tracker and the windows (CodeCarbon tasks) recorded so far."""

    tracker: OfflineEmissionsTracker
    started: float
    """time.perf_counter() when the tracker started: the run scope's origin."""
    windows: list[Window] = field(default_factory=list)
    _name: str | None = None
    _start: float = 0.0
    stopped: float | None = None

    def start_window(self, name: str) -> None:
        """Start a CodeCarbon task; a running one is stopped first."""
        if self._name is not None:
            self.stop_window()
        self.tracker.start_task(name)
        self._name, self._start = name, time.perf_counter()

    def stop_window(self) -> Window | None:
        """Stop the running task and record its time and energy (None if none ran)."""
        if self._name is None:
            return None
        name, started = self._name, self._start
        self._name = None
        data = self.tracker.stop_task(name)
        window = Window(name=name, duration_s=time.perf_counter() - started,
                        energy=energy_of(data) if data is not None else None)
        self.windows.append(window)
        return window

    @property
    def current(self) -> str | None:
        """The name of the running window."""
        return self._name

    def stop(self) -> None:
        """Stop the tracker (and any running window); CodeCarbon writes emissions.csv."""
        try:
            self.stop_window()
        finally:
            self.tracker.stop()
            self.stopped = time.perf_counter()

    def power_methods(self) -> list[PowerMethod]:
        """Which method produced the CPU, GPU and RAM power figures."""
        return describe_power_methods(self.tracker)

    @property
    def tracking_mode(self) -> str:
        return str(getattr(self.tracker, "_tracking_mode", "machine"))


def start_tracking(run_dir: Path, *, home_region: str, measure_power_secs: float, pue: float,
                   project: str, experiment: str, track_gpus: bool,
                   output_file: str = EMISSIONS_CSV) -> Tracking:
    """Start an offline tracker for the home region, writing ``run_dir/<output_file>``.

    ``track_gpus`` False drops the GPUs CodeCarbon finds (a CPU run on a GPU host must
    not be charged with GPUs it does not use; the machine scope counts them).
    """
    region = parse_region(home_region)
    tracker = OfflineEmissionsTracker(
        project_name=project,
        experiment_name=experiment,
        output_dir=str(run_dir),
        output_file=output_file,
        output_methods=[OutputMethod.CSV],
        measure_power_secs=measure_power_secs,
        pue=pue,
        log_level="warning",
        tracking_mode="machine",
        # Stale lock files from a killed worker must not make the next run silently
        # track nothing, and the host's machine meter runs beside this tracker.
        allow_multiple_runs=True,
        **region.tracker_kwargs(),
    )
    if not track_gpus:
        # CodeCarbon has no switch for "no GPU" (an empty gpu_ids means all of them):
        # its hardware list is the only place to say it.
        hardware = getattr(tracker, "_hardware", None)
        if isinstance(hardware, list):
            hardware[:] = [item for item in hardware if type(item).__name__ != "GPU"]
    tracker.start()
    return Tracking(tracker=tracker, started=time.perf_counter())


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


def quiet_codecarbon() -> None:
    """Keep CodeCarbon's per-interval INFO chatter out of the run log."""
    logging.getLogger("codecarbon").setLevel(logging.WARNING)
