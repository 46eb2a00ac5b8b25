"""Tests for harness.report and harness.stats, on result sessions written by the real harness.

The sessions in tests/fixtures/sessions/ come from real `harness run`s (see the README
there, which also lists the two sessions edited or constructed on purpose). The rendered
reports are compared exactly with tests/fixtures/expected/; set HARNESS_UPDATE_EXPECTED=1
to rewrite them after a deliberate change (the test then fails, so a rewrite is never a
pass), review the diff and run again.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import statistics
import subprocess
import sys
from pathlib import Path

import pytest
from scipy import stats as scipy_stats

from harness.errors import UserError
from harness.regions import parse_region, price
from harness.report import build_report, default_out_dir, render_markdown, render_text
from harness.report.export import summary_csv, summary_json
from harness.report.model import Report
from harness.report.tables import regions_table
from harness.results import load
from harness.stats import difference, fmt_comparison, fmt_num, fmt_stat, ratio, summarize
from tests.conftest import REPO, run_cli

FIXTURES = Path(__file__).resolve().parent / "fixtures"
SESSIONS = FIXTURES / "sessions"
EXPECTED = FIXTURES / "expected"
UPDATE = os.environ.get("HARNESS_UPDATE_EXPECTED") == "1"


def report_of(*sessions: str, baseline: str | None = None, scope: str = "training",
              attribution: str = "attributed", net: bool = False) -> Report:
    loaded, warnings = load([SESSIONS / name for name in sessions])
    return build_report(loaded, baseline=baseline, warnings=warnings, scope=scope,
                        attribution=attribution, net=net)


def check_expected(name: str, text: str) -> None:
    path = EXPECTED / name
    if UPDATE:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        pytest.fail(f"{path} rewritten: review `git diff {path}` and run again without "
                    "HARNESS_UPDATE_EXPECTED")
    assert path.exists(), f"{path} is missing; run with HARNESS_UPDATE_EXPECTED=1 to create it"
    assert text == path.read_text(), (
        f"rendered report differs from {path}; if the change is deliberate, rerun with "
        "HARNESS_UPDATE_EXPECTED=1 and review the diff")


# --- the rendered reports, compared with checked-in Markdown ----------------------------

PLOTS = [("accuracy_curves.png", "Training and validation accuracy per epoch"),
         ("co2_by_region.png", "CO2 per region and hardware")]

CASES = {
    "machine-a": ["machine-a"],
    "merged": ["machine-a", "machine-b", "interrupted"],
    "cloud-home": ["machine-a", "cloud-home"],
    "not-comparable": ["machine-a", "machine-c"],
    "all-failed": ["all-failed"],
    "gpu-host": ["gpu-host"],
    "identical": ["identical"],
    "strategies": ["strategies"],
}


@pytest.mark.parametrize("case", list(CASES))
def test_markdown_matches_expected(case: str) -> None:
    report = report_of(*CASES[case])
    plots = PLOTS if report.with_figures else []
    check_expected(f"{case}.md", render_markdown(report, plots))


def test_terminal_text_matches_expected() -> None:
    check_expected("machine-a.txt", render_text(report_of("machine-a"), "simple"))


# --- what the expected reports must say (so a careless regeneration is caught) ----------


def test_repeats_are_grouped_with_mean_ci_and_n() -> None:
    report = report_of("machine-a")
    assert [(g.scenario, g.hardware, len(g.usable)) for g in report.groups] == [
        ("rptfix", "cpu-1", 2), ("rptfix", "cpu-2", 2)]
    group = report.groups[0]
    times = [run.metrics.scopes.training.duration_s for run in group.usable]
    stat = group.figures["time_s"]
    assert stat.n == 2 and stat.mean == pytest.approx(sum(times) / 2)
    sd = statistics.stdev(times)
    assert stat.ci95 == pytest.approx(scipy_stats.t.ppf(0.975, 1) * sd / math.sqrt(2))
    text = render_text(report)
    assert "n=2" in text and "±" in text


def test_every_figure_names_its_scope_and_attribution() -> None:
    for scope in ("training", "run", "process"):
        text = render_text(report_of("machine-a", scope=scope))
        assert f"time (s, {scope})" in text and f"energy (kWh, {scope}, attributed)" in text
        assert f"speed-up (x, {scope})" in text
        assert f"energy: {scope}, attributed)" in text
    text = render_text(report_of("machine-a", attribution="tracker", net=True))
    assert "energy (kWh, training, tracker, net)" in text


def test_attributed_energy_follows_the_stated_rule() -> None:
    """cpu-1 ran pinned to one of the host's two CPUs (cpuset "0", local backend), with no
    memory limit: attributed = CPU energy x 1/2 + RAM energy x 1 (+ no GPU)."""
    report = report_of("machine-a")
    cpu1 = report.groups[0]
    for run in cpu1.usable:
        energy = run.metrics.scopes.training.energy
        assert run.metrics.attribution.cpu_share == 0.5
        assert run.metrics.attribution.ram_share == 1.0
    want = [r.metrics.scopes.training.energy.cpu_kwh * 0.5
            + r.metrics.scopes.training.energy.ram_kwh for r in cpu1.usable]
    assert cpu1.figures["energy_kwh"].values == pytest.approx(want, rel=1e-12)
    tracker = report_of("machine-a", attribution="tracker").groups[0]
    assert tracker.figures["energy_kwh"].values == pytest.approx(
        [r.metrics.scopes.training.energy.energy_kwh for r in cpu1.usable], rel=1e-12)
    assert all(a < t for a, t in zip(cpu1.figures["energy_kwh"].values,
                                     tracker.figures["energy_kwh"].values, strict=True))
    assert energy.gpu_kwh == 0


def test_scopes_nest_and_default_to_training() -> None:
    report = report_of("machine-a")
    assert report.scope == "training"
    for group in report.with_figures:
        for run in group.usable:
            s = run.metrics.scopes
            assert s.training.duration_s < s.run.duration_s < s.process.duration_s
            assert s.training.energy.energy_kwh < s.run.energy.energy_kwh
        assert group.figures["time_s"].values == tuple(
            r.metrics.scopes.training.duration_s for r in group.usable)


def test_high_variation_is_flagged_with_advice() -> None:
    """A group whose times vary by 30% (its figures replaced here; the fixture sessions'
    spread depends on how busy the machine was) is marked `!` with the advice."""
    from dataclasses import replace

    from harness.report.model import _noisy
    from harness.report.tables import footnotes, summary_table

    report = report_of("machine-a")
    group = report.groups[0]
    noisy = replace(group, figures={**group.figures, "time_s": summarize([10.0, 16.0, 13.0])})
    assert noisy.figures["time_s"].noisy and "time (s) 23%" in _noisy(noisy)
    shaky = replace(report, groups=(noisy, *report.groups[1:]))
    assert any("! coefficient of variation over 10% (cpu-1: time (s) 23%" in note
               and "add repeats or quiet the machine" in note for note in footnotes(shaky))
    headers, rows = summary_table(shaky)
    assert rows[0][headers.index("time (s, training)")].endswith("!")


def test_single_run_shows_value_without_interval() -> None:
    report = report_of("machine-a", "cloud-home")
    cloud = next(g for g in report.groups if g.scenario == "rptcloud")
    assert cloud.figures["time_s"].ci95 is None
    row = next(line for line in render_text(report).splitlines() if line.startswith("rptcloud"))
    assert "n=1" in row and "±" not in row


def test_failed_interrupted_and_unstarted_runs_are_counted_not_averaged() -> None:
    report = report_of("machine-a", "machine-b", "interrupted")
    cpu1, cpu2 = report.groups
    assert len(cpu1.usable) == 5  # 2 + 2 + the interrupted session's completed run
    assert len(cpu2.usable) == 4
    # A run that never started has no run.json: it is listed among the runs left out,
    # not counted in a group.
    assert [r.status for r in cpu2.excluded] == ["interrupted"]
    assert all(r.status == "ok" for r in cpu2.usable)
    assert sorted((r.session, r.status) for r in report.left_out) == [
        ("interrupted", "interrupted"), ("interrupted", "not_started"),
        ("interrupted", "not_started")]
    assert "n=4 (+1 interrupted)" in render_text(report)


def test_session_where_every_run_failed_says_so() -> None:
    report = report_of("all-failed")
    assert not report.with_figures
    text = render_text(report)
    assert "n=0 (1 timeout)" in text
    assert "no usable run" in text
    assert [r.status for r in report.left_out] == ["timeout", "timeout"]


def test_not_comparable_runs_are_refused_naming_runs_and_field() -> None:
    report = report_of("machine-a", "machine-c")
    assert all(g.refused and not g.usable for g in report.groups)
    epochs = next(w for w in report.warnings if "rptfix/cpu-1" in w and "not comparable" in w)
    assert "training.epochs differs" in epochs
    assert "machine-a/rptfix__cpu-1__r01" in epochs and "machine-c/rptfix__cpu-1__r02" in epochs
    code = next(w for w in report.warnings if "rptfix/cpu-2" in w and "not comparable" in w)
    assert "code.source_sha256 differs" in code  # runs of other code are never averaged
    assert "n=0 (4 not comparable)" in render_text(report)


def test_regions_table_names_data_and_year() -> None:
    headers, rows = regions_table(report_of("machine-a"))
    assert headers[:4] == ["region", "g CO2/kWh", "data", "year"]
    by_region = {row[0]: row for row in rows}
    assert by_region["FRA (home)"][2:4] == ["[1] country carbon intensity", "2023"]
    assert by_region["USA/california"][2].startswith("[2] sub-national: US state")
    assert by_region["cloud:gcp/europe-west1"][3] == "not given"  # impact.csv has no year


def test_estimates_are_marked_and_never_called_measured() -> None:
    report = report_of("machine-a")
    assert set(report.groups[0].estimated) == {"cpu", "ram"}  # no RAPL on the fixture VM
    text = render_text(report)
    assert "* estimated, not measured: CodeCarbon had no energy counter" in text
    assert "kg CO2eq of the estimated energy: training, attributed" in text
    assert "measured energy" not in text
    summary = text.split("== CO2 by region")[0]
    assert "estimated (cpu_load)" in summary and "*" in summary


def test_synthetic_data_is_labelled() -> None:
    report = report_of("machine-a")
    assert "synthetic (easy)" in render_text(report)
    assert "**Synthetic data**" in render_markdown(report)


def _independent_paired_ratio(group, base, key: str) -> tuple[float, float, float]:
    """The ratio of runs paired by seed and its 95% interval from scipy's paired t test on
    the logs (not the harness's code)."""
    mine = dict(zip(group.seeds, group.values(key), strict=True))
    theirs = dict(zip(base.seeds, base.values(key), strict=True))
    seeds = sorted(mine)
    assert seeds == sorted(theirs) and len(seeds) >= 2
    la = [math.log(mine[s]) for s in seeds]
    lb = [math.log(theirs[s]) for s in seeds]
    low, high = scipy_stats.ttest_rel(la, lb).confidence_interval(0.95)
    return math.exp(statistics.fmean(la) - statistics.fmean(lb)), math.exp(low), math.exp(high)


def _independent_ratio(a: list[float], b: list[float]) -> tuple[float, float, float]:
    """Ratio of geometric means and its 95% interval from Welch's t on the logs, computed
    with scipy's own Welch test, not the harness's code."""
    la, lb = [math.log(x) for x in a], [math.log(x) for x in b]
    result = scipy_stats.ttest_ind(la, lb, equal_var=False)
    low, high = result.confidence_interval(0.95)
    return (math.exp(statistics.fmean(la) - statistics.fmean(lb)), math.exp(low), math.exp(high))


def test_baseline_ratios_carry_intervals_recomputed_independently() -> None:
    report = report_of("machine-a", "cloud-home")
    assert [(c.group.name, c.baseline.name) for c in report.comparisons] == [
        ("rptfix/cpu-2", "rptfix/cpu-1"), ("rptcloud/cpu-all", "rptfix/cpu-1")]
    comparison = report.comparisons[0]
    cpu1, cpu2 = report.groups[:2]
    # Both repeats of both entries ran with seeds 42 and 43: the runs pair by seed.
    assert sorted(cpu1.seeds) == sorted(cpu2.seeds) == [42, 43]
    energy = _independent_paired_ratio(cpu2, cpu1, "energy_kwh")
    assert cpu2.values("energy_kwh") == tuple(
        r.metrics.scopes.training.energy.cpu_kwh * r.metrics.attribution.cpu_share
        + r.metrics.scopes.training.energy.ram_kwh * r.metrics.attribution.ram_share
        for r in cpu2.usable)
    got = comparison.energy_ratio
    assert got.paired and (got.estimate, got.low, got.high) == pytest.approx(energy, rel=1e-9)
    time = _independent_paired_ratio(cpu1, cpu2, "time_s")
    speed = comparison.speedup
    assert (speed.estimate, speed.low, speed.high) == pytest.approx(time, rel=1e-9)
    # n=1 on one side: a value, no interval, not distinguishable.
    cloud = report.comparisons[1]
    assert cloud.energy_ratio.low is None and not cloud.energy_ratio.distinguishable
    chosen = report_of("machine-a", "cloud-home", baseline="cpu-2")
    assert next(c for c in chosen.comparisons if c.group.hardware == "cpu-1").baseline.hardware \
        == "cpu-2"
    with pytest.raises(UserError, match="no hardware named 'gpu-9'"):
        report_of("machine-a", baseline="gpu-9")


def test_identical_hardware_is_never_distinguishable() -> None:
    """Two identical entries, three repeats each: every ratio is not distinguishable, the
    headline uses the training scope, and no best is claimed."""
    report = report_of("identical")
    (comparison,) = report.comparisons
    for name in ("speedup", "energy_ratio", "co2_ratio", "accuracy_diff_pp"):
        value = getattr(comparison, name)
        assert value.low is not None and not value.distinguishable, name
    text = render_text(report)
    assert "not distinguishable" in text and "n.d." in text
    assert not report.pareto_resolved and "no best can be named" in text
    assert len(set(report.groups[0].seeds)) == 3  # repeats vary the seed


def test_gpu_fixture_fills_the_gpu_columns_and_compares_with_the_cpu() -> None:
    report = report_of("gpu-host")
    gpu = next(g for g in report.groups if g.device == "gpu")
    assert gpu.power["gpu"] == "measured (nvml)"
    assert "gpu" not in gpu.estimated and {"cpu", "ram"} <= set(gpu.estimated)
    assert all(r.metrics.scopes.training.energy.gpu_kwh > 0 for r in gpu.usable)
    (comparison,) = report.comparisons
    assert comparison.group is gpu and comparison.baseline.device == "cpu"
    assert comparison.speedup.estimate > 1
    assert "measured (nvml)" in render_text(report)


def test_the_same_run_found_twice_is_counted_once() -> None:
    report = report_of("machine-a", "gpu-host")  # gpu-host holds copies of cpu-2's runs
    cpu2 = next(g for g in report.groups if g.hardware == "cpu-2")
    assert len(cpu2.usable) == 2
    assert sum("is the same run as" in w for w in report.warnings) == 2


def test_a_version_1_session_is_refused_by_name() -> None:
    report = report_of("machine-a", "legacy-v1")
    legacy = [r for r in report.left_out if r.session == "legacy-v1"]
    assert len(legacy) == 4 and {r.status for r in legacy} == {"damaged"}
    assert all("format version 1 is not read: it was written by harness 0.1" in r.reason
               for r in legacy)
    assert [len(g.usable) for g in report.groups] == [2, 2]


# --- region re-pricing ----------------------------------------------------------------


def test_home_region_repricing_equals_tracker_figure() -> None:
    """For every usable run, re-pricing the run-scope energy in the home region gives
    CodeCarbon's own `emissions` to 1e-9 relative."""
    sessions, _ = load([SESSIONS])
    usable = [r for item in sessions for r in item.runs if r.usable]
    assert len(usable) >= 15
    assert {r.spec.home_region for r in usable} == {"FRA", "cloud:gcp/europe-west1"}
    for run in usable:
        repriced = price(run.emissions.energy_consumed, parse_region(run.spec.home_region))
        assert repriced == pytest.approx(run.emissions.emissions, rel=1e-9), run.run_id
    report = report_of("machine-a", "cloud-home", scope="run", attribution="tracker")
    for group in report.with_figures:
        expected = [r.emissions.emissions for r in group.usable]
        assert group.figures["co2_kg"].values == pytest.approx(expected, rel=1e-9)
        assert group.co2_by_region[group.home_region].values == pytest.approx(expected,
                                                                              rel=1e-9)


def test_every_region_is_priced_from_the_same_energy() -> None:
    report = report_of("machine-a", attribution="tracker")
    group = report.groups[0]
    energies = [r.metrics.scopes.training.energy.energy_kwh for r in group.usable]
    for info in report.regions:
        got = group.co2_by_region[info.label].values
        want = [e * info.intensity.g_per_kwh / 1000 for e in energies]
        assert got == pytest.approx(want, rel=1e-9), info.label


# --- files -----------------------------------------------------------------------------


def test_csv_and_json_carry_every_figure_and_every_run() -> None:
    report = report_of("machine-a", "interrupted")
    csv_text = summary_csv(report)
    header = csv_text.splitlines()[0].split(",")
    assert {"scenario", "hardware", "n", "scope", "energy_kwh_mean", "energy_kwh_ci95",
            "co2_kg_cv", "co2_kg[USA/california]_mean", "phase_setup_kwh_mean",
            "phase_training_s_mean", "status", "reason"} <= set(header)
    lines = csv_text.splitlines()
    assert sum(line.startswith("group,") for line in lines) == 2
    # the interrupted run and the two never started
    assert sum(line.startswith("left_out,") for line in lines) == 3
    document = json.loads(summary_json(report))
    assert document["format"] == "harness.report" and document["version"] == 2
    # summary.json is a schema model too: it reads back through the checked reader.
    import tempfile

    from harness.fileio import read_model
    from harness.schema import Summary

    with tempfile.TemporaryDirectory() as tmp:
        written = Path(tmp) / "summary.json"
        written.write_text(summary_json(report))
        summary = read_model(written, Summary)
    assert summary.groups[0].figures["energy_kwh"].n == 3
    assert {r.status for g in summary.groups for r in g.runs} >= {"ok"}
    assert document["scope"] == "training"
    assert document["groups"][0]["figures"]["energy_kwh"]["n"] == 3
    comparison = document["comparisons"][0]
    assert set(comparison["energy_ratio"]) >= {"estimate", "low", "high", "distinguishable"}


def test_default_out_dir() -> None:
    one, _ = load([SESSIONS / "machine-a"])
    assert default_out_dir(one) == SESSIONS / "machine-a" / "report"
    two, _ = load([SESSIONS / "machine-a", SESSIONS / "machine-b"])
    out = default_out_dir(two)
    assert out.parent == SESSIONS and out.name.startswith("report-")


# --- the command -----------------------------------------------------------------------


def test_cli_report_writes_files(tmp_path: Path) -> None:
    out = tmp_path / "report"
    proc = run_cli("report", str(SESSIONS / "machine-a"), str(SESSIONS / "legacy-v1"),
                   "--out", str(out), "--format", "github", timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "| scenario" in proc.stdout
    assert "warning: session legacy-v1: session.json: version" in proc.stderr
    names = sorted(p.name for p in out.iterdir())
    assert names == ["accuracy_curves.png", "accuracy_vs_co2.png", "accuracy_vs_energy.png",
                     "co2_by_region.png", "report.md", "summary.csv", "summary.json",
                     "time_vs_energy.png"]
    assert "![CO2 per region and hardware](co2_by_region.png)" in (out / "report.md").read_text()


def test_cli_report_default_out_is_in_the_session(tmp_path: Path) -> None:
    session = tmp_path / "all-failed"
    shutil.copytree(SESSIONS / "all-failed", session)
    proc = run_cli("report", str(session), timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in (session / "report").iterdir()) == [
        "report.md", "summary.csv", "summary.json"]


def test_cli_report_without_any_session_is_a_user_error(tmp_path: Path) -> None:
    proc = run_cli("report", str(tmp_path / "nowhere"), str(tmp_path), timeout=120)
    assert proc.returncode == 2
    assert "error: " in proc.stderr and "Traceback" not in proc.stderr
    assert "does not exist" in proc.stderr and "holds no session" in proc.stderr


def test_cli_report_skips_a_bad_directory_among_good_ones(tmp_path: Path) -> None:
    proc = run_cli("report", str(tmp_path / "nowhere"), str(SESSIONS / "machine-a"),
                   "--out", str(tmp_path / "out"), timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "nowhere: does not exist" in proc.stderr


def test_report_imports_neither_tensorflow_nor_docker(tmp_path: Path) -> None:
    code = (
        "import sys\n"
        "from harness.cli import main\n"
        f"rc = main(['report', {str(SESSIONS / 'machine-a')!r}, '--out', {str(tmp_path)!r}])\n"
        "assert rc == 0\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'docker',"
        " 'keras') or m.startswith('harness.worker'))\n"
        "assert not bad, bad\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr


def test_unpriced_tracker_energy_is_a_note_not_damage(tmp_path: Path) -> None:
    """CodeCarbon can leave energy unpriced at stop(); when the worker recorded exactly
    that mismatch the run is sound and the report says so. The same mismatch that the
    worker did not record is damage."""
    from harness.fileio import read_model, write_model
    from harness.schema import Metrics

    session = tmp_path / "machine-a"
    shutil.copytree(SESSIONS / "machine-a", session)
    run_dir = session / "rptfix__cpu-1__r01"
    csv_path = run_dir / "emissions.csv"
    header, row = csv_path.read_text().splitlines()[:2]
    columns = header.split(",")
    values = row.split(",")
    index = columns.index("emissions")
    lowered = float(values[index]) * 0.72
    values[index] = repr(lowered)
    csv_path.write_text(header + "\n" + ",".join(values) + "\n")
    loaded, _ = load([session])
    damaged = next(r for r in loaded[0].runs if r.run_id == "rptfix__cpu-1__r01")
    assert damaged.status == "damaged" and "emissions.csv: emissions" in damaged.reason
    metrics = read_model(run_dir / "metrics.json", Metrics)
    check = metrics.tracker_check.model_copy(update={"ok": False, "csv_kg": lowered,
                                                     "relative_difference": 0.28})
    run_energy = metrics.scopes.run.energy.model_copy(update={"co2_kg": lowered})
    scopes = metrics.scopes.model_copy(update={"run": metrics.scopes.run.model_copy(
        update={"energy": run_energy})})
    write_model(run_dir / "metrics.json",
                metrics.model_copy(update={"tracker_check": check, "scopes": scopes}))
    loaded, warnings = load([session])
    report = build_report(loaded, warnings=warnings)
    (warning,) = [w for w in report.warnings if "unpriced" in w]
    assert "rptfix__cpu-1__r01" in warning and "28%" in warning
    assert len(report.groups[0].usable) == 2


# --- statistics ------------------------------------------------------------------------


def test_summarize_uses_student_t() -> None:
    stat = summarize([10.0, 12.0, 14.0])
    assert stat.mean == 12.0 and stat.n == 3
    assert stat.ci95 == pytest.approx(scipy_stats.t.ppf(0.975, 2) * 2.0 / math.sqrt(3))
    assert stat.cv == pytest.approx(2.0 / 12.0) and stat.noisy
    assert summarize([5.0]).ci95 is None and summarize([5.0]).cv is None
    assert summarize([]) is None and summarize([None, float("nan")]) is None


def test_ratio_and_difference_match_scipy_welch() -> None:
    a, b = [10.0, 11.0, 12.5, 9.8], [20.0, 21.0, 19.5]
    got = ratio(a, b)
    assert (got.estimate, got.low, got.high) == pytest.approx(_independent_ratio(a, b))
    assert got.distinguishable and got.estimate < 1
    diff = difference([90.0, 91.0, 92.0], [80.0, 83.0, 81.0])
    welch = scipy_stats.ttest_ind([90.0, 91.0, 92.0], [80.0, 83.0, 81.0], equal_var=False)
    assert (diff.low, diff.high) == pytest.approx(tuple(welch.confidence_interval(0.95)))
    same = ratio([1.0, 1.1, 0.9], [1.05, 0.95, 1.0])
    assert not same.distinguishable and same.repeats_needed is not None
    assert ratio([1.0], [2.0]).low is None and not ratio([1.0], [2.0]).distinguishable
    assert fmt_comparison(ratio([1.0], [2.0])) == "0.500 (n=1, n.d.)"


def test_paired_ratio_matches_scipy_paired_t() -> None:
    from harness.stats import paired_difference, paired_ratio

    pairs = [(10.0, 12.0), (11.0, 13.5), (9.5, 11.0), (10.4, 12.9)]
    got = paired_ratio(pairs)
    la, lb = [math.log(a) for a, _ in pairs], [math.log(b) for _, b in pairs]
    low, high = scipy_stats.ttest_rel(la, lb).confidence_interval(0.95)
    assert got.paired and got.distinguishable
    assert (got.estimate, got.low, got.high) == pytest.approx(
        (math.exp(statistics.fmean(la) - statistics.fmean(lb)), math.exp(low), math.exp(high)))
    diff = paired_difference([(90.0, 80.0), (91.0, 83.0), (92.0, 81.0)])
    ref = scipy_stats.ttest_rel([90.0, 91.0, 92.0], [80.0, 83.0, 81.0]).confidence_interval(0.95)
    assert (diff.low, diff.high) == pytest.approx(tuple(ref))
    # The same samples unpaired are far less sure: pairing takes out the shared variation.
    unpaired = ratio([a for a, _ in pairs], [b for _, b in pairs])
    assert (unpaired.high - unpaired.low) > (got.high - got.low)


def test_repeats_needed_resolve_the_observed_effect() -> None:
    """At the suggested number of repeats, an effect of the observed size and spread is
    distinguishable; at one fewer it is not (checked with scipy's t)."""
    from harness.stats import repeats_needed

    effect, sd = 0.05, 0.04
    n = repeats_needed(effect, sd, sd)
    half = lambda k: scipy_stats.t.ppf(0.975, 2 * k - 2) * math.sqrt(2 * sd * sd / k)  # noqa: E731
    assert half(n) < effect <= half(n - 1)


@pytest.mark.parametrize(("values", "text"), [
    ([5.1], "5.10"),
    ([0.0123, 0.0124, 0.0121], "0.01227 ± 0.00038"),
    ([95.5, 95.5], "95.5 ± 0"),
    ([4.04e-6, 3e-6], "3.52e-06 ± 6.6e-06"),
    ([323.0, 600.0], "462 ± 1760"),
])
def test_fmt_stat(values: list[float], text: str) -> None:
    assert fmt_stat(summarize(values)) == text


def test_fmt_num() -> None:
    assert [fmt_num(x) for x in (0, 123.456, 0.000842, 3.12e-5, None)] == [
        "0", "123", "0.000842", "3.12e-05", "-"]


# --- strategies --------------------------------------------------------------------------


def test_strategies_compare_each_variant_with_its_baseline() -> None:
    from harness.report.strategies import RULE, strategies

    report = report_of("strategies")
    found = strategies(report)
    assert [row.name for row in found.rows] == ["early-stop", "batch-256", "pruned-50"]
    baseline = next(g for g in report.groups if g.variant == "baseline")
    for row in found.rows:
        assert row.baseline is baseline
        # Variants of one repeat share its seed: each variant pairs with the baseline.
        want = _independent_paired_ratio(row.group, baseline, "co2_kg")
        assert row.co2.paired
        assert (row.co2.estimate, row.co2.low, row.co2.high) == pytest.approx(want, rel=1e-9)
    assert found.tolerance_pp == 2.0
    assert found.greenest.startswith("Greenest strategy: ")
    assert RULE.format(tol=2.0) in found.greenest
    (region,) = found.regions
    assert (region.home, region.cleanest) == ("FRA", "SWE") and region.ratio < 1
    text = render_text(report)
    assert "== Strategies against the baseline (training, attributed) ==" in text
    assert "Greener place:" in text and "pruned-50: 50.0% of the pruned kernels" in text


def test_pruning_reached_its_sparsity_and_kept_it_through_fine_tuning() -> None:
    report = report_of("strategies")
    pruned = next(g for g in report.groups if g.variant == "pruned-50")
    assert len(pruned.usable) == 2
    for run in pruned.usable:
        record = run.metrics.training.pruning
        # Measured after the last (fine-tuning) epoch: the masks held through it.
        assert record["sparsity"]["pruned_sparsity"] == pytest.approx(0.5, abs=1e-3)
        assert record["size_bytes"]["saved_gzip_bytes"] < 0.75 * record["size_bytes"]["dense_bytes"]
        assert record["macs_per_image"]["nonzero_macs"] < record["macs_per_image"]["dense_macs"]
        assert run.metrics.training.deviations["pruning"]["sparsity"] == 0.5
    early = next(g for g in report.groups if g.variant == "early-stop")
    for run in early.usable:
        training = run.metrics.training
        assert training.stopped_early == (training.epochs_run < training.epochs_planned)
        assert training.best_epoch is not None and training.best_epoch <= training.epochs_run


def test_the_strategies_plot_is_written(tmp_path: Path) -> None:
    from harness.report.plots import make_plots

    made = make_plots(report_of("strategies"), tmp_path)
    assert ("strategies.png" in [p.name for p, _ in made])
    assert (tmp_path / "strategies.png").stat().st_size > 15_000
