"""The worker: one tracked training run, ``python -m harness.worker RUN_DIR``.

The only entry point that imports TensorFlow. It runs the same way in a local
process and in a container: it reads ``run.json`` from the run directory and
writes ``metrics.json``, ``history.json`` and CodeCarbon's ``emissions.csv`` there.
Progress goes to stdout as ``HARNESS_PROGRESS {json}`` lines for the host.

Exit status: 0 complete; 1 failed; 3 stopped by SIGTERM/SIGINT (results marked partial).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import platform
import signal
import sys
import time
import traceback
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from harness import __version__, dataset
from harness.fileio import write_json
from harness.plan import RunSpec, read_run_file
from harness.scenario import DatasetSpec

METRICS_FORMAT = "harness.metrics"
# Version history of metrics.json:
#   1: first version.
METRICS_VERSION = 1
HISTORY_FORMAT = "harness.history"
HISTORY_VERSION = 1
PROGRESS_PREFIX = "HARNESS_PROGRESS "
EXIT_OK, EXIT_FAILED, EXIT_PARTIAL = 0, 1, 3


def dataset_root(spec: DatasetSpec, data_dir: Path) -> Path:
    """The directory holding the dataset a run trains on (it contains cifar-10-batches-py/)."""
    if spec.kind == "cifar10":
        return dataset.cifar10_root(data_dir)
    train, test = spec.sizes
    return dataset.synthetic_root(data_dir, train, test, spec.seed)


class Stopped(BaseException):
    """Raised in the main thread when the host asks the worker to stop (SIGTERM/SIGINT).

    A BaseException so that no ``except Exception`` inside Keras swallows it.
    """


class WorkerFailure(Exception):
    """A run that cannot proceed (e.g. a GPU scenario without a GPU)."""


def _on_signal(signum: int, _frame: Any) -> None:
    raise Stopped(signal.Signals(signum).name)


def emit_progress(**fields: Any) -> None:
    """One progress line for the host; flushed at once so the host sees it live."""
    print(PROGRESS_PREFIX + json.dumps(fields), flush=True)


def _cgroup_cpu_quota() -> float | None:
    """The CPU quota of this process's cgroup in CPUs (v2 or v1), None when unlimited."""
    try:
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()
        return None if quota == "max" else int(quota) / int(period)
    except (OSError, ValueError):
        pass
    for base in ("/sys/fs/cgroup/cpu", "/sys/fs/cgroup/cpu,cpuacct"):
        try:
            quota_us = int(Path(base, "cpu.cfs_quota_us").read_text())
            period_us = int(Path(base, "cpu.cfs_period_us").read_text())
        except (OSError, ValueError):
            continue
        return None if quota_us <= 0 else quota_us / period_us
    return None


def effective_cpus() -> float:
    """CPUs this process may really use: the affinity set, capped by the cgroup quota."""
    count = float(len(os.sched_getaffinity(0)))
    quota = _cgroup_cpu_quota()
    return min(count, quota) if quota else count


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


class _RunState:
    """What the run has produced so far; written out even when the run is cut short."""

    def __init__(self, run_dir: Path, spec: RunSpec) -> None:
        self.run_dir = run_dir
        self.spec = spec
        self.process_start = time.time() - _process_age_s()
        self.started_at = datetime.now(UTC).isoformat()
        self.epochs: list[dict[str, Any]] = []
        self.first_step_s: float | None = None
        self.max_step_gap_s: float = 0.0
        self.test_loss: float | None = None
        self.test_accuracy: float | None = None
        self.train_size = 0
        self.test_size = 0
        self.dataset_info: dict[str, Any] = {}
        self.environment: dict[str, Any] = {}

    def write_history(self) -> None:
        write_json(self.run_dir / "history.json", HISTORY_FORMAT, HISTORY_VERSION,
                   {"run_id": self.spec.run_id, "epochs": self.epochs})


def _process_age_s() -> float:
    """Seconds since this process started (from /proc, so imports are counted)."""
    try:
        import psutil  # a CodeCarbon dependency

        return max(0.0, time.time() - psutil.Process().create_time())
    except Exception:
        return 0.0


