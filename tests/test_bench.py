"""The performance benchmark in quick mode: real training processes on tiny generated data.

Targets are not asserted here (timings on a shared machine are noisy); the benchmark
itself prints them with PASS/FAIL. This checks that every column is there and sane.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.bench import COLUMNS
from tests.conftest import run_cli

pytestmark = pytest.mark.slow


def test_quick_bench_prints_every_column_with_sane_values(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    result = run_cli("bench", "--quick", "--data-dir", str(tmp_path / "data"), "--out", str(out))
    assert result.returncode == 0, result.stderr[-3000:]
    header = next(line for line in result.stdout.splitlines() if line.startswith("| variant"))
    assert [c.strip() for c in header.strip("|").split("|")] == COLUMNS
    assert "targets:" in result.stdout

    report = json.loads(out.read_text())
    assert report["format"] == "harness.bench" and report["version"] == 1
    rows = {row["variant"]: row for row in report["rows"]}
    assert set(rows) == {"research", "worker"}
    for row in rows.values():
        assert row["processes"] == 1
        assert row["images/s median"] > 0 and row["warm-up epoch images/s"] > 0
        assert row["peak RSS MB"] > 100
        assert 0 < row["first step s"] < 300
        assert row["max step gap s"] >= 0
        assert 0 < row["ceiling fraction"] < 1.5
        assert row["val accuracy"] > 0.5  # generated data: learnt within 2 epochs
    assert rows["research"]["ratio worker/research"] == pytest.approx(1.0)
    assert rows["worker"]["ratio worker/research"] == pytest.approx(
        rows["worker"]["images/s median"] / rows["research"]["images/s median"])
    # The FLOPs come from the model itself: 10.4 MFLOP forward, 29.7 per training image.
    assert report["flops_per_image"] == pytest.approx(29.7e6, rel=0.01)
    assert report["matmul_gflops"] > 1
    for run in report["runs"]:
        assert len(run["epochs"]) == 2 and len(run["images_per_s_epochs"]) == 2


def test_bad_variant_is_a_user_error(tmp_path: Path) -> None:
    result = run_cli("bench", "--quick", "--variants", "research,fast",
                     "--data-dir", str(tmp_path / "data"))
    assert result.returncode == 2
    assert "unknown variant" in result.stderr and "--variants" in result.stderr
