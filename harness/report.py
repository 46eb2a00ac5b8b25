"""Reports: the comparison, rendered from result directories alone (no Docker, no TensorFlow).

A pure function of the files: the same directories always give the same tables.

- :func:`load` reads run directories from one or many sessions (one or many machines);
  a damaged file or directory becomes a warning naming the run, never an abort.
- :func:`build_report` groups runs that differ only in their repeat index (matched by
  scenario and hardware names across sessions), refuses groups whose runs are not
  comparable, summarises each figure over repeats (:mod:`harness.stats`), re-prices the
  measured energy in every declared region (:func:`harness.regions.price`) and pairs
  each hardware with a baseline running the same workload.
- :func:`render_text` / :func:`render_markdown` turn the :class:`Report` into tables
  (tabulate), :func:`write_report` writes report.md, summary.csv, summary.json and the
  PNG plots (:mod:`harness.plots`).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from tabulate import tabulate

from harness.errors import UserError
from harness.fileio import read_json, write_atomic
from harness.regions import CarbonIntensity, carbon_intensity, parse_region, price
from harness.results import (
    SESSION_FORMAT,
    SESSION_VERSION,
    RunResult,
    find_run_dirs,
    load_run,
)
from harness.stats import CV_LIMIT, Stat, fmt_num, fmt_stat, ratio, summarize

REPORT_FORMAT = "harness.report"
# Version history of summary.json:
#   1: first version.
REPORT_VERSION = 1
PHASES = ("setup", "training", "evaluation")
ESTIMATE_MARK = "*"
NOISY_MARK = "!"

#: Headline figures of one run: key (unit in the name) -> table header. Every figure is
#: summarised over the repeats of a group; "Wh per acc. pt" is the energy of the run in Wh
#: divided by its test accuracy in percentage points.
FIGURES: dict[str, str] = {
    "training_s": "training (s)",
    "test_accuracy_pct": "test acc. (%)",
    "energy_kwh": "energy (kWh)",
    "co2_home_kg": "CO2 home (kg)",
    "images_per_s": "images/s",
    "wh_per_accuracy_point": "Wh per acc. pt",
}
#: Figures that come from CodeCarbon's energy and so inherit its estimates.
ENERGY_FIGURES = frozenset({"energy_kwh", "co2_home_kg", "wh_per_accuracy_point"})
#: The settings (prefixes of :func:`_settings` keys) that make a workload: a hardware is
#: compared only with a baseline that shares all of them.
WORKLOAD_FIELDS = ("training", "dataset", "tracker.pue")
_COMPONENT_NAMES = {"cpu": "CPU", "gpu": "GPU", "ram": "RAM"}


# --- the model -------------------------------------------------------------------------


@dataclass(frozen=True)
class RegionInfo:
    """A region the energy is priced in, with the carbon intensity CodeCarbon applies."""

    label: str
    intensity: CarbonIntensity


@dataclass
class Group:
    """The runs of one hardware entry of one scenario, across repeats and sessions."""

    scenario: str
    hardware: str
    device: str
    runs: list[RunResult]
    """Every run of the group, whatever its status."""
    usable: list[RunResult] = field(default_factory=list)
    """Complete runs that enter the figures."""
    refused: str | None = None
    """Why the group's runs are not comparable (then nothing is averaged)."""
    refused_runs: list[RunResult] = field(default_factory=list)
    """Complete runs kept out because the group mixes settings or versions."""
    label: str = ""
    """Short name in tables and plots: the hardware, prefixed by the scenario if needed."""
    home_region: str | None = None
    dataset: str = "?"
    synthetic: bool = False
    backend: str = "?"
    power: dict[str, str] = field(default_factory=dict)
    """Component (cpu, gpu, ram) -> "measured (nvml)" / "estimated (cpu_load)" / "none"."""
    estimated: dict[str, str] = field(default_factory=dict)
    """Component -> CodeCarbon's description of the estimate, for estimated components."""
    figures: dict[str, Stat | None] = field(default_factory=dict)
    co2_kg: dict[str, Stat | None] = field(default_factory=dict)
    """Region label -> CO2 of the measured energy priced there (kg CO2eq)."""
    phases: dict[str, dict[str, Stat | None]] = field(default_factory=dict)
    """Phase -> {"duration_s": ..., "energy_kwh": ...}."""
    workload: str = ""
    """Canonical text of the workload settings; a baseline must share it."""

    @property
    def name(self) -> str:
        return f"{self.scenario}/{self.hardware}"

    @property
    def excluded(self) -> list[RunResult]:
        """Runs counted but kept out of the figures (failed, partial, damaged...)."""
        return [run for run in self.runs if not _holds(self.usable, run)]