def _make_callback(state: _RunState, epochs: int, steps_per_epoch: int):
    import tensorflow as tf

    class ProgressCallback(tf.keras.callbacks.Callback):
        """Records per-epoch history and the longest gap between training steps.

        With ``steps_per_execution`` > 1 Keras calls the batch hooks once per execution
        (8 steps), so a gap is measured between executions, and ``first_step_s`` is the
        end of the first execution: both are upper bounds of the per-step figures. The
        time spent validating is not a gap; the epoch boundary around it is, and so is
        the end of fit (see ``_train``).
        """

        def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
            self._epoch_start = time.perf_counter()
            if not state.epochs:
                self.last_event = self._epoch_start
            self._train_end: float | None = None

        def gap(self, now: float) -> None:
            state.max_step_gap_s = max(state.max_step_gap_s, now - self.last_event)
            self.last_event = now

        def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
            now = time.perf_counter()
            if state.first_step_s is None:
                state.first_step_s = time.time() - state.process_start
                self.last_event = now
            else:
                self.gap(now)

        def on_test_begin(self, logs: dict | None = None) -> None:
            self._train_end = time.perf_counter()
            self.gap(self._train_end)

        def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
            now = time.perf_counter()
            logs = logs or {}
            train_end = self._train_end or now
            record = {
                "epoch": epoch + 1,
                "loss": float(logs.get("loss", math.nan)),
                "accuracy": float(logs.get("accuracy", math.nan)),
                "val_loss": float(logs.get("val_loss", math.nan)),
                "val_accuracy": float(logs.get("val_accuracy", math.nan)),
                "duration_s": now - self._epoch_start,
                "train_s": train_end - self._epoch_start,
                "validation_s": now - train_end,
            }
            state.epochs.append(record)
            state.write_history()
            # The first step of the next epoch is measured from here, so a stall at
            # the epoch boundary (iterator teardown) counts as a gap.
            self.last_event = now
            emit_progress(event="epoch", epoch=epoch + 1, epochs=epochs,
                          val_accuracy=record["val_accuracy"], epoch_s=record["duration_s"])

        def on_train_end(self, logs: dict | None = None) -> None:
            self.gap(time.perf_counter())

    return ProgressCallback()


def _configure_tensorflow(spec: RunSpec, state: _RunState) -> Any:
    """Import TensorFlow, match threads to the CPUs granted, and check the device."""
    import tensorflow as tf

    from harness import model as model_lib

    cpus = effective_cpus()
    threads = model_lib.configure_threads(cpus)
    gpus = tf.config.list_physical_devices("GPU")
    wanted = spec.hardware.gpu_count
    if spec.hardware.device == "cpu":
        # A CPU scenario must not drift onto a GPU that happens to be visible.
        tf.config.set_visible_devices([], "GPU")
        gpu_names: list[str] = []
    else:
        if len(gpus) < wanted:
            raise WorkerFailure(
                f"this is a GPU scenario ({wanted} GPU(s) requested) but TensorFlow sees "
                f"{len(gpus)} GPU(s); refusing to run it on the CPU"
            )
        gpus = gpus[:wanted]
        tf.config.set_visible_devices(gpus, "GPU")
        gpu_names = [tf.config.experimental.get_device_details(g).get("device_name", g.name)
                     for g in gpus]
    import codecarbon
    import keras
    import numpy

    state.environment = {
        "versions": {
            "python": platform.python_version(),
            "tensorflow": tf.__version__,
            "keras": keras.__version__,
            "codecarbon": codecarbon.__version__,
            "numpy": numpy.__version__,
            "harness": __version__,
        },
        "cpu_model": _cpu_model(),
        "cpus_visible": len(os.sched_getaffinity(0)),
        "cpus_effective": cpus,
        "tf_threads": threads,
        "tf_inter_op_threads": tf.config.threading.get_inter_op_parallelism_threads(),
        # Speed-only settings (harness.model.Pipeline): recorded so runs made with
        # different ones can be told apart.
        "pipeline": dataclasses.asdict(model_lib.DEFAULT_PIPELINE),
        "gpu_models": gpu_names,
        "gpu_count": len(gpu_names),
        "hostname": platform.node(),
        "platform": platform.platform(),
        "in_container": Path("/.dockerenv").exists(),
    }
    return tf


