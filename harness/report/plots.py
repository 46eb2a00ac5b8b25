"""Plots of a :class:`~harness.report.model.Report`: PNG files, matplotlib's Agg renderer only.

Figures are built with :class:`matplotlib.figure.Figure` and never through pyplot, so no
GUI backend is ever selected and nothing global changes. Every plot says in its title
which scope its time and energy cover, whether the data were synthetic, and whether the
energy was estimated (``*``). Quantities are drawn as points with their 95% intervals,
never as bars (a bar's length means nothing on a log axis); an interval that reaches
below zero is clipped at the axis and the figure says so; point labels are moved apart
with adjustText so they do not cover one another.
"""

from __future__ import annotations

import io
import textwrap
from collections.abc import Callable
from pathlib import Path

from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from harness.fileio import write_atomic
from harness.report.model import Group, Report
from harness.stats import Stat

DPI = 120
#: A range of values wider than this factor is drawn on a log scale.
LOG_SCALE_RANGE = 20.0
PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
           "#7f7f7f", "#bcbd22", "#17becf"]


def _figure(width_in: float = 8.0, height_in: float = 5.0) -> Figure:
    figure = Figure(figsize=(width_in, height_in), dpi=DPI, layout="constrained")
    figure.set_facecolor("white")
    FigureCanvasAgg(figure)
    return figure


def _colours(count: int) -> list[str]:
    # tab10 is readable and colour-blind tolerable for the few groups a report has.
    return [PALETTE[i % len(PALETTE)] for i in range(count)]


def _label(group: Group, mixed_data: bool, energy: bool = True) -> str:
    """Legend text: synthetic data named when the plot mixes kinds; ``*`` marks a group
    whose plotted energy (or CO2) is partly estimated."""
    text = group.label
    if mixed_data and group.synthetic:
        text += " (synthetic)"
    if energy and group.estimated:
        text += " *"
    return text


def _title(text: str, report: Report, groups: tuple[Group, ...], *, scoped: bool = True,
           energy: bool = True) -> str:
    """The title, then a line naming the scope, the data kind and estimates."""
    facts = []
    if scoped:
        facts.append(f"{report.scope} scope, {report.basis.attribution} energy"
                     + (", net of idle" if report.basis.net else ""))
    if groups and all(g.synthetic for g in groups):
        facts.append("synthetic data (generated images, not CIFAR-10)")
    elif any(not g.verified and not g.synthetic for g in groups):
        facts.append("includes unverified CIFAR-10")
    if energy and any(g.estimated for g in groups):
        facts.append("* energy estimated, not measured")
    return text + ("\n" + textwrap.fill("; ".join(facts), width=90) if facts else "")


def _footnote(figure: Figure, groups: tuple[Group, ...], clipped: list[str]) -> None:
    notes = []
    components = sorted({c.upper() for g in groups for c in g.estimated})
    if components:
        notes.append(f"* estimated: CodeCarbon had no energy counter (RAPL/NVML) for "
                     f"{', '.join(components)} power")
    if clipped:
        notes.append("intervals reaching beyond a quantity's possible range (below zero, "
                     "above 100%) are cut at the axis: " + ", ".join(dict.fromkeys(clipped)))
    if notes:
        # supxlabel, not figure.text: constrained layout makes room for it.
        wrapped = [textwrap.fill(note, width=int(figure.get_figwidth() * 17)) for note in notes]
        figure.supxlabel("\n".join(wrapped), x=0.01, ha="left", fontsize=8, color="#555555")


def _energy_unit(values: list[float]) -> tuple[str, float]:
    """kWh, or Wh when every value is under 1 kWh (short runs read better in Wh)."""
    return ("kWh", 1.0) if values and max(values) >= 1 else ("Wh", 1000.0)


def _co2_unit(values: list[float]) -> tuple[str, float]:
    """kg CO2eq, or g CO2eq when every value is under 1 kg."""
    return ("kg CO2eq", 1.0) if values and max(values) >= 1 else ("g CO2eq", 1000.0)