@dataclass(frozen=True)
class Comparison:
    """One hardware against the baseline running the same workload (ratios of means)."""

    group: Group
    baseline: Group
    speedup: float | None
    """Baseline training time / this training time (above 1: faster)."""
    energy_ratio: float | None
    """This energy / baseline energy (below 1: less)."""
    co2_ratio: float | None
    """This CO2 / baseline CO2, each in its home region."""
    accuracy_diff_pp: float | None
    """This test accuracy - baseline test accuracy, percentage points."""

    @property
    def estimated(self) -> bool:
        return bool(self.group.estimated or self.baseline.estimated)


@dataclass(frozen=True)
class LeftOut:
    """A run that is counted but kept out of every figure, and why."""

    run: str
    session: str
    status: str
    reason: str


@dataclass
class Report:
    """Everything the tables, files and plots show; built by :func:`build_report`."""

    groups: list[Group]
    regions: list[RegionInfo]
    comparisons: list[Comparison]
    left_out: list[LeftOut]
    sessions: list[dict[str, Any]]
    warnings: list[str]
    baseline: str | None = None
    run_count: int = 0
    """Every run directory read, usable or not."""

    @property
    def reported(self) -> list[Group]:
        """Groups whose runs are comparable; a refused group appears only in the summary
        (with n=0) and among the runs left out."""
        return [g for g in self.groups if g.refused is None]

    @property
    def with_figures(self) -> list[Group]:
        """Groups with at least one usable run."""
        return [g for g in self.reported if g.usable]


# --- loading ---------------------------------------------------------------------------


def load(paths: list[Path]) -> tuple[list[RunResult], list[str]]:
    """Load every run under ``paths``; a path without runs becomes a warning.

    Raises:
        UserError: no path holds a single run directory.
    """
    dirs: list[Path] = []
    warnings: list[str] = []
    problems: list[UserError] = []
    for path in paths:
        try:
            found = find_run_dirs(path)
        except UserError as exc:
            problems.append(exc)
            warnings.append(exc.render())
            continue
        dirs.extend(d for d in found if d not in dirs)
    if not dirs:
        raise UserError("no result directory to report on", source=", ".join(map(str, paths)),
                        fix="pass session directories written by `python -m harness run`, "
                            "e.g. results/<session>", also=problems[1:] if problems else None)
    return [load_run(d) for d in dirs], warnings


def _session_info(session_dir: Path) -> dict[str, Any]:
    """Name, host and plan order of a session (best effort: session.json is optional)."""
    info: dict[str, Any] = {"session": session_dir.name, "host": None, "backend": None,
                            "runs": []}
    try:
        document = read_json(session_dir / "session.json", SESSION_FORMAT, (SESSION_VERSION,))
    except UserError:
        return info
    info["host"] = (document.get("host") or {}).get("hostname")
    backend = document.get("backend") or {}
    info["backend"] = backend.get("backend") or backend.get("name")
    info["runs"] = [str(r) for r in document.get("runs") or []]
    return info


# --- building --------------------------------------------------------------------------


def _name(run: RunResult) -> str:
    return f"{run.session}/{run.run_dir.name}"


def _holds(runs: list[RunResult], run: RunResult) -> bool:
    # Identity, not ==: two runs may hold equal data (a copied session) yet be two runs.
    return any(item is run for item in runs)


def _settings(run: RunResult) -> dict[str, str]:
    """The settings that must agree between runs averaged together, as display text:
    training settings, dataset, PUE, device, home region (the CO2 column prices in it)
    and the versions of TensorFlow, CodeCarbon and the harness."""
    spec = run.spec
    assert spec is not None
    versions = ((run.metrics or {}).get("environment") or {}).get("versions") or {}
    settings = {f"training.{k}": repr(v) for k, v in spec.training.model_dump(mode="json").items()}
    train, test = spec.dataset.sizes
    settings.update({
        "dataset.kind": spec.dataset.kind,
        "dataset.sizes": f"{train}/{test}",
        "dataset.seed": str(spec.dataset.seed),
        "tracker.pue": repr(spec.tracker.pue),
        "device": spec.hardware.device,
        "home region": spec.home_region,
    })
    for package in ("tensorflow", "codecarbon", "harness"):
        settings[f"versions.{package}"] = str(versions.get(package))
    return settings


def _workload(settings: dict[str, str]) -> str:
    return json.dumps({k: v for k, v in settings.items() if k.startswith(WORKLOAD_FIELDS)},
                      sort_keys=True)


def _incomparable(runs: list[RunResult]) -> dict[str, str]:
    """Setting -> which runs have which value, for each setting that differs in ``runs``."""
    per_run = [(_name(run), _settings(run)) for run in runs]
    problems = {}
    for key in per_run[0][1]:
        values: dict[str, list[str]] = {}
        for name, settings in per_run:
            values.setdefault(settings[key], []).append(name)
        if len(values) > 1:
            problems[key] = "; ".join(f"{value} in {', '.join(names)}"
                                      for value, names in values.items())
    return problems


