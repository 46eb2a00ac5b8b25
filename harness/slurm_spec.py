"""The ``slurm:`` block of a hardware entry: where and how its runs are submitted to Slurm.

Pure validation (no Slurm command runs here): :mod:`harness.scenario` embeds
:class:`SlurmSpec` in ``HardwareSpec``, so bad input is refused when the scenario is
loaded, naming the key and the fix, and the block travels in run.json with the run.
:mod:`harness.backends.slurm_backend` turns it into ``sbatch`` options.

```yaml
hardware:
  - name: a100
    device: gpu
    gpus: 1
    memory: 32g
    slurm:
      partition: gpu
      constraint: a100          # node features (sbatch --constraint)
      gres: gpu:a100:1          # default: gpu:N from gpus / gpu_ids
      account: myproject
      qos: normal
      time_limit: "2:00:00"     # minutes, or Slurm's syntax; default: from timeout_s
      exclusive: true           # default: energy is measured per machine
      sbatch: {reservation: bench, cpu-freq: high}
```
"""

from __future__ import annotations

import math
import re
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

#: Separates the problem from its fix in a ValueError message (harness.scenario's convention).
_FIX = " || fix: "

#: Seconds before the job's time limit at which Slurm warns the batch script
#: (``--signal=B:USR1@LEAD``); the script then stops the worker with SIGTERM so it writes
#: its partial results: 90 s is enough for the worker to stop its tracker and write.
TIME_LIMIT_LEAD_S = 90
#: How much earlier than asked Slurm may send that warning: sbatch(1), --signal: "Due to
#: the resolution of event handling by Slurm, the signal may be sent up to 60 seconds
#: earlier than specified." The warning therefore comes 90 to 150 s before the limit.
SIGNAL_EARLY_S = 60
#: The shortest time limit: the earliest warning then still leaves the worker 30 s to
#: start and train (with 2 minutes a run was warned 4 s after its start, before epoch 1).
MIN_TIME_LIMIT_S = 180

#: sbatch options a scenario may add by their long name (``sbatch: {name: value}``).
SBATCH_ALLOWED = frozenset({
    "acctg-freq", "begin", "comment", "contiguous", "core-spec", "cores-per-socket",
    "cpu-freq", "deadline", "delay-boot", "dependency", "distribution", "exclude",
    "extra-node-info", "gpu-freq", "hint", "licenses", "mail-type", "mail-user",
    "mcs-label", "mem-bind", "network", "nice", "nodelist", "power", "prefer", "priority",
    "profile", "reboot", "reservation", "sockets-per-node", "spread-job", "switches",
    "thread-spec", "threads-per-core", "tmp", "use-min-nodes", "wckey",
})
#: sbatch options the harness sets itself (refused in ``sbatch:``, with the key to use).
SBATCH_OWN = {
    "job-name": None, "output": None, "error": None, "input": None, "chdir": None,
    "export": None, "export-file": None, "parsable": None, "wait": None, "wrap": None,
    "array": None, "nodes": None, "ntasks": None, "ntasks-per-node": None,
    "open-mode": None, "test-only": None, "signal": "time_limit",
    "cpus-per-task": "cpus (on the hardware entry)", "mem": "memory (on the hardware entry)",
    "mem-per-cpu": "memory (on the hardware entry)", "mem-per-gpu": "memory (on the hardware entry)",
    "gres": "gres", "gpus": "gpus (on the hardware entry) or gres",
    "gpus-per-node": "gpus (on the hardware entry) or gres",
    "gpus-per-task": "gpus (on the hardware entry) or gres", "cpus-per-gpu": "cpus",
    "partition": "partition", "constraint": "constraint", "account": "account", "qos": "qos",
    "time": "time_limit", "time-min": "time_limit", "exclusive": "exclusive",
    "oversubscribe": "exclusive", "requeue": None, "no-requeue": None,
    "kill-on-invalid-dep": None, "clusters": None, "uid": None, "gid": None,
}

_OPTION_NAME = re.compile(r"^[a-z][a-z0-9-]{0,39}$")
_WORD = re.compile(r"^[A-Za-z0-9_.+-]{1,100}$")
_CONSTRAINT = re.compile(r"^[A-Za-z0-9_.\-&|,\[\]()*!:]{1,200}$")
_GRES = re.compile(r"^[a-z][a-z0-9_]*(:[A-Za-z0-9_.-]+)?(:\d{1,4})?"
                   r"(,[a-z][a-z0-9_]*(:[A-Za-z0-9_.-]+)?(:\d{1,4})?)*$")
_TIME_FORMS = (
    (re.compile(r"^(\d+)$"), ("m",)),
    (re.compile(r"^(\d+):(\d{1,2})$"), ("m", "s")),
    (re.compile(r"^(\d+):(\d{1,2}):(\d{1,2})$"), ("h", "m", "s")),
    (re.compile(r"^(\d+)-(\d+)$"), ("d", "h")),
    (re.compile(r"^(\d+)-(\d+):(\d{1,2})$"), ("d", "h", "m")),
    (re.compile(r"^(\d+)-(\d+):(\d{1,2}):(\d{1,2})$"), ("d", "h", "m", "s")),
)
_UNIT_S = {"d": 86400, "h": 3600, "m": 60, "s": 1}


def _matching(value: str | None, pattern: re.Pattern[str], what: str, fix: str) -> str | None:
    """``value`` if absent or matched by ``pattern``, else a scenario error naming ``what``
    it should be and how to write it."""
    if value is not None and not pattern.match(value):
        raise ValueError(f"{value[:40]!r} is not {what}{_FIX}{fix}")
    return value


