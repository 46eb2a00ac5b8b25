"""Backends: where a worker process runs (a local process, a Docker container...).

A backend takes a :class:`Job` (a prepared run directory) and returns an
:class:`Outcome` (how the worker process ended). It knows nothing about metrics:
the runner reads the worker's files to decide whether the run succeeded.
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.schema import RunSpec

#: Variables passed to a worker as they are: an explicit list of names, no prefixes, so
#: a variable that merely shares a prefix (TF_VAR_password is Terraform's, not
#: TensorFlow's) never reaches a worker or a container. Everything else is dropped so
#: two hosts with different shells run the same worker. CODECARBON_* is left out on
#: purpose: it silently overrides the tracker's region and settings.
ENV_ALLOWED = frozenset({
    # the process
    "PATH", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "TMPDIR", "USER",
    # the harness
    "HARNESS_DATA_DIR",
    # TensorFlow and XLA
    "TF_CPP_MIN_LOG_LEVEL", "TF_CPP_MAX_VLOG_LEVEL", "TF_ENABLE_ONEDNN_OPTS",
    "TF_NUM_INTEROP_THREADS", "TF_NUM_INTRAOP_THREADS", "TF_FORCE_GPU_ALLOW_GROWTH",
    "TF_GPU_ALLOCATOR", "TF_XLA_FLAGS", "XLA_FLAGS",
    # oneDNN (instruction-set cap, verbose) and thread libraries
    "ONEDNN_MAX_CPU_ISA", "ONEDNN_VERBOSE", "DNNL_MAX_CPU_ISA", "DNNL_VERBOSE",
    "OMP_NUM_THREADS", "OMP_PROC_BIND", "OMP_PLACES", "KMP_AFFINITY", "KMP_BLOCKTIME",
    "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MALLOC_ARENA_MAX",
    # GPUs
    "CUDA_VISIBLE_DEVICES", "CUDA_DEVICE_ORDER", "NVIDIA_VISIBLE_DEVICES",
    "NVIDIA_DRIVER_CAPABILITIES",
})

#: Seconds a worker gets between SIGTERM and SIGKILL to write its partial results.
STOP_GRACE_S = 30.0


def worker_environment(source: dict[str, str] | None = None) -> dict[str, str]:
    """The allow-listed subset of ``source`` (default: this process's environment)."""
    source = dict(os.environ if source is None else source)
    env = {k: v for k, v in source.items() if k in ENV_ALLOWED}
    env["PYTHONUNBUFFERED"] = "1"
    # The worker stops when its stdin closes: the host holds it open for the run's life.
    env["HARNESS_LIFELINE"] = "stdin"
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")
    return env


@dataclass(frozen=True)
class Job:
    """One prepared run: ``run_dir`` holds run.json; ``data_dir`` the datasets."""

    run: RunSpec
    run_dir: Path
    data_dir: Path
    session: str
    """The session directory's name (shown to people)."""
    session_id: str
    """The session's unique id (labels containers: names repeat across results dirs)."""


@dataclass
class Outcome:
    """How a worker process ended."""

    exit_code: int | None
    """The process's exit status; negative: killed by that signal; None: unknown."""
    duration_s: float
    """Wall-clock time from start to end of the worker process, seconds."""
    timed_out: bool = False
    oom_killed: bool = False
    interrupted: bool = False
    """Stopped because the user pressed Ctrl-C."""
    reason: str | None = None
    """Why it ended, when the backend knows better than the exit code (Slurm's state)."""
    failed: bool = False
    """The backend knows the run failed whatever the worker wrote (Slurm's NODE_FAIL,
    PREEMPTED...); ``reason`` says why."""
    slurm: Any = None
    """A harness.schema.SlurmRecord for runs that were Slurm jobs."""
    provenance: dict[str, Any] = field(default_factory=dict)
    """Backend name, limits actually applied, image and container ids..."""


LineSink = Callable[[str], None]


class Backend(ABC):
    """Runs workers somewhere."""

    name: str
    #: A batch backend (Slurm) submits every run at once and follows them (backends.batch);
    #: the others run one worker after another (Runner._run_all).
    batch: bool = False
    #: Whether the workers run on this host: False (Slurm: on the cluster's nodes) turns off
    #: the host-side machine meter and the idle baseline, which would measure the wrong
    #: machine.
    measures_host: bool = True

    @abstractmethod
    def preflight(self, runs: list[RunSpec]) -> list[str]:
        """Check that every run can start here; raise UserError if not.

        Returns:
            Warnings to show the user (e.g. limits this backend cannot enforce).
        """

    @abstractmethod
    def execute(self, job: Job, on_line: LineSink) -> Outcome:
        """Run one worker to its end (or timeout), feeding each output line to ``on_line``."""

    @abstractmethod
    def stop_all(self) -> None:
        """Stop every worker this backend started (Ctrl-C); must be safe to call twice."""

    def describe(self) -> dict[str, Any]:
        """Backend facts recorded once per session (versions, host)."""
        return {"backend": self.name}

    def reap(self, log: LineSink) -> list[Any]:
        """Stop what an earlier harness of this backend left running after it died, and
        mark those runs (the docker backend: containers whose owner is gone)."""
        return []