def _power_text(entry: dict[str, Any]) -> str:
    method = str(entry.get("method"))
    if method == "none":
        return "none"
    return f"{'measured' if entry.get('measured') else 'estimated'} ({method})"


def _describe_power(group: Group, runs: list[RunResult]) -> None:
    texts: dict[str, list[str]] = {c: [] for c in _COMPONENT_NAMES}
    for run in runs:
        for entry in (run.metrics or {}).get("power") or []:
            component = entry.get("component")
            if component not in texts:
                continue
            text = _power_text(entry)
            if text not in texts[component]:
                texts[component].append(text)
            if not entry.get("measured") and entry.get("method") != "none":
                detail = str(entry.get("detail") or entry.get("method"))
                group.estimated.setdefault(component, detail)
    group.power = {c: " / ".join(t) or "unknown" for c, t in texts.items()}


def _run_figures(run: RunResult) -> dict[str, float | None]:
    """Headline figures of one usable run; CO2 in its home region, re-priced."""
    assert run.spec is not None and run.metrics is not None and run.emissions is not None
    metrics = run.metrics
    energy_kwh = float(run.emissions["energy_consumed"])
    accuracy = metrics.get("test_accuracy")
    accuracy_pct = 100 * float(accuracy) if accuracy is not None else None
    return {
        "training_s": metrics.get("training_s"),
        "test_accuracy_pct": accuracy_pct,
        "energy_kwh": energy_kwh,
        # Re-priced with harness.regions.price, not copied from the CSV: the same function
        # prices every other region, and the tests hold it equal to the tracker's figure.
        "co2_home_kg": _price(energy_kwh, run.spec.home_region),
        "images_per_s": metrics.get("images_per_s"),
        "wh_per_accuracy_point": (1000 * energy_kwh / accuracy_pct
                                  if accuracy_pct else None),
    }


def _price(energy_kwh: float, label: str) -> float | None:
    """kg CO2eq of ``energy_kwh`` in region ``label``; None for a region this CodeCarbon
    does not know (a session from another version; :func:`_regions` warns about it)."""
    try:
        return price(energy_kwh, parse_region(label))
    except ValueError:
        return None


def _phase_figures(runs: list[RunResult]) -> dict[str, dict[str, Stat | None]]:
    names = list(PHASES)
    for run in runs:
        for phase in (run.metrics or {}).get("phases") or []:
            if phase.get("name") not in names:
                names.append(str(phase.get("name")))
    result = {}
    for name in names:
        records = [next((p for p in (run.metrics or {}).get("phases") or []
                         if p.get("name") == name), {}) for run in runs]
        result[name] = {"duration_s": summarize(r.get("duration_s") for r in records),
                        "energy_kwh": summarize(r.get("energy_kwh") for r in records)}
    return result


def _fill(group: Group, regions: list[RegionInfo]) -> None:
    """Compute the group's figures from its usable runs."""
    runs = group.usable
    per_run = [_run_figures(run) for run in runs]
    group.figures = {key: summarize(f[key] for f in per_run) for key in FIGURES}
    energies = [float(run.emissions["energy_consumed"]) for run in runs if run.emissions]
    group.co2_kg = {info.label: summarize(_price(e, info.label) for e in energies)
                    for info in regions}
    group.phases = _phase_figures(runs)


def _describe(group: Group, sessions: dict[str, dict[str, Any]]) -> None:
    """Dataset, backend, power methods and home region, from the group's runs."""
    runs = group.usable or [r for r in group.runs if r.spec is not None]
    spec = runs[0].spec
    assert spec is not None
    train, test = spec.dataset.sizes
    group.synthetic = spec.dataset.kind == "synthetic"
    group.dataset = f"synthetic {train}/{test}" if group.synthetic else "CIFAR-10"
    group.home_region = spec.home_region
    backends = []
    for run in runs:
        provenance = (run.outcome or {}).get("provenance") or {}
        name = provenance.get("backend") or sessions.get(run.session, {}).get("backend")
        if name and provenance.get("fallback_reason"):
            name = f"{name} (fallback)"  # --backend auto found no Docker daemon
        if name and name not in backends:
            backends.append(str(name))
    group.backend = " / ".join(backends) or "?"
    _describe_power(group, group.usable or runs)


def _left_out(run: RunResult) -> LeftOut:
    """Why ``run`` stays out of the figures: its status and reason, or what is damaged."""
    status, reason = run.status, None
    if run.spec is None or (run.status == "ok" and not run.usable):
        status = "damaged" if run.status == "ok" else run.status
        # The loader's first warning says which file and what is wrong with it.
        prefix = f"{_name(run)}: "
        first = next((w for w in run.warnings if w.startswith(prefix)), None)
        reason = (first[len(prefix):].splitlines()[0].replace(f"{run.run_dir}/", "")
                  if first else "results missing or damaged")
    elif run.status != "ok":
        reason = (run.outcome or {}).get("reason") or "no outcome.json: the run never finished"
    return LeftOut(run.run_dir.name, run.session, status, str(reason))


