"""The report's tables as (headers, rows) of text, and the notes that explain them.

Every energy or CO2 cell carries ``*`` when any component behind it was estimated
(never called measured), every header names its scope, and every ratio shows its 95%
interval or says it has none; rendering (text, Markdown) is :mod:`.render`'s job.
"""

from __future__ import annotations

from typing import Any

from harness.report.model import (
    COMPONENTS,
    ENERGY_FIGURES,
    FIGURES,
    PHASES,
    SCOPES,
    Group,
    Report,
)
from harness.results import LoadedRun
from harness.stats import CV_LIMIT, fmt_comparison, fmt_num, fmt_stat

ESTIMATE_MARK = "*"
NOISY_MARK = "!"
Table = tuple[list[str], list[list[str]]]

SCOPE_TEXT = {
    "training": "training scope: fit with its per-epoch validation",
    "run": "run scope: what the tracker saw (set-up, training, final evaluation)",
    "process": "process scope: from process start; the untracked start (interpreter, "
               "imports, tracker start) is priced at the run's mean power, an estimate",
}


def mark(text: str, estimated: bool, noisy: bool = False) -> str:
    """``text`` with ``*`` when estimated and ``!`` when too noisy to trust."""
    if text == "-":
        return text
    return text + (ESTIMATE_MARK if estimated else "") + (NOISY_MARK if noisy else "")


def _estimated(group: Group, key: str, scope: str) -> bool:
    if key in ENERGY_FIGURES:
        return bool(group.estimated) or scope == "process"
    return key == "time_s" and scope == "process" and False


def _header(key: str, report: Report) -> str:
    text = FIGURES[key]
    if key == "time_s":
        return text.replace(")", f", {report.scope})")
    if key in ENERGY_FIGURES:
        suffix = report.basis.text
        return text.replace(")", f", {suffix})") if ")" in text else f"{text} ({suffix})"
    return text


def _variants(report: Report) -> bool:
    return any(g.variant != "baseline" for g in report.groups)


def summary_table(report: Report) -> Table:
    """One row per scenario (variant) and hardware: the headline figures with their CI."""
    variants = _variants(report)
    headers = ["scenario", *(["variant"] if variants else []), "hardware", "device", "dataset",
               "backend", "runs"]
    headers += [_header(k, report) for k in FIGURES]
    headers += [f"{name} power" for name in COMPONENTS.values()]
    rows = []
    for group in report.groups:
        row = [group.scenario, *([group.variant] if variants else []), group.hardware,
               group.device, group.dataset, group.backend, runs_text(group)]
        for key in FIGURES:
            stat = group.figures.get(key)
            row.append(mark(fmt_stat(stat), _estimated(group, key, report.scope),
                            bool(stat and stat.noisy)))
        row += [group.power.get(c, "unknown") for c in COMPONENTS]
        rows.append(row)
    return headers, rows


def runs_text(group: Group) -> str:
    """``n=4 (+1 interrupted)``: the runs averaged, then the others by status."""
    others: dict[str, int] = {}
    for run in group.excluded:
        status = "not comparable" if group.refused and run.usable else run.status.value
        others[status] = others.get(status, 0) + 1
    if not others:
        return f"n={len(group.usable)}"
    extra = ", ".join(f"{n} {status}" for status, n in others.items())
    return f"n={len(group.usable)} ({'' if not group.usable else '+'}{extra})"


def regions_table(report: Report) -> Table:
    """CO2 (kg CO2eq) of each hardware's energy in every declared region."""
    groups = report.with_figures
    headers = ["region", "g CO2/kWh", "data", "year", *[g.label for g in groups]]
    sources = data_sources(report)
    rows = []
    homes = {g.home_region for g in groups}
    for info in report.regions:
        number = sources.index(_source_key(info)) + 1
        label = info.label + (" (home)" if info.label in homes else "")
        row = [label, f"{info.intensity.g_per_kwh:.1f}", f"[{number}] {info.intensity.method}",
               info.intensity.year or "not given"]
        for group in groups:
            stat = group.co2_by_region.get(info.label)
            row.append(mark(fmt_stat(stat), bool(group.estimated) or report.scope == "process"))
        rows.append(row)
    return headers, rows


def _source_key(info: object) -> str:
    return info.intensity.source  # type: ignore[attr-defined]


def data_sources(report: Report) -> list[str]:
    """The distinct data sources of the regions, in order (footnote numbers)."""
    return list(dict.fromkeys(_source_key(info) for info in report.regions))


