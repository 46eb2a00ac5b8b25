"""The report model: built once from loaded sessions, immutable, rendered many ways.

:func:`build_report` is a pure function of the loaded results (it reads no file): it
groups runs (:mod:`.grouping`), keeps out every run that is not usable (failed, partial,
damaged, not comparable...), summarises each figure over repeats with its interval,
re-prices the energy in every declared region with CodeCarbon's data, and compares each
hardware with a baseline running the same workload, each ratio with its interval.

Every figure has a scope (README, "Scopes"): ``training`` (fit, its per-epoch validation
included), ``run`` (what the tracker saw: set-up, training, evaluation) or ``process``
(from process start, its untracked start estimated). Comparisons and plots use one scope,
the training scope unless asked otherwise; a ratio never mixes scopes.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from harness.errors import UserError
from harness.regions import CarbonIntensity, carbon_intensity, parse_region, price
from harness.report import grouping
from harness.results import LoadedRun, LoadedSession
from harness.schema import BACKGROUND_LOAD_LIMIT
from harness.stats import (
    CV_LIMIT,
    Comparison,
    Stat,
    difference,
    paired_difference,
    paired_ratio,
    ratio,
    summarize,
)

SCOPES = ("training", "run", "process")
DEFAULT_SCOPE = "training"
#: Whose energy a figure counts: the run's share of the machine (CPU and RAM in
#: proportion to what it was granted, its own GPUs), or what its tracker saw.
ATTRIBUTIONS = ("attributed", "tracker")
DEFAULT_ATTRIBUTION = "attributed"
PHASES = ("setup", "training", "evaluation")

#: Headline figures of one run: key (unit in the name) -> table header without scope.
FIGURES: dict[str, str] = {
    "time_s": "time (s)",
    "accuracy_pct": "test acc. (%)",
    "energy_kwh": "energy (kWh)",
    "co2_kg": "CO2 home (kg)",
    "images_per_s": "images/s",
    "wh_per_accuracy_point": "Wh per acc. pt",
}
#: Figures that come from CodeCarbon's energy and so inherit its estimates.
ENERGY_FIGURES = frozenset({"energy_kwh", "co2_kg", "wh_per_accuracy_point"})
COMPONENTS = {"cpu": "CPU", "gpu": "GPU", "ram": "RAM"}


@dataclass(frozen=True)
class RegionInfo:
    """A region the energy is priced in, with the carbon intensity CodeCarbon applies."""

    label: str
    intensity: CarbonIntensity


@dataclass(frozen=True)
class Group:
    """The runs of one hardware entry of one scenario variant, across repeats and sessions."""

    scenario: str
    variant: str
    hardware: str
    device: str
    label: str
    """Short name in tables and plots."""
    runs: tuple[LoadedRun, ...]
    usable: tuple[LoadedRun, ...]
    refused: str | None
    """Why the group's runs are not comparable (then nothing is averaged)."""
    dataset: str
    """The data's label ("CIFAR-10", "CIFAR-10 (unverified)", "synthetic (easy)"...)."""
    synthetic: bool
    verified: bool
    backend: str
    home_region: str | None
    power: dict[str, str]
    """Component -> "measured (nvml)" / "estimated (cpu_load)" / "none"."""
    estimated: dict[str, str]
    """Component -> the estimate's description, for estimated components."""
    fallback: bool
    """CodeCarbon used its default power for a CPU it does not know."""
    figures: dict[str, Stat | None]
    co2_by_region: dict[str, Stat | None]
    phases: dict[str, dict[str, Stat | None]]
    """Phase -> {"time_s": ..., "energy_kwh": ...}."""
    curves: dict[int, dict[str, Stat | None]]
    """Epoch -> {"accuracy_pct", "val_accuracy_pct", "energy_kwh" (cumulative)}."""
    workload: str
    seeds: tuple[int, ...]
    process_estimated_s: Stat | None
    """Seconds of the process scope no tracker saw (priced at the run's mean power)."""

    @property
    def name(self) -> str:
        middle = "" if self.variant == "baseline" else f"{self.variant}/"
        return f"{self.scenario}/{middle}{self.hardware}"

    @property
    def excluded(self) -> tuple[LoadedRun, ...]:
        """Runs counted but kept out of the figures."""
        return tuple(r for r in self.runs if not any(r is u for u in self.usable))

    def values(self, key: str) -> tuple[float, ...]:
        """The per-run values of a figure (what ratios are computed from)."""
        stat = self.figures.get(key)
        return stat.values if stat else ()