def _interval(stat: Stat | None, factor: float, floor: float | None) -> tuple[float, float, bool]:
    """(below, above, clipped): error bar lengths around the mean; with ``floor`` the lower
    end stops there (zero on a linear axis, a positive floor on a log axis)."""
    if stat is None or stat.ci95 is None:
        return 0.0, 0.0, False
    mean, half = stat.mean * factor, stat.ci95 * factor
    if floor is not None and mean - half < floor:
        return max(0.0, mean - floor), half, True
    return half, half, False


def _percent_axis(axes: Axes, groups: tuple[Group, ...], keys: tuple[str, ...],
                  clipped: list[str]) -> None:
    """Keep an accuracy axis within 0-100% and record intervals that reach beyond it."""
    low, high = axes.get_ylim()
    axes.set_ylim(max(low, -1.0), min(high, 101.0))
    for group in groups:
        for curve in group.curves.values():
            for key in keys:
                stat = curve.get(key)
                if stat is not None and stat.low is not None and (stat.low < 0 or stat.high > 100):
                    clipped.append(f"{group.label} accuracy")


def _accuracy_range(axes: Axes, groups: tuple[Group, ...], clipped: list[str]) -> None:
    """A test-accuracy axis within 0-100%, recording intervals cut at either end."""
    low, high = axes.get_ylim()
    axes.set_ylim(max(low, 0.0), min(high, 101.0))
    for group in groups:
        stat = group.figures.get("accuracy_pct")
        if stat is not None and stat.low is not None and (stat.low < 0 or stat.high > 100):
            clipped.append(f"{group.label} accuracy")


def _wide(values: list[float]) -> bool:
    positive = [v for v in values if v > 0]
    return bool(positive) and max(positive) / min(positive) > LOG_SCALE_RANGE


def _place_labels(axes: Axes, texts: list) -> None:
    """Move point labels apart (adjustText) so no label covers another or a point."""
    if len(texts) < 2:
        return
    from adjustText import adjust_text

    adjust_text(texts, ax=axes, expand=(1.2, 1.4),
                arrowprops={"arrowstyle": "-", "color": "#888888", "lw": 0.6})


def accuracy_curves(report: Report) -> Figure:
    """Training and validation accuracy (%) per epoch, mean over repeats, per hardware."""
    groups = report.with_figures
    figure = _figure()
    axes = figure.add_subplot()
    mixed = len({g.synthetic for g in groups}) > 1
    max_epoch = 1
    for index, (group, colour) in enumerate(zip(groups, _colours(len(groups)), strict=True)):
        # Hardware often gives near-identical curves; a small sideways shift keeps every
        # line visible instead of hiding one under the other.
        shift = (index - (len(groups) - 1) / 2) * 0.03
        xs = sorted(group.curves)
        if not xs:
            continue
        max_epoch = max(max_epoch, xs[-1])
        for key, style, name in (("val_accuracy_pct", "-", "validation"),
                                 ("accuracy_pct", "--", "training")):
            points = [(x, group.curves[x][key]) for x in xs if group.curves[x].get(key)]
            if not points:
                continue
            axes.errorbar([x + shift for x, _ in points], [s.mean for _, s in points],  # type: ignore[union-attr]
                          yerr=[(s.ci95 or 0.0) for _, s in points], color=colour,  # type: ignore[union-attr]
                          linestyle=style, marker="o" if name == "validation" else "s",
                          capsize=3, label=f"{_label(group, mixed, energy=False)}, {name}")
    axes.set_xlabel("epoch")
    axes.set_ylabel("accuracy (%)")
    axes.set_xticks(range(1, max_epoch + 1))
    clipped: list[str] = []
    _percent_axis(axes, groups, ("accuracy_pct", "val_accuracy_pct"), clipped)
    axes.set_xlim(0.8, max_epoch + 0.2)
    axes.grid(True, alpha=0.3)
    axes.set_title(fontsize=10, label=_title(
        "Training and validation accuracy per epoch (mean of repeats, 95% CI)", report, groups,
        scoped=False, energy=False))
    if axes.has_data():
        axes.legend(loc="best", fontsize=8)
    _footnote(figure, (), clipped)
    return figure