def _verdict(c: object) -> str:
    parts = []
    for name, comparison, _better in (("speed", c.speedup, "faster"),  # type: ignore[attr-defined]
                                     ("energy", c.energy_ratio, "less"),  # type: ignore[attr-defined]
                                     ("CO2", c.co2_ratio, "less")):  # type: ignore[attr-defined]
        if comparison is None:
            continue
        if comparison.distinguishable:
            if name == "speed":
                parts.append("faster" if comparison.estimate > 1 else "slower")
            else:
                parts.append(f"{'less' if comparison.estimate < 1 else 'more'} {name}")
    return ", ".join(parts) if parts else "not distinguishable"


def _repeats(c: object) -> str:
    needed = [x.repeats_needed for x in (c.speedup, c.energy_ratio)  # type: ignore[attr-defined]
              if x is not None and not x.distinguishable and x.repeats_needed]
    if not needed:
        return "-"
    worst = max(needed)
    return f">{worst - 1}" if worst > 1000 else str(worst)


def comparison_table(report: Report) -> Table:
    """Each hardware against its baseline: ratios with 95% intervals, and a verdict."""
    scope = report.scope
    basis = report.basis.text
    headers = ["scenario", "hardware", "baseline", f"speed-up (x, {scope})",
               f"energy ratio ({basis})", f"CO2 ratio ({basis})", "accuracy diff (pp)",
               "verdict", "repeats to resolve"]
    rows = []
    for c in report.comparisons:
        base = (c.baseline.hardware if c.baseline.scenario == c.group.scenario
                else c.baseline.name)
        estimated = c.estimated or scope == "process"
        rows.append([c.group.scenario, c.group.hardware, base, fmt_comparison(c.speedup),
                     mark(fmt_comparison(c.energy_ratio), estimated),
                     mark(fmt_comparison(c.co2_ratio), estimated),
                     fmt_comparison(c.accuracy_diff_pp, signed=True), _verdict(c), _repeats(c)])
    return headers, rows


def scopes_table(report: Report) -> Table:
    """Time and energy of each group in the three nested scopes (mean ± CI)."""
    from harness.report.model import run_energy
    from harness.stats import summarize

    attribution = report.basis.attribution
    headers = ["scenario", "hardware"]
    for scope in SCOPES:
        headers += [f"{scope} (s)", f"{scope} (kWh, {attribution})"]
    headers.append("process: untracked s (estimated)")
    rows = []
    for group in report.with_figures:
        row = [group.scenario, group.hardware]
        for scope in SCOPES:
            times = summarize(getattr(r.metrics.scopes, scope).duration_s  # type: ignore[union-attr]
                              for r in group.usable)
            energy = summarize(run_energy(r, scope, attribution) for r in group.usable)
            row += [fmt_stat(times),
                    mark(fmt_stat(energy), bool(group.estimated) or scope == "process")]
        row.append(fmt_stat(group.process_estimated_s))
        rows.append(row)
    return headers, rows


def attribution_table(report: Report) -> Table:
    """Machine and attributed energy, gross and net, per group (kWh, mean ± CI)."""
    from harness.report.model import run_energy, shares
    from harness.stats import summarize

    headers = ["scenario", "hardware", "CPU share", "RAM share", "tracker (kWh, run)",
               "attributed (kWh, run)", "attributed net (kWh, run)", "machine window (s)",
               "machine (kWh, window)", "machine net (kWh, window)", "idle (W)"]
    rows = []
    for group in report.with_figures:
        runs = group.usable
        machine = [r.outcome.machine for r in runs if r.outcome and r.outcome.machine]
        idle = next((r.idle for r in runs if r.idle is not None), None)
        machine_net = [m.energy.energy_kwh - idle.total_w * m.window_s / 3.6e6
                       for m in machine] if idle else []
        mark_machine = bool(group.estimated) or any(not p.measured and p.method != "none"
                                                    for m in machine for p in m.methods)
        rows.append([
            group.scenario, group.hardware,
            fmt_num(summarize(shares(r)[0] for r in runs).mean),  # type: ignore[union-attr]
            fmt_num(summarize(shares(r)[1] for r in runs).mean),  # type: ignore[union-attr]
            mark(fmt_stat(summarize(run_energy(r, "run", "tracker") for r in runs)),
                 bool(group.estimated)),
            mark(fmt_stat(summarize(run_energy(r, "run") for r in runs)), bool(group.estimated)),
            mark(fmt_stat(summarize(run_energy(r, "run", net=True) for r in runs)),
                 bool(group.estimated)),
            fmt_stat(summarize(m.window_s for m in machine)),
            mark(fmt_stat(summarize(m.energy.energy_kwh for m in machine)), mark_machine),
            mark(fmt_stat(summarize(machine_net)), mark_machine),
            (mark(f"{idle.total_w:.1f}", idle.estimated) if idle else "-"),
        ])
    return headers, rows


