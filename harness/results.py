"""Result directories: the host's records, and the one checked reader of everything.

Layout (results/README.md)::

    results/<session>/session.json           the session: plan, backend, host, idle power
    results/<session>/<run_id>/run.json      the spec (host -> worker)
    results/<session>/<run_id>/metrics.json  the worker's results
    results/<session>/<run_id>/history.json  per-epoch curves and energy
    results/<session>/<run_id>/emissions.csv CodeCarbon's own file, untouched
    results/<session>/<run_id>/outcome.json  how the run ended (host)
    results/<session>/<run_id>/worker.log    everything the worker printed

Reading trusts nothing it has not checked. Each file is read through its schema model
(:mod:`harness.schema`), then the files are checked against each other wherever they
give the same figure twice: CodeCarbon's total against the sum of its components and
against its energy priced in the home region, metrics.json against the CSV row, the
history's length against the epochs run, the scopes' nesting. Any violation makes the
run *damaged*, with the file, the field and the reason; a damaged run is listed in
every report and export and never averaged. Every run directory of a session, and every
run its plan names, is returned whatever its state: reading never raises on the
contents of a results directory.
"""

from __future__ import annotations

import csv
import io
import itertools
import math
import os
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path

from harness.errors import UserError
from harness.fileio import FileProblem, read_bounded, read_model, write_model
from harness.plan import read_run_file
from harness.schema import (
    EMISSIONS_CSV,
    SESSION_FILE,
    UPGRADE_HINT,
    EmissionsRow,
    History,
    IdleBaseline,
    Metrics,
    Outcome,
    RunFile,
    RunSpec,
    RunStatus,
    Session,
)

#: Largest emissions.csv read back (one row per tracker stop: a few KB in practice).
MAX_CSV_BYTES = 4 * 2**20
#: Relative tolerance when two files give the same figure (both are float reprs).
SAME_FIGURE = 1e-9
#: Relative tolerance of the scopes' nesting and of sums over windows.
NESTING = 1e-6
#: Directories inside a session that are not runs.
_NOT_RUNS = ("report",)


def now_iso() -> str:
    """The current UTC time, ISO 8601."""
    return datetime.now(UTC).isoformat(timespec="seconds")


# --- writing (host) ----------------------------------------------------------------------


def write_session(session_dir: Path, session: Session) -> None:
    """Write ``session.json`` (rewritten when the idle baseline is added)."""
    write_model(session_dir / SESSION_FILE, session)


def write_outcome(run_dir: Path, outcome: Outcome) -> None:
    """Write ``outcome.json`` (never over an existing one: a finished run stays finished)."""
    path = run_dir / "outcome.json"
    if path.exists():
        raise FileExistsError(f"{path} exists; a finished run is never overwritten")
    write_model(path, outcome)


def mark_orphaned(run_dir: Path | None, exit_code: int | None, tail: list[str], reason: str,
                  *, backend: str) -> bool:
    """Write outcome.json (status orphaned) for a run whose harness died; False if the
    run directory is not here or already has an outcome."""
    if run_dir is None or not (run_dir / "run.json").exists() or (run_dir / "outcome.json").exists():
        return False
    write_outcome(run_dir, Outcome(
        run_id=run_dir.name, status=RunStatus.ORPHANED, exit_code=exit_code, duration_s=0.0,
        reason=reason, log_tail=tail[-20:], backend=backend, provenance={"backend": backend},
        finished_at=now_iso()))
    return True


# --- reading: CodeCarbon's CSV -------------------------------------------------------------


