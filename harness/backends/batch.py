"""Batch backends (Slurm; a Kubernetes one would be another): a run is a job that a
scheduler queues and runs elsewhere, so the harness submits, then follows.

:class:`BatchBackend` is the interface the runner's batch path (``Runner._run_batch``,
``Runner.attach``) uses: ``submit`` a run, look at the ``queue``, read a finished job's
``final`` state, ``cancel`` or ``terminate_steps``. :func:`follow` is the one loop that
follows jobs: the queue, each job's output file in its run directory (the worker's
progress lines and log, read as it grows), and, once a job has left the queue, its final
state, handed to ``on_done``. :func:`follow_one` is the sequential path's ``execute``
(one run to its end), used when a session budget needs each result before the next run.

Stopping (Ctrl-C, SIGTERM, SIGHUP reach the loop as KeyboardInterrupt): queued jobs are
cancelled, running workers get SIGTERM and write their partial results; after
:data:`~harness.backends.STOP_GRACE_S` what still runs is cancelled outright (at once on
a second interrupt); the loop still waits for every job to leave the queue, so each run
is recorded with what the scheduler and the worker said.
"""

from __future__ import annotations

import contextlib
import signal
import threading
import time
from abc import abstractmethod
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.backends import STOP_GRACE_S, Backend, Job, LineSink, Outcome
from harness.errors import UserError
from harness.schema import RunSpec

#: Seconds between two looks at the queue (Slurm 22.05's squeue --json lists every job).
POLL_S = 2.0
#: How long a finished job's metrics.json may take to appear on a shared filesystem.
FILES_SETTLE_S = 10.0
#: After the outright cancel of a stop, how long jobs get to leave the queue (beyond the
#: scheduler's own kill delay) before their runs are recorded without a final state.
KILL_SETTLE_S = 30.0


#: Signals the CLI turns into KeyboardInterrupt (Ctrl-C, SIGTERM, SIGHUP).
_STOP_SIGNALS = {signal.SIGINT, signal.SIGTERM, signal.SIGHUP}


@contextlib.contextmanager
def deferred_interrupts() -> Iterator[None]:
    """Hold Ctrl-C/SIGTERM/SIGHUP until the block is done: a job submitted but not yet
    recorded, or a run's outcome half written, would otherwise be lost to the stop.
    The signal arrives (as KeyboardInterrupt) right after the block."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    signal.pthread_sigmask(signal.SIG_BLOCK, _STOP_SIGNALS)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, _STOP_SIGNALS)


@dataclass
class JobStatus:
    """One job as the scheduler's queue last showed it."""

    job_id: str
    state: str
    node: str | None = None
    partition: str | None = None
    reason: str | None = None
    """Why a pending job waits (Resources, Priority...)."""
    exit_code: int | None = None
    """The job script's exit status (negative: killed by that signal)."""
    submit: float | None = None
    start: float | None = None
    end: float | None = None
    exclusive: bool | None = None
    tres: dict[str, int] = field(default_factory=dict)
    """Allocated resources: cpu, mem (MiB), gpu."""
    time_limit_s: float | None = None
    active: bool = True
    """Still queued or running (the backend decides from its scheduler's states)."""


class BatchBackend(Backend):
    """A backend whose runs are scheduler jobs: submitted all at once, then followed."""

    batch = True
    measures_host = False

    @abstractmethod
    def submit(self, job: Job) -> Any:
        """Submit one prepared run; returns its job record (with ``job_id`` and the
        ``output`` file name in the run directory), also written into the run directory
        so that a later harness can follow it (:meth:`read_job`)."""

    @abstractmethod
    def read_job(self, run_dir: Path) -> Any:
        """The job record :meth:`submit` wrote into ``run_dir``; None if never submitted.

        Raises:
            FileProblem: the record is damaged.
        """

    @abstractmethod
    def queue(self, job_ids: Iterable[str]) -> dict[str, JobStatus]:
        """The jobs among ``job_ids`` the scheduler still knows."""

    @abstractmethod
    def new_facts(self) -> Any:
        """An object with ``scan(line)``: what the job's output says (node, markers)."""

    @abstractmethod
    def final(self, job: Any, run_dir: Path, last: JobStatus | None, facts: Any, *,
              cancelled: str | None, settle_s: float | None = None) -> Outcome:
        """How a job that left the queue ended (``cancelled``: why the harness cancelled
        it, None if it did not; ``settle_s``: how long accounting may lag)."""

    @abstractmethod
    def terminate_steps(self, job_ids: list[str]) -> None:
        """SIGTERM to the running jobs' workers only (they write partial results)."""

    @abstractmethod
    def cancel(self, job_ids: list[str]) -> None:
        """Cancel outright: queued jobs leave, running ones are killed after a grace."""

    @property
    def kill_wait_s(self) -> float:
        """How long the scheduler waits between SIGTERM and SIGKILL on a cancel."""
        return 30.0

    def log_line(self, text: str) -> None:
        """A notice for people (the sequential path prints job states with it)."""
        print(text)

    def execute(self, job: Job, on_line: LineSink) -> Outcome:
        """One run to its end: submit, follow, the final state (the sequential path)."""
        return follow_one(self, job, on_line)