def attribution_notes(report: Report) -> list[str]:
    return [
        "Attributed: the run's own GPUs, plus its CPU and RAM energy in proportion to what "
        "it was granted (CPUs granted by cgroup quota or cpuset / host CPUs; memory limit / "
        "host memory; 1 when unlimited). Tracker: what the run's own CodeCarbon tracker "
        "reported (inside a container its CPU and RAM figures model the whole host, and it "
        "sees only its own GPUs). Machine: CodeCarbon in machine mode on the host around the "
        "run's whole window (every CPU, GPU and RAM), kept as machine-emissions.csv. Net: "
        "gross minus the idle baseline's power (measured once per session, attributed the "
        "same way) times the duration. Comparisons above use the "
        f"{report.basis.attribution}{' net' if report.basis.net else ''} energy.",
        *slurm_notes(report),
    ]


def slurm_notes(report: Report) -> list[str]:
    """Runs that were Slurm jobs: what stands for the machine scope, and Slurm's own
    energy (ConsumedEnergy of the worker's step) beside the tracker's, a cross-check."""
    from harness.report.model import run_energy
    from harness.stats import summarize

    lines, unconfigured = [], []
    for group in report.with_figures:
        jobs = [(r, r.outcome.slurm) for r in group.usable if r.outcome and r.outcome.slurm]
        if not jobs:
            continue
        pairs = [(s.consumed_energy_j / 3.6e6, run_energy(r, "run", "tracker"))
                 for r, s in jobs if s.consumed_energy_j is not None]
        if pairs:
            slurm_kwh = summarize(p[0] for p in pairs).mean  # type: ignore[union-attr]
            tracker_kwh = summarize(p[1] for p in pairs).mean  # type: ignore[union-attr]
            lines.append(f"Slurm energy, {group.scenario} {group.hardware}: ConsumedEnergy of "
                         f"the worker's job step {fmt_num(slurm_kwh)} kWh against the tracker's "
                         f"run scope {fmt_num(tracker_kwh)} kWh (n={len(pairs)}; the step's "
                         "window starts before the tracker's)")
        else:
            unconfigured.append(f"{group.scenario} {group.hardware}")
    if lines or unconfigured:
        lines.insert(0, "Slurm jobs have no machine figures: the submitting host is not their "
                     "machine; on an exclusive node the tracker saw the whole node.")
    if unconfigured:
        lines.append(f"Slurm energy: none recorded for {', '.join(unconfigured)} (the cluster "
                     "has no AcctGatherEnergyType plugin, or it read no counter): no "
                     "cross-check of CodeCarbon's figure.")
    return lines


def forecast_table(report: Report) -> Table:
    """The worker's forecast after epoch k against what the run then spent (run scope)."""
    from harness.stats import summarize

    headers = ["scenario", "hardware", "after epoch", "forecast (s)", "actual (s)",
               "forecast (kWh)", "actual (kWh, run, tracker)", "forecast / actual (energy)"]
    rows = []
    for group in report.with_figures:
        pairs = [(r.metrics.forecast, r.metrics.scopes) for r in group.usable  # type: ignore[union-attr]
                 if r.metrics and r.metrics.forecast and r.metrics.scopes
                 and r.metrics.scopes.run.energy]
        if not pairs:
            continue
        rows.append([
            group.scenario, group.hardware, str(pairs[0][0].after_epoch),
            fmt_stat(summarize(f.duration_s for f, _ in pairs)),
            fmt_stat(summarize(s.run.duration_s for _, s in pairs)),
            mark(fmt_stat(summarize(f.energy_kwh for f, _ in pairs)), bool(group.estimated)),
            mark(fmt_stat(summarize(s.run.energy.energy_kwh for _, s in pairs)),  # type: ignore[union-attr]
                 bool(group.estimated)),
            fmt_stat(summarize(f.energy_kwh / s.run.energy.energy_kwh  # type: ignore[union-attr]
                               for f, s in pairs)),
        ])
    return headers, rows


def target_table(report: Report) -> Table:
    """Time and energy until validation accuracy first reached the scenario's target."""
    from harness.stats import summarize

    headers = ["scenario", "hardware", "target", "reached", "epoch", "time to target (s)",
               "energy to target (kWh, tracker)"]
    rows = []
    for group in report.with_figures:
        targets = [r.metrics.target for r in group.usable if r.metrics and r.metrics.target]
        if not targets:
            continue
        reached = [t for t in targets if t.reached]
        rows.append([
            group.scenario, group.hardware, f"{100 * targets[0].accuracy:g}%",
            f"{len(reached)}/{len(targets)}",
            fmt_stat(summarize(t.epoch for t in reached)),
            fmt_stat(summarize(t.duration_s for t in reached)),
            mark(fmt_stat(summarize(t.energy_kwh for t in reached)), bool(group.estimated)),
        ])
    return headers, rows