@dataclass(frozen=True)
class HardwareComparison:
    """One hardware against the baseline running the same workload, in one scope."""

    group: Group
    baseline: Group
    speedup: Comparison | None
    """Baseline time / this time (above 1: faster)."""
    energy_ratio: Comparison | None
    """This energy / baseline energy (below 1: less)."""
    co2_ratio: Comparison | None
    """This CO2 / baseline CO2, each in its home region."""
    accuracy_diff_pp: Comparison | None
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


@dataclass(frozen=True)
class SessionInfo:
    """What the report header says about one session."""

    name: str
    host: str | None
    backend: str | None
    commit: str | None
    dirty: bool | None
    idle: str | None
    concurrent: tuple[str, ...] = ()


@dataclass(frozen=True)
class Report:
    """Everything the tables, files and plots show; built by :func:`build_report`."""

    basis: Basis
    groups: tuple[Group, ...]
    regions: tuple[RegionInfo, ...]
    comparisons: tuple[HardwareComparison, ...]
    left_out: tuple[LeftOut, ...]
    sessions: tuple[SessionInfo, ...]
    warnings: tuple[str, ...]
    baseline: str | None
    statuses: tuple[tuple[str, int], ...]
    """How many runs read ended in each status, sorted by status: every run directory,
    those without a readable run.json (in no group) included."""
    pareto: tuple[str, ...] = ()
    """Names of the groups on the Pareto front of accuracy against CO2, where one point
    dominates another only when it is distinguishably better on one axis and not
    distinguishably worse on the other."""
    pareto_resolved: bool = False
    """True when at least one point is distinguishably dominated (else every point is on
    the front: nothing could be told apart)."""

    @property
    def scope(self) -> str:
        return self.basis.scope

    @property
    def reported(self) -> tuple[Group, ...]:
        """Groups whose runs are comparable."""
        return tuple(g for g in self.groups if g.refused is None)

    @property
    def with_figures(self) -> tuple[Group, ...]:
        """Groups with at least one usable run."""
        return tuple(g for g in self.reported if g.usable)


# --- per-run figures -----------------------------------------------------------------------


def _price(energy_kwh: float | None, label: str) -> float | None:
    """kg CO2eq of ``energy_kwh`` in region ``label``; None for a region this CodeCarbon
    does not know (a session from another version; :func:`_regions` warns about it)."""
    if energy_kwh is None:
        return None
    try:
        return price(energy_kwh, parse_region(label))
    except ValueError:
        return None


@dataclass(frozen=True)
class Basis:
    """What every energy figure of a report counts: a scope, an attribution, gross or net."""

    scope: str = DEFAULT_SCOPE
    attribution: str = DEFAULT_ATTRIBUTION
    net: bool = False

    @property
    def text(self) -> str:
        """``training, attributed`` or ``run, tracker, net``: the header suffix."""
        return ", ".join([self.scope, self.attribution, *(["net"] if self.net else [])])


def shares(run: LoadedRun) -> tuple[float, float]:
    """(CPU share, RAM share) of the machine the run was granted; 1 where unrecorded."""
    attribution = run.metrics.attribution if run.metrics else None
    return (attribution.cpu_share, attribution.ram_share) if attribution else (1.0, 1.0)


def idle_kwh(run: LoadedRun, duration_s: float, attribution: str) -> float | None:
    """The idle baseline's energy over ``duration_s``, attributed as the run's energy is;
    None when the session has no baseline."""
    idle = run.idle
    if idle is None:
        return None
    if attribution == "tracker":
        watts = idle.cpu_w + idle.ram_w + (idle.gpu_w if run.spec and run.spec.hardware.gpu_count
                                           else 0.0)
    else:
        cpu, ram = shares(run)
        own = run.spec.hardware.gpu_count if run.spec else 0
        gpu = idle.gpu_w * min(1.0, own / idle.gpu_count) if idle.gpu_count else 0.0
        watts = idle.cpu_w * cpu + idle.ram_w * ram + gpu
    return watts * duration_s / 3.6e6


