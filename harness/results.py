"""Result directories: writing the host's records and reading everything back.

Layout (see results/README.md)::

    results/<session>/session.json          the session: plan, backend, host
    results/<session>/<run_id>/run.json     the spec (host -> worker)
    results/<session>/<run_id>/metrics.json worker results (versioned)
    results/<session>/<run_id>/history.json per-epoch curves
    results/<session>/<run_id>/emissions.csv CodeCarbon's own file, untouched
    results/<session>/<run_id>/outcome.json how the run ended (host)
    results/<session>/<run_id>/worker.log   everything the worker printed

Reading never fails as a whole because one run is damaged: each problem becomes a
warning naming the run, and the run is left out of the figures.
"""

from __future__ import annotations

import csv
import platform
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from harness import __version__
from harness.errors import UserError
from harness.fileio import read_json, write_json
from harness.plan import RunSpec, read_run_file

OUTCOME_FORMAT = "harness.outcome"
# Version history of outcome.json:
#   1: first version.
OUTCOME_VERSION = 1
SESSION_FORMAT = "harness.session"
SESSION_VERSION = 1
METRICS_FORMAT = "harness.metrics"
METRICS_VERSIONS = (1,)
HISTORY_FORMAT = "harness.history"
HISTORY_VERSIONS = (1,)

Status = Literal["ok", "failed", "timeout", "partial", "interrupted"]


def now_iso() -> str:
    """The current UTC time, ISO 8601."""
    return datetime.now(UTC).isoformat(timespec="seconds")


def create_session_dir(results_dir: Path, session: str) -> Path:
    """Create ``results_dir/session``; an existing session is never reused or overwritten."""
    path = results_dir / session
    try:
        path.mkdir(parents=True, exist_ok=False)
    except FileExistsError:
        raise UserError(f"session {session!r} already exists", source=path,
                        fix="choose another --session name; results are never overwritten") from None
    return path


def write_session(session_dir: Path, *, plan: list[RunSpec], scenario_files: list[str],
                  backend: dict[str, Any], argv: list[str]) -> None:
    """Write ``session.json``: what was planned, where and how."""
    write_json(session_dir / "session.json", SESSION_FORMAT, SESSION_VERSION, {
        "session": session_dir.name,
        "created_at": now_iso(),
        "harness_version": __version__,
        "host": {"hostname": platform.node(), "platform": platform.platform(),
                 "python": platform.python_version()},
        "backend": backend,
        "argv": argv,
        "scenario_files": scenario_files,
        "runs": [run.run_id for run in plan],
    })


def write_outcome(run_dir: Path, *, status: Status, exit_code: int | None, duration_s: float,
                  reason: str | None, log_tail: list[str], provenance: dict[str, Any]) -> None:
    """Write ``outcome.json`` (never over an existing one: a finished run stays finished)."""
    path = run_dir / "outcome.json"
    if path.exists():
        raise FileExistsError(f"{path} exists; a finished run is never overwritten")
    write_json(path, OUTCOME_FORMAT, OUTCOME_VERSION, {
        "status": status, "exit_code": exit_code, "duration_s": duration_s,
        "reason": reason, "log_tail": log_tail, "provenance": provenance,
        "finished_at": now_iso(),
    })


@dataclass
class RunResult:
    """Everything one run directory holds; ``None`` where a file is missing or unreadable."""

    run_dir: Path
    spec: RunSpec | None = None
    outcome: dict[str, Any] | None = None
    metrics: dict[str, Any] | None = None
    history: dict[str, Any] | None = None
    emissions: dict[str, str] | None = None
    """The total (last) row of CodeCarbon's emissions.csv."""
    warnings: list[str] = field(default_factory=list)

    @property
    def status(self) -> str:
        """ok / failed / timeout / partial / interrupted, or 'unknown' without outcome.json."""
        return str(self.outcome.get("status")) if self.outcome else "unknown"

    @property
    def usable(self) -> bool:
        """A complete run whose figures may enter averages."""
        return self.status == "ok" and self.metrics is not None and self.emissions is not None

    @property
    def session(self) -> str:
        return self.run_dir.parent.name

    @property
    def run_id(self) -> str:
        return self.spec.run_id if self.spec else self.run_dir.name


def read_emissions_row(path: Path) -> dict[str, str]:
    """The total row of an emissions.csv (its last row).

    Raises:
        UserError: missing, empty, truncated or not CodeCarbon's format.
    """
    try:
        with path.open(newline="") as fh:
            reader = csv.DictReader(fh)
            rows = list(reader)
            columns = reader.fieldnames or []
    except FileNotFoundError:
        raise UserError("emissions.csv is missing", source=path) from None
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise UserError(f"emissions.csv is unreadable ({exc})", source=path) from None
    required = {"energy_consumed", "emissions", "duration", "cpu_energy", "ram_energy",
                "codecarbon_version"}
    if not required <= set(columns):
        raise UserError("not a CodeCarbon emissions.csv (columns missing: "
                        f"{', '.join(sorted(required - set(columns)))})", source=path)
    if not rows:
        raise UserError("emissions.csv has no data row", source=path)
    row = rows[-1]
    try:
        float(row["energy_consumed"]), float(row["emissions"])
    except (TypeError, ValueError):
        raise UserError("emissions.csv's last row is truncated", source=path) from None
    return row


def load_run(run_dir: Path) -> RunResult:
    """Read one run directory; each damaged file becomes a warning, not an error."""
    result = RunResult(run_dir=run_dir)
    name = f"{run_dir.parent.name}/{run_dir.name}"
    try:
        result.spec, _ = read_run_file(run_dir)
    except UserError as exc:
        result.warnings.append(f"{name}: {exc.render()}")
        return result
    for attr, filename, fmt, versions in (
        ("outcome", "outcome.json", OUTCOME_FORMAT, (OUTCOME_VERSION,)),
        ("metrics", "metrics.json", METRICS_FORMAT, METRICS_VERSIONS),
        ("history", "history.json", HISTORY_FORMAT, HISTORY_VERSIONS),
    ):
        path = run_dir / filename
        if attr == "history" and not path.exists():
            continue  # a run that failed before its first epoch has no history
        try:
            setattr(result, attr, read_json(path, fmt, versions))
        except UserError as exc:
            result.warnings.append(f"{name}: {exc.render()}")
    try:
        result.emissions = read_emissions_row(run_dir / "emissions.csv")
    except UserError as exc:
        if result.status == "ok":
            result.warnings.append(f"{name}: {exc.render()}")
    if result.status == "ok" and (result.metrics is None or result.emissions is None):
        result.warnings.append(f"{name}: left out of the figures (files missing or damaged)")
    return result


def find_run_dirs(path: Path) -> list[Path]:
    """Run directories under ``path``: a run dir, a session dir or a results root."""
    if not path.exists():
        raise UserError("no such directory", source=path,
                        fix="pass a session directory such as results/<session>")
    if (path / "run.json").exists():
        return [path]
    found = sorted(p.parent for p in path.glob("*/run.json"))
    if not found:
        found = sorted(p.parent for p in path.glob("*/*/run.json"))
    if not found:
        raise UserError("no run directories (with run.json) found here", source=path,
                        fix="pass a session directory such as results/<session>")
    return found


def load_results(paths: list[Path]) -> list[RunResult]:
    """Load every run under ``paths`` (sessions from one or many machines)."""
    dirs: list[Path] = []
    for path in paths:
        dirs.extend(d for d in find_run_dirs(path) if d not in dirs)
    return [load_run(d) for d in dirs]
