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

import time
from dataclasses import dataclass, field
from pathlib import Path

from codecarbon import OfflineEmissionsTracker

from harness.carbon import describe_power_methods, energy_of, make_tracker
from harness.schema import EMISSIONS_CSV, PowerMethod, Window


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
                   gpu_ids: list[int] | None = None) -> Tracking:
    """Start the run's tracker (:func:`harness.carbon.make_tracker`), writing
    ``run_dir/emissions.csv``; windows are recorded on the returned :class:`Tracking`."""
    tracker = make_tracker(run_dir, EMISSIONS_CSV, home_region=home_region,
                           measure_power_secs=measure_power_secs, pue=pue, project=project,
                           experiment=experiment, track_gpus=track_gpus, gpu_ids=gpu_ids)
    tracker.start()
    return Tracking(tracker=tracker, started=time.perf_counter())
