"""Tests for harness.plots: every plot is drawn from the fixture sessions as a valid PNG.

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

from harness import plots
from harness.report import Report, build_report, load
from tests.test_report import SESSIONS

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def report_of(*sessions: str) -> Report:
    results, warnings = load([SESSIONS / name for name in sessions])
    return build_report(results, warnings=warnings)


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
    for label in (axes.get_xlabel(), axes.get_ylabel()):
        assert label
    assert "(" in axes.get_ylabel()  # a unit or "%"
    assert axes.get_legend() is not None
    legend = [t.get_text() for t in axes.get_legend().get_texts()]
    assert any("cpu-1" in text for text in legend)


def test_co2_plot_uses_log_scale_for_a_wide_range() -> None:
    # Quebec (about 4 g/kWh) to Poland (about 660 g/kWh): over the log-scale threshold.
    axes = plots.co2_by_region(report_of("machine-a")).axes[0]
    assert axes.get_yscale() == "log"
    assert "log scale" in axes.get_ylabel()
    assert len(axes.get_xticklabels()) == 7  # one per declared region


def test_estimated_energy_is_marked_in_plots() -> None:
    figure = plots.time_vs_energy(report_of("machine-a"))
    legend = [t.get_text() for t in figure.axes[0].get_legend().get_texts()]
    assert all(text.endswith("*") for text in legend)
    assert "energy estimated" in figure.get_supxlabel()


def test_accuracy_plot_shows_a_pareto_front() -> None:
    axes = plots.accuracy_vs_co2(report_of("machine-a", "cloud-home")).axes[0]
    legend = [t.get_text() for t in axes.get_legend().get_texts()]
    assert any(text.startswith("Pareto front") for text in legend)


def test_pareto_front() -> None:
    points = [(1.0, 70.0), (2.0, 80.0), (3.0, 75.0), (0.5, 60.0), (2.0, 79.0)]
    assert plots._pareto(points) == [(0.5, 60.0), (1.0, 70.0), (2.0, 80.0)]


def test_no_plots_without_usable_runs(tmp_path: Path) -> None:
    assert plots.make_plots(report_of("all-failed"), tmp_path) == []
    assert list(tmp_path.iterdir()) == []