def run_energy(run: LoadedRun, scope: str, attribution: str = DEFAULT_ATTRIBUTION,
               net: bool = False) -> float | None:
    """The run's energy in ``scope``, kWh: attributed (CPU and RAM energy x the shares
    granted, plus its own GPUs, which its tracker alone sees) or as its tracker saw it;
    net subtracts the idle baseline's power over the scope's duration. None without a
    tracker total, or net without a baseline."""
    assert run.metrics is not None and run.metrics.scopes is not None
    window = getattr(run.metrics.scopes, scope)
    energy = window.energy
    if energy is None:
        return None
    if attribution == "tracker":
        value = energy.energy_kwh
    else:
        cpu, ram = shares(run)
        value = energy.cpu_kwh * cpu + energy.gpu_kwh + energy.ram_kwh * ram
    if net:
        idle = idle_kwh(run, window.duration_s, attribution)
        return None if idle is None else value - idle
    return value


def run_figures(run: LoadedRun, basis: Basis) -> dict[str, float | None]:
    """Headline figures of one usable run on ``basis``; CO2 re-priced in its home region."""
    metrics, spec = run.metrics, run.spec
    assert metrics is not None and metrics.scopes is not None and spec is not None
    window = getattr(metrics.scopes, basis.scope)
    energy = run_energy(run, basis.scope, basis.attribution, basis.net)
    accuracy = 100 * metrics.test_accuracy if metrics.test_accuracy is not None else None
    return {
        "time_s": window.duration_s,
        "accuracy_pct": accuracy,
        "energy_kwh": energy,
        # Re-priced with harness.regions.price, not copied from the CSV: the same function
        # prices every other region, and the tests hold it equal to the tracker's figure.
        "co2_kg": _price(energy, spec.home_region),
        "images_per_s": metrics.speed.images_per_s,
        "wh_per_accuracy_point": (1000 * energy / accuracy
                                  if energy is not None and accuracy else None),
    }


def _phases(runs: tuple[LoadedRun, ...]) -> dict[str, dict[str, Stat | None]]:
    def window(run: LoadedRun, name: str) -> Any:
        assert run.metrics is not None and run.metrics.scopes is not None
        if name == "training":
            return run.metrics.scopes.training
        return next((w for w in run.metrics.phases if w.name == name), None)

    result = {}
    for name in PHASES:
        windows = [window(run, name) for run in runs]
        result[name] = {
            "time_s": summarize(w.duration_s if w else None for w in windows),
            "energy_kwh": summarize(w.energy.energy_kwh if w and w.energy else None
                                    for w in windows)}
    return result


def _curves(runs: tuple[LoadedRun, ...]) -> dict[int, dict[str, Stat | None]]:
    collected: dict[int, dict[str, list[float | None]]] = {}
    for run in runs:
        if run.history is None:
            continue
        cumulative: float | None = 0.0
        for record in run.history.epochs:
            slot = collected.setdefault(record.epoch, {"accuracy_pct": [],
                                                       "val_accuracy_pct": [],
                                                       "energy_kwh": []})
            slot["accuracy_pct"].append(100 * record.accuracy)
            slot["val_accuracy_pct"].append(100 * record.val_accuracy)
            if cumulative is not None and record.energy is not None:
                cumulative += record.energy.energy_kwh
            else:
                cumulative = None
            slot["energy_kwh"].append(cumulative)
    return {epoch: {key: summarize(values) for key, values in slot.items()}
            for epoch, slot in sorted(collected.items())}


# --- building -----------------------------------------------------------------------------


def _power(runs: tuple[LoadedRun, ...]) -> tuple[dict[str, str], dict[str, str], bool]:
    texts: dict[str, list[str]] = {c: [] for c in COMPONENTS}
    estimated: dict[str, str] = {}
    fallback = False
    for run in runs:
        for entry in run.metrics.power if run.metrics else []:
            if entry.method == "none":
                text = "none"
            else:
                text = f"{'measured' if entry.measured else 'estimated'} ({entry.method})"
                if not entry.measured:
                    estimated.setdefault(entry.component, entry.detail)
            fallback = fallback or entry.fallback
            if text not in texts[entry.component]:
                texts[entry.component].append(text)
    return ({c: " / ".join(t) or "unknown" for c, t in texts.items()}, estimated, fallback)


def _backend(runs: tuple[LoadedRun, ...]) -> str:
    names: list[str] = []
    for run in runs:
        if run.outcome is None:
            continue
        name = run.outcome.backend
        if run.outcome.provenance.get("fallback_reason"):
            name = f"{name} (fallback)"  # --backend auto found no Docker daemon
        if name not in names:
            names.append(name)
    return " / ".join(names) or "?"