def accuracy_vs_energy(report: Report) -> Figure:
    """Validation accuracy (%) against cumulative training energy, epoch by epoch."""
    groups = report.with_figures
    figure = _figure()
    axes = figure.add_subplot()
    mixed = len({g.synthetic for g in groups}) > 1
    energies = [s.mean for g in groups for c in g.curves.values()
                if (s := c.get("energy_kwh")) is not None]
    unit, factor = _energy_unit(energies)
    for group, colour in zip(groups, _colours(len(groups)), strict=True):
        points = [(c["energy_kwh"], c["val_accuracy_pct"]) for _, c in sorted(group.curves.items())
                  if c.get("energy_kwh") and c.get("val_accuracy_pct")]
        if not points:
            continue
        axes.errorbar([e.mean * factor for e, _ in points], [a.mean for _, a in points],  # type: ignore[union-attr]
                      xerr=[(e.ci95 or 0.0) * factor for e, _ in points],  # type: ignore[union-attr]
                      yerr=[(a.ci95 or 0.0) for _, a in points], color=colour,  # type: ignore[union-attr]
                      marker="o", capsize=3, label=_label(group, mixed))
    axes.set_xlabel(f"cumulative training energy ({unit}, training scope)")
    axes.set_ylabel("validation accuracy (%)")
    clipped: list[str] = []
    _percent_axis(axes, groups, ("val_accuracy_pct",), clipped)
    axes.grid(True, alpha=0.3)
    axes.set_title(fontsize=10, label=_title(
        "Validation accuracy against the energy spent so far (one point per epoch, 95% CI)",
        report, groups))
    if axes.has_data():
        axes.legend(loc="best", fontsize=8)
    _footnote(figure, groups, clipped)
    return figure


def co2_by_region(report: Report) -> Figure:
    """CO2 of each hardware's energy in each region: points with 95% intervals."""
    groups = report.with_figures
    regions = report.regions
    figure = _figure(max(8.0, 1.1 * len(regions) + 2), 5.0)
    axes = figure.add_subplot()
    means = [s.mean for g in groups for s in g.co2_by_region.values() if s is not None]
    unit, factor = _co2_unit(means)
    log = _wide(means)
    floor = min(m for m in means if m > 0) * factor / 10 if log and means else 0.0
    width = 0.6 / max(1, len(groups))
    mixed = len({g.synthetic for g in groups}) > 1
    clipped: list[str] = []
    for index, (group, colour) in enumerate(zip(groups, _colours(len(groups)), strict=True)):
        xs, ys, below, above = [], [], [], []
        for i, info in enumerate(regions):
            stat = group.co2_by_region.get(info.label)
            if stat is None:
                continue
            low, high, cut = _interval(stat, factor, floor)
            if cut:
                clipped.append(group.label)
            xs.append(i + (index - (len(groups) - 1) / 2) * width)
            ys.append(stat.mean * factor)
            below.append(low)
            above.append(high)
        axes.errorbar(xs, ys, yerr=[below, above], marker="o", linestyle="none", capsize=3,
                      color=colour, label=_label(group, mixed))
    homes = {g.home_region for g in groups}
    axes.set_xticks(range(len(regions)))
    axes.set_xticklabels([f"{info.label}{' (home)' if info.label in homes else ''}\n"
                          f"{info.intensity.g_per_kwh:.0f} g/kWh" for info in regions],
                         rotation=30, ha="right", rotation_mode="anchor")
    if log:
        axes.set_yscale("log")
        axes.set_ylabel(f"CO2 ({unit}, log scale)")
    else:
        axes.set_ylim(bottom=0)
        axes.set_ylabel(f"CO2 ({unit})")
    axes.set_xlabel("region (carbon intensity from CodeCarbon's data)")
    axes.grid(True, axis="y", alpha=0.3, which="both")
    axes.set_title(fontsize=10, label=_title("CO2 of the same energy priced in each region (mean of repeats, "
                          "95% CI)", report, groups))
    axes.legend(title="hardware", loc="best", fontsize=8)
    _footnote(figure, groups, clipped)
    return figure


