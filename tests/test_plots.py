"""Tests for harness.report.plots: every plot is drawn from the fixture sessions as a valid PNG.

Looking at the plots is a human check (see the issue); these tests hold what a machine
can: the files exist, are PNGs of a sensible size, decode, carry titles, axis labels with
units and legends, and the log scale and Pareto front appear when they should.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from pathlib import Path

import pytest
from matplotlib.figure import Figure
from matplotlib.image import imread

from harness.report import Report, build_report, plots
from harness.report.model import Group
from harness.results import load
from harness.stats import summarize
from tests.test_report import SESSIONS

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def report_of(*sessions: str) -> Report:
    loaded, warnings = load([SESSIONS / name for name in sessions])
    return build_report(loaded, warnings=warnings)


def png_size(path: Path) -> tuple[int, int]:
    """(width, height) in pixels, read from the IHDR chunk."""
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE, f"{path} is not a PNG"
    assert data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


@pytest.mark.parametrize("sessions", [("machine-a",), ("machine-a", "machine-b", "cloud-home")])
def test_every_plot_is_a_sensible_png(tmp_path: Path, sessions: tuple[str, ...]) -> None:
    made = plots.make_plots(report_of(*sessions), tmp_path)
    assert [path.name for path, _ in made] == [name for name, _, _ in plots.PLOTS]
    for path, title in made:
        width, height = png_size(path)
        assert 700 <= width <= 2000 and 400 <= height <= 1200, (path.name, width, height)
        assert 15_000 < path.stat().st_size < 1_000_000, path.name
        pixels = imread(path)
        assert pixels.shape[:2] == (height, width)
        assert pixels.std() > 0.05, f"{path.name} is (nearly) blank"
        assert title


@pytest.mark.parametrize("draw", [d for _, _, d in plots.PLOTS],
                         ids=[n for n, _, _ in plots.PLOTS])
def test_plot_has_title_units_and_legend(draw: Callable[[Report], Figure]) -> None:
    figure = draw(report_of("machine-a", "cloud-home"))
    axes = figure.axes[0]
    assert axes.get_title()
    assert "synthetic data" in axes.get_title()  # every fixture run is synthetic
    if draw is not plots.accuracy_curves:  # every time or energy plot names its scope
        assert "training scope" in axes.get_title()
        assert "energy estimated" in axes.get_title()
    for label in (axes.get_xlabel(), axes.get_ylabel()):
        assert label
    assert "(" in axes.get_ylabel()  # a unit or "%"
    assert axes.get_legend() is not None
    legend = [t.get_text() for t in axes.get_legend().get_texts()]
    assert any("cpu-1" in text for text in legend)


def test_co2_plot_uses_points_on_a_log_scale_for_a_wide_range() -> None:
    # Quebec (about 4 g/kWh) to Poland (about 660 g/kWh): over the log-scale threshold.
    axes = plots.co2_by_region(report_of("machine-a")).axes[0]
    assert axes.get_yscale() == "log"
    assert "log scale" in axes.get_ylabel()
    assert len(axes.get_xticklabels()) == 7  # one per declared region
    assert not axes.patches, "no bars: a bar's length means nothing on a log axis"


def test_estimated_energy_is_marked_in_plots() -> None:
    figure = plots.time_vs_energy(report_of("machine-a"))
    legend = [t.get_text() for t in figure.axes[0].get_legend().get_texts()]
    assert all(text.endswith("*") for text in legend)
    assert "estimated" in figure.get_supxlabel()


def test_intervals_cut_at_zero_are_disclosed() -> None:
    from dataclasses import replace

    # Two repeats give Student's t with 1 degree of freedom: an interval wider than the
    # mean reaches below zero; the plot cuts it at the axis and says so.
    report = report_of("machine-a")
    wide = replace(report.groups[0], figures={**report.groups[0].figures,
                                              "energy_kwh": summarize([1e-6, 9e-6])})
    figure = plots.time_vs_energy(replace(report, groups=(wide, *report.groups[1:])))
    assert "cut at the axis: cpu-1" in figure.get_supxlabel()
    narrow = replace(report.groups[0], figures={**report.groups[0].figures,
                                                "energy_kwh": summarize([5e-6, 5.1e-6]),
                                                "time_s": summarize([1.0, 1.01])})
    plain = plots.time_vs_energy(replace(report, groups=(narrow,)))
    assert "cut at the axis" not in plain.get_supxlabel()


def test_accuracy_plot_claims_no_front_among_indistinguishable_points() -> None:
    report = report_of("identical")
    assert not report.pareto_resolved
    axes = plots.accuracy_vs_co2(report).axes[0]
    legend = [t.get_text() for t in axes.get_legend().get_texts()]
    assert any(text.startswith("no Pareto front") for text in legend)


def _group(name: str, co2: list[float], accuracy: list[float]) -> Group:
    """A stand-in group with only the figures the front reads (a report's other fields
    do not enter the dominance rule)."""
    return Group(scenario="s", variant="baseline", hardware=name, device="cpu", label=name,
                 runs=(), usable=(), refused=None, dataset="synthetic (easy)", synthetic=True,
                 verified=True, backend="local", home_region="FRA", power={}, estimated={},
                 fallback=False, figures={"co2_kg": summarize(co2),
                                          "accuracy_pct": summarize(accuracy)},
                 co2_by_region={}, phases={}, curves={}, workload="w", seeds=(),
                 process_estimated_s=None)


def test_pareto_front_needs_distinguishable_differences() -> None:
    from harness.report.model import pareto_front

    clean = _group("clean", [1.0, 1.02, 0.98], [80.0, 80.5, 79.5])
    dirty = _group("dirty", [3.0, 3.1, 2.9], [80.2, 79.8, 80.1])  # more CO2, same accuracy
    close = _group("close", [1.01, 0.99, 1.03], [79.9, 80.1, 80.4])  # not told apart from clean
    front, resolved = pareto_front([clean, dirty, close])
    assert resolved and set(front) == {"s/clean", "s/close"}
    alone, told = pareto_front([clean, close])
    assert not told and set(alone) == {"s/clean", "s/close"}


def test_no_plots_without_usable_runs(tmp_path: Path) -> None:
    assert plots.make_plots(report_of("all-failed"), tmp_path) == []
    assert list(tmp_path.iterdir()) == []