def _admit(runs: list[LoadedRun], name: str, warnings: list[str],
           left_out: list[LeftOut]) -> tuple[tuple[LoadedRun, ...], str | None]:
    """The usable runs of a group if comparable; else none, with the reason."""
    candidates = [run for run in runs if run.usable]
    differences = grouping.incomparable(candidates) if len(candidates) > 1 else {}
    if not differences:
        return tuple(candidates), None
    refused = ", ".join(differences)
    warnings.append(
        f"{name}: runs not comparable, left out of every figure ("
        + " | ".join(f"{key} differs: {text}" for key, text in differences.items())
        + "); re-run them with the same settings, data, code and versions, or report the "
        "sessions separately")
    left_out.extend(LeftOut(run.run_dir.name, run.session, "not comparable",
                            f"{refused} differ within {name} (see warnings)")
                    for run in candidates)
    return (), refused


def _group(key: tuple[str, str, str], runs: list[LoadedRun], regions: list[str], basis: Basis,
           warnings: list[str], left_out: list[LeftOut]) -> Group:
    scenario, variant, hardware = key
    name = f"{scenario}/{'' if variant == 'baseline' else variant + '/'}{hardware}"
    usable, refused = _admit(runs, name, warnings, left_out)
    described = usable or tuple(r for r in runs if r.metrics and r.metrics.dataset) or tuple(runs)
    first = described[0]
    spec = first.spec
    data = first.metrics.dataset if first.metrics else None
    power, estimated, fallback = _power(usable or described)
    per_run = [run_figures(run, basis) for run in usable]
    figures = {k: summarize(f[k] for f in per_run) for k in FIGURES}
    energies = [f["energy_kwh"] for f in per_run]
    return Group(
        scenario=scenario, variant=variant, hardware=hardware,
        device=spec.hardware.device if spec else "?", label=hardware,
        runs=tuple(runs), usable=usable, refused=refused,
        dataset=data.label if data else (spec.dataset.describe() if spec else "?"),
        synthetic=(data.kind == "synthetic") if data else bool(spec and spec.dataset.kind
                                                               == "synthetic"),
        verified=all(r.metrics.dataset.verified for r in usable
                     if r.metrics and r.metrics.dataset),
        backend=_backend(tuple(runs)), home_region=spec.home_region if spec else None,
        power=power, estimated=estimated, fallback=fallback,
        figures=figures,
        co2_by_region={label: summarize(_price(e, label) for e in energies) for label in regions},
        phases=_phases(usable), curves=_curves(usable),
        workload=grouping.workload(usable[0]) if usable else "",
        seeds=tuple(r.spec.seed for r in usable if r.spec),
        process_estimated_s=summarize(r.metrics.scopes.process.estimated_s for r in usable
                                      if r.metrics and r.metrics.scopes),
    )


def _regions(runs: list[LoadedRun], warnings: list[str]) -> list[RegionInfo]:
    """Every region declared by the runs, home regions first, once each."""
    labels: list[str] = []
    homes: list[str] = []
    for run in runs:
        if run.spec is None:
            continue
        homes.append(run.spec.home_region)
        for label in [run.spec.home_region, *run.spec.regions]:
            if label not in labels:
                labels.append(label)
    labels.sort(key=lambda label: label not in homes)  # stable: declared order otherwise
    infos = []
    for label in labels:
        try:
            infos.append(RegionInfo(label, carbon_intensity(parse_region(label))))
        except ValueError as exc:
            # Written by another CodeCarbon version that knew this region: say so, go on.
            warnings.append(f"region {label!r} left out: {exc}")
    return infos


def pairs(group: Group, base: Group, key: str) -> list[tuple[float, float]] | None:
    """The two groups' values of ``key`` paired by seed, when every run of each side has
    a distinct seed and the two sides have the same seeds (at least two); else None."""
    a, b = group.figures.get(key), base.figures.get(key)
    if a is None or b is None or len(group.seeds) != len(a.values) \
            or len(base.seeds) != len(b.values):
        return None
    mine, theirs = dict(zip(group.seeds, a.values, strict=True)), \
        dict(zip(base.seeds, b.values, strict=True))
    if (len(mine) != len(group.seeds) or len(theirs) != len(base.seeds)
            or set(mine) != set(theirs) or len(mine) < 2):
        return None
    return [(mine[seed], theirs[seed]) for seed in sorted(mine)]


def compare_ratio(group: Group, base: Group, key: str) -> Comparison | None:
    """``group`` / ``base`` for ``key``: paired by seed where the runs pair up, else Welch."""
    paired = pairs(group, base, key)
    if paired is not None:
        return paired_ratio(paired)
    return ratio(group.values(key), base.values(key))