def read_emissions_row(path: Path) -> EmissionsRow:
    """The total (last) row of an emissions.csv, typed and checked.

    Raises:
        FileProblem: missing, empty, truncated, another tool's CSV, a value that is not
            a finite number >= 0, or components that do not add up to the total.
    """
    text = read_bounded(path, MAX_CSV_BYTES)
    try:
        rows = list(csv.reader(io.StringIO(text, newline="")))
    except csv.Error as exc:
        raise FileProblem(path, f"is not a readable CSV ({exc})") from None
    rows = [row for row in rows if row]
    if not rows:
        raise FileProblem(path, "is empty")
    header, *data = rows
    wanted = set(EmissionsRow.model_fields)
    missing = sorted(wanted - set(header))
    if missing:
        raise FileProblem(path, "is not CodeCarbon's emissions file (columns missing: "
                                f"{', '.join(missing[:6])}{'...' if len(missing) > 6 else ''})")
    if not data:
        raise FileProblem(path, "has no data row")
    last = data[-1]
    if len(last) != len(header):
        raise FileProblem(path, f"its last row has {len(last)} fields, the header {len(header)}: "
                                "the file is truncated or damaged")
    values = dict(zip(header, last, strict=True))
    numeric = EmissionsRow.numeric_columns()
    record: dict[str, object] = {}
    for name in wanted:
        raw = values[name]
        if name in numeric:
            try:
                record[name] = float(raw)
            except ValueError:
                raise FileProblem(path, f"{raw[:30]!r} is not a number", name) from None
        else:
            record[name] = raw
    try:
        return EmissionsRow.model_validate(record)
    except Exception as exc:  # pydantic's ValidationError: name the first field
        errors = getattr(exc, "errors", lambda **_: [])(include_url=False)
        if errors:
            where = ".".join(str(p) for p in errors[0]["loc"]) or None
            raise FileProblem(path, errors[0]["msg"].removeprefix("Value error, "),
                              where) from None
        raise FileProblem(path, str(exc)) from None


# --- reading: one run ---------------------------------------------------------------------


@dataclass(frozen=True)
class Damage:
    """Why a run's files cannot be believed: the file, the field and the reason."""

    file: str
    field: str | None
    reason: str

    def render(self) -> str:
        where = f"{self.file}: {self.field}" if self.field else self.file
        return f"{where}: {self.reason}"


@dataclass(frozen=True)
class LoadedRun:
    """Everything one run directory holds, checked; ``None`` where a file is absent."""

    run_dir: Path
    session: str
    """The session directory's name."""
    run_id: str
    run_file: RunFile | None = None
    outcome: Outcome | None = None
    metrics: Metrics | None = None
    history: History | None = None
    emissions: EmissionsRow | None = None
    damage: tuple[Damage, ...] = ()
    notes: tuple[str, ...] = ()
    """Facts worth a warning that do not make the run damaged."""
    planned_only: bool = False
    """Named in session.json's plan, but no directory: the session ended first."""
    idle: IdleBaseline | None = None
    """The idle baseline of the run's session (for net figures), if it had one."""

    @property
    def spec(self) -> RunSpec | None:
        return self.run_file.spec if self.run_file else None

    @property
    def status(self) -> RunStatus:
        """The run's verdict: damaged, not started, unknown (no outcome.json), or the
        status the runner recorded."""
        if self.damage:
            return RunStatus.DAMAGED
        if self.planned_only:
            return RunStatus.NOT_STARTED
        return self.outcome.status if self.outcome else RunStatus.UNKNOWN

    @property
    def usable(self) -> bool:
        """A complete, undamaged run whose figures may enter averages."""
        return (self.status.usable and self.metrics is not None and self.emissions is not None
                and self.metrics.scopes is not None)

    @property
    def reason(self) -> str:
        """Why the run is not usable, in one line (empty for a usable run)."""
        if self.damage:
            # Files damaged the same way (an old format) are named once, together.
            by_problem: dict[tuple[str | None, str], list[str]] = {}
            for d in self.damage:
                by_problem.setdefault((d.field, d.reason), []).append(d.file)
            return "; ".join(Damage(", ".join(files), field, reason).render()
                             for (field, reason), files in by_problem.items())
        if self.planned_only:
            return "planned but never started (the session ended first)"
        if self.outcome is None:
            return ("no outcome.json: the harness stopped during this run (killed, or the "
                    "machine went down)")
        return self.outcome.reason or ""

    @property
    def name(self) -> str:
        return f"{self.session}/{self.run_dir.name}"


