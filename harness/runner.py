"""The runner: executes a plan run by run through a backend and records each outcome.

A failed run is data: it is recorded with its exit code and last log lines, and
the next run goes on. Ctrl-C stops the running worker (which writes what it has),
records the run as interrupted and leaves a session directory the report can read.

Progress: on a terminal, a live bar per run; otherwise (a log file, CI) one plain line
per run event and per epoch, so a redirected ``make bench-cpu`` shows where it is.
"""

from __future__ import annotations

import contextlib
import json
import platform
import re
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from rich.console import Console

from harness import dataset
from harness.backends import Backend, Job, Outcome
from harness.errors import UserError
from harness.fileio import FileProblem, disk_error, ensure_writable_dir, read_model
from harness.identity import code_identity
from harness.plan import write_run_file
from harness.results import now_iso, write_outcome, write_session
from harness.schema import (
    PROGRESS_PREFIX,
    UPGRADE_HINT,
    HostRecord,
    Metrics,
    RunSpec,
    RunStatus,
    Session,
)
from harness.schema import Outcome as OutcomeRecord

LOG_TAIL_LINES = 20
#: A session name is one path component of these characters (no slash, no dot-dot).
SESSION_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")


@dataclass
class RunRecord:
    """The runner's summary of one finished run."""

    run_id: str
    status: RunStatus
    duration_s: float
    reason: str | None


def default_session_name(runs: list[RunSpec]) -> str:
    """``YYYYmmdd-HHMMSS-<scenarios>-<4 hex>``: sortable, file-name safe, and unique even
    for two sessions started in the same second."""
    scenarios = "-".join(dict.fromkeys(run.scenario for run in runs))[:60]
    return f"{datetime.now().strftime('%Y%m%d-%H%M%S')}-{scenarios}-{uuid.uuid4().hex[:4]}"


def check_session_name(name: str) -> None:
    """Refuse a session name that is not one safe path component."""
    if not SESSION_NAME.match(name) or name in (".", ".."):
        raise UserError(f"{name[:80]!r} is not a session name", key="--session",
                        fix="use up to 100 letters, digits, dots, hyphens and underscores, "
                            "starting with a letter or digit (no slashes)")


def check_results_dir(results_dir: Path) -> None:
    """The results directory exists (or can be made) and is a writable directory."""
    ensure_writable_dir(results_dir, "--results-dir")


def create_session_dir(results_dir: Path, session: str | None, runs: list[RunSpec]) -> Path:
    """Create ``results_dir/<session>``; an existing session is never reused."""
    check_results_dir(results_dir)
    if session is not None:
        check_session_name(session)
    name = session or default_session_name(runs)
    path = results_dir / name
    try:
        path.mkdir(exist_ok=False)
    except FileExistsError:
        if session is None:  # a generated name collided: take another
            return create_session_dir(results_dir, None, runs)
        raise UserError(f"session {session!r} already exists", source=path,
                        fix="choose another --session name; results are never overwritten"
                        ) from None
    except OSError as exc:
        raise disk_error(exc, path) from None
    return path


def prepare_data(runs: list[RunSpec], data_dir: Path, console: Console) -> None:
    """Make sure every dataset the plan needs is on disk before the first run starts."""
    for spec in {run.dataset for run in runs}:
        root = spec.root(data_dir)
        if spec.kind == "synthetic":
            train, test = spec.sizes
            if not _present(root):
                console.print(f"generating synthetic data ({spec.describe()}) in {root}")
                dataset.ensure_synthetic(data_dir, train, test, spec.seed,
                                         difficulty=spec.difficulty)
            # A complete set is not re-read here: the worker's loader checks every batch,
            # and a damaged one fails the run naming the file and the command that repairs it.
        elif not _present(root):
            if spec.kind == "custom":
                raise UserError(f"the data set {spec.name!r} is not in {root}", key="dataset.name",
                                fix=f"import it: `python -m harness data import --name {spec.name} "
                                    "ARCHIVE`")
            raise UserError(
                f"CIFAR-10 is not in {root}", key="dataset",
                fix="run `python -m harness data fetch`, or download "
                    f"{dataset.CIFAR10_URL} elsewhere and run "
                    "`python -m harness data import PATH/cifar-10-python.tar.gz`",
            )


