"""The runner: executes a plan run by run through a backend and records each outcome.

A failed run is data: it is recorded with its exit code and last log lines, and
the next run goes on. Ctrl-C stops the running worker (which writes what it has),
records the run as interrupted and leaves a session directory the report can read.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections import deque
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from harness import dataset
from harness.backends import Backend, Job, Outcome
from harness.errors import UserError
from harness.fileio import read_json
from harness.plan import RunSpec, write_run_file
from harness.results import (
    METRICS_FORMAT,
    METRICS_VERSIONS,
    create_session_dir,
    now_iso,
    write_outcome,
    write_session,
)
from harness.worker import PROGRESS_PREFIX, dataset_root

LOG_TAIL_LINES = 20


@dataclass
class RunRecord:
    """The runner's summary of one finished run."""

    run_id: str
    status: str
    duration_s: float
    reason: str | None


def default_session_name(runs: list[RunSpec]) -> str:
    """``YYYYmmdd-HHMMSS-<scenarios>``: sortable, unique per second, file-name safe."""
    scenarios = "-".join(dict.fromkeys(run.scenario for run in runs))[:60]
    return f"{datetime.now().strftime('%Y%m%d-%H%M%S')}-{scenarios}"


def prepare_data(runs: list[RunSpec], data_dir: Path, console: Console) -> None:
    """Make sure every dataset the plan needs is on disk before the first run starts."""
    for spec in {run.dataset for run in runs}:
        root = dataset_root(spec, data_dir)
        batches = root / dataset.BATCHES_DIRNAME
        names = (*dataset.TRAIN_FILES, dataset.TEST_FILE, dataset.META_FILE)
        ready = all((batches / name).is_file() for name in names)
        if spec.kind == "synthetic":
            train, test = spec.sizes
            if not ready:
                console.print(f"generating synthetic data ({train} train / {test} test) in {root}")
                dataset.ensure_synthetic(data_dir, train, test, spec.seed)
            # A complete set is not re-read here (0.4 s for CIFAR-10's size, on every
            # run's start-up): the worker's loader validates every batch, and a damaged
            # one fails the run naming the file and `data synth`.
        else:
            if not ready:
                raise UserError(
                    f"CIFAR-10 is not in {root}", key="dataset",
                    fix="run `python -m harness data fetch`, or download "
                        f"{dataset.CIFAR10_URL} elsewhere and run "
                        "`python -m harness data import PATH/cifar-10-python.tar.gz`",
                )


def classify(outcome: Outcome, run_dir: Path, log_tail: list[str]) -> tuple[str, str | None]:
    """Decide a run's status from how the process ended and what it wrote."""
    try:
        metrics = read_json(run_dir / "metrics.json", METRICS_FORMAT, METRICS_VERSIONS)
    except UserError:
        metrics = None
    worker_status = metrics.get("status") if metrics else None
    if outcome.interrupted:
        return "interrupted", "stopped by the user (Ctrl-C)"
    if outcome.timed_out:
        return "timeout", "exceeded the scenario's timeout_s; stopped"
    if outcome.oom_killed:
        return "failed", "killed by the out-of-memory killer (raise hardware.memory)"
    if outcome.exit_code == 0 and worker_status == "complete":
        return "ok", None
    if worker_status == "partial":
        return "partial", (metrics or {}).get("error") or "worker stopped early"
    reason = (metrics or {}).get("error") or (log_tail[-1] if log_tail else "no output")
    if outcome.exit_code is None:
        return "failed", reason
    return "failed", f"exit code {outcome.exit_code}: {reason}"