def _train(spec: RunSpec, data_dir: Path, state: _RunState, tracking: Any) -> None:
    tracking.start_phase("setup")
    # Read the dataset while TensorFlow imports: file reads and numpy copies release
    # the GIL, so on 2 cores the two overlap (about 1 s less set-up for CIFAR-10).
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="load") as pool:
        loading = pool.submit(dataset.load, dataset_root(spec.dataset, data_dir))
        tf = _configure_tensorflow(spec, state)
        data = loading.result()
    from harness import model as model_lib

    state.dataset_info = data.describe()
    state.train_size, state.test_size = data.train_size, data.test_size
    emit_progress(event="setup", dataset=data.kind, train_size=data.train_size)
    tf.keras.utils.set_random_seed(spec.training.seed)
    training = spec.training
    strategy = (tf.distribute.MirroredStrategy() if spec.hardware.gpu_count > 1
                else tf.distribute.get_strategy())
    with strategy.scope():
        model = model_lib.build_model(training)
    fit_args = model_lib.fit_arguments(data.x_train, data.y_train, data.x_test, data.y_test,
                                       training)
    progress = _make_callback(state, training.epochs,
                              model_lib.steps(data.train_size, training.batch_size))
    callbacks = [progress]
    if training.early_stopping_patience:
        callbacks.append(tf.keras.callbacks.EarlyStopping(
            monitor="val_loss", patience=training.early_stopping_patience,
            restore_best_weights=True))

    tracking.start_phase("training")
    model.fit(**fit_args, callbacks=callbacks)
    if state.epochs:
        # Leaving fit destroys the training iterator: a stall there is a gap too.
        progress.gap(time.perf_counter())

    tracking.start_phase("evaluation")
    loss, accuracy = model.evaluate(fit_args["validation_data"], verbose=0)
    state.test_loss, state.test_accuracy = float(loss), float(accuracy)
    tracking.stop_phase()


def _read_total_row(run_dir: Path) -> dict[str, str] | None:
    """The last row of CodeCarbon's emissions.csv (the run's total), or None."""
    import csv

    path = run_dir / "emissions.csv"
    try:
        with path.open(newline="") as fh:
            rows = list(csv.DictReader(fh))
    except OSError:
        return None
    return rows[-1] if rows else None


def _metrics(state: _RunState, tracking: Any, status: str, error: str | None,
             wall_s: float) -> dict[str, Any]:
    spec = state.spec
    phases = {p.name: p for p in tracking.phases} if tracking else {}
    training_phase = phases.get("training")
    train_images = state.train_size * len(state.epochs)
    train_s = sum(e["train_s"] for e in state.epochs)
    after_warmup = state.epochs[1:]
    warm_s = sum(e["train_s"] for e in after_warmup)
    row = _read_total_row(state.run_dir)

    def _num(key: str) -> float | None:
        try:
            return float(row[key]) if row and row.get(key) not in (None, "") else None
        except ValueError:
            return None

    return {
        "run_id": spec.run_id,
        "status": status,
        "tracker_check": _tracker_check(spec.home_region, _num("energy_consumed"),
                                        _num("emissions")),
        "error": error,
        "started_at": state.started_at,
        "finished_at": datetime.now(UTC).isoformat(),
        "scenario": spec.scenario,
        "hardware": spec.hardware.name,
        "device": spec.hardware.device,
        "repeat": spec.repeat,
        "home_region": spec.home_region,
        "dataset": state.dataset_info or {"kind": spec.dataset.kind},
        "training": {
            **spec.training.model_dump(mode="json"),
            "deviations": spec.training.deviations(),
            "epochs_planned": spec.training.epochs,
            "epochs_run": len(state.epochs),
        },
        "test_accuracy": state.test_accuracy,
        "test_loss": state.test_loss,
        "wall_s": wall_s,
        "training_s": training_phase.duration_s if training_phase else None,
        "train_only_s": train_s,
        "images_per_s": train_images / train_s if train_s > 0 else None,
        "images_per_s_after_warmup": (state.train_size * len(after_warmup) / warm_s
                                      if warm_s > 0 else None),
        "first_step_s": state.first_step_s,
        "max_step_gap_s": state.max_step_gap_s if state.epochs else None,
        "energy_kwh": _num("energy_consumed"),
        "cpu_energy_kwh": _num("cpu_energy"),
        "gpu_energy_kwh": _num("gpu_energy"),
        "ram_energy_kwh": _num("ram_energy"),
        "emissions_kg": _num("emissions"),
        "tracker": {
            **spec.tracker.model_dump(mode="json"),
            "csv_duration_s": _num("duration"),
            "country_iso_code": row.get("country_iso_code") if row else None,
            "region": row.get("region") if row else None,
            "cloud_provider": row.get("cloud_provider") if row else None,
            "cloud_region": row.get("cloud_region") if row else None,
        },
        "phases": [p.__dict__ for p in tracking.phases] if tracking else [],
        "power": [m.__dict__ for m in tracking.power_methods()] if tracking else [],
        "environment": state.environment,
    }