@dataclass
class Tracked:
    """One submitted run being followed."""

    spec: RunSpec
    run_dir: Path
    job: Any
    """The backend's job record (``job_id``, ``output``)."""
    facts: Any
    sink: LineSink
    """Where each line of the job's output goes (progress events, worker.log)."""
    index: int = 1
    total: int = 1
    status: JobStatus | None = None
    shown: str = ""
    offset: int = 0
    partial: bytes = b""
    cancelled: str | None = None
    """Why the harness cancelled the job (None: it did not)."""
    outcome: Outcome | None = None

    @property
    def job_id(self) -> str:
        return str(self.job.job_id)

    def read_output(self, final: bool = False) -> None:
        """Feed the new lines of the job's output file to :attr:`facts` and :attr:`sink`."""
        path = self.run_dir / self.job.output
        try:
            with path.open("rb") as fh:
                fh.seek(self.offset)
                data = fh.read()
        except OSError:
            return  # not written yet (queued), or not visible yet on this host
        self.offset += len(data)
        data = self.partial + data
        *lines, self.partial = data.split(b"\n")
        if final and self.partial:
            lines.append(self.partial)
            self.partial = b""
        for raw in lines:
            line = raw.decode(errors="replace").rstrip("\r")
            self.facts.scan(line)
            self.sink(line)


def state_text(status: JobStatus) -> str:
    """A job's state for people: queued (why), running on NODE, completing..."""
    if status.state == "PENDING":
        return f"queued as job {status.job_id}" + (f" ({status.reason})" if status.reason else "")
    if status.state == "RUNNING":
        return f"running on {status.node or '?'} (job {status.job_id})"
    return f"{status.state.lower()} (job {status.job_id}" + (
        f" on {status.node})" if status.node else ")")


def follow(backend: BatchBackend, items: list[Tracked], *,
           on_state: Callable[[Tracked, str], None],
           on_done: Callable[[Tracked, Outcome], None],
           say: LineSink, interrupted: bool = False, poll_s: float = POLL_S) -> None:
    """Follow ``items`` until every job has left the queue and ``on_done`` has its outcome.

    ``interrupted``: the stop began already (Ctrl-C while submitting).
    """
    active = [t for t in items if t.outcome is None]
    phase: str | None = None
    deadline = 0.0
    last_error = 0.0

    def stop(force: bool) -> tuple[str, float]:
        ids = [t.job_id for t in active]
        if force:
            say(f"cancelling {len(ids)} job(s) outright...")
            with contextlib.suppress(UserError):
                backend.cancel(ids)
            return "kill", time.monotonic() + backend.kill_wait_s + KILL_SETTLE_S
        say(f"interrupted: cancelling the session's {len(ids)} job(s); running workers get "
            f"SIGTERM and write their partial results (up to {STOP_GRACE_S:.0f} s)...")
        queued = [t for t in active if t.status is None or t.status.state == "PENDING"]
        running = [t for t in active if t not in queued]
        for t in active:
            where = ("while queued (it never started)" if t in queued else
                     f"while running on {t.status.node if t.status else '?'}")
            t.cancelled = f"stopped by the user (Ctrl-C): job {t.job_id} cancelled {where}"
        with contextlib.suppress(UserError):
            backend.cancel([t.job_id for t in queued])
            backend.terminate_steps([t.job_id for t in running])
        return "term", time.monotonic() + STOP_GRACE_S

    def done(t: Tracked, status: JobStatus | None, settle_s: float | None = None) -> None:
        t.read_output(final=True)
        outcome = backend.final(t.job, t.run_dir, status, t.facts, cancelled=t.cancelled,
                                settle_s=settle_s)
        with deferred_interrupts():  # the outcome is written whole, and once
            t.outcome = outcome
            active.remove(t)
            on_done(t, outcome)

    if interrupted and active:
        phase, deadline = stop(force=False)
    while active:
        try:
            try:
                statuses = backend.queue(t.job_id for t in active)
            except UserError as exc:
                if time.monotonic() - last_error > 60:
                    say(f"warning: the queue does not answer ({exc.message}); retrying")
                    last_error = time.monotonic()
                time.sleep(poll_s)
                continue
            for t in list(active):
                t.read_output()
                status = statuses.get(t.job_id)
                if status is not None:
                    t.status = status
                    text = state_text(status)
                    if status.active and text != t.shown:
                        t.shown = text
                        on_state(t, text)
                if status is None or not status.active:
                    _settle(t, status)
                    done(t, status or t.status)
            if active and phase is not None and time.monotonic() > deadline:
                if phase == "term":
                    phase, deadline = stop(force=True)
                else:
                    say(f"{len(active)} job(s) still in the queue after the cancel: recorded "
                        "without their final state")
                    for t in list(active):
                        done(t, t.status, settle_s=0.0)
            if active:
                time.sleep(poll_s)
        except KeyboardInterrupt:
            phase, deadline = stop(force=phase is not None)


def _settle(t: Tracked, status: JobStatus | None) -> None:
    """A job that completed while its metrics.json is not visible yet (a shared
    filesystem's attribute cache): wait a little for it."""
    if status is None or status.state != "COMPLETED":
        return
    deadline = time.monotonic() + FILES_SETTLE_S
    while not (t.run_dir / "metrics.json").exists() and time.monotonic() < deadline:
        time.sleep(0.5)


def follow_one(backend: BatchBackend, job: Job, on_line: LineSink) -> Outcome:
    """Submit one run, follow it, return its outcome (the sequential path's execute).

    Ctrl-C cancels the job (its worker gets SIGTERM first) and still returns its outcome,
    marked interrupted, so the runner records what the scheduler said.
    """
    with deferred_interrupts():  # a job submitted is a job recorded
        record = backend.submit(job)
    name = job.run.run_id
    t = Tracked(spec=job.run, run_dir=job.run_dir, job=record, facts=backend.new_facts(),
                sink=on_line)
    backend.log_line(f"  {name}: submitted as job {t.job_id}")
    follow(backend, [t], on_state=lambda item, text: backend.log_line(f"  {name}: {text}"),
           on_done=lambda item, outcome: None, say=backend.log_line)
    assert t.outcome is not None
    return t.outcome