def line_sink(spec: RunSpec, display: Any, log: Any, tail: deque[str],
              lock: threading.Lock) -> Callable[[str], None]:
    """What happens to each line a worker prints: progress events go to the display, every
    other line to worker.log and the log tail kept for outcome.json."""

    def on_line(line: str) -> None:
        if line.startswith(PROGRESS_PREFIX):
            with contextlib.suppress(ValueError):
                event = json.loads(line[len(PROGRESS_PREFIX):])
                if isinstance(event, dict):
                    display.event(spec, event)
            return
        with lock:
            log.write(line + "\n")
            tail.append(line)

    return on_line


class _Quiet:
    """A text file whose writes and close never raise (a full disk loses lines only)."""

    def __init__(self, handle: Any) -> None:
        self.handle = handle

    def write(self, text: str) -> None:
        with contextlib.suppress(OSError, ValueError):
            self.handle.write(text)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.handle.close()


def _present(root: Path) -> bool:
    """Whether every file of a data set is there (cheap: the worker's loader checks them)."""
    batches = root / dataset.BATCHES_DIRNAME
    names = (*dataset.TRAIN_FILES, dataset.TEST_FILE, dataset.META_FILE)
    return all((batches / name).is_file() for name in names)


def _worker_metrics(run_dir: Path) -> Metrics | None:
    try:
        return read_model(run_dir / "metrics.json", Metrics, upgrade_hint=UPGRADE_HINT)
    except FileProblem:
        return None


def classify(outcome: Outcome, metrics: Metrics | None,
             log_tail: list[str]) -> tuple[RunStatus, str | None]:
    """Decide a run's status from how the process ended and what the worker wrote."""
    worker = metrics.status if metrics else None
    if outcome.interrupted:
        return RunStatus.INTERRUPTED, outcome.reason or "stopped by the user (Ctrl-C)"
    if outcome.timed_out:
        return RunStatus.TIMEOUT, outcome.reason or "exceeded the scenario's timeout_s; stopped"
    if outcome.oom_killed:
        return RunStatus.FAILED, outcome.reason or ("killed by the out-of-memory killer (raise "
                                                    "hardware.memory)")
    if outcome.failed:
        return RunStatus.FAILED, outcome.reason or "the backend reports a failure"
    if outcome.exit_code == 0 and worker is RunStatus.OK:
        return RunStatus.OK, None
    if worker in (RunStatus.PARTIAL, RunStatus.OVER_BUDGET):
        return worker, (metrics.error if metrics else None) or "worker stopped early"
    reason = (metrics.error if metrics else None) or outcome.reason or (
        log_tail[-1] if log_tail else "no output")
    if outcome.exit_code is None:
        return RunStatus.FAILED, reason
    return RunStatus.FAILED, f"exit code {outcome.exit_code}: {reason}"