def strategies_table(report: Report, strategies: Any) -> Table:
    """Each variant against the baseline: accuracy change, ratios with intervals, target."""
    basis = report.basis.text
    headers = ["scenario", "hardware", "strategy", "epochs run", "accuracy diff (pp)",
               f"time ratio ({report.scope})", f"energy ratio ({basis})", f"CO2 ratio ({basis})",
               "energy to target (kWh)", "verdict", "repeats to resolve CO2"]
    rows = []
    for row in strategies.rows:
        estimated = bool(row.group.estimated or row.baseline.estimated)
        reached, total = row.target_reached
        target = "-" if not total else f"{fmt_stat(row.target_kwh)} ({reached}/{total} reached)"
        rows.append([row.group.scenario, row.group.hardware, row.name, fmt_stat(row.epochs_run),
                     fmt_comparison(row.accuracy_pp, signed=True), fmt_comparison(row.time),
                     mark(fmt_comparison(row.energy), estimated),
                     mark(fmt_comparison(row.co2), estimated),
                     mark(target, estimated) if total else target, _strategy_verdict(row),
                     _needed(row.co2)])
    return headers, rows


def _needed(comparison: Any) -> str:
    """Repeats that would make a difference of the observed size distinguishable."""
    if comparison is None or comparison.distinguishable or not comparison.repeats_needed:
        return "-"
    needed = comparison.repeats_needed
    return f">{needed - 1}" if needed > 1000 else str(needed)


def _strategy_verdict(row: Any) -> str:
    parts = []
    if row.co2 is not None and row.co2.distinguishable:
        parts.append("less CO2" if row.co2.estimate < 1 else "more CO2")
    if row.time is not None and row.time.distinguishable:
        parts.append("faster" if row.time.estimate < 1 else "slower")
    if row.accuracy_pp is not None and row.accuracy_pp.distinguishable:
        parts.append("more accurate" if row.accuracy_pp.estimate > 0 else "less accurate")
    return ", ".join(parts) if parts else "not distinguishable"


def strategies_notes(report: Report, strategies: Any) -> list[str]:
    from harness.scenario import LR_RULES

    notes = [strategies.greenest]
    for saving in strategies.regions:
        kg = f" ({fmt_stat(saving.saving_kg)} kg CO2eq less per run)" if saving.saving_kg else ""
        notes.append(f"Greener place: the baseline's energy on {saving.hardware} priced in "
                     f"{saving.cleanest}, the cleanest declared region, instead of "
                     f"{saving.home}: CO2 x{saving.ratio:.3g}{kg}; the same factor applies to "
                     "every strategy.")
    notes += [row.pruning for row in strategies.rows if row.pruning]
    notes.append("Ratios are variant / baseline on the same hardware (below 1: less), ratios of "
                 "geometric means with 95% intervals on the logs: `p` when the runs pair up "
                 "by seed (each repeat's variants share its seed; paired t on the per-seed "
                 "log ratios), else Welch's; `n.d.`: not distinguishable. Learning-rate "
                 "scaling rules: "
                 + "; ".join(f"{k}: {v}" for k, v in LR_RULES.items()) + ".")
    if strategies.front:
        notes.append(("Pareto front among distinguishable differences (accuracy against CO2): "
                      + ", ".join(strategies.front)) if strategies.front_resolved else
                     "Pareto front: no variant is distinguishably better than another on "
                     "either axis.")
    return notes


def phases_table(report: Report) -> Table:
    """Set-up, training and evaluation: time (s) and energy (kWh) of each phase."""
    headers = ["scenario", "hardware"]
    for name in PHASES:
        headers += [f"{name} (s)", f"{name} (kWh)"]
    rows = []
    for group in report.with_figures:
        row = [group.scenario, group.hardware]
        for name in PHASES:
            phase = group.phases.get(name, {})
            row += [fmt_stat(phase.get("time_s")),
                    mark(fmt_stat(phase.get("energy_kwh")), bool(group.estimated))]
        rows.append(row)
    return headers, rows


def left_out_table(report: Report) -> Table:
    """Runs counted but not averaged in, with their status and the reason."""
    return (["session", "run", "status", "reason"],
            [[r.session, r.run, r.status, r.reason] for r in report.left_out])