def _scatter(axes: Axes, groups: tuple[Group, ...], x: Callable[[Group], Stat | None],
             y: Callable[[Group], Stat | None], xf: float, yf: float, *, y_floor: bool = True,
             legend: Callable[[Group], str] = lambda g: "",
             clipped: list[str]) -> list[tuple[Group, float, float]]:
    """One point per group at the (x, y) means with 95% CI error bars; returns the points."""
    mixed = len({g.synthetic for g in groups}) > 1
    points: list[tuple[Group, float, float]] = []
    texts = []
    for group, colour in zip(groups, _colours(len(groups)), strict=True):
        sx, sy = x(group), y(group)
        if sx is None or sy is None:
            continue
        px, py = sx.mean * xf, sy.mean * yf
        xl, xh, xcut = _interval(sx, xf, 0.0)
        yl, yh, ycut = _interval(sy, yf, 0.0 if y_floor else None)
        if xcut or ycut:
            clipped.append(group.label)
        axes.errorbar([px], [py], xerr=[[xl], [xh]], yerr=[[yl], [yh]], marker="o",
                      markersize=7, capsize=4, color=colour, linestyle="none",
                      label=_label(group, mixed) + legend(group), zorder=4)
        points.append((group, px, py))
        texts.append(axes.text(px, py, f" {group.label}", fontsize=9, color=colour,
                               bbox={"boxstyle": "round,pad=0.15", "fc": "white", "ec": "none",
                                     "alpha": 0.8}))
    _pad(axes, [(px, py) for _, px, py in points], y_floor)
    _place_labels(axes, texts)
    return points


def _front(axes: Axes, points: list[tuple[Group, float, float]], front: tuple[str, ...],
           resolved: bool, what: str) -> None:
    """Ring the Pareto front's points, or say in the legend that there is none."""
    if len(points) < 2:
        return
    if resolved:
        ringed = [(px, py) for group, px, py in points if group.name in front]
        axes.plot([p[0] for p in ringed], [p[1] for p in ringed], linestyle="none", marker="o",
                  markersize=18, fillstyle="none", color="#444444",
                  label="Pareto front (among distinguishable differences)")
    else:
        axes.plot([], [], linestyle="none", label=f"no Pareto front: no {what} is "
                  "distinguishably better than another")


def _pad(axes: Axes, points: list[tuple[float, float]], y_floor: bool) -> None:
    """Leave room around few points so names and error bars stay inside the axes."""
    if not points:
        return
    for index, (get, put) in enumerate(((axes.get_xlim, axes.set_xlim),
                                        (axes.get_ylim, axes.set_ylim))):
        lo, hi = min(p[index] for p in points), max(p[index] for p in points)
        span = (hi - lo) or 0.2 * abs(hi) or 1.0
        low, high = get()
        low, high = min(low, lo - 0.25 * span), max(high, hi + 0.25 * span)
        if index == 0 or y_floor:
            low = max(low, 0.0)
        put(low, high)


def accuracy_vs_co2(report: Report) -> Figure:
    """Test accuracy (%) against CO2 in the home region, with the Pareto front among
    distinguishable points (rings)."""
    groups = report.with_figures
    figure = _figure()
    axes = figure.add_subplot()
    unit, factor = _co2_unit([s.mean for g in groups if (s := g.figures.get("co2_kg"))])
    homes = list(dict.fromkeys(g.home_region for g in groups if g.home_region))
    clipped: list[str] = []
    points = _scatter(axes, groups, lambda g: g.figures.get("co2_kg"),
                      lambda g: g.figures.get("accuracy_pct"), factor, 1.0, y_floor=False,
                      # With several home regions, the legend says where each is priced.
                      legend=lambda g: f" (home {g.home_region})" if len(homes) > 1 else "",
                      clipped=clipped)
    _front(axes, points, report.pareto, report.pareto_resolved, "point")
    _accuracy_range(axes, groups, clipped)
    axes.set_xlabel(f"CO2 in the home region ({', '.join(homes)}) ({unit}, {report.basis.text})")
    axes.set_ylabel("test accuracy (%)")
    axes.grid(True, alpha=0.3)
    axes.set_title(fontsize=10, label=_title("Test accuracy against CO2 (mean of repeats, 95% CI)",
                                             report, groups))
    axes.legend(loc="best", fontsize=8)
    _footnote(figure, groups, clipped)
    return figure


