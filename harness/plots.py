"""Plots of a :class:`harness.report.Report`: PNG files, matplotlib's Agg renderer only.

Figures are built with :class:`matplotlib.figure.Figure` and never through pyplot, so no
GUI backend is ever selected and nothing global changes: plotting works on a headless
host and inside tests. Each plot states its units on both axes, has a legend, and says
in its title when the data were synthetic; groups whose energy is partly estimated
carry the report's ``*`` mark in the legend.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from harness.fileio import write_atomic
from harness.stats import Stat, summarize

if TYPE_CHECKING:
    from harness.report import Group, Report

DPI = 120
#: A range of values wider than this factor is drawn on a log scale.
LOG_SCALE_RANGE = 20.0


def _figure(width_in: float = 8.0, height_in: float = 5.0) -> Figure:
    figure = Figure(figsize=(width_in, height_in), dpi=DPI, layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def _colours(count: int) -> list[str]:
    # tab10 is readable and colour-blind tolerable for the few groups a report has.
    palette = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
               "#7f7f7f", "#bcbd22", "#17becf"]
    return [palette[i % len(palette)] for i in range(count)]


def _label(group: Group, mixed_data: bool, energy: bool = True) -> str:
    """Legend text: synthetic data named when the plot mixes kinds; ``*`` marks a group
    whose plotted energy (or CO2) is partly estimated."""
    text = group.label
    if mixed_data and group.synthetic:
        text += " (synthetic)"
    if energy and group.estimated:
        text += " *"
    return text


def _title(text: str, groups: list[Group]) -> str:
    if groups and all(g.synthetic for g in groups):
        return f"{text}\nsynthetic data (generated images, not CIFAR-10)"
    return text


def _estimate_note(figure: Figure, groups: list[Group]) -> None:
    components = sorted({c.upper() for g in groups for c in g.estimated})
    if components:
        # supxlabel, not figure.text: constrained layout makes room for it.
        figure.supxlabel(f"* energy estimated: CodeCarbon had no energy counter (RAPL/NVML) "
                         f"for {', '.join(components)} power", x=0.01, ha="left", fontsize=8,
                         color="#555555")


def _energy_unit(values: list[float]) -> tuple[str, float]:
    """kWh, or Wh when every value is under 1 kWh (short runs read better in Wh)."""
    return ("kWh", 1.0) if values and max(values) >= 1 else ("Wh", 1000.0)


def _co2_unit(values: list[float]) -> tuple[str, float]:
    """kg CO2eq, or g CO2eq when every value is under 1 kg."""
    return ("kg CO2eq", 1.0) if values and max(values) >= 1 else ("g CO2eq", 1000.0)


def _err(stat: Stat | None, factor: float = 1.0) -> float:
    return 0.0 if stat is None or stat.ci95 is None else stat.ci95 * factor


def _err_clipped(stat: Stat | None, factor: float = 1.0) -> tuple[float, float]:
    """(below, above) error of a figure that cannot be negative (time, energy, CO2):
    with 2 or 3 repeats Student's interval often reaches below zero, which says nothing
    more than "could be close to zero"; drawing it negative would only mislead."""
    if stat is None:
        return 0.0, 0.0
    half = _err(stat, factor)
    return min(half, max(0.0, stat.mean * factor)), half


def accuracy_curves(report: Report) -> Figure:
    """Training and validation accuracy (%) per epoch, mean over repeats, per hardware."""
    groups = report.with_figures
    figure = _figure()
    axes = figure.add_subplot()
    mixed = len({g.synthetic for g in groups}) > 1
    max_epoch = 1
    for index, (group, colour) in enumerate(zip(groups, _colours(len(groups)), strict=True)):
        # Same seed, same data: hardware often gives identical curves; a small sideways
        # shift keeps every line visible instead of hiding one under the other.
        shift = (index - (len(groups) - 1) / 2) * 0.03
        epochs: dict[int, dict[str, list[float]]] = {}
        for run in group.usable:
            for record in (run.history or {}).get("epochs") or []:
                slot = epochs.setdefault(int(record["epoch"]), {"accuracy": [], "val_accuracy": []})
                for key in slot:
                    if record.get(key) is not None:
                        slot[key].append(100 * float(record[key]))
        xs = sorted(epochs)
        if not xs:
            continue
        max_epoch = max(max_epoch, xs[-1])
        for key, style, name in (("val_accuracy", "-", "validation"),
                                 ("accuracy", "--", "training")):
            stats = [summarize(epochs[x][key]) for x in xs]
            points = [(x, s) for x, s in zip(xs, stats, strict=True) if s is not None]
            if not points:
                continue
            axes.errorbar([x + shift for x, _ in points], [s.mean for _, s in points],
                          yerr=[_err(s) for _, s in points], color=colour, linestyle=style,
                          marker="o" if key == "val_accuracy" else "s", capsize=3,
                          label=f"{_label(group, mixed, energy=False)}, {name}")
    axes.set_xlabel("epoch")
    axes.set_ylabel("accuracy (%)")
    axes.set_xticks(range(1, max_epoch + 1))
    low, high = axes.get_ylim()
    axes.set_ylim(low, min(high, 101.0))
    axes.set_xlim(0.8, max_epoch + 0.2)
    axes.grid(True, alpha=0.3)
    axes.set_title(_title("Training and validation accuracy per epoch (mean of repeats, 95% CI)",
                          groups))
    if axes.has_data():
        axes.legend(loc="best")
    return figure


def co2_by_region(report: Report) -> Figure:
    """Grouped bars: CO2 of each hardware's energy in each region (log scale if wide)."""
    groups = report.with_figures
    regions = report.regions
    figure = _figure(max(8.0, 1.1 * len(regions) + 2), 5.0)
    axes = figure.add_subplot()
    means = [s.mean for g in groups for s in g.co2_kg.values() if s is not None]
    unit, factor = _co2_unit(means)
    width = 0.8 / max(1, len(groups))
    mixed = len({g.synthetic for g in groups}) > 1
    for index, (group, colour) in enumerate(zip(groups, _colours(len(groups)), strict=True)):
        stats = [group.co2_kg.get(info.label) for info in regions]
        xs = [i + (index - (len(groups) - 1) / 2) * width for i in range(len(regions))]
        errors = [_err_clipped(s, factor) for s in stats]
        axes.bar(xs, [s.mean * factor if s else 0 for s in stats], width=width * 0.95,
                 yerr=[[e[0] for e in errors], [e[1] for e in errors]], capsize=2,
                 color=colour, label=_label(group, mixed),
                 error_kw={"elinewidth": 1, "ecolor": "#333333"})
    homes = {g.home_region for g in groups}
    axes.set_xticks(range(len(regions)))
    axes.set_xticklabels([f"{info.label}{' (home)' if info.label in homes else ''}\n"
                          f"{info.intensity.g_per_kwh:.0f} g/kWh" for info in regions],
                         rotation=30, ha="right", rotation_mode="anchor")
    positive = [m for m in means if m > 0]
    if positive and max(positive) / min(positive) > LOG_SCALE_RANGE:
        axes.set_yscale("log")
        axes.set_ylabel(f"CO2 per training ({unit}, log scale)")
    else:
        axes.set_ylabel(f"CO2 per training ({unit})")
    axes.set_xlabel("region (carbon intensity from CodeCarbon's data)")
    axes.grid(True, axis="y", alpha=0.3, which="both")
    axes.set_title(_title("CO2 of one training per region and hardware "
                          "(mean of repeats, 95% CI)", groups))
    axes.legend(title="hardware", loc="best")
    _estimate_note(figure, groups)
    return figure