class Display:
    """Progress for people: a live bar on a terminal, plain lines elsewhere."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.live = console.is_terminal
        self._progress: Any = None
        self._task: Any = None

    def __enter__(self) -> Display:
        if self.live:
            from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

            self._progress = Progress(TextColumn("{task.description}"), BarColumn(),
                                      TextColumn("{task.fields[state]}"), TimeElapsedColumn(),
                                      console=self.console, transient=False)
            self._progress.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.__exit__(*exc)

    def line(self, text: str) -> None:
        """A line that stays (run results, warnings)."""
        (self._progress.console if self._progress else self.console).print(
            text, markup=False, highlight=False)

    def run_started(self, index: int, total: int, spec: RunSpec) -> None:
        if self._progress is not None:
            self._task = self._progress.add_task(f"run {index}/{total} {spec.run_id}",
                                                 total=spec.training.epochs, state="starting")
        else:
            self.line(f"run {index}/{total} {spec.run_id}: started "
                      f"({spec.training.epochs} epochs, {spec.hardware.name})")

    def event(self, spec: RunSpec, event: dict[str, Any]) -> None:
        kind = event.get("event")
        text = _event_text(event)
        if text is None:
            return
        if self._progress is not None and self._task is not None:
            if kind == "epoch":
                self._progress.update(self._task, completed=event.get("epoch", 0), state=text)
            else:
                self._progress.update(self._task, state=text)
            if kind in ("forecast", "budget"):
                self.line(f"  {spec.run_id}: {text}")
        else:
            self.line(f"  {spec.run_id}: {text}")

    def run_finished(self, record: RunRecord) -> None:
        if self._progress is not None and self._task is not None:
            self._progress.update(self._task, state=record.status.value)
        detail = f" ({record.reason})" if record.reason else ""
        self.line(f"{record.status.value} {record.run_id} in {record.duration_s:.1f} s{detail}")


def _event_text(event: dict[str, Any]) -> str | None:
    """One line of text for a worker progress event (None: not shown)."""
    kind = event.get("event")
    if kind == "setup":
        note = "" if event.get("verified", True) else " [unverified]"
        return f"training on {event.get('dataset')}{note}, {event.get('train_size')} images"
    if kind == "epoch":
        energy = event.get("energy_kwh")
        forecast = event.get("forecast_co2_kg")
        parts = [f"epoch {event.get('epoch')}/{event.get('epochs')}",
                 f"val_acc {float(event.get('val_accuracy') or 0):.3f}"]
        if energy is not None:
            parts.append(f"training energy so far {float(energy):.3g} kWh")
        if forecast is not None:
            parts.append(f"forecast {float(forecast):.3g} kg CO2")
        return ", ".join(parts)
    if kind == "forecast":
        return (f"forecast after epoch {event.get('after_epoch')}: "
                f"{float(event.get('duration_s') or 0):.0f} s, "
                f"{float(event.get('energy_kwh') or 0):.3g} kWh, "
                f"{float(event.get('co2_kg') or 0):.3g} kg CO2 (home region)")
    if kind == "budget":
        action = "stopping" if event.get("action") == "stopped" else "warning only"
        return (f"over budget: forecast {float(event.get('forecast') or 0):.3g} > "
                f"{float(event.get('limit') or 0):.3g} {event.get('unit')}; {action}")
    return None


def reap_dead_sessions(log: Any) -> int:
    """Mark the runs of sessions whose harness died (no outcome.json) as orphaned and
    forget those sessions; returns how many runs were marked."""
    from harness import state
    from harness.results import mark_orphaned

    marked = 0
    for entry in state.dead_sessions():
        session_dir = Path(entry.session_dir)
        if any(session_dir.glob("*/slurm-job.json")):
            # Its jobs live on the cluster, not in this harness: they may still run, and
            # `harness attach` follows them to the end (Runner.attach).
            log(f"session {session_dir} (Slurm) was left by a harness that is gone (pid "
                f"{entry.pid}); its jobs may still run: python -m harness attach {session_dir}")
            state.unregister(entry.session_id)
            continue
        for run_dir in sorted(session_dir.glob("*/run.json")):
            if mark_orphaned(run_dir.parent, None, [],
                             f"its harness (pid {entry.pid}) died during the run; marked by a "
                             "later harness", backend="unknown"):
                marked += 1
                log(f"marked {run_dir.parent} orphaned: its session's harness (pid "
                    f"{entry.pid}) is gone")
        state.unregister(entry.session_id)
    return marked


@dataclass
class Budgets:
    """What each scenario's runs have spent in this session, against its session budget."""

    spent: dict[str, float]
    last: dict[tuple[str, str], float]
    """(scenario, hardware) -> what the last finished run of that group spent."""

    def value(self, metrics: Metrics | None, unit: str) -> float | None:
        if metrics is None or metrics.scopes is None or metrics.scopes.run.energy is None:
            return None
        energy = metrics.scopes.run.energy
        return energy.co2_kg if unit == "kg" else energy.energy_kwh

    def record(self, spec: RunSpec, metrics: Metrics | None) -> None:
        if spec.session_budget is None:
            return
        value = self.value(metrics, spec.session_budget.unit)
        if value is not None:
            self.spent[spec.scenario] = self.spent.get(spec.scenario, 0.0) + value
            self.last[(spec.scenario, spec.hardware.name)] = value

    def check(self, spec: RunSpec) -> tuple[RunSpec, str | None]:
        """The spec the worker gets (held to what is left), or a reason not to start it."""
        budget = spec.session_budget
        if budget is None:
            return spec, None
        spent = self.spent.get(spec.scenario, 0.0)
        left = budget.limit - spent
        same = self.last.get((spec.scenario, spec.hardware.name))
        forecast = same if same is not None else (
            max((v for (sc, _), v in self.last.items() if sc == spec.scenario), default=None))
        unit = budget.unit
        over = left <= 0 or (forecast is not None and spent + forecast > budget.limit)
        if over and budget.on_exceed == "stop":
            guess = (f" + the next run's forecast {forecast:.3g} {unit} (its group's last run)"
                     if forecast is not None else "")
            return spec, (f"session budget of {budget.limit:.3g} {unit} for scenario "
                          f"{spec.scenario}: {spent:.3g} {unit} spent{guess} would exceed it; "
                          "not started")
        held = spec.budget
        if left > 0 and (held is None or (held.unit == unit and held.limit > left)):
            held = budget.model_copy(update={"limit": left})
        return spec.model_copy(update={"budget": held}), None