def _read(path: Path, model: type, damage: list[Damage]) -> object | None:
    """Read one optional JSON file; a problem is recorded, None returned."""
    if not path.exists() and not path.is_symlink():
        return None
    try:
        return read_model(path, model, upgrade_hint=UPGRADE_HINT)
    except FileProblem as exc:
        damage.append(Damage(path.name, exc.field, exc.reason))
        return None


def _close(a: float, b: float, rel: float = SAME_FIGURE) -> bool:
    return math.isclose(a, b, rel_tol=rel, abs_tol=1e-15)


def _check_consistency(run_id: str, run_file: RunFile | None, outcome: Outcome | None,
                       metrics: Metrics | None, history: History | None,
                       row: EmissionsRow | None, damage: list[Damage], notes: list[str]) -> None:
    """Cross-check the files of one run; every disagreement becomes a Damage."""
    spec = run_file.spec if run_file else None
    for name, value in (("run.json", spec.run_id if spec else None),
                        ("outcome.json", outcome.run_id if outcome else None),
                        ("metrics.json", metrics.run_id if metrics else None),
                        ("history.json", history.run_id if history else None)):
        if value is not None and value != run_id:
            damage.append(Damage(name, "run_id", f"{value!r} is not this directory's run "
                                                 f"({run_id!r}): a file from another run"))
    if outcome is not None and outcome.status is RunStatus.OK:
        for name, present in (("metrics.json", metrics), ("emissions.csv", row)):
            if present is None and not any(d.file == name for d in damage):
                damage.append(Damage(name, None, "missing, but the run is recorded ok"))
        if metrics is not None and metrics.status is not RunStatus.OK:
            damage.append(Damage("metrics.json", "status", f"{metrics.status.value!r} while "
                                 "outcome.json says ok"))
    if metrics is None:
        return
    runs = metrics.training.epochs_run
    if runs > metrics.training.epochs_planned:
        damage.append(Damage("metrics.json", "training.epochs_run",
                             f"{runs} epochs run of {metrics.training.epochs_planned} planned"))
    if (runs and history is None and metrics.status is RunStatus.OK
            and not any(d.file == "history.json" for d in damage)):
        damage.append(Damage("history.json", None, f"missing, but {runs} epochs ran"))
    if history is not None and len(history.epochs) != runs:
        damage.append(Damage("history.json", "epochs", f"{len(history.epochs)} epochs, "
                                                        f"metrics.json says {runs} ran"))
    scopes = metrics.scopes
    if scopes is not None:
        _check_scopes(metrics, history, damage)
    if row is None or scopes is None or scopes.run.energy is None:
        return
    run_energy = scopes.run.energy
    for field_name, csv_name in (("energy_kwh", "energy_consumed"), ("cpu_kwh", "cpu_energy"),
                                 ("gpu_kwh", "gpu_energy"), ("ram_kwh", "ram_energy"),
                                 ("co2_kg", "emissions")):
        ours, theirs = getattr(run_energy, field_name), getattr(row, csv_name)
        if not _close(ours, theirs):
            damage.append(Damage("metrics.json", f"scopes.run.energy.{field_name}",
                                 f"{ours!r} but emissions.csv's {csv_name} is {theirs!r}"))
    if spec is not None:
        _check_price(spec, metrics, row, damage, notes)


