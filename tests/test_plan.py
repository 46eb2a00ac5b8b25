"""Planning: deterministic, file-name-safe run ids; nothing runs."""

from __future__ import annotations

import json
import re

import pytest

from harness.fileio import FileProblem
from harness.identity import code_identity
from harness.plan import expand, read_run_file, write_run_file
from harness.scenario import load_scenario
from tests.conftest import MINIMAL, run_cli


def test_expand_interleaves_repeats_and_ids_are_stable(write_yaml) -> None:
    text = MINIMAL.replace("device: cpu", "device: cpu\n  - name: cpu-b\n    device: cpu\n"
                           "    cpus: 1") + "repeats: 3\n"
    loaded = [load_scenario(write_yaml(text))]
    runs = expand(loaded)
    ids = [r.run_id for r in runs]
    assert ids == ["mini__cpu-a__r01", "mini__cpu-b__r01", "mini__cpu-a__r02",
                   "mini__cpu-b__r02", "mini__cpu-a__r03", "mini__cpu-b__r03"]
    assert ids == [r.run_id for r in expand(loaded)]
    assert all(re.fullmatch(r"[a-z0-9_-]+", i) for i in ids)
    assert {r.group for r in runs} == {"mini__baseline__cpu-a", "mini__baseline__cpu-b"}


def test_repeats_vary_the_seed_unless_fixed(write_yaml) -> None:
    varied = expand([load_scenario(write_yaml(MINIMAL + "repeats: 3\n"))])
    assert [r.seed for r in varied] == [42, 43, 44]
    fixed = MINIMAL.replace("training:\n", "training:\n  seed_policy: fixed\n  seed: 7\n")
    assert [r.seed for r in expand([load_scenario(write_yaml(fixed + "repeats: 3\n"))])] \
        == [7, 7, 7]


def test_run_file_round_trip(write_yaml, tmp_path) -> None:
    run = expand([load_scenario(write_yaml(MINIMAL))])[0]
    write_run_file(tmp_path, run, session="s1", session_id="abc",
                   created_at="2026-01-01T00:00:00+00:00", backend="local")
    document = json.loads((tmp_path / "run.json").read_text())
    assert document["format"] == "harness.run" and document["version"] == 2
    back = read_run_file(tmp_path)
    assert back.spec == run and back.session_id == "abc" and back.backend == "local"
    assert back.code.source_sha256 == code_identity().source_sha256


def test_run_file_of_version_1_is_refused_by_name(write_yaml, tmp_path) -> None:
    run = expand([load_scenario(write_yaml(MINIMAL))])[0]
    write_run_file(tmp_path, run, session="s1", session_id="abc",
                   created_at="2026-01-01T00:00:00+00:00", backend="local")
    document = json.loads((tmp_path / "run.json").read_text())
    document["version"] = 1
    (tmp_path / "run.json").write_text(json.dumps(document))
    with pytest.raises(FileProblem, match=r"format version 1 is not read: it was written by "
                                          r"harness 0\.1"):
        read_run_file(tmp_path)


def test_plan_command_prints_runs_and_runs_nothing(write_yaml, tmp_path) -> None:
    result = run_cli("plan", str(write_yaml(MINIMAL)), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "mini__cpu-a__r01" in result.stdout and "1 run(s); nothing was run" in result.stdout
    assert not (tmp_path / "results").exists()


VARIANTS = MINIMAL.replace("training:\n  epochs: 1\n", """training:
  epochs: 4
variants:
  early-stop:
    early_stopping: {patience: 1}
  big-batch:
    batch_size: 256
    lr_scaling: linear
""") + "repeats: 2\n"


def test_variants_expand_beside_the_baseline_with_the_variant_in_the_id(write_yaml) -> None:
    runs = expand([load_scenario(write_yaml(VARIANTS))])
    assert [r.run_id for r in runs] == [
        "mini__baseline__cpu-a__r01", "mini__early-stop__cpu-a__r01",
        "mini__big-batch__cpu-a__r01", "mini__baseline__cpu-a__r02",
        "mini__early-stop__cpu-a__r02", "mini__big-batch__cpu-a__r02"]
    by_id = {r.run_id: r for r in runs}
    baseline = by_id["mini__baseline__cpu-a__r01"]
    assert baseline.variant == "baseline" and baseline.training.deviations() == {"epochs": 4}
    big = by_id["mini__big-batch__cpu-a__r01"].training
    assert big.batch_size == 256 and big.effective_learning_rate == pytest.approx(0.004)
    assert big.deviations()["effective_learning_rate"] == pytest.approx(0.004)
    early = by_id["mini__early-stop__cpu-a__r02"]
    assert early.training.early_stopping.patience == 1 and early.training.epochs == 4
    assert early.seed == 43  # repeats vary the seed, variants of one repeat share it
    assert {r.group for r in runs} == {"mini__baseline__cpu-a", "mini__early-stop__cpu-a",
                                       "mini__big-batch__cpu-a"}
    plan = run_cli("plan", str(write_yaml(VARIANTS)))
    assert "early-stop" in plan.stdout and "lr_scaling=linear" in plan.stdout


@pytest.mark.parametrize(("variants", "message"), [
    ("  baseline: {epochs: 2}\n", "'baseline' is the scenario's own training"),
    ("  pruned:\n    pruning: {sparsity: 0.5, end_epoch: 9}\n", "variant 'pruned' makes an "
                                                               "invalid training"),
    ("  odd:\n    dataset: cifar10\n", "unknown key"),
    ("  pruned:\n    pruning: {sparsity: 1.0}\n", "less than 1"),
])
def test_bad_variants_name_the_variant_and_the_fix(write_yaml, variants: str,
                                                   message: str) -> None:
    text = MINIMAL + "variants:\n" + variants
    result = run_cli("validate", str(write_yaml(text)))
    assert result.returncode == 2 and message in result.stderr, result.stderr
    assert "fix:" in result.stderr and "Traceback" not in result.stderr