class Runner:
    """Runs a plan through one backend, writing a new session directory.

    Around the runs: sessions whose harness died are reaped first (their runs marked
    orphaned, their containers stopped); this session registers itself so that another
    one started beside it knows (both record it); the host's idle power is measured (or a
    recent measurement reused) before the first run; the machine meter runs around each
    run; session budgets are checked before each run starts.
    """

    def __init__(self, backend: Backend, results_dir: Path, data_dir: Path,
                 console: Console | None = None, *, idle_s: float = 30.0,
                 idle_max_age_s: float = 3600.0, machine_meter: bool = True) -> None:
        self.backend = backend
        self.results_dir = results_dir
        self.data_dir = data_dir
        self.console = console or Console(stderr=True, soft_wrap=True)
        self.idle_s = idle_s
        self.idle_max_age_s = idle_max_age_s
        self.machine_meter = machine_meter
        self.concurrent: list[str] = []

    def _say(self, text: str) -> None:
        self.console.print(text, markup=False, highlight=False)

    def _others(self, session_id: str) -> list[str]:
        from harness import state

        others = [entry.label for entry in state.live_sessions(exclude=session_id)]
        for label in others:
            if label not in self.concurrent:
                self.concurrent.append(label)
                self._say(f"warning: session {label} is running on this machine too: their "
                          "measurements disturb each other (recorded in both)")
        return others

    def run(self, runs: list[RunSpec], *, session: str | None, scenario_files: list[str],
            argv: list[str], detach: bool = False) -> tuple[Path, list[RunRecord]]:
        """Run every planned run; returns the session directory and one record per run.

        A batch backend (Slurm) submits every run and follows the jobs (Runner._run_batch);
        ``detach`` returns once they are submitted (no records). With a session budget it
        runs one job at a time on the sequential path, so each run's spending is known
        before the next starts.
        """
        from harness import state

        batched = self.backend.batch and not any(run.session_budget for run in runs)
        if detach and not batched:
            raise UserError("--detach needs a batch backend and no session budget",
                            key="--detach", fix="use --backend slurm; a scenario with "
                            "budget.session runs one job at a time, followed by the harness")
        check_results_dir(self.results_dir)
        if session is not None:
            check_session_name(session)
        reap_dead_sessions(self._say)
        self.backend.reap(self._say)
        for warning in self.backend.preflight(runs):
            self.console.print(f"[yellow]warning:[/] {warning}")
        prepare_data(runs, self.data_dir, self.console)
        idle, idle_note = self._idle() if self.backend.measures_host else (
            None, f"no idle baseline: the workers run on the {self.backend.name} nodes, not on "
                  "this host")
        session_dir = create_session_dir(self.results_dir, session, runs)
        record = Session(
            session=session_dir.name, session_id=uuid.uuid4().hex, created_at=now_iso(),
            code=code_identity(),
            host=HostRecord(hostname=platform.node(), platform=platform.platform(),
                            python=platform.python_version()),
            backend=self.backend.describe(), argv=argv, scenario_files=scenario_files,
            runs=[run.run_id for run in runs], idle=idle, idle_note=idle_note)
        try:
            write_session(session_dir, record)
        except UserError:
            with contextlib.suppress(OSError):
                session_dir.rmdir()  # nothing of it was written: leave no empty session
            raise
        state.register(record.session_id, session_dir)
        try:
            self._others(record.session_id)
            self._say(f"session: {session_dir}")
            if batched:
                records = self._run_batch(runs, session_dir, record, detach=detach)
            else:
                records = self._run_all(runs, session_dir, record)
        finally:
            state.unregister(record.session_id)
            if self.concurrent:
                with contextlib.suppress(UserError):
                    write_session(session_dir, record.model_copy(
                        update={"concurrent_sessions": list(self.concurrent)}))
        return session_dir, records

    def _idle(self) -> tuple[Any, str]:
        from harness.meter import idle_baseline

        if self.idle_s <= 0 and self.idle_max_age_s <= 0:
            return None, "idle baseline skipped (--no-idle): no net figures"
        if self.idle_s > 0:
            self._say(f"idle baseline: measuring the machine's idle power for {self.idle_s:.0f} s "
                      "(or reusing a recent measurement)")
        baseline, note = idle_baseline(self.idle_s, self.idle_max_age_s)
        self._say(f"idle baseline: {note}")
        return baseline, note

    def _run_all(self, runs: list[RunSpec], session_dir: Path,
                 record: Session) -> list[RunRecord]:
        records: list[RunRecord] = []
        budgets = Budgets(spent={}, last={})
        with Display(self.console) as display:
            for index, planned in enumerate(runs, start=1):
                spec, refusal = budgets.check(planned)
                display.run_started(index, len(runs), spec)
                if refusal is not None:
                    result = self._refuse(spec, session_dir, record, refusal)
                else:
                    result = self._run_one(spec, session_dir, record, display)
                    budgets.record(spec, _worker_metrics(session_dir / spec.run_id))
                records.append(result)
                display.run_finished(result)
                if result.status is RunStatus.INTERRUPTED:
                    break
        return records

    def _prepare(self, spec: RunSpec, session_dir: Path, session: Session) -> Path:
        run_dir = session_dir / spec.run_id
        try:
            run_dir.mkdir()
        except OSError as exc:
            raise disk_error(exc, run_dir) from None
        write_run_file(run_dir, spec, session=session.session, session_id=session.session_id,
                       created_at=now_iso(), backend=self.backend.name)
        return run_dir

    def _refuse(self, spec: RunSpec, session_dir: Path, session: Session,
                reason: str) -> RunRecord:
        """A run the session budget does not allow: recorded, never started."""
        run_dir = self._prepare(spec, session_dir, session)
        write_outcome(run_dir, OutcomeRecord(
            run_id=spec.run_id, status=RunStatus.OVER_BUDGET, exit_code=None, duration_s=0.0,
            reason=reason, log_tail=[], backend=self.backend.name, provenance={},
            finished_at=now_iso()))
        return RunRecord(spec.run_id, RunStatus.OVER_BUDGET, 0.0, reason)

    def _meter(self, spec: RunSpec, run_dir: Path) -> Any:
        if not self.machine_meter or not self.backend.measures_host:
            return None  # the worker runs elsewhere (a Slurm node): this host is not its machine
        from harness.meter import Meter

        try:
            meter = Meter(run_dir, home_region=spec.home_region, pue=spec.tracker.pue)
            meter.start()
            return meter
        except Exception as exc:  # CodeCarbon failing must not cost the run itself
            self._say(f"warning: machine meter did not start ({type(exc).__name__}: {exc}); "
                      "this run has no machine scope")
            return None

    def _run_one(self, spec: RunSpec, session_dir: Path, session: Session,
                 display: Display) -> RunRecord:
        run_dir = self._prepare(spec, session_dir, session)
        others = set(self._others(session.session_id))
        meter = self._meter(spec, run_dir)
        tail: deque[str] = deque(maxlen=LOG_TAIL_LINES)
        log_lock = threading.Lock()
        try:
            log_file = (run_dir / "worker.log").open("a", buffering=1)
        except OSError as exc:
            raise disk_error(exc, run_dir / "worker.log") from None
        # A full disk must not cost the run its outcome: lines that cannot be written are
        # dropped (the last ones are kept in outcome.json's log tail).
        with contextlib.closing(_Quiet(log_file)) as log:
            on_line = line_sink(spec, display, log, tail, log_lock)

            job = Job(run=spec, run_dir=run_dir, data_dir=self.data_dir,
                      session=session.session, session_id=session.session_id)
            start = time.perf_counter()
            try:
                outcome = self.backend.execute(job, on_line)
            except KeyboardInterrupt:
                display.line("interrupted: stopping the running worker...")
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
                                  reason=line, provenance={"backend": self.backend.name,
                                                           "error": line})
        machine = None
        if meter is not None:
            try:
                machine = meter.stop()
            except Exception as exc:
                self._say(f"warning: machine meter failed ({type(exc).__name__}: {exc})")
        others |= set(self._others(session.session_id))
        status, reason = classify(outcome, _worker_metrics(run_dir), list(tail))
        write_outcome(run_dir, OutcomeRecord(
            run_id=spec.run_id, status=status, exit_code=outcome.exit_code,
            duration_s=outcome.duration_s, reason=reason, log_tail=list(tail),
            backend=self.backend.name, provenance=outcome.provenance, finished_at=now_iso(),
            machine=machine, concurrent_sessions=sorted(others),
            slurm=outcome.slurm))
        return RunRecord(spec.run_id, status, outcome.duration_s, reason)

    # --- the batch path (Slurm): submit every run, then follow the jobs ---------------------

    def _run_batch(self, runs: list[RunSpec], session_dir: Path, session: Session, *,
                   detach: bool) -> list[RunRecord]:
        """Submit every run (the scheduler queues them and runs them side by side), then,
        unless ``detach``, follow them all to their end (harness.backends.batch.follow)."""
        from harness.backends.batch import deferred_interrupts

        backend: Any = self.backend
        records: list[RunRecord] = []
        items: list[_Followed] = []
        interrupted = False
        with Display(self.console) as base:
            display = BatchDisplay(base)
            try:
                for index, spec in enumerate(runs, start=1):
                    run_dir = self._prepare(spec, session_dir, session)
                    job = Job(run=spec, run_dir=run_dir, data_dir=self.data_dir,
                              session=session.session, session_id=session.session_id)
                    try:
                        with deferred_interrupts():  # a job submitted is a job followed
                            record = backend.submit(job)
                            item = self._followed(spec, run_dir, record, index, len(runs),
                                                  display)
                            items.append(item)
                    except UserError as exc:  # refused at submission: this run fails
                        result = self._refused_by_backend(spec, run_dir, exc.message)
                        records.append(result)
                        display.finished(result)
                        continue
                    display.submitted(item.tracked)
            except KeyboardInterrupt:
                interrupted = True
            if detach and not interrupted:
                for item in items:
                    item.log.close()
                base.line(f"detached: {len(items)} job(s) submitted; follow them to the end "
                          "(the outcomes and the report) with:\n  python -m harness attach "
                          f"{session_dir}\n(Ctrl-C there cancels them; so does scancel "
                          + " ".join(item.tracked.job_id for item in items) + ")")
                return records
            self._follow(items, display, session.session_id, records, interrupted)
        order = {spec.run_id: i for i, spec in enumerate(runs)}
        return sorted(records, key=lambda r: order.get(r.run_id, len(order)))

    def attach(self, session_dir: Path) -> list[RunRecord]:
        """Follow the jobs of a batch session to their end, writing each run's outcome.json
        as the batch path does (after ``run --detach``, or after the harness that followed
        them died). Runs with an outcome keep it; a run directory without a job (the
        harness stopped between preparing and submitting it) is recorded not_started."""
        from harness import state
        from harness.plan import read_run_file
        from harness.schema import SESSION_FILE

        backend: Any = self.backend
        path = session_dir / SESSION_FILE
        try:
            session = read_model(path, Session, upgrade_hint=UPGRADE_HINT)
        except FileProblem as exc:
            raise UserError(f"not a session: {exc.reason}", source=path,
                            fix="pass a session directory, results/<session>") from None
        if session.backend.get("backend") != backend.name:
            raise UserError(f"session {session.session} ran on the "
                            f"{session.backend.get('backend')} backend; only "
                            f"{backend.name} sessions are attached to (only Slurm sessions "
                            "have jobs to follow)", source=path,
                            fix="`harness report` reads any session")
        for entry in state.live_sessions():
            if entry.session_id == session.session_id:
                raise UserError(f"session {session.session} is followed by another harness "
                                f"(pid {entry.pid} on {entry.host})", source=session_dir,
                                fix="wait for it, or stop it (its Ctrl-C cancels the jobs)")
        records: list[RunRecord] = []
        todo = []
        for index, run_id in enumerate(session.runs, start=1):
            run_dir = session_dir / run_id
            if (run_dir / "outcome.json").exists():
                with contextlib.suppress(FileProblem):
                    done = read_model(run_dir / "outcome.json", OutcomeRecord,
                                      upgrade_hint=UPGRADE_HINT)
                    records.append(RunRecord(run_id, done.status, done.duration_s, done.reason))
                continue
            if not run_dir.is_dir():
                continue  # never prepared: planned-only in the report
            try:
                job = backend.read_job(run_dir)
                spec = read_run_file(run_dir).spec
            except FileProblem as exc:
                self._say(f"warning: {run_id}: {exc.render()}; not followed")
                continue
            if job is None:
                reason = "prepared but never submitted (the harness stopped before submitting it)"
                write_outcome(run_dir, OutcomeRecord(
                    run_id=run_id, status=RunStatus.NOT_STARTED, exit_code=None,
                    duration_s=0.0, reason=reason, log_tail=[], backend=backend.name,
                    provenance={"backend": backend.name}, finished_at=now_iso()))
                records.append(RunRecord(run_id, RunStatus.NOT_STARTED, 0.0, reason))
                continue
            if getattr(job, "slurm_conf", None) and "SLURM_CONF" not in backend.env:
                backend.env["SLURM_CONF"] = job.slurm_conf  # the cluster it was submitted to
            todo.append((spec, run_dir, job, index))
        self._say(f"session {session_dir}: {len(records)} run(s) already finished, "
                  f"{len(todo)} job(s) to follow")
        state.register(session.session_id, session_dir)
        try:
            with Display(self.console) as base:
                display = BatchDisplay(base)
                items = []
                for spec, run_dir, job, index in todo:
                    item = self._followed(spec, run_dir, job, index, len(session.runs), display)
                    items.append(item)
                    display.submitted(item.tracked, verb="following")
                self._follow(items, display, session.session_id, records)
        finally:
            state.unregister(session.session_id)
        order = {run_id: i for i, run_id in enumerate(session.runs)}
        return sorted(records, key=lambda r: order.get(r.run_id, len(order)))

    def _refused_by_backend(self, spec: RunSpec, run_dir: Path, reason: str) -> RunRecord:
        write_outcome(run_dir, OutcomeRecord(
            run_id=spec.run_id, status=RunStatus.FAILED, exit_code=None, duration_s=0.0,
            reason=reason, log_tail=[], backend=self.backend.name,
            provenance={"backend": self.backend.name, "error": reason}, finished_at=now_iso()))
        return RunRecord(spec.run_id, RunStatus.FAILED, 0.0, reason)

    def _followed(self, spec: RunSpec, run_dir: Path, job: Any, index: int, total: int,
                  display: BatchDisplay) -> _Followed:
        """A submitted run to follow: its worker.log is rebuilt from the job's output file
        (the source of truth, read from the start again on every attach)."""
        from harness.backends.batch import Tracked

        tail: deque[str] = deque(maxlen=LOG_TAIL_LINES)
        try:
            log = _Quiet((run_dir / "worker.log").open("w", buffering=1))
        except OSError as exc:
            raise disk_error(exc, run_dir / "worker.log") from None

        on_line = line_sink(spec, display, log, tail, threading.Lock())

        tracked = Tracked(spec=spec, run_dir=run_dir, job=job, facts=self.backend.new_facts(),  # type: ignore[attr-defined]
                          sink=on_line, index=index, total=total)
        return _Followed(tracked, log, tail)

    def _follow(self, items: list[_Followed], display: BatchDisplay, session_id: str,
                records: list[RunRecord], interrupted: bool = False) -> None:
        from harness.backends.batch import follow

        by_id = {item.tracked.spec.run_id: item for item in items}

        def on_done(tracked: Any, outcome: Outcome) -> None:
            item = by_id[tracked.spec.run_id]
            item.log.close()
            status, reason = classify(outcome, _worker_metrics(tracked.run_dir), list(item.tail))
            write_outcome(tracked.run_dir, OutcomeRecord(
                run_id=tracked.spec.run_id, status=status, exit_code=outcome.exit_code,
                duration_s=outcome.duration_s, reason=reason, log_tail=list(item.tail),
                backend=self.backend.name, provenance=outcome.provenance,
                finished_at=now_iso(), machine=None,
                concurrent_sessions=sorted(set(self._others(session_id))),
                slurm=outcome.slurm))
            result = RunRecord(tracked.spec.run_id, status, outcome.duration_s, reason)
            records.append(result)
            display.finished(result)

        follow(self.backend, [item.tracked for item in items],  # type: ignore[arg-type]
               on_state=display.state, on_done=on_done, say=display.display.line,
               interrupted=interrupted)