def _check_scopes(metrics: Metrics, history: History | None, damage: list[Damage]) -> None:
    """Training within run within process, on time and energy; epochs add up."""
    scopes = metrics.scopes
    assert scopes is not None
    order = (scopes.training, scopes.run, scopes.process)
    for inner, outer in itertools.pairwise(order):
        if inner.duration_s > outer.duration_s * (1 + NESTING) + 1e-6:
            damage.append(Damage("metrics.json", f"scopes.{inner.name}.duration_s",
                                 f"{inner.duration_s!r} s is longer than the enclosing "
                                 f"{outer.name} scope ({outer.duration_s!r} s)"))
        if inner.energy and outer.energy and (
                inner.energy.energy_kwh > outer.energy.energy_kwh * (1 + NESTING) + 1e-15):
            damage.append(Damage("metrics.json", f"scopes.{inner.name}.energy.energy_kwh",
                                 f"{inner.energy.energy_kwh!r} kWh is more than the enclosing "
                                 f"{outer.name} scope ({outer.energy.energy_kwh!r} kWh)"))
    if history is None or scopes.training.energy is None:
        return
    epoch_kwh = [e.energy.energy_kwh for e in history.epochs if e.energy is not None]
    fit_end = sum(w.energy.energy_kwh for w in metrics.phases
                  if w.name == "fit-end" and w.energy is not None)
    partial = sum(w.energy.energy_kwh for w in metrics.phases if w.energy is not None
                  and w.name.startswith("epoch-")
                  and int(w.name.removeprefix("epoch-") or 0) > len(history.epochs))
    if len(epoch_kwh) == len(history.epochs) and not math.isclose(
            sum(epoch_kwh) + fit_end + partial, scopes.training.energy.energy_kwh,
            rel_tol=NESTING, abs_tol=1e-15):
        damage.append(Damage("history.json", "epochs[].energy",
                             f"the epochs' energies add up to {sum(epoch_kwh)!r} kWh (+ "
                             f"{fit_end!r} fit-end), not the training scope's "
                             f"{scopes.training.energy.energy_kwh!r} kWh"))


def _check_price(spec: RunSpec, metrics: Metrics, row: EmissionsRow, damage: list[Damage],
                 notes: list[str]) -> None:
    """The CSV's location is the run's home region, and its CO2 is its energy priced there."""
    from harness.regions import parse_region, price

    try:
        home = parse_region(spec.home_region)
    except ValueError as exc:
        notes.append(f"home region {spec.home_region!r} is unknown to this CodeCarbon ({exc}); "
                     "its CO2 is not re-checked")
        return
    if home.is_cloud:
        located = (row.cloud_provider, row.cloud_region) == (home.cloud_provider, home.cloud_region)
    else:
        located = (row.country_iso_code, row.region or None) == (home.country_iso_code, home.region)
    if not located:
        where = (f"{row.cloud_provider}/{row.cloud_region}" if row.cloud_provider
                 else f"{row.country_iso_code}/{row.region}")
        damage.append(Damage("emissions.csv", "country_iso_code",
                             f"the tracker priced in {where!r}, the run's home region is "
                             f"{spec.home_region!r}"))
        return
    repriced = price(row.energy_consumed, home)
    if _close(repriced, row.emissions, 1e-6):
        return
    check = metrics.tracker_check
    if check is not None and not check.ok and _close(check.csv_kg, row.emissions):
        notes.append(f"CodeCarbon left {100 * check.relative_difference:.2g}% of the energy "
                     "unpriced in emissions.csv (a race in its stop()); the report prices the "
                     "energy itself")
    else:
        damage.append(Damage("emissions.csv", "emissions",
                             f"{row.emissions!r} kg is not its energy ({row.energy_consumed!r} "
                             f"kWh) priced in {spec.home_region} ({repriced!r} kg)"))


def load_run(run_dir: Path, session: str | None = None) -> LoadedRun:
    """Read and check one run directory; never raises on its contents."""
    session = session or run_dir.parent.name
    damage: list[Damage] = []
    notes: list[str] = []
    run_file: RunFile | None = None
    try:
        run_file = read_run_file(run_dir)
    except FileProblem as exc:
        damage.append(Damage("run.json", exc.field, exc.reason))
    outcome = _read(run_dir / "outcome.json", Outcome, damage)
    metrics = _read(run_dir / "metrics.json", Metrics, damage)
    history = _read(run_dir / "history.json", History, damage)
    row: EmissionsRow | None = None
    csv_path = run_dir / EMISSIONS_CSV
    if csv_path.exists() or csv_path.is_symlink():
        try:
            row = read_emissions_row(csv_path)
        except FileProblem as exc:
            damage.append(Damage(EMISSIONS_CSV, exc.field, exc.reason))
    _check_consistency(run_dir.name, run_file, outcome, metrics,  # type: ignore[arg-type]
                       history, row, damage, notes)  # type: ignore[arg-type]
    return LoadedRun(run_dir=run_dir, session=session, run_id=run_dir.name, run_file=run_file,
                     outcome=outcome, metrics=metrics, history=history,  # type: ignore[arg-type]
                     emissions=row, damage=tuple(damage), notes=tuple(notes))