def _choose_baselines(groups: list[Group], baseline: str | None) -> list[Comparison]:
    """Pair every group with the baseline hardware of the same workload.

    The baseline is ``baseline`` if given; otherwise the first CPU hardware of each
    workload (the first hardware if none is a CPU), so a GPU is compared with a CPU.
    A baseline in the same scenario is preferred to one in another scenario.
    """
    by_workload: dict[str, list[Group]] = {}
    for group in groups:
        by_workload.setdefault(group.workload, []).append(group)
    comparisons = []
    for members in by_workload.values():
        name = baseline
        if name is None:
            name = next((g.hardware for g in members if g.device == "cpu"), members[0].hardware)
        candidates = [g for g in members if g.hardware == name]
        if not candidates:
            continue
        for group in members:
            if group.hardware == name:
                continue
            base = next((c for c in candidates if c.scenario == group.scenario), candidates[0])
            f, b = group.figures, base.figures
            accuracy = f.get("test_accuracy_pct")
            base_accuracy = b.get("test_accuracy_pct")
            comparisons.append(Comparison(
                group=group, baseline=base,
                speedup=ratio(b.get("training_s"), f.get("training_s")),
                energy_ratio=ratio(f.get("energy_kwh"), b.get("energy_kwh")),
                co2_ratio=ratio(f.get("co2_home_kg"), b.get("co2_home_kg")),
                accuracy_diff_pp=(accuracy.mean - base_accuracy.mean
                                  if accuracy and base_accuracy else None),
            ))
    return comparisons


def _regions(groups: list[Group], warnings: list[str]) -> list[RegionInfo]:
    """Every region declared by the reported runs, home regions first, once each."""
    labels: list[str] = []
    for group in groups:
        for run in group.usable or group.runs:
            if run.spec is None:
                continue
            for label in [run.spec.home_region, *run.spec.regions]:
                if label not in labels:
                    labels.append(label)
    homes = [g.home_region for g in groups if g.home_region]
    labels.sort(key=lambda label: label not in homes)  # stable: declared order otherwise
    infos = []
    for label in labels:
        try:
            infos.append(RegionInfo(label, carbon_intensity(parse_region(label))))
        except ValueError as exc:
            # Written by another CodeCarbon version that knew this region: say so, go on.
            warnings.append(f"region {label!r} left out: {exc}")
    return infos


def _noisy(group: Group) -> str:
    """``training (s) 35%, energy (kWh) 46%``: the figures whose CV is over the limit."""
    return ", ".join(f"{FIGURES[k]} {100 * s.cv:.0f}%" for k, s in group.figures.items()
                     if s is not None and s.noisy and s.cv is not None)


def _admit(group: Group, left_out: list[LeftOut], warnings: list[str]) -> None:
    """Admit the group's complete runs into its figures if they are comparable; else
    refuse them all, with a warning naming the runs and the settings that differ."""
    candidates = [run for run in group.runs if run.usable]
    differences = _incomparable(candidates) if len(candidates) > 1 else {}
    if not differences:
        group.usable = candidates
        if candidates:
            group.workload = _workload(_settings(candidates[0]))
        return
    group.refused = ", ".join(differences)
    group.refused_runs = candidates
    warnings.append(
        f"{group.name}: runs not comparable, left out of every figure ("
        + " | ".join(f"{key} differs: {text}" for key, text in differences.items())
        + "); re-run them with the same settings and versions, or report the sessions "
        "separately")
    left_out.extend(LeftOut(run.run_dir.name, run.session, "not comparable",
                            f"{group.refused} differ within {group.name} (see warnings)")
                    for run in candidates)


def _relative(text: str, roots: list[Path]) -> str:
    """Strip the directories that hold the sessions, so messages read the same anywhere."""
    for root in roots:
        text = text.replace(f"{root}/", "")
    return text


