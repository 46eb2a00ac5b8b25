"""The worker process: read run.json, train under CodeCarbon, write the result files.

Stopping: SIGTERM or SIGINT (the host's stop, Slurm's cancel) and the end of the
lifeline (``HARNESS_LIFELINE=stdin``: the host holds the worker's stdin open; when the
host dies the pipe or the container's attached stream closes) all stop the training
at once; the tracker is then stopped and everything measured so far is written, marked
partial. A budget exceeded by the forecast stops the training after the forecasting
epoch (status over_budget). Results are written even when the run fails.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
import time
import traceback
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from harness import dataset, hostinfo
from harness.errors import UserError
from harness.fileio import FileProblem, write_model
from harness.identity import code_identity
from harness.plan import read_run_file
from harness.results import read_emissions_row
from harness.schema import (
    BACKGROUND_LOAD_LIMIT,
    EMISSIONS_CSV,
    PROGRESS_PREFIX,
    DatasetRecord,
    EmissionsRow,
    Energy,
    Environment,
    History,
    HostLoad,
    Metrics,
    RunFile,
    RunSpec,
    RunStatus,
    Scopes,
    Speed,
    TrackerCheck,
    TrackerRecord,
    TrainingRecord,
    Window,
)
from harness.worker.callbacks import LoopState, make_callback, target_reached

EXIT_OK, EXIT_FAILED, EXIT_STOPPED = 0, 1, 3
#: Windows of the training scope (the rest are setup and evaluation).
TRAINING_WINDOW_PREFIXES = ("epoch-", "fit-end")
#: Relative tolerance of the tracker's CO2 against the re-priced energy.
PRICE_TOLERANCE = 1e-9


class Stopped(BaseException):
    """Raised in the main thread when the worker must stop (signal or lost lifeline).

    A BaseException so that no ``except Exception`` inside Keras swallows it.
    """


class WorkerFailure(Exception):
    """A run that cannot proceed (e.g. a GPU scenario without a GPU)."""


def emit_progress(**fields: Any) -> None:
    """One progress line for the host; flushed at once so the host sees it live."""
    import json

    print(PROGRESS_PREFIX + json.dumps(fields, default=str), flush=True)


class _Stop:
    """Why the worker was asked to stop: ``reason`` is set by the lifeline before it
    raises the signal; ``requested`` by the signal handler, and it stays set."""

    reason = ""
    requested: str | None = None


def _on_signal(signum: int, _frame: Any) -> None:
    _Stop.requested = _Stop.reason or f"stopped by {signal.Signals(signum).name}"
    raise Stopped(_Stop.requested)


def check_stop() -> None:
    """Raise :class:`Stopped` if a stop was asked for.

    The handler's exception surfaces wherever the main thread happens to be, and it can
    be lost there: Python prints and drops an exception raised in a finaliser
    (``__del__``) or a weakref callback, and C code that clears the error state drops it
    silently. The training asks again at every step boundary and after fit, so a stop is
    never lost, only delayed by one step.
    """
    if _Stop.requested is not None:
        raise Stopped(_Stop.requested)


def _watch_lifeline() -> None:
    """Stop the worker when its stdin reaches end-of-file: the host that holds it is gone."""

    def watch() -> None:
        # os.read on the descriptor, not sys.stdin: a daemon thread blocked inside a
        # buffered reader's lock aborts the interpreter at shutdown.
        try:
            while os.read(0, 4096):
                pass
        except OSError:
            pass
        _Stop.reason = "stopped: the harness that started this run is gone (lifeline closed)"
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="lifeline", daemon=True).start()


class _Run:
    """One run's state from start to the written metrics."""

    def __init__(self, run_dir: Path, run_file: RunFile) -> None:
        self.run_dir = run_dir
        self.run_file = run_file
        self.spec: RunSpec = run_file.spec
        now_perf, age = time.perf_counter(), hostinfo.process_age_s()
        self.process_start_wall = time.time() - age
        self.process_start_perf = now_perf - age
        self.started_at = datetime.now(UTC).isoformat(timespec="seconds")
        self.loop = LoopState()
        self.tracking: Any = None
        self.dataset: DatasetRecord | None = None
        self.environment: Environment | None = None
        self.attribution: Any = None
        self.test_accuracy: float | None = None
        self.test_loss: float | None = None
        self.train_size = 0
        self.train_end: float | None = None
        self.cpu_start = hostinfo.cpu_times()
        self.cpu_end: hostinfo.CpuTimes | None = None
        self.early_stopping: Any = None
        self.pruned_model: Any = None
        self.x_test: Any = None
        self.pruning: dict[str, Any] | None = None

    # --- pricing -----------------------------------------------------------------------

    def price(self, energy_kwh: float) -> float:
        """kg CO2eq of ``energy_kwh`` in the run's home region (CodeCarbon's data)."""
        from harness.regions import parse_region, price

        return price(energy_kwh, parse_region(self.spec.home_region))

    # --- files -------------------------------------------------------------------------

    def write_history(self) -> None:
        write_model(self.run_dir / "history.json",
                    History(run_id=self.spec.run_id, epochs=self.loop.epochs))