# --- reading: sessions --------------------------------------------------------------------


@dataclass(frozen=True)
class LoadedSession:
    """One session directory: its record (if readable) and every run in it."""

    path: Path
    session: Session | None
    problem: str | None
    """Why session.json could not be read (then the runs are still listed)."""
    runs: tuple[LoadedRun, ...] = field(default_factory=tuple)

    @property
    def name(self) -> str:
        return self.path.name


def _is_dir(path: Path) -> bool:
    try:
        return path.is_dir() and not path.is_symlink()
    except OSError:
        return False


def _run_dirs(session_dir: Path) -> list[Path]:
    """Every directory of a session that should be a run (report outputs excluded)."""
    try:
        children = sorted(os.scandir(session_dir), key=lambda entry: entry.name)
    except OSError:
        return []
    return [Path(entry.path) for entry in children
            if not entry.name.startswith(".") and not entry.name.startswith(_NOT_RUNS)
            and _is_dir(Path(entry.path))]


def load_session(session_dir: Path) -> LoadedSession:
    """Read a session directory: session.json and every run, planned ones included."""
    session: Session | None = None
    problem: str | None = None
    try:
        session = read_model(session_dir / SESSION_FILE, Session, upgrade_hint=UPGRADE_HINT)
    except FileProblem as exc:
        problem = exc.render()
    runs = [load_run(d, session_dir.name) for d in _run_dirs(session_dir)]
    if session is not None and session.idle is not None:
        runs = [replace(run, idle=session.idle) for run in runs]
    if session is not None:
        present = {r.run_id for r in runs}
        for run_id in session.runs:
            if run_id not in present:
                runs.append(LoadedRun(run_dir=session_dir / run_id, session=session_dir.name,
                                      run_id=run_id, planned_only=True))
        order = {run_id: i for i, run_id in enumerate(session.runs)}
        runs.sort(key=lambda r: (order.get(r.run_id, len(order)), r.run_id))
    return LoadedSession(path=session_dir, session=session, problem=problem, runs=tuple(runs))


def _looks_like_session(path: Path) -> bool:
    if (path / SESSION_FILE).exists():
        return True
    return any((d / "run.json").exists() for d in _run_dirs(path))


def find_sessions(path: Path) -> list[Path]:
    """Session directories under ``path``: a session itself or a results root.

    Raises:
        UserError: ``path`` is not a directory, or holds no session.
    """
    fix = "pass a session directory such as results/<session>, or a results directory"
    if not _is_dir(path):
        what = "does not exist" if not path.exists() else "is not a directory"
        raise UserError(f"{what}", source=path, fix=fix)
    if (path / "run.json").exists():
        raise UserError("is a run directory, not a session", source=path,
                        fix=f"pass its session directory: {path.parent}")
    if _looks_like_session(path):
        return [path]
    found = [d for d in _run_dirs(path) if _looks_like_session(d)]
    if not found:
        raise UserError("holds no session (no session.json and no run directories)",
                        source=path, fix=fix)
    return found


def load(paths: list[Path]) -> tuple[list[LoadedSession], list[str]]:
    """Load every session under ``paths``; a path without sessions becomes a warning.

    Raises:
        UserError: no path holds a single session.
    """
    sessions: list[Path] = []
    warnings: list[str] = []
    problems: list[UserError] = []
    for path in paths:
        try:
            found = find_sessions(path)
        except UserError as exc:
            problems.append(exc)
            warnings.append(exc.render())
            continue
        for directory in found:
            if directory.resolve() not in {s.resolve() for s in sessions}:
                sessions.append(directory)
    if not sessions:
        first = problems[0] if problems else UserError("no directory given")
        raise UserError(first.message, source=first.source, fix=first.fix,
                        also=problems[1:])
    loaded = [load_session(d) for d in sessions]
    for item in loaded:
        if item.problem:
            warnings.append(f"session {item.name}: {item.problem}; its runs are read without "
                            "their session record")
    return loaded, warnings