@dataclass
class _Followed:
    """A run of the batch path: its tracked job, its worker.log and the log's tail."""

    tracked: Any
    log: _Quiet
    tail: deque[str]


class BatchDisplay:
    """Progress of many runs at once: a live bar per run on a terminal, plain lines
    elsewhere (submitted, queued, running on NODE, each epoch, finished)."""

    def __init__(self, display: Display) -> None:
        self.display = display
        self.tasks: dict[str, Any] = {}

    def submitted(self, tracked: Any, verb: str = "submitted as") -> None:
        spec = tracked.spec
        text = f"run {tracked.index}/{tracked.total} {spec.run_id}"
        if self.display._progress is not None:
            self.tasks[spec.run_id] = self.display._progress.add_task(
                text, total=spec.training.epochs, state=f"{verb} job {tracked.job_id}")
        else:
            self.display.line(f"{text}: {verb} job {tracked.job_id} "
                              f"({spec.training.epochs} epochs, {spec.hardware.name})")

    def state(self, tracked: Any, text: str) -> None:
        task = self.tasks.get(tracked.spec.run_id)
        if self.display._progress is not None and task is not None:
            self.display._progress.update(task, state=text)
        else:
            self.display.line(f"  {tracked.spec.run_id}: {text}")

    def event(self, spec: RunSpec, event: dict[str, Any]) -> None:
        self.display._task = self.tasks.get(spec.run_id)
        self.display.event(spec, event)

    def finished(self, record: RunRecord) -> None:
        self.display._task = self.tasks.get(record.run_id)
        self.display.run_finished(record)