def parse_time_limit(value: int | str) -> int:
    """A Slurm time limit (minutes as a number, or ``MM``, ``MM:SS``, ``HH:MM:SS``,
    ``D-HH``, ``D-HH:MM``, ``D-HH:MM:SS``) in seconds.

    Raises:
        ValueError: not one of Slurm's forms (``UNLIMITED`` included: a run needs a limit).
    """
    if isinstance(value, bool):
        raise ValueError("a time limit is a number of minutes or a text like \"1:30:00\"")
    if isinstance(value, int):
        if value < 0:
            raise ValueError(f"{value} minutes is negative")
        return value * 60
    text = str(value).strip()
    for pattern, units in _TIME_FORMS:
        match = pattern.match(text)
        if match:
            return sum(int(part) * _UNIT_S[unit] for part, unit in zip(match.groups(), units,
                                                                        strict=True))
    raise ValueError(f"{text[:40]!r} is not a Slurm time limit")


def format_minutes(seconds: float) -> str:
    """Seconds as sbatch's ``--time`` in whole minutes, rounded up."""
    return str(max(1, math.ceil(seconds / 60)))


class SlurmSpec(BaseModel):
    """How the runs of one hardware entry are submitted (all optional)."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    partition: str | None = None
    """``sbatch --partition`` (default: the cluster's default partition)."""
    constraint: str | None = None
    """Node features, ``sbatch --constraint`` (e.g. ``large``, ``a100&ib``)."""
    gres: str | None = None
    """``sbatch --gres`` (e.g. ``gpu:a100:1``); default ``gpu:N`` for a GPU entry."""
    account: str | None = None
    qos: str | None = None
    time_limit: int | str | None = None
    """Minutes, or Slurm's syntax; default: the scenario's timeout_s plus the warning lead.
    The job gets the smaller of the two."""
    exclusive: bool = True
    """Hold the whole node (``--exclusive``): energy is measured per machine, and a shared
    node's figures include other jobs' work (such runs are flagged)."""
    sbatch: dict[str, str | int | bool] = Field(default_factory=dict, max_length=30)
    """Further sbatch options by long name (an allow-list; ``true`` is a bare flag)."""

    @field_validator("partition", "account", "qos")
    @classmethod
    def _word(cls, value: str | None) -> str | None:
        return _matching(value, _WORD, "a Slurm name",
                         "use letters, digits, dots, underscores, plus and hyphens")

    @field_validator("constraint")
    @classmethod
    def _constraint(cls, value: str | None) -> str | None:
        return _matching(value, _CONSTRAINT, "a feature expression",
                         "write node features like \"large\", \"a100&ib\" or "
                         "\"[rack1|rack2]\" (no spaces)")

    @field_validator("gres")
    @classmethod
    def _gres(cls, value: str | None) -> str | None:
        return _matching(value, _GRES, "a GRES request",
                         "write it like \"gpu:1\" or \"gpu:a100:1\"")

    @field_validator("time_limit")
    @classmethod
    def _time_limit(cls, value: int | str | None) -> int | str | None:
        if value is None:
            return value
        try:
            seconds = parse_time_limit(value)
        except ValueError as exc:
            raise ValueError(f"{exc}{_FIX}write minutes (90) or Slurm's syntax: \"MM:SS\", "
                             "\"HH:MM:SS\", \"D-HH\", \"D-HH:MM\" or \"D-HH:MM:SS\"") from None
        if seconds < MIN_TIME_LIMIT_S:
            raise ValueError(
                f"{value!r} is {seconds} s; Slurm runs need at least {MIN_TIME_LIMIT_S // 60} "
                f"minutes{_FIX}the worker is warned {TIME_LIMIT_LEAD_S} to "
                f"{TIME_LIMIT_LEAD_S + SIGNAL_EARLY_S} s before the limit (sbatch --signal): "
                f"give {MIN_TIME_LIMIT_S // 60} minutes or more")
        return value

    @field_validator("sbatch")
    @classmethod
    def _sbatch(cls, options: dict[str, Any]) -> dict[str, Any]:
        for name, value in options.items():
            if name in SBATCH_OWN:
                instead = SBATCH_OWN[name]
                raise ValueError(f"--{name} is set by the harness{_FIX}"
                                 + (f"use the slurm block's {instead}" if instead else
                                    "remove it: the harness needs its own value"))
            if not _OPTION_NAME.match(name) or name not in SBATCH_ALLOWED:
                raise ValueError(f"{name[:40]!r} is not an sbatch option the harness passes on"
                                 f"{_FIX}use one of: {', '.join(sorted(SBATCH_ALLOWED))}")
            text = str(value)
            if isinstance(value, str) and (not text or len(text) > 200
                                           or any(c in text for c in "\n\r\0")):
                raise ValueError(f"the value of {name!r} must be one line of 1 to 200 "
                                 f"characters{_FIX}shorten it")
        return options

    @property
    def time_limit_s(self) -> int | None:
        """The declared time limit in seconds (None: derived from timeout_s)."""
        return None if self.time_limit is None else parse_time_limit(self.time_limit)

    def gres_gpus(self) -> int | None:
        """GPUs the ``gres`` asks for (None when it names no gpu)."""
        if self.gres is None:
            return None
        total = None
        for part in self.gres.split(","):
            fields = part.split(":")
            if fields[0] != "gpu":
                continue
            count = int(fields[-1]) if len(fields) > 1 and fields[-1].isdigit() else 1
            total = (total or 0) + count
        return total

    def describe(self) -> str:
        """Short text for the plan."""
        parts = [f"{key}={getattr(self, key)}" for key in
                 ("partition", "constraint", "gres", "account", "qos", "time_limit")
                 if getattr(self, key) is not None]
        parts.append("exclusive" if self.exclusive else "shared")
        parts += [f"{k}={v}" for k, v in self.sbatch.items()]
        return "slurm[" + " ".join(parts) + "]"
