"""The machine scope and the idle baseline: CodeCarbon in machine mode on the host.

Host side. The worker's tracker sees what its process may see: inside a container no GPU
but its own, and CPU and RAM modelled from the whole host. The :class:`Meter` runs
beside it on the host, around each run, with every GPU: what the machine drew during the
run's window (the *machine* scope), kept in the run directory as ``machine-emissions.csv``
and recorded in outcome.json. :func:`idle_baseline` measures what the same machine draws
when nothing runs, per component, once per session (or reuses a recent measurement), so
each run's energy can be split into gross and net (gross - idle power x duration).

Where the power is estimated (no RAPL, no NVML) the meter's figures and the baseline are
estimates too, and their power methods say so.
"""

from __future__ import annotations

import logging
import platform
import time
from datetime import UTC, datetime
from pathlib import Path

from harness import hostinfo
from harness.fileio import write_atomic
from harness.schema import MACHINE_CSV, IdleBaseline, MachineEnergy
from harness.state import state_dir

#: Sampling interval of the meter and of the idle measurement, seconds.
METER_SECS = 1.0
#: Background CPU load (CPUs) above which an idle measurement is refused as not idle.
IDLE_BUSY_LIMIT = 0.25
#: Idle measurements tried before a session goes without a baseline.
IDLE_ATTEMPTS = 3


class Meter:
    """CodeCarbon in machine mode around one run: started before the worker, stopped after."""

    def __init__(self, run_dir: Path, *, home_region: str, pue: float) -> None:
        from harness.carbon import make_tracker, quiet_codecarbon

        # The worker's log already says what CodeCarbon guessed; the host's console stays clean.
        quiet_codecarbon(logging.ERROR)
        self.run_dir = run_dir
        self.tracker = make_tracker(run_dir, MACHINE_CSV, home_region=home_region,
                                    measure_power_secs=METER_SECS, pue=pue,
                                    project="harness-machine", experiment=run_dir.name,
                                    # The worker's log already says what CodeCarbon guessed.
                                    track_gpus=True, log_level="error")
        self._start = 0.0

    def start(self) -> None:
        self.tracker.start()
        self._start = time.perf_counter()

    def stop(self) -> MachineEnergy | None:
        """Stop the tracker; the machine's energy over the window (None if it failed)."""
        from harness.carbon import describe_power_methods, energy_of

        window = time.perf_counter() - self._start
        self.tracker.stop()
        data = getattr(self.tracker, "final_emissions_data", None)
        if data is None:
            return None
        return MachineEnergy(window_s=window, energy=energy_of(data),
                             methods=describe_power_methods(self.tracker), source=MACHINE_CSV)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _cache() -> Path:
    return state_dir() / f"idle-{platform.node()}.json"


def measure_idle(duration_s: float) -> IdleBaseline:
    """The host's power per component while nothing of ours runs, over ``duration_s``.

    Raises:
        RuntimeError: the tracker produced nothing, or the machine was busy (other
            processes used more than :data:`IDLE_BUSY_LIMIT` CPUs): not an idle baseline.
    """
    from harness.carbon import describe_power_methods, make_tracker, quiet_codecarbon

    quiet_codecarbon(logging.ERROR)
    out = state_dir() / "idle-measurements"
    out.mkdir(parents=True, exist_ok=True)
    tracker = make_tracker(out, "idle-emissions.csv", home_region="FRA",
                           measure_power_secs=METER_SECS, pue=1.0, project="harness-idle",
                           experiment="idle", track_gpus=True, log_level="error")
    before = hostinfo.cpu_times()
    tracker.start()
    start = time.perf_counter()
    time.sleep(duration_s)
    tracker.stop()
    elapsed = time.perf_counter() - start
    after = hostinfo.cpu_times()
    data = getattr(tracker, "final_emissions_data", None)
    if data is None or elapsed <= 0:
        raise RuntimeError("CodeCarbon produced no measurement")
    if before is not None and after is not None:
        busy, _ = hostinfo.background_load(before, after)
        if busy > IDLE_BUSY_LIMIT:
            raise RuntimeError(f"the machine was busy ({busy:.2f} CPUs used by other "
                               "processes): not an idle baseline")
    methods = describe_power_methods(tracker)
    gpus = sum(int(getattr(item, "num_gpus", 0) or 0) for item in getattr(tracker, "_hardware", [])
               if type(item).__name__ == "GPU")
    to_w = 3.6e6 / elapsed  # kWh over the window -> mean W
    return IdleBaseline(measured_at=_now(), duration_s=elapsed,
                        cpu_w=float(data.cpu_energy) * to_w, gpu_w=float(data.gpu_energy) * to_w,
                        ram_w=float(data.ram_energy) * to_w,
                        estimated=any(not m.measured and m.method != "none" for m in methods),
                        methods=methods, gpu_count=gpus)


def idle_baseline(duration_s: float, max_age_s: float) -> tuple[IdleBaseline | None, str]:
    """A measurement younger than ``max_age_s`` from the cache, or a new one (cached).

    Returns:
        (the baseline or None, a note saying where it came from or why there is none).
    """
    cache = _cache()
    try:
        cached = IdleBaseline.model_validate_json(cache.read_text())
        age = (datetime.now(UTC) - datetime.fromisoformat(cached.measured_at)).total_seconds()
        if 0 <= age <= max_age_s:
            return (cached.model_copy(update={"reused_from": str(cache)}),
                    f"reused a measurement {age / 60:.0f} min old ({cache})")
    except (OSError, ValueError):
        pass
    if duration_s <= 0:
        return None, "idle baseline skipped (--idle-s 0): no net figures"
    # A burst of someone else's work (a daemon, a container being removed) spoils one window
    # but says nothing about the next: try a few before concluding the machine is busy.
    refusals: list[str] = []
    for _ in range(IDLE_ATTEMPTS):
        try:
            baseline = measure_idle(duration_s)
        except RuntimeError as exc:
            refusals.append(str(exc))
            continue
        write_atomic(cache, baseline.model_dump_json(indent=2) + "\n")
        retried = f" (attempt {len(refusals) + 1}; before: {'; '.join(refusals)})" if refusals else ""
        return baseline, f"measured for {baseline.duration_s:.0f} s{retried}"
    return None, f"no idle baseline after {IDLE_ATTEMPTS} attempts: {'; '.join(refusals)}"