def _tracker_check(home_region: str, energy_kwh: float | None,
                   emissions_kg: float | None) -> dict[str, Any]:
    """Re-price the CSV's total energy in the home region and compare with the CSV's CO2.

    They agree to rounding unless CodeCarbon's scheduler added energy during stop()
    that it never priced (a race seen here); the report flags a disagreement.
    """
    if energy_kwh is None or emissions_kg is None:
        return {"ok": False, "detail": "no total row in emissions.csv"}
    from harness.regions import parse_region, price

    repriced = price(energy_kwh, parse_region(home_region))
    rel = abs(repriced - emissions_kg) / repriced if repriced else abs(emissions_kg)
    return {"ok": rel <= 1e-9, "repriced_kg": repriced, "csv_kg": emissions_kg,
            "relative_difference": rel}


def _hand_back(run_dir: Path) -> None:
    """Give the run's files to the invoking user when the worker ran as root.

    Only the RAPL opt-in runs a container as root (RAPL counters are root-only);
    HARNESS_OWNER (``uid:gid``) then names the user the files belong to.
    """
    owner = os.environ.get("HARNESS_OWNER")
    if not owner or os.getuid() != 0:
        return
    uid, gid = (int(part) for part in owner.split(":"))
    for path in [run_dir, *run_dir.rglob("*")]:
        os.chown(path, uid, gid)


def run(run_dir: Path, data_dir: Path) -> int:
    """Run the training described by ``run_dir/run.json``; returns the exit status."""
    spec, _ = read_run_file(run_dir)
    state = _RunState(run_dir, spec)
    wall_start = time.perf_counter()
    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    tracking = None
    status, error, code = "complete", None, EXIT_OK
    try:
        from harness.tracking import quiet_codecarbon, start_tracking

        tracking = start_tracking(
            run_dir, home_region=spec.home_region,
            measure_power_secs=spec.tracker.measure_power_secs, pue=spec.tracker.pue,
            project=spec.scenario, experiment=spec.run_id,
        )
        quiet_codecarbon()
        _train(spec, data_dir, state, tracking)
    except Stopped as exc:
        status, error, code = "partial", f"stopped by {exc}", EXIT_PARTIAL
    except Exception as exc:
        status, error, code = "failed", f"{type(exc).__name__}: {exc}", EXIT_FAILED
        traceback.print_exc()
    finally:
        # Ignore further signals while the results are written: losing them now
        # would lose everything measured so far.
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        if tracking is not None:
            try:
                tracking.stop()
            except Exception:
                traceback.print_exc()
        if state.epochs:
            state.write_history()
        write_json(run_dir / "metrics.json", METRICS_FORMAT, METRICS_VERSION,
                   _metrics(state, tracking, status, error, time.perf_counter() - wall_start))
        _hand_back(run_dir)
    if error:
        print(f"worker: run {spec.run_id} {status}: {error}", file=sys.stderr, flush=True)
    emit_progress(event="done", status=status)
    return code


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m harness.worker",
                                     description="Run one tracked training (see run.json).")
    parser.add_argument("run_dir", type=Path, help="directory holding run.json")
    parser.add_argument("--data-dir", type=Path, default=None,
                        help="dataset directory (default: $HARNESS_DATA_DIR or ./data)")
    args = parser.parse_args(argv)
    from harness.errors import UserError

    try:
        return run(args.run_dir, args.data_dir or dataset.default_data_dir())
    except UserError as exc:
        print(f"worker: {exc.render()}", file=sys.stderr, flush=True)
        return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