def build_report(results: list[RunResult], *, baseline: str | None = None,
                 warnings: list[str] | None = None) -> Report:
    """Group, check and summarise ``results`` into a :class:`Report` (pure, no I/O but reads).

    Raises:
        UserError: ``baseline`` names no hardware of any run.
    """
    all_warnings = list(warnings or [])
    roots = sorted({r.run_dir.parent.parent for r in results}, key=lambda p: -len(str(p)))
    session_dirs = list(dict.fromkeys(r.run_dir.parent for r in results))
    sessions = {d.name: _session_info(d) for d in session_dirs}
    for run in results:
        all_warnings.extend(run.warnings)
        check = (run.metrics or {}).get("tracker_check") or {}
        if run.usable and check.get("ok") is False and "relative_difference" in check:
            # CodeCarbon's scheduler can add energy during stop() that it never prices.
            all_warnings.append(
                f"{run.session}/{run.run_id}: emissions.csv's CO2 differs by "
                f"{100 * check['relative_difference']:.2g}% from its energy priced in the home "
                "region (energy CodeCarbon never priced); the report uses the re-priced figure")

    # Plan order: the position of each run in its session's plan, sessions in given order.
    def order(run: RunResult) -> tuple[int, int, str]:
        plan = sessions.get(run.session, {}).get("runs", [])
        index = plan.index(run.run_dir.name) if run.run_dir.name in plan else len(plan)
        return (session_dirs.index(run.run_dir.parent), index, run.run_dir.name)

    groups: dict[tuple[str, str], Group] = {}
    left_out: list[LeftOut] = []
    for run in sorted(results, key=order):
        if run.spec is None:
            left_out.append(_left_out(run))
            continue
        key = (run.spec.scenario, run.spec.hardware.name)
        group = groups.setdefault(key, Group(scenario=key[0], hardware=key[1],
                                             device=run.spec.hardware.device, runs=[]))
        group.runs.append(run)
    for group in groups.values():
        left_out.extend(_left_out(run) for run in group.runs if not run.usable)
        _admit(group, left_out, all_warnings)
        _describe(group, sessions)

    ordered = list(groups.values())
    scenarios = {g.scenario for g in ordered}
    for group in ordered:
        group.label = group.hardware if len(scenarios) == 1 else group.name
    reported = [g for g in ordered if g.refused is None]
    regions = _regions(reported, all_warnings)
    for group in reported:
        _fill(group, regions)
    for group in reported:
        noisy = _noisy(group)
        if noisy:
            all_warnings.append(
                f"{group.name}: results vary by more than {100 * CV_LIMIT:.0f}% (coefficient "
                f"of variation) over {len(group.usable)} runs ({noisy}): add repeats or quiet "
                f"the machine")

    if baseline is not None and baseline not in {g.hardware for g in ordered}:
        raise UserError(f"no hardware named {baseline!r} in these results", key="--baseline",
                        fix="choose one of: " + ", ".join(dict.fromkeys(
                            g.hardware for g in ordered)))
    comparisons = _choose_baselines([g for g in reported if g.usable], baseline)
    return Report(
        groups=ordered, regions=regions, comparisons=comparisons, left_out=left_out,
        sessions=[{k: v for k, v in sessions[d.name].items() if k != "runs"}
                  for d in session_dirs],
        warnings=[_relative(w, roots) for w in dict.fromkeys(all_warnings)],
        baseline=baseline, run_count=len(results),
    )


# --- tables ----------------------------------------------------------------------------

Table = tuple[list[str], list[list[str]]]


def _mark(text: str, estimated: bool, noisy: bool = False) -> str:
    if text == "-":
        return text
    return text + (f" {ESTIMATE_MARK}" if estimated else "") + (f" {NOISY_MARK}" if noisy else "")


def _stat_cell(group: Group, key: str) -> str:
    stat = group.figures.get(key)
    return _mark(fmt_stat(stat), key in ENERGY_FIGURES and bool(group.estimated),
                 bool(stat and stat.noisy))


def _runs_cell(group: Group) -> str:
    counts: dict[str, int] = {}
    for run in group.excluded:
        status = run.status
        if _holds(group.refused_runs, run):
            status = "not comparable"
        elif status == "ok":
            status = "damaged"
        counts[status] = counts.get(status, 0) + 1
    excluded = ", ".join(f"{n} {status}" for status, n in counts.items())
    if not group.usable:
        return f"n=0 ({excluded})" if excluded else "n=0"
    return f"n={len(group.usable)}" + (f" (+{excluded})" if excluded else "")


def summary_table(report: Report) -> Table:
    """Summary per scenario and hardware: the headline figures and how they were measured."""
    rows = []
    for group in report.groups:
        cells = {key: _stat_cell(group, key) for key in FIGURES}
        row = [group.scenario, group.hardware, _runs_cell(group)]
        row += [cells[k] for k in FIGURES if k != "co2_home_kg"]
        row += [group.home_region or "-", cells["co2_home_kg"]]
        row += [group.power.get(c, "unknown") for c in _COMPONENT_NAMES]
        row += [group.dataset, group.backend]
        rows.append(row)
    headers = ["scenario", "hardware", "runs",
               *[FIGURES[k] for k in FIGURES if k != "co2_home_kg"],
               "home", FIGURES["co2_home_kg"], "CPU power", "GPU power", "RAM power",
               "dataset", "backend"]
    return headers, rows


def _source_key(intensity: CarbonIntensity) -> str:
    """The data file a source names (``global_energy_mix.json``...)."""
    return intensity.source.split(":", 1)[0].removeprefix("CodeCarbon ").strip()


def data_sources(report: Report) -> list[str]:
    """Each distinct carbon-intensity source, in the order the regions table numbers them."""
    return list(dict.fromkeys(info.intensity.source for info in report.regions))