def _pareto(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """Points no other point beats on both CO2 (lower) and accuracy (higher), by CO2."""
    front: list[tuple[float, float]] = []
    for co2, accuracy in sorted(points, key=lambda p: (p[0], -p[1])):
        if not front or accuracy > front[-1][1]:
            front.append((co2, accuracy))
    return front


def _scatter(axes: Axes, groups: list[Group], x: Callable[[Group], Stat | None],
             y: Callable[[Group], Stat | None], xf: float, yf: float,
             y_nonnegative: bool = True,
             legend: Callable[[Group], str] = lambda g: "") -> list[tuple[float, float]]:
    """One point per group at the (x, y) means with 95% CI error bars; returns the points.

    x is always a non-negative quantity (time, CO2); so is y unless ``y_nonnegative`` is
    False (accuracy is bounded by 100%, not clipped).
    """
    mixed = len({g.synthetic for g in groups}) > 1
    points: list[tuple[float, float]] = []
    names: list[tuple[str, str]] = []
    for group, colour in zip(groups, _colours(len(groups)), strict=True):
        sx, sy = x(group), y(group)
        if sx is None or sy is None:
            continue
        px, py = sx.mean * xf, sy.mean * yf
        xerr = _err_clipped(sx, xf)
        yerr = _err_clipped(sy, yf) if y_nonnegative else (_err(sy, yf), _err(sy, yf))
        axes.errorbar([px], [py], xerr=[[xerr[0]], [xerr[1]]], yerr=[[yerr[0]], [yerr[1]]],
                      marker="o", markersize=8, capsize=4, color=colour, linestyle="none",
                      label=_label(group, mixed) + legend(group), zorder=4)
        points.append((px, py))
        names.append((group.label, colour))
    middle = (min(p[0] for p in points) + max(p[0] for p in points)) / 2 if points else 0.0
    by_x = sorted(range(len(points)), key=lambda i: points[i])
    for position, ((px, py), (text, colour)) in enumerate(zip(points, names, strict=True)):
        # Names point inwards (left of points on the right) and alternate above and below
        # in x order, so they stay inside the axes and neighbours do not overlap.
        right = len(points) > 1 and px > middle
        above = by_x.index(position) % 2 == 0
        note = axes.annotate(text, (px, py), textcoords="offset points",
                             xytext=(-8 if right else 8, 8 if above else -16),
                             ha="right" if right else "left", fontsize=9, color=colour,
                             # A light box keeps a name readable over another's error bar.
                             bbox={"boxstyle": "round,pad=0.15", "fc": "white", "ec": "none",
                                   "alpha": 0.8})
        note.set_in_layout(False)
    return points


def _pad(axes: Axes, points: list[tuple[float, float]], y_max: float | None = None,
         y_nonnegative: bool = True) -> None:
    """Leave room around few points so names and error bars stay inside the axes; keep
    non-negative quantities on the non-negative side."""
    if not points:
        return
    for index, (get, put) in enumerate(((axes.get_xlim, axes.set_xlim),
                                        (axes.get_ylim, axes.set_ylim))):
        lo, hi = min(p[index] for p in points), max(p[index] for p in points)
        span = (hi - lo) or 0.2 * abs(hi) or 1.0
        low, high = get()
        low, high = min(low, lo - 0.25 * span), max(high, hi + 0.25 * span)
        if index == 1 and y_max is not None:
            high = min(high, y_max)
        if index == 0 or y_nonnegative:
            low = max(low, 0.0)
        put(low, high)


def accuracy_vs_co2(report: Report) -> Figure:
    """Test accuracy (%) against CO2 in the home region, with the Pareto front."""
    groups = report.with_figures
    figure = _figure()
    axes = figure.add_subplot()
    unit, factor = _co2_unit([g.figures["co2_home_kg"].mean for g in groups
                              if g.figures.get("co2_home_kg")])
    homes = list(dict.fromkeys(g.home_region for g in groups if g.home_region))
    points = _scatter(axes, groups, lambda g: g.figures.get("co2_home_kg"),
                      lambda g: g.figures.get("test_accuracy_pct"), factor, 1.0,
                      y_nonnegative=False,
                      # With several home regions, the legend says where each is priced.
                      legend=lambda g: f" (home {g.home_region})" if len(homes) > 1 else "")
    front = _pareto(points)
    if len(points) > 1:
        # A step line through the non-dominated points; a lone one gets a ring.
        axes.step([p[0] for p in front], [p[1] for p in front], where="post", color="#444444",
                  linestyle=":", linewidth=1.5, marker="o", markersize=16, fillstyle="none",
                  label="Pareto front (no other is both lower in CO2 and more accurate)")
    _pad(axes, points, y_max=101.0, y_nonnegative=False)
    axes.set_xlabel(f"CO2 per training in the home region ({', '.join(homes)}) ({unit})")
    axes.set_ylabel("test accuracy (%)")
    axes.grid(True, alpha=0.3)
    axes.set_title(_title("Test accuracy against CO2 (mean of repeats, 95% CI)", groups))
    axes.legend(loc="best")
    _estimate_note(figure, groups)
    return figure


def time_vs_energy(report: Report) -> Figure:
    """Time against energy of the training phase (fit and validation), per hardware."""
    groups = report.with_figures

    def phase(group: Group, key: str) -> Stat | None:
        return group.phases.get("training", {}).get(key)

    figure = _figure()
    axes = figure.add_subplot()
    unit, factor = _energy_unit([s.mean for g in groups if (s := phase(g, "energy_kwh"))])
    points = _scatter(axes, groups, lambda g: phase(g, "duration_s"),
                      lambda g: phase(g, "energy_kwh"), 1.0, factor)
    _pad(axes, points)
    axes.set_xlabel("training time (s)")
    axes.set_ylabel(f"training energy ({unit})")
    axes.grid(True, alpha=0.3)
    axes.set_title(_title("Training time against training energy (mean of repeats, 95% CI)",
                          groups))
    axes.legend(loc="best")
    _estimate_note(figure, groups)
    return figure


#: File name, title (as report.md shows it) and the function drawing it, in report order.
PLOTS: list[tuple[str, str, Callable[[Report], Figure]]] = [
    ("accuracy_curves.png", "Training and validation accuracy per epoch", accuracy_curves),
    ("co2_by_region.png", "CO2 per region and hardware", co2_by_region),
    ("accuracy_vs_co2.png", "Test accuracy against CO2, with the Pareto front", accuracy_vs_co2),
    ("time_vs_energy.png", "Training time against energy", time_vs_energy),
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
    made = []
    for filename, title, draw in PLOTS:
        path = out_dir / filename
        write_atomic(path, png_bytes(draw(report)))
        made.append((path, title))
    return made

