"""The strategies report: each training variant against the baseline, with intervals.

A scenario that declares variants (early stopping, a larger batch with a scaled learning
rate, pruning, mixed precision, XLA...) runs each beside its baseline (the scenario's own
training, the research workload). For every variant this compares, on the same hardware
and in the report's basis (training scope by default): the accuracy change in points, the
time, energy and CO2 ratios, the energy to the target accuracy, and whether each
difference is distinguishable. The greener place is a strategy too: the same energy
priced in the cleanest declared region against the home region. One line names the
greenest variant within the scenario's accuracy tolerance, with the rule that chose it.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass

from harness.report.model import (
    Group,
    Report,
    compare_difference,
    compare_ratio,
    pareto_front,
)
from harness.stats import Comparison, Stat, summarize

RULE = ("a variant qualifies when its accuracy difference against the baseline is at least "
        "-{tol} points (estimate) and its 95% interval does not lie wholly below -{tol}; among "
        "those, the greenest is the one whose CO2 ratio is distinguishably below 1 and lowest; "
        "if none is distinguishably below 1, none is named")


@dataclass(frozen=True)
class StrategyRow:
    """One variant against the baseline variant of the same scenario on the same hardware."""

    group: Group
    baseline: Group
    accuracy_pp: Comparison | None
    time: Comparison | None
    energy: Comparison | None
    co2: Comparison | None
    epochs_run: Stat | None
    target_kwh: Stat | None
    """Energy until validation accuracy first reached the target (runs that reached it)."""
    target_reached: tuple[int, int]
    """(runs that reached the target, runs with a target)."""
    pruning: str | None
    """What pruning achieved (sparsity, sizes, multiply-adds, inference time), if pruned."""

    @property
    def name(self) -> str:
        return self.group.variant


@dataclass(frozen=True)
class RegionSaving:
    """The same baseline energy priced in the cleanest declared region instead of home."""

    scenario: str
    hardware: str
    home: str
    cleanest: str
    ratio: float
    """CO2 in the cleanest region / CO2 at home: the ratio of their carbon intensities."""
    saving_kg: Stat | None
    """Home CO2 - cleanest CO2 per run (kg CO2eq)."""


@dataclass(frozen=True)
class Strategies:
    rows: tuple[StrategyRow, ...]
    regions: tuple[RegionSaving, ...]
    tolerance_pp: float
    greenest: str
    """One line: the greenest qualifying variant, or why none is named."""
    front: tuple[str, ...]
    front_resolved: bool


def _target(group: Group) -> tuple[Stat | None, tuple[int, int]]:
    targets = [r.metrics.target for r in group.usable if r.metrics and r.metrics.target]
    reached = [t for t in targets if t.reached and t.energy_kwh is not None]
    return summarize(t.energy_kwh for t in reached), (len(reached), len(targets))


def _pruning_text(group: Group) -> str | None:
    records = [r.metrics.training.pruning for r in group.usable
               if r.metrics and r.metrics.training.pruning]
    if not records:
        return None
    sparsity = statistics.fmean(rec["sparsity"]["pruned_sparsity"] for rec in records)
    size = records[0]["size_bytes"]
    macs = records[0]["macs_per_image"]
    speed = statistics.fmean(float(rec["inference"]["speedup"]) for rec in records)
    return (f"{group.variant}: {100 * sparsity:.1f}% of the pruned kernels' weights are zero; "
            f"weights {size['saved_gzip_bytes'] / 1e3:.0f} kB gzip-compressed and "
            f"{size['bitmask_bytes'] / 1e3:.0f} kB as bitmask + values, against "
            f"{size['dense_bytes'] / 1e3:.0f} kB dense; non-zero multiply-adds "
            f"{macs['nonzero_macs'] / macs['dense_macs']:.2f}x of dense per image (only a "
            f"sparse kernel would skip the rest); inference of the pruned model against the same "
            f"model with its zeros filled: {speed:.2f}x as fast (TensorFlow's dense kernels do "
            f"not skip zeros).")


def _row(group: Group, base: Group) -> StrategyRow:
    target_kwh, reached = _target(group)
    return StrategyRow(
        group=group, baseline=base,
        accuracy_pp=compare_difference(group, base, "accuracy_pct"),
        time=compare_ratio(group, base, "time_s"),
        energy=compare_ratio(group, base, "energy_kwh"),
        co2=compare_ratio(group, base, "co2_kg"),
        epochs_run=summarize(r.metrics.training.epochs_run for r in group.usable if r.metrics),
        target_kwh=target_kwh, target_reached=reached, pruning=_pruning_text(group))


def _qualifies(row: StrategyRow, tolerance: float) -> bool:
    accuracy = row.accuracy_pp
    if accuracy is None:
        return False
    wholly_below = accuracy.high is not None and accuracy.high < -tolerance
    return accuracy.estimate >= -tolerance and not wholly_below


def _greenest(rows: list[StrategyRow], tolerance: float) -> str:
    qualified = [r for r in rows if _qualifies(r, tolerance)]
    greener = [r for r in qualified if r.co2 is not None and r.co2.distinguishable
               and r.co2.estimate < 1]
    if not greener:
        told = ("no variant is distinguishably greener than the baseline"
                if qualified else "no variant stays within the accuracy tolerance")
        return f"Greenest strategy: none named: {told} (rule: {RULE.format(tol=tolerance)})."
    best = min(greener, key=lambda r: r.co2.estimate)  # type: ignore[union-attr]
    co2, accuracy = best.co2, best.accuracy_pp
    assert co2 is not None and accuracy is not None
    return (f"Greenest strategy: {best.name} on {best.group.hardware}: CO2 x{co2.estimate:.3g} "
            f"[{co2.low:.3g}, {co2.high:.3g}] of the baseline, accuracy {accuracy.estimate:+.2g} "
            f"points (rule: {RULE.format(tol=tolerance)}).")


def _regions(report: Report, baselines: list[Group]) -> list[RegionSaving]:
    savings = []
    intensity = {info.label: info.intensity.g_per_kwh for info in report.regions}
    for base in baselines:
        home = base.home_region
        if home is None or home not in intensity:
            continue
        declared = [label for label in base.co2_by_region if label in intensity]
        cleanest = min(declared, key=lambda label: intensity[label])
        home_co2 = base.co2_by_region.get(home)
        clean_co2 = base.co2_by_region.get(cleanest)
        saving = (summarize(h - c for h, c in zip(home_co2.values, clean_co2.values, strict=True))
                  if home_co2 and clean_co2 else None)
        savings.append(RegionSaving(scenario=base.scenario, hardware=base.hardware, home=home,
                                    cleanest=cleanest,
                                    ratio=intensity[cleanest] / intensity[home] if intensity[home]
                                    else float("nan"), saving_kg=saving))
    return savings


def strategies(report: Report) -> Strategies | None:
    """The strategies comparison of a report, or None when no scenario declared variants."""
    groups = [g for g in report.with_figures]
    if not any(g.variant != "baseline" for g in groups):
        return None
    baselines = {(g.scenario, g.hardware): g for g in groups if g.variant == "baseline"}
    rows = [_row(g, baselines[(g.scenario, g.hardware)]) for g in groups
            if g.variant != "baseline" and (g.scenario, g.hardware) in baselines]
    tolerances = [r.spec.accuracy_tolerance_pp for g in groups for r in g.usable if r.spec]
    tolerance = tolerances[0] if tolerances else 1.0
    variant_groups = [g for g in groups if (g.scenario, g.hardware) in baselines]
    front, resolved = pareto_front(variant_groups)
    return Strategies(rows=tuple(rows), regions=tuple(_regions(report, list(baselines.values()))),
                      tolerance_pp=tolerance, greenest=_greenest(rows, tolerance),
                      front=front, front_resolved=resolved)
