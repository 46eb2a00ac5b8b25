"""The performance benchmark in quick mode: real training processes on tiny generated data.

Targets are not asserted here (timings on a shared machine are noisy); the benchmark
itself prints them with PASS/FAIL. This checks that every column is there and sane.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness import hostinfo
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
    assert report["format"] == "harness.bench" and report["version"] == 2
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
    assert report["matmul_gflops"]["native"] > 1
    for run in report["runs"]:
        assert len(run["epochs"]) == 2 and len(run["images_per_s_epochs"]) == 2
        assert run["isa"] == "native" and run["cpu_isa_cap"] is None
    assert {row["isa"] for row in rows.values()} == {"native"}
    assert report["isa_probes"] == []  # no --isa: no verbose probe


@pytest.mark.skipif(hostinfo.native_onednn_isa(hostinfo.cpu_flags()) in (None, "SSE41", "AVX",
                                                                          "AVX2"),
                    reason="needs a host above AVX2 for the AVX2 cap to change anything")
def test_quick_bench_measures_each_instruction_set_and_verifies_the_cap(tmp_path: Path) -> None:
    """--isa native,avx2: every measurement once per instruction set, each row and run
    labelled with it, and oneDNN's verbose output shows that the AVX2 cap took effect."""
    out = tmp_path / "bench.json"
    result = run_cli("bench", "--quick", "--isa", "native,avx2", "--variants", "worker",
                     "--data-dir", str(tmp_path / "data"), "--out", str(out))
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(out.read_text())
    rows = {(row["variant"], row["isa"]): row for row in report["rows"]}
    assert set(rows) == {("worker", "native"), ("worker", "avx2")}
    native = hostinfo.native_onednn_isa(hostinfo.cpu_flags())
    assert rows[("worker", "native")]["cpu_isa"] == native
    assert rows[("worker", "avx2")]["cpu_isa"] == "AVX2"
    for run in report["runs"]:
        assert run["cpu_isa_cap"] == ("AVX2" if run["isa"] == "avx2" else None)
    assert set(report["matmul_gflops"]) == {"native", "avx2"}
    probes = {probe["isa"]: probe for probe in report["isa_probes"]}
    assert probes["avx2"]["cap_took_effect"] is True, probes["avx2"]["detail"]
    assert probes["avx2"]["verbose"]["kernel_isas"] == ["avx2"]
    assert "512" not in probes["avx2"]["verbose"]["isa"]
    assert probes["native"]["cap_took_effect"] is None
    assert any("512" in name for name in probes["native"]["verbose"]["kernel_isas"])
    assert "[avx2]" in result.stdout and "cap took effect" in result.stdout


def test_unknown_instruction_set_is_a_user_error(tmp_path: Path) -> None:
    result = run_cli("bench", "--quick", "--isa", "native,avx3",
                     "--data-dir", str(tmp_path / "data"))
    assert result.returncode == 2
    assert "unknown instruction set" in result.stderr and "--isa" in result.stderr


def test_bad_variant_is_a_user_error(tmp_path: Path) -> None:
    result = run_cli("bench", "--quick", "--variants", "research,fast",
                     "--data-dir", str(tmp_path / "data"))
    assert result.returncode == 2
    assert "unknown variant" in result.stderr and "--variants" in result.stderr