def footnotes(report: Report) -> list[str]:
    """What the marks in the tables mean, naming the groups they apply to."""
    notes = [f"Scope: {SCOPE_TEXT[report.scope]}. Figures are means over repeats ± the "
             "half-width of their 95% confidence interval (Student's t); a single run (n=1) "
             "shows its value without interval. Failed, partial, damaged and incomparable runs "
             "are counted in `runs` and never averaged."]
    estimated: dict[tuple[str, str], list[str]] = {}
    for group in report.with_figures:
        for component, detail in group.estimated.items():
            estimated.setdefault((COMPONENTS[component], detail), []).append(group.label)
    if estimated:
        parts = "; ".join(f"the {component} of {', '.join(labels)} ({detail})"
                          for (component, detail), labels in estimated.items())
        notes.append(f"{ESTIMATE_MARK} estimated, not measured: CodeCarbon had no energy "
                     f"counter (RAPL/NVML) for {parts}. Energy and CO2 figures that include "
                     "them are estimates.")
    elif report.scope == "process":
        notes.append(f"{ESTIMATE_MARK} the process scope's untracked start is estimated.")
    fallback = [g.label for g in report.with_figures if g.fallback]
    if fallback:
        notes.append(f"CPU power of {', '.join(fallback)} uses CodeCarbon's fallback: the CPU "
                     "model is not in its database, so a default power per thread stands in "
                     "for the CPU's TDP.")
    noisy = [f"{g.label}: {n}" for g in report.with_figures if (n := _noisy_text(g))]
    if noisy:
        notes.append(f"{NOISY_MARK} coefficient of variation over {100 * CV_LIMIT:.0f}% "
                     f"({'; '.join(noisy)}): add repeats or quiet the machine.")
    fixed = [g.label for g in report.with_figures if len(g.seeds) > 1 and len(set(g.seeds)) == 1]
    if fixed:
        notes.append(f"Every repeat of {', '.join(fixed)} used the same seed: its intervals "
                     "show the machine's noise, not the training's robustness.")
    return notes


def _noisy_text(group: Group) -> str:
    return ", ".join(f"{FIGURES[k]} {100 * s.cv:.0f}%" for k, s in group.figures.items()
                     if s is not None and s.noisy and s.cv is not None)


def comparison_notes(report: Report) -> list[str]:
    return [
        f"Ratios in the {report.scope} scope: speed-up = baseline time / time; energy and CO2 "
        "ratio = hardware / baseline (below 1: less); CO2 in each one's home region. Each is "
        "a ratio of geometric means over repeats with its 95% interval [low, high]: marked "
        "`p` when the runs pair up by seed (Student's t on the per-pair log ratios), else "
        "Welch's t interval on the difference of the mean logs; `n.d.` (not "
        "distinguishable) when the interval includes 1 or a side has fewer than 2 runs. "
        "Accuracy difference: the same intervals on the points. `repeats to "
        "resolve`: repeats per hardware that would make a difference of the observed size "
        "distinguishable at the observed spread.",
    ]


# --- the per-run table `harness run` prints -----------------------------------------------


def run_rows(runs: list[LoadedRun], scope: str = "training") -> list[dict[str, str]]:
    """One row per run with its headline figures (estimates marked); failed runs show
    their status and reason only."""
    from harness.report.model import Basis, run_figures

    basis = Basis(scope=scope)

    rows = []
    for run in runs:
        spec, metrics = run.spec, run.metrics
        row = {
            "run": run.run_id,
            "status": run.status.value,
            "hardware": spec.hardware.name if spec else "?",
            "dataset": (metrics.dataset.label if metrics and metrics.dataset
                        else (spec.dataset.describe() if spec else "?")),
            "seed": str(spec.seed) if spec else "-",
        }
        if run.usable and metrics is not None:
            figures = run_figures(run, basis)
            estimated = any(not p.measured and p.method != "none" for p in metrics.power)
            row.update({
                "epochs": str(metrics.training.epochs_run),
                f"time (s, {scope})": fmt_num(figures["time_s"]),
                "test acc. (%)": fmt_num(figures["accuracy_pct"]),
                f"energy (kWh, {basis.text})": mark(fmt_num(figures["energy_kwh"]), estimated),
                f"CO2 home (kg, {basis.text})": mark(fmt_num(figures["co2_kg"]), estimated),
                "images/s": fmt_num(figures["images_per_s"]),
                "CPU power": next((f"{'measured' if p.measured else 'estimated'} ({p.method})"
                                   for p in metrics.power if p.component == "cpu"), "?"),
            })
        else:
            row["reason"] = (run.reason or "-")[:120]
        rows.append(row)
    return rows