def time_vs_energy(report: Report) -> Figure:
    """Time against energy in the report's scope, per hardware."""
    groups = report.with_figures
    figure = _figure()
    axes = figure.add_subplot()
    unit, factor = _energy_unit([s.mean for g in groups if (s := g.figures.get("energy_kwh"))])
    clipped: list[str] = []
    _scatter(axes, groups, lambda g: g.figures.get("time_s"),
             lambda g: g.figures.get("energy_kwh"), 1.0, factor, clipped=clipped)
    axes.set_xlabel(f"time (s, {report.scope} scope)")
    axes.set_ylabel(f"energy ({unit}, {report.basis.text})")
    axes.grid(True, alpha=0.3)
    axes.set_title(fontsize=10, label=_title("Time against energy (mean of repeats, 95% CI)", report, groups))
    axes.legend(loc="best", fontsize=8)
    _footnote(figure, groups, clipped)
    return figure


def strategies_plot(report: Report) -> Figure:
    """Accuracy against CO2 of every variant (labelled), with the Pareto front among
    distinguishable differences: the strategies study at a glance."""
    from dataclasses import replace

    from harness.report.strategies import strategies

    found = strategies(report)
    groups = tuple(g for g in report.with_figures
                   if found is not None and any(g is row.group or g is row.baseline
                                                for row in found.rows))
    labelled = tuple(replace(g, label=g.variant if len({x.hardware for x in groups}) == 1
                             else f"{g.variant}/{g.hardware}") for g in groups)
    figure = _figure()
    axes = figure.add_subplot()
    unit, factor = _co2_unit([s.mean for g in labelled if (s := g.figures.get("co2_kg"))])
    clipped: list[str] = []
    points = _scatter(axes, labelled, lambda g: g.figures.get("co2_kg"),
                      lambda g: g.figures.get("accuracy_pct"), factor, 1.0, y_floor=False,
                      clipped=clipped)
    if found is not None:
        _front(axes, points, found.front, found.front_resolved, "strategy")
    _accuracy_range(axes, groups, clipped)
    axes.set_xlabel(f"CO2 in the home region ({unit}, {report.basis.text})")
    axes.set_ylabel("test accuracy (%)")
    axes.grid(True, alpha=0.3)
    axes.set_title(fontsize=10, label=_title(
        "Strategies: test accuracy against CO2 (mean of repeats, 95% CI)", report, groups))
    axes.legend(loc="best", fontsize=8)
    _footnote(figure, groups, clipped)
    return figure


#: File name, title (as report.md shows it) and the function drawing it, in report order.
PLOTS: list[tuple[str, str, Callable[[Report], Figure]]] = [
    ("accuracy_curves.png", "Training and validation accuracy per epoch", accuracy_curves),
    ("accuracy_vs_energy.png", "Validation accuracy against cumulative training energy",
     accuracy_vs_energy),
    ("co2_by_region.png", "CO2 per region and hardware", co2_by_region),
    ("accuracy_vs_co2.png", "Test accuracy against CO2, with the Pareto front", accuracy_vs_co2),
    ("time_vs_energy.png", "Time against energy", time_vs_energy),
]


def png_bytes(figure: Figure) -> bytes:
    """The figure as PNG bytes."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=DPI)
    return buffer.getvalue()


def make_plots(report: Report, out_dir: Path) -> list[tuple[Path, str]]:
    """Write every plot into ``out_dir`` atomically; none when no run is usable.

    Returns:
        ``(path, title)`` of each PNG written.
    """
    if not report.with_figures:
        return []
    from harness.report.strategies import strategies

    plots = list(PLOTS)
    if strategies(report) is not None:
        plots.append(("strategies.png", "Strategies: accuracy against CO2, with the Pareto front",
                      strategies_plot))
    made = []
    for filename, title, draw in plots:
        path = out_dir / filename
        write_atomic(path, png_bytes(draw(report)))
        made.append((path, title))
    return made