def regions_table(report: Report) -> Table:
    """Regions x hardware: CO2 (kg CO2eq) of each hardware's energy in each region."""
    groups = report.with_figures
    homes = {g.home_region for g in report.reported if g.home_region}
    sources = data_sources(report)
    headers = ["region", "g CO2eq/kWh", "data", "year", *[f"{g.label} (kg)" for g in groups]]
    rows = []
    for info in report.regions:
        region = info.label + (" (home)" if info.label in homes else "")
        number = sources.index(info.intensity.source) + 1
        row = [region, fmt_num(info.intensity.g_per_kwh),
               f"[{number}] {_source_key(info.intensity)}", info.intensity.year or "not given"]
        for group in groups:
            stat = group.co2_kg.get(info.label)
            row.append(_mark(fmt_stat(stat), bool(group.estimated)))
        rows.append(row)
    return headers, rows


def comparison_table(report: Report) -> Table:
    """Each hardware against its baseline: speed-up, energy and CO2 ratios, accuracy."""
    headers = ["scenario", "hardware", "baseline", "speed-up (x)", "energy ratio",
               "CO2 ratio", "accuracy diff (pp)"]
    rows = []
    for c in report.comparisons:
        base = c.baseline.hardware if c.baseline.scenario == c.group.scenario \
            else c.baseline.name
        diff = "-" if c.accuracy_diff_pp is None else f"{c.accuracy_diff_pp:+.1f}"
        rows.append([c.group.scenario, c.group.hardware, base, fmt_num(c.speedup),
                     _mark(fmt_num(c.energy_ratio), c.estimated),
                     _mark(fmt_num(c.co2_ratio), c.estimated), diff])
    return headers, rows


def phases_table(report: Report) -> Table:
    """Set-up, training and evaluation: time (s) and energy (kWh) of each phase."""
    groups = report.with_figures
    names = list(dict.fromkeys(name for g in groups for name in g.phases))
    headers = ["scenario", "hardware"]
    for name in names:
        headers += [f"{name} (s)", f"{name} (kWh)"]
    rows = []
    for group in groups:
        row = [group.scenario, group.hardware]
        for name in names:
            phase = group.phases.get(name, {})
            row += [fmt_stat(phase.get("duration_s")),
                    _mark(fmt_stat(phase.get("energy_kwh")), bool(group.estimated))]
        rows.append(row)
    return headers, rows


def left_out_table(report: Report) -> Table:
    """Runs counted but not averaged in, with their status and the reason."""
    return (["session", "run", "status", "reason"],
            [[r.session, r.run, r.status, r.reason] for r in report.left_out])


def footnotes(report: Report) -> list[str]:
    """What the marks in the tables mean, naming the groups they apply to."""
    notes = ["Figures are means over repeats ± the half-width of their 95% confidence "
             "interval (Student's t); a single run (n=1) shows its value without interval. "
             "Failed, partial, damaged and incomparable runs are counted in `runs` and never "
             "averaged."]
    estimated: dict[tuple[str, str], list[str]] = {}
    for group in report.with_figures:
        for component, detail in group.estimated.items():
            estimated.setdefault((_COMPONENT_NAMES[component], detail), []).append(group.label)
    if estimated:
        parts = "; ".join(f"the {component} of {', '.join(labels)} ({detail})"
                          for (component, detail), labels in estimated.items())
        notes.append(f"{ESTIMATE_MARK} estimated: CodeCarbon had no energy counter (RAPL/NVML) "
                     f"for {parts}. Energy and CO2 figures that include them are estimates.")
    noisy = [f"{g.label}: {_noisy(g)}" for g in report.with_figures if _noisy(g)]
    if noisy:
        notes.append(f"{NOISY_MARK} coefficient of variation over {100 * CV_LIMIT:.0f}% "
                     f"({'; '.join(noisy)}): add repeats or quiet the machine.")
    return notes


def _render(table: Table, fmt: str) -> str:
    headers, rows = table
    return tabulate(rows, headers=headers, tablefmt=fmt, disable_numparse=True)


@dataclass(frozen=True)
class Section:
    """One part of the report: a title, a table (or a sentence saying why there is none)."""

    title: str
    table: Table | None
    empty: str
    notes: list[str]


def sections(report: Report) -> list[Section]:
    """The report's sections, in order; shared by the terminal and Markdown renderings."""
    none = "no usable run: every run failed, was partial or damaged (see runs left out)"
    sources = data_sources(report)
    baseline = report.baseline or "the first CPU hardware of each workload"
    result = [
        Section("Summary per scenario and hardware", summary_table(report),
                "no run to report", footnotes(report)),
        Section("CO2 by region (kg CO2eq of the measured energy)", regions_table(report),
                none, ([] if report.with_figures else [none])
                + [f"[{i}] {source}" for i, source in enumerate(sources, start=1)]
                + ["Every region is priced with CodeCarbon's own data and functions from the "
                   "energy measured once; the home region reproduces the tracker's figure."]),
        Section(f"Against the baseline ({baseline})", comparison_table(report),
                "no comparison: fewer than two hardware entries with usable runs share a "
                "workload" + (f" with {report.baseline}" if report.baseline else ""),
                ["speed-up = baseline training time / training time; energy and CO2 ratio = "
                 "hardware / baseline (below 1: less); CO2 in each one's home region; "
                 "ratios of means."]),
        Section("Phases (time in s, energy in kWh)", phases_table(report), none, []),
    ]
    if report.left_out:
        result.append(Section("Runs left out", left_out_table(report), "", []))
    return result