def compare_difference(group: Group, base: Group, key: str) -> Comparison | None:
    """``group`` - ``base`` for ``key``: paired by seed where the runs pair up, else Welch."""
    paired = pairs(group, base, key)
    if paired is not None:
        return paired_difference(paired)
    return difference(group.values(key), base.values(key))


def compare(group: Group, base: Group) -> HardwareComparison:
    """``group`` against ``base`` on the per-run values of the report's basis."""
    time = compare_ratio(group, base, "time_s")
    return HardwareComparison(
        group=group, baseline=base,
        speedup=time.inverted() if time else None,
        energy_ratio=compare_ratio(group, base, "energy_kwh"),
        co2_ratio=compare_ratio(group, base, "co2_kg"),
        accuracy_diff_pp=compare_difference(group, base, "accuracy_pct"),
    )


def _baselines(groups: list[Group], baseline: str | None) -> list[HardwareComparison]:
    """Pair every group with the baseline hardware of the same workload and variant.

    The baseline is ``baseline`` if given; otherwise the first CPU hardware of each
    workload (the first hardware if none is a CPU), so a GPU is compared with a CPU.
    A baseline in the same scenario is preferred to one in another scenario.
    """
    by_workload: dict[str, list[Group]] = {}
    for group in groups:
        by_workload.setdefault(group.workload, []).append(group)
    comparisons = []
    for members in by_workload.values():
        name = baseline or next((g.hardware for g in members if g.device == "cpu"),
                                members[0].hardware)
        candidates = [g for g in members if g.hardware == name]
        if not candidates:
            continue
        for group in members:
            if group.hardware == name:
                continue
            base = next((c for c in candidates if c.scenario == group.scenario), candidates[0])
            comparisons.append(compare(group, base))
    return comparisons


def dominates(a: Group, b: Group) -> bool:
    """``a`` dominates ``b`` when it is distinguishably better on CO2 or accuracy and not
    distinguishably worse on the other."""
    co2 = compare_ratio(a, b, "co2_kg")
    accuracy = compare_difference(a, b, "accuracy_pct")
    if co2 is None or accuracy is None:
        return False
    better_co2 = co2.distinguishable and co2.estimate < 1
    worse_co2 = co2.distinguishable and co2.estimate > 1
    better_acc = accuracy.distinguishable and accuracy.estimate > 0
    worse_acc = accuracy.distinguishable and accuracy.estimate < 0
    return (better_co2 and not worse_acc) or (better_acc and not worse_co2)


def pareto_front(groups: list[Group]) -> tuple[tuple[str, ...], bool]:
    """(names of the non-dominated groups, whether any group was dominated)."""
    dominated = {b.name for b in groups for a in groups if a is not b and dominates(a, b)}
    return tuple(g.name for g in groups if g.name not in dominated), bool(dominated)


def _noisy(group: Group) -> str:
    return ", ".join(f"{FIGURES[k]} {100 * s.cv:.0f}%" for k, s in group.figures.items()
                     if s is not None and s.noisy and s.cv is not None)


def _session_info(item: LoadedSession) -> SessionInfo:
    session = item.session
    if session is None:
        return SessionInfo(name=item.name, host=None, backend=None, commit=None, dirty=None,
                           idle=None)
    idle = None
    if session.idle is not None:
        kind = "estimated" if session.idle.estimated else "measured"
        idle = f"{session.idle.total_w:.1f} W ({kind})"
    elif session.idle_note:
        idle = session.idle_note
    return SessionInfo(name=item.name, host=session.host.hostname,
                       backend=str(session.backend.get("backend") or "") or None,
                       commit=session.code.commit, dirty=session.code.dirty, idle=idle,
                       concurrent=tuple(session.concurrent_sessions))


def _run_warnings(run: LoadedRun, warnings: list[str]) -> None:
    for note in run.notes:
        warnings.append(f"{run.name}: {note}")
    metrics = run.metrics
    if not run.usable or metrics is None:
        return
    if metrics.load is not None and metrics.load.flagged:
        warnings.append(f"{run.name}: the machine was busy with other work during this run "
                        f"({metrics.load.background_cpus:.2f} CPUs on average, over the "
                        f"{BACKGROUND_LOAD_LIMIT} limit): its time and energy are disturbed")
    if metrics.dataset is not None and not metrics.dataset.verified:
        warnings.append(f"{run.name}: trained on {metrics.dataset.label}: "
                        f"{metrics.dataset.verification}")
    slurm = run.outcome.slurm if run.outcome is not None else None
    if slurm is not None and slurm.exclusive is False:
        warnings.append(f"{run.name}: its Slurm job shared node {slurm.node or '?'} with other "
                        "jobs (slurm.exclusive: false): the tracker's CPU and RAM figures and "
                        "the node's energy include their work")