class Runner:
    """Runs a plan through one backend, writing a new session directory."""

    def __init__(self, backend: Backend, results_dir: Path, data_dir: Path,
                 console: Console | None = None) -> None:
        self.backend = backend
        self.results_dir = results_dir
        self.data_dir = data_dir
        self.console = console or Console(stderr=True, soft_wrap=True)

    def run(self, runs: list[RunSpec], *, session: str | None, scenario_files: list[str],
            argv: list[str]) -> tuple[Path, list[RunRecord]]:
        """Run every planned run; returns the session directory and one record per run."""
        for warning in self.backend.preflight(runs):
            self.console.print(f"[yellow]warning:[/] {warning}")
        prepare_data(runs, self.data_dir, self.console)
        session_dir = create_session_dir(self.results_dir, session or default_session_name(runs))
        write_session(session_dir, plan=runs, scenario_files=scenario_files,
                      backend=self.backend.describe(), argv=argv)
        self.console.print(f"session: {session_dir}")
        records: list[RunRecord] = []
        with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.fields[epoch]}"),
                      TimeElapsedColumn(), console=self.console, transient=False) as progress:
            for index, spec in enumerate(runs, start=1):
                task = progress.add_task(f"run {index}/{len(runs)} {spec.run_id}",
                                         total=spec.training.epochs, epoch="starting")
                record = self._run_one(spec, session_dir, progress, task)
                records.append(record)
                progress.update(task, epoch=record.status)
                colour = "green" if record.status == "ok" else "red"
                detail = f" ({record.reason})" if record.reason else ""
                progress.console.print(f"[{colour}]{record.status}[/] {spec.run_id} "
                                       f"in {record.duration_s:.1f} s{detail}")
                if record.status == "interrupted":
                    break
        return session_dir, records

    def _run_one(self, spec: RunSpec, session_dir: Path, progress: Progress,
                 task: Any) -> RunRecord:
        run_dir = session_dir / spec.run_id
        run_dir.mkdir()
        write_run_file(run_dir, spec, session_dir.name, now_iso())
        tail: deque[str] = deque(maxlen=LOG_TAIL_LINES)
        log_lock = threading.Lock()
        with (run_dir / "worker.log").open("a", buffering=1) as log:

            def on_line(line: str) -> None:
                if line.startswith(PROGRESS_PREFIX):
                    _show_progress(line, progress, task)
                    return
                with log_lock:
                    log.write(line + "\n")
                    tail.append(line)

            job = Job(run=spec, run_dir=run_dir, data_dir=self.data_dir, session=session_dir.name)
            start = time.perf_counter()
            try:
                outcome = self.backend.execute(job, on_line)
            except KeyboardInterrupt:
                self.console.print("[yellow]interrupted: stopping the running worker...[/]")
                self.backend.stop_all()
                outcome = Outcome(exit_code=None, duration_s=time.perf_counter() - start,
                                  interrupted=True, provenance={"backend": self.backend.name})
            except Exception as exc:
                # The backend failing (the Docker daemon went away, say) fails this run
                # only: record it and go on, so the runs already measured keep their
                # results and the session stays readable.
                with contextlib.suppress(Exception):
                    self.backend.stop_all()
                line = f"backend error: {type(exc).__name__}: {exc}"
                tail.append(line)
                log.write(line + "\n")
                outcome = Outcome(exit_code=None, duration_s=time.perf_counter() - start,
                                  provenance={"backend": self.backend.name, "error": line})
        status, reason = classify(outcome, run_dir, list(tail))
        write_outcome(run_dir, status=status, exit_code=outcome.exit_code,  # type: ignore[arg-type]
                      duration_s=outcome.duration_s, reason=reason, log_tail=list(tail),
                      provenance=outcome.provenance)
        return RunRecord(spec.run_id, status, outcome.duration_s, reason)


def _show_progress(line: str, progress: Progress, task: Any) -> None:
    try:
        event = json.loads(line[len(PROGRESS_PREFIX):])
    except json.JSONDecodeError:
        return
    if event.get("event") == "epoch":
        progress.update(task, completed=event["epoch"],
                        epoch=f"epoch {event['epoch']}/{event['epochs']} "
                              f"val_acc {event.get('val_accuracy', 0):.3f}")
    elif event.get("event") == "setup":
        progress.update(task, epoch=f"training on {event.get('dataset')}")