def _non_empty(table: Table | None) -> bool:
    return table is not None and bool(table[1])


def render_text(report: Report, fmt: str = "simple") -> str:
    """The report's tables for the terminal (``fmt``: a tabulate format)."""
    parts = []
    for section in sections(report):
        parts.append(f"== {section.title} ==")
        parts.append(_render(section.table, fmt) if _non_empty(section.table) else section.empty)
        parts.extend(section.notes)
        parts.append("")
    return "\n".join(parts).rstrip() + "\n"


def _header_lines(report: Report) -> list[str]:
    lines = []
    for info in report.sessions:
        extra = ", ".join(f"{k} {v}" for k, v in info.items() if k != "session" and v)
        lines.append(f"- session `{info['session']}`" + (f" ({extra})" if extra else ""))
    synthetic = [g.label for g in report.groups if g.synthetic]
    if synthetic:
        lines.append("")
        lines.append("**Synthetic data**: " + (
            "every run" if len(synthetic) == len(report.groups) else ", ".join(synthetic))
            + " trained on generated images, not CIFAR-10; the accuracy says nothing about "
            "CIFAR-10.")
    return lines


def render_markdown(report: Report, plots: list[tuple[str, str]] | None = None) -> str:
    """report.md: the tables as GitHub Markdown, then the plots (``(file, title)`` pairs)."""
    lines = ["# Carbon benchmark report", "",
             f"{report.run_count} run(s) from "
             f"{len(report.sessions)} session(s):", "", *_header_lines(report), ""]
    for section in sections(report):
        lines += [f"## {section.title}", ""]
        lines.append(_render(section.table, "github") if _non_empty(section.table)
                     else f"_{section.empty}_")
        lines.append("")
        for note in section.notes:
            lines += [note.replace("*", "\\*", 1) if note.startswith(ESTIMATE_MARK) else note, ""]
    if report.warnings:
        lines += ["## Warnings", ""]
        lines += ["- " + " ".join(line.strip() for line in w.splitlines())
                  for w in report.warnings]
        lines.append("")
    lines += ["## Plots", ""]
    if plots:
        for filename, title in plots:
            lines += [f"![{title}]({filename})", ""]
    else:
        lines += ["_no plots: no usable run_", ""]
    return "\n".join(lines).rstrip() + "\n"


# --- files -----------------------------------------------------------------------------


def _stat_columns(prefix: str, stat: Stat | None) -> dict[str, Any]:
    if stat is None:
        return {f"{prefix}_mean": "", f"{prefix}_ci95": "", f"{prefix}_cv": ""}
    return {f"{prefix}_mean": repr(stat.mean),
            f"{prefix}_ci95": "" if stat.ci95 is None else repr(stat.ci95),
            f"{prefix}_cv": "" if stat.cv is None else repr(stat.cv)}