def _configure_tensorflow(run: _Run) -> Any:
    """Import TensorFlow, match threads to the CPUs granted, and check the device."""
    import tensorflow as tf

    from harness import model as model_lib
    from harness.worker import provenance

    spec = run.spec
    cpus = hostinfo.effective_cpus()
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
    run.environment = provenance.environment(tf=tf, threads=threads,
                                             pipeline=model_lib.pipeline_for(max(1, wanted)),
                                             gpu_names=gpu_names, backend=run.run_file.backend)
    run.attribution = provenance.attribution(run.environment.cpus_effective,
                                             run.environment.memory_limit_bytes)
    return tf


def _dataset_record(data: Any) -> DatasetRecord:
    """The loader's description of what it loaded, checked against the schema."""
    return DatasetRecord.model_validate(data.describe())


def _train(run: _Run, data_dir: Path) -> None:
    spec, tracking = run.spec, run.tracking
    tracking.start_window("setup")
    # Read the dataset while TensorFlow imports: file reads, hashing and numpy copies
    # release the GIL, so on 2 cores the two overlap (about 1 s less set-up).
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="load") as pool:
        loading = pool.submit(dataset.load, spec.dataset.root(data_dir))
        tf = _configure_tensorflow(run)
        data = loading.result()
    from harness import model as model_lib

    run.dataset = _dataset_record(data)
    run.train_size = data.train_size
    emit_progress(event="setup", dataset=run.dataset.label, train_size=data.train_size,
                  verified=run.dataset.verified)
    tf.keras.utils.set_random_seed(spec.seed)
    training = spec.training
    strategy = (tf.distribute.MirroredStrategy() if spec.hardware.gpu_count > 1
                else tf.distribute.get_strategy())
    pipeline = model_lib.pipeline_for(strategy.num_replicas_in_sync)
    with strategy.scope():
        model = model_lib.build_model(training, pipeline)
    fit_args = model_lib.fit_arguments(data.x_train, data.y_train, data.x_test, data.y_test,
                                       training, pipeline, seed=spec.seed)
    callbacks: list[Any] = []
    if training.early_stopping is not None:
        early = training.early_stopping
        run.early_stopping = tf.keras.callbacks.EarlyStopping(
            monitor=early.monitor, patience=early.patience, min_delta=early.min_delta,
            mode="max" if early.monitor == "val_accuracy" else "min",
            restore_best_weights=True)
        callbacks.append(run.early_stopping)
    if training.pruning is not None:
        from harness import pruning

        settings = training.pruning
        steps = model_lib.steps(data.train_size, training.batch_size)
        callbacks += pruning.attach_pruning(model, pruning.PruningSpec.from_epochs(
            settings.sparsity, begin_epoch=settings.begin_epoch,
            end_epoch=training.pruning_end_epoch, steps_per_epoch=steps,
            frequency=max(1, steps // settings.updates_per_epoch)))
    # Last: it reads stop_training after EarlyStopping has set it.
    callbacks.append(make_callback(
        state=run.loop, tracking=tracking, epochs=training.epochs,
        process_start=run.process_start_wall, forecast_after=spec.forecast_after_epoch,
        budget=spec.budget, price=run.price, on_history=run.write_history,
        emit=emit_progress, check_stop=check_stop))
    model.fit(**fit_args, callbacks=callbacks)
    check_stop()  # asked during the last step: the run is partial, not evaluated
    run.train_end = time.perf_counter()
    if run.loop.over_budget:
        tracking.stop_window()
        return  # stopped by the budget: no final evaluation, the run is not complete
    tracking.start_window("evaluation")
    loss, accuracy = model.evaluate(fit_args["validation_data"], verbose=0)
    check_stop()
    run.test_loss, run.test_accuracy = float(loss), float(accuracy)
    tracking.stop_window()
    if training.pruning is not None:
        # Measured after the tracker has stopped (see run()): the checks below are not the
        # workload, and a pruned run's scopes must stay comparable with the baseline's.
        run.pruned_model, run.x_test = model, data.x_test


def _pruning_record(run: _Run) -> dict[str, Any] | None:
    """What pruning achieved: exact sparsity, sizes (dense, zeros stripped, compressed),
    multiply-adds, and inference time of the pruned model against the same model with its
    zeros filled (dense kernels do not skip zeros: the question is whether it is faster)."""
    model = run.pruned_model
    if model is None:
        return None
    from harness import pruning

    images = run.x_test[:2000].astype("float32") / 255.0
    return {
        "sparsity": pruning.sparsity(model).as_dict(),
        "size_bytes": pruning.model_size(model).as_dict(),
        "macs_per_image": {k: v for k, v in pruning.inference_macs(model).items()
                           if k != "layers"},
        "inference": pruning.compare_inference(model, images, repeats=3),
        "method": "magnitude pruning of Conv2D and Dense kernels (not the classifier) on Zhu "
                  "& Gupta's polynomial schedule, masks kept by a kernel constraint applied "
                  "after every optimizer step; sizes: dense float32, bitmask + non-zero "
                  "values, the weights file gzip -9",
    }


# --- metrics -----------------------------------------------------------------------------


def _sum_windows(name: str, windows: list[Window]) -> Window | None:
    """One window covering ``windows`` (durations and energies added), or None if empty."""
    if not windows:
        return None
    energies = [w.energy for w in windows]
    energy = None
    if all(e is not None for e in energies):
        energy = Energy(
            energy_kwh=sum(e.energy_kwh for e in energies),  # type: ignore[union-attr]
            cpu_kwh=sum(e.cpu_kwh for e in energies),  # type: ignore[union-attr]
            gpu_kwh=sum(e.gpu_kwh for e in energies),  # type: ignore[union-attr]
            ram_kwh=sum(e.ram_kwh for e in energies),  # type: ignore[union-attr]
            co2_kg=sum(e.co2_kg for e in energies),  # type: ignore[union-attr]
        )
    return Window(name=name, duration_s=sum(w.duration_s for w in windows), energy=energy)


def _scaled(energy: Energy, factor: float) -> Energy:
    return Energy(energy_kwh=energy.energy_kwh * factor, cpu_kwh=energy.cpu_kwh * factor,
                  gpu_kwh=energy.gpu_kwh * factor, ram_kwh=energy.ram_kwh * factor,
                  co2_kg=energy.co2_kg * factor)


def _scopes(run: _Run, row: EmissionsRow) -> Scopes | None:
    """Training, run and process scopes on the worker's clock."""
    tracking = run.tracking
    if tracking is None or tracking.stopped is None:
        return None
    training = _sum_windows("training", [w for w in tracking.windows
                                         if w.name.startswith(TRAINING_WINDOW_PREFIXES)])
    run_s = tracking.stopped - tracking.started
    run_energy = Energy(energy_kwh=row.energy_consumed, cpu_kwh=row.cpu_energy,
                        gpu_kwh=row.gpu_energy, ram_kwh=row.ram_energy, co2_kg=row.emissions)
    # Interpreter start, imports and CodeCarbon's own start are before the tracker: no
    # counter saw them, so they are priced at the run's mean power and marked estimated.
    untracked_s = max(0.0, tracking.started - run.process_start_perf)
    factor = 1 + untracked_s / run_s if run_s > 0 else 1.0
    return Scopes(
        training=training or Window(name="training", duration_s=0.0),
        run=Window(name="run", duration_s=run_s, energy=run_energy),
        process=Window(name="process", duration_s=run_s + untracked_s,
                       energy=_scaled(run_energy, factor), estimated_s=untracked_s),
    )


def _tracker_check(run: _Run, row: EmissionsRow) -> TrackerCheck:
    """Re-price the CSV's total energy in the home region and compare with the CSV's CO2.

    They agree to rounding unless CodeCarbon's scheduler added energy during stop()
    that it never priced (a race seen here); the report then says so.
    """
    repriced = run.price(row.energy_consumed)
    rel = abs(repriced - row.emissions) / repriced if repriced else abs(row.emissions)
    ok = rel <= PRICE_TOLERANCE
    detail = ("the CSV's CO2 equals its energy priced in the home region" if ok else
              f"CodeCarbon left {100 * rel:.3g}% of the energy unpriced (energy added while "
              "stop() priced its last interval); the report prices the energy itself")
    return TrackerCheck(ok=ok, repriced_kg=repriced, csv_kg=row.emissions,
                        relative_difference=rel, detail=detail)


def _speed(run: _Run) -> Speed:
    epochs = run.loop.epochs
    train_s = sum(e.train_s for e in epochs)
    warm = epochs[1:]
    warm_s = sum(e.train_s for e in warm)
    return Speed(
        images_per_s=run.train_size * len(epochs) / train_s if train_s > 0 else None,
        images_per_s_after_warmup=run.train_size * len(warm) / warm_s if warm_s > 0 else None,
        first_step_s=run.loop.first_step_s,
        max_step_gap_s=run.loop.max_step_gap_s if epochs else None,
        train_only_s=train_s,
    )


def _host_load(run: _Run) -> HostLoad | None:
    if run.cpu_start is None or run.cpu_end is None:
        return None
    background, own = hostinfo.background_load(run.cpu_start, run.cpu_end)
    return HostLoad(host_cpus=hostinfo.host_cpus(), background_cpus=background, run_cpus=own,
                    flagged=background > BACKGROUND_LOAD_LIMIT)


def _metrics(run: _Run, status: RunStatus, error: str | None) -> Metrics:
    spec, tracking = run.spec, run.tracking
    row: EmissionsRow | None = None
    row_problem = None
    if tracking is not None:
        try:
            row = read_emissions_row(run.run_dir / EMISSIONS_CSV)
        except FileProblem as exc:
            row_problem = exc.render()
    if status is RunStatus.OK and (row is None or run.dataset is None
                                   or run.test_accuracy is None):
        status = RunStatus.FAILED
        error = error or f"the tracker's total is unusable: {row_problem or 'no data'}"
    epochs_run = len(run.loop.epochs)
    target = (target_reached(spec.target_accuracy, run.loop.epochs, run.price)
              if spec.target_accuracy is not None else None)
    return Metrics(
        run_id=spec.run_id,
        status=status,
        error=error,
        started_at=run.started_at,
        finished_at=datetime.now(UTC).isoformat(timespec="seconds"),
        code=code_identity(),
        dataset=run.dataset,
        training=TrainingRecord(
            settings=spec.training,
            deviations=spec.training.deviations(),
            seed=spec.seed,
            epochs_planned=spec.training.epochs,
            epochs_run=epochs_run,
            stopped_early=(status is RunStatus.OK and epochs_run < spec.training.epochs),
            best_epoch=_best_epoch(run),
            pruning=run.pruning,
        ),
        test_accuracy=run.test_accuracy,
        test_loss=run.test_loss,
        scopes=_scopes(run, row) if row is not None else None,
        phases=list(tracking.windows) if tracking is not None else [],
        speed=_speed(run),
        power=tracking.power_methods() if tracking is not None else [],
        tracker=TrackerRecord(
            measure_power_secs=spec.tracker.measure_power_secs, pue=spec.tracker.pue,
            rapl=spec.tracker.rapl, tracking_mode=row.tracking_mode,
            country_iso_code=row.country_iso_code, region=row.region,
            cloud_provider=row.cloud_provider, cloud_region=row.cloud_region,
            csv_duration_s=row.duration) if row is not None else None,
        tracker_check=_tracker_check(run, row) if row is not None else None,
        environment=run.environment,
        load=_host_load(run),
        attribution=run.attribution,
        forecast=run.loop.forecast,
        budget=run.loop.budget,
        target=target,
    )


def _tracked_gpu_ids(run_file: RunFile) -> list[int] | None:
    """The NVML indices of the run's own GPUs when the worker sees the host's GPUs (the
    local backend): CodeCarbon would otherwise charge it with every GPU of the host. A
    container or a Slurm allocation sees only its own, and needs no list."""
    hardware = run_file.spec.hardware
    if hardware.device != "gpu" or run_file.backend != "local":
        return None
    return list(hardware.gpu_ids) if hardware.gpu_ids else list(range(hardware.gpu_count))


def _best_epoch(run: _Run) -> int | None:
    """The 1-based epoch whose weights early stopping kept (None without early stopping)."""
    early = run.early_stopping
    if early is None or getattr(early, "best_epoch", None) is None or not run.loop.epochs:
        return None
    return int(early.best_epoch) + 1


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
    run_file = read_run_file(run_dir)
    state = _Run(run_dir, run_file)
    spec = state.spec
    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    if os.environ.get("HARNESS_LIFELINE") == "stdin":
        _watch_lifeline()
    status, error, code = RunStatus.OK, None, EXIT_OK
    try:
        from harness.carbon import quiet_codecarbon
        from harness.tracking import start_tracking

        state.tracking = start_tracking(
            run_dir, home_region=spec.home_region,
            measure_power_secs=spec.tracker.measure_power_secs, pue=spec.tracker.pue,
            project=spec.scenario, experiment=spec.run_id,
            track_gpus=spec.hardware.device == "gpu", gpu_ids=_tracked_gpu_ids(run_file),
        )
        quiet_codecarbon()
        _train(state, data_dir)
        if state.loop.over_budget:
            budget = state.loop.budget
            status, code = RunStatus.OVER_BUDGET, EXIT_STOPPED
            error = (f"forecast {budget.forecast_value:.3g} {budget.spec.unit} exceeds the "  # type: ignore[union-attr]
                     f"budget of {budget.spec.limit:.3g} {budget.spec.unit}; stopped after "  # type: ignore[union-attr]
                     f"epoch {len(state.loop.epochs)}")
    except Stopped as exc:
        status, error, code = RunStatus.PARTIAL, str(exc), EXIT_STOPPED
    except Exception as exc:
        status, error, code = RunStatus.FAILED, f"{type(exc).__name__}: {exc}", EXIT_FAILED
        traceback.print_exc()
    except BaseException as exc:
        # SystemExit, KeyboardInterrupt...: the training did not finish, so the results
        # written below must not say ok. The exception still ends the process.
        status, error = RunStatus.FAILED, f"{type(exc).__name__}: {exc}".rstrip(": ")
        raise
    finally:
        # Ignore further signals while the results are written: losing them now
        # would lose everything measured so far.
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        if state.tracking is not None:
            try:
                state.tracking.stop()
            except Exception:
                traceback.print_exc()
        state.cpu_end = hostinfo.cpu_times()
        if status is RunStatus.OK and state.pruned_model is not None:
            try:
                state.pruning = _pruning_record(state)
            except Exception:
                traceback.print_exc()  # the run's own figures stand without it
        try:
            if state.loop.epochs:
                state.write_history()
            write_model(run_dir / "metrics.json", _metrics(state, status, error))
        finally:
            _hand_back(run_dir)
    if error:
        print(f"worker: run {spec.run_id} {status.value}: {error}", file=sys.stderr, flush=True)
    emit_progress(event="done", status=status.value)
    return code


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m harness.worker",
                                     description="Run one tracked training (see run.json).")
    parser.add_argument("run_dir", type=Path, help="directory holding run.json")
    parser.add_argument("--data-dir", type=Path, default=None,
                        help="dataset directory (default: $HARNESS_DATA_DIR or ./data)")
    args = parser.parse_args(argv)
    try:
        return run(args.run_dir, args.data_dir or dataset.default_data_dir())
    except (UserError, FileProblem) as exc:
        print(f"worker: {exc.render()}", file=sys.stderr, flush=True)
        return EXIT_FAILED