def build_report(sessions: list[LoadedSession], *, baseline: str | None = None,
                 scope: str = DEFAULT_SCOPE, attribution: str = DEFAULT_ATTRIBUTION,
                 net: bool = False, warnings: list[str] | None = None) -> Report:
    """Group, check and summarise the sessions into a :class:`Report` (pure: reads no file).

    Raises:
        UserError: ``baseline`` names no hardware of any run, or ``scope`` or
            ``attribution`` is unknown.
    """
    if scope not in SCOPES:
        raise UserError(f"unknown scope {scope!r}", key="--scope",
                        fix=f"use one of {', '.join(SCOPES)}")
    if attribution not in ATTRIBUTIONS:
        raise UserError(f"unknown attribution {attribution!r}", key="--attribution",
                        fix=f"use one of {', '.join(ATTRIBUTIONS)}")
    basis = Basis(scope=scope, attribution=attribution, net=net)
    all_warnings = list(warnings or [])
    runs = _unique(sessions, all_warnings)
    groups_runs: dict[tuple[str, str, str], list[LoadedRun]] = {}
    left_out: list[LeftOut] = []
    for run in runs:
        _run_warnings(run, all_warnings)
        if not run.usable:
            left_out.append(LeftOut(run.run_id, run.session, run.status.value,
                                    run.reason or "-"))
        if run.spec is None:
            continue
        key = (run.spec.scenario, run.spec.variant, run.spec.hardware.name)
        groups_runs.setdefault(key, []).append(run)
    regions = _regions(runs, all_warnings)
    labels = [info.label for info in regions]
    groups = [_group(key, members, labels, basis, all_warnings, left_out)
              for key, members in groups_runs.items()]
    scenarios = {(g.scenario, g.variant) for g in groups}
    if len(scenarios) > 1:
        groups = [_relabel(g) for g in groups]
    for group in groups:
        noisy = _noisy(group)
        if noisy and group.refused is None:
            all_warnings.append(
                f"{group.name}: results vary by more than {100 * CV_LIMIT:.0f}% (coefficient "
                f"of variation) over {len(group.usable)} runs ({noisy}): add repeats or quiet "
                "the machine")
    if baseline is not None and baseline not in {g.hardware for g in groups}:
        raise UserError(f"no hardware named {baseline!r} in these results", key="--baseline",
                        fix="choose one of: " + ", ".join(dict.fromkeys(g.hardware
                                                                       for g in groups)))
    reported = [g for g in groups if g.refused is None and g.usable]
    front, resolved = pareto_front(reported)
    roots = sorted({item.path.parent for item in sessions}, key=lambda p: -len(str(p)))
    return Report(
        basis=basis, groups=tuple(groups), regions=tuple(regions),
        comparisons=tuple(_baselines(reported, baseline)), left_out=tuple(left_out),
        sessions=tuple(_session_info(item) for item in sessions),
        warnings=tuple(_relative(w, roots) for w in dict.fromkeys(all_warnings)),
        baseline=baseline,
        statuses=tuple(sorted(Counter(run.status.value for run in runs).items())),
        pareto=front, pareto_resolved=resolved,
    )


def _unique(sessions: list[LoadedSession], warnings: list[str]) -> list[LoadedRun]:
    """Every usable run once: a run found in two places (a copied session) is the same
    measurement, and averaging it twice would shrink its interval for nothing. Runs that
    are not usable are all listed, each with its own verdict."""
    seen: dict[tuple[str, str], LoadedRun] = {}
    runs = []
    for item in sessions:
        for run in item.runs:
            key = (run.run_file.session_id, run.run_id) if run.run_file and run.usable else None
            if key is not None and key in seen:
                warnings.append(f"{run.name} is the same run as {seen[key].name} (same session "
                                "id and run id): counted once")
                continue
            if key is not None:
                seen[key] = run
            runs.append(run)
    return runs


def _relabel(group: Group) -> Group:
    return replace(group, label=group.name)


def _relative(text: str, roots: list[Path]) -> str:
    """Strip the directories that hold the sessions, so messages read the same anywhere."""
    for root in roots:
        text = text.replace(f"{root}/", "")
    return text