def summary_csv(report: Report) -> str:
    """One row per reported group, every figure with its mean, 95% CI half-width and CV."""
    rows = []
    for group in report.reported:
        row: dict[str, Any] = {
            "scenario": group.scenario, "hardware": group.hardware, "device": group.device,
            "n": len(group.usable), "excluded": len(group.excluded),
            "dataset": group.dataset, "backend": group.backend,
            "home_region": group.home_region or "",
            **{f"{c}_power": group.power.get(c, "") for c in _COMPONENT_NAMES},
            "estimated": " ".join(sorted(group.estimated)),
        }
        for key in FIGURES:
            row.update(_stat_columns(key, group.figures.get(key)))
        for info in report.regions:
            row.update(_stat_columns(f"co2_kg[{info.label}]", group.co2_kg.get(info.label)))
        for name in PHASES:
            phase = group.phases.get(name, {})
            row.update(_stat_columns(f"phase_{name}_s", phase.get("duration_s")))
            row.update(_stat_columns(f"phase_{name}_kwh", phase.get("energy_kwh")))
        rows.append(row)
    buffer = io.StringIO()
    fieldnames = list(dict.fromkeys(k for row in rows for k in row)) or ["scenario", "hardware"]
    writer = csv.DictWriter(buffer, fieldnames=fieldnames, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def _stats_dict(stats: dict[str, Stat | None]) -> dict[str, Any]:
    return {k: (s.as_dict() if s else None) for k, s in stats.items()}


def summary_json(report: Report) -> str:
    """summary.json (format harness.report v1): every figure of every group, with runs."""
    groups = []
    for group in report.groups:
        groups.append({
            "scenario": group.scenario, "hardware": group.hardware, "device": group.device,
            "refused": group.refused, "dataset": group.dataset, "synthetic": group.synthetic,
            "backend": group.backend, "home_region": group.home_region,
            "power": group.power, "estimated": group.estimated,
            "runs": [{"session": r.session, "run": r.run_dir.name, "status": r.status,
                      "usable": _holds(group.usable, r)} for r in group.runs],
            "figures": _stats_dict(group.figures),
            "co2_kg_by_region": _stats_dict(group.co2_kg),
            "phases": {name: _stats_dict(p) for name, p in group.phases.items()},
        })
    document = {
        "format": REPORT_FORMAT, "version": REPORT_VERSION,
        "units": {"training_s": "s", "test_accuracy_pct": "%", "energy_kwh": "kWh",
                  "co2_home_kg": "kg CO2eq", "images_per_s": "1/s",
                  "wh_per_accuracy_point": "Wh per test-accuracy percentage point",
                  "ci95": "half-width of the 95% confidence interval (Student's t)"},
        "sessions": report.sessions,
        "regions": [{"label": i.label, "g_per_kwh": i.intensity.g_per_kwh,
                     "source": i.intensity.source, "year": i.intensity.year,
                     "method": i.intensity.method} for i in report.regions],
        "groups": groups,
        "comparisons": [{"scenario": c.group.scenario, "hardware": c.group.hardware,
                         "baseline": c.baseline.name, "speedup": c.speedup,
                         "energy_ratio": c.energy_ratio, "co2_ratio": c.co2_ratio,
                         "accuracy_diff_pp": c.accuracy_diff_pp, "estimated": c.estimated}
                        for c in report.comparisons],
        "left_out": [vars(r) for r in report.left_out],
        "warnings": report.warnings,
    }
    return json.dumps(document, indent=2) + "\n"


def default_out_dir(results: list[RunResult], now: Callable[[], datetime] = datetime.now) -> Path:
    """``<session>/report`` for one session; ``<parent>/report-<timestamp>`` for several,
    next to the first session, so a merged report never lands inside one machine's session.
    """
    sessions = list(dict.fromkeys(r.run_dir.parent for r in results))
    if len(sessions) == 1:
        return sessions[0] / "report"
    return sessions[0].parent / f"report-{now().strftime('%Y%m%d-%H%M%S')}"


def write_report(report: Report, out_dir: Path) -> list[Path]:
    """Write report.md, summary.csv, summary.json and the PNG plots into ``out_dir``.

    Each file is written atomically; returns the paths written.
    """
    from harness import plots  # matplotlib is slow to import: only when files are written

    out_dir.mkdir(parents=True, exist_ok=True)
    made = plots.make_plots(report, out_dir)
    files = {
        "summary.csv": summary_csv(report),
        "summary.json": summary_json(report),
        "report.md": render_markdown(report, [(p.name, title) for p, title in made]),
    }
    written = []
    for name, text in files.items():
        write_atomic(out_dir / name, text)
        written.append(out_dir / name)
    return written + [p for p, _ in made]


# --- the per-run table `harness run` prints -------------------------------------------


def _power_method(metrics: dict[str, Any], component: str) -> str:
    for entry in metrics.get("power", []):
        if entry.get("component") == component:
            return _power_text(entry)
    return "unknown"


def run_rows(results: list[RunResult]) -> list[dict[str, Any]]:
    """One row per run with the headline figures; failed runs show their status only."""
    rows = []
    for result in results:
        spec, metrics = result.spec, result.metrics or {}
        dataset_info = metrics.get("dataset", {})
        usable = result.usable
        rows.append({
            "run": result.run_id,
            "status": result.status,
            "scenario": spec.scenario if spec else "?",
            "hardware": spec.hardware.name if spec else "?",
            "home region": spec.home_region if spec else "?",
            "dataset": dataset_info.get("kind", spec.dataset.kind if spec else "?"),
            "epochs": metrics.get("training", {}).get("epochs_run") if usable else None,
            "training time (s)": metrics.get("training_s") if usable else None,
            "test accuracy": metrics.get("test_accuracy") if usable else None,
            "energy (kWh)": float(result.emissions["energy_consumed"]) if usable else None,
            "CO2 (kg)": float(result.emissions["emissions"]) if usable else None,
            "images/s": metrics.get("images_per_s") if usable else None,
            "CPU power": _power_method(metrics, "cpu") if metrics else "-",
        })
    return rows


def runs_table(results: list[RunResult], tablefmt: str = "simple") -> str:
    """The per-run table, ready to print."""
    rows = run_rows(results)
    if not rows:
        return "(no runs)"
    return tabulate(rows, headers="keys", tablefmt=tablefmt, floatfmt=".4g", missingval="-")
