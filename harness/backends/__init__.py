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

from harness.plan import RunSpec

#: Variables passed to a worker as they are. Everything else is dropped so two hosts
#: with different shells run the same worker. CODECARBON_* is left out on purpose:
#: it silently overrides the tracker's region and settings.
ENV_ALLOWED = ("PATH", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "TMPDIR", "USER")
ENV_ALLOWED_PREFIXES = ("HARNESS_", "TF_", "CUDA_", "NVIDIA_", "OMP_", "OPENBLAS_", "MKL_",
                        "XLA_", "KMP_")

#: Seconds a worker gets between SIGTERM and SIGKILL to write its partial results.
STOP_GRACE_S = 30.0


def worker_environment(source: dict[str, str] | None = None) -> dict[str, str]:
    """The allow-listed subset of ``source`` (default: this process's environment)."""
    source = dict(os.environ if source is None else source)
    env = {k: v for k, v in source.items()
           if k in ENV_ALLOWED or k.startswith(ENV_ALLOWED_PREFIXES)}
    env["PYTHONUNBUFFERED"] = "1"
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")
    return env


@dataclass(frozen=True)
class Job:
    """One prepared run: ``run_dir`` holds run.json; ``data_dir`` the datasets."""

    run: RunSpec
    run_dir: Path
    data_dir: Path
    session: str


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
    provenance: dict[str, Any] = field(default_factory=dict)
    """Backend name, limits actually applied, image and container ids..."""


LineSink = Callable[[str], None]


class Backend(ABC):
    """Runs workers somewhere."""

    name: str

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
