"""Scenario validation: every bad input gets one clear message, exit 2, no traceback."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.errors import UserError
from harness.scenario import load_scenario, load_scenarios
from tests.conftest import MINIMAL, REPO, run_cli


def test_shipped_scenarios_validate() -> None:
    files = sorted(str(p) for p in (REPO / "scenarios").glob("*.yaml"))
    assert {Path(f).name for f in files} >= {"cpu.yaml", "gpu.yaml", "demo.yaml"}
    result = run_cli("validate", *files)
    assert result.returncode == 0, result.stderr
    assert result.stdout.count(": ok (") == len(files)


def test_defaults_are_the_research_workload(write_yaml) -> None:
    text = MINIMAL.replace("training:\n  epochs: 1\n", "")
    scenario = load_scenario(write_yaml(text)).scenario
    t = scenario.training
    assert (t.epochs, t.batch_size, t.learning_rate) == (10, 64, 0.001)
    assert not t.mixed_precision and not t.xla and t.early_stopping is None and t.pruning is None
    assert t.lr_scaling == "none" and t.effective_learning_rate == 0.001
    assert t.deviations() == {}
    assert scenario.regions.all == ["FRA", "DEU"]


@pytest.mark.parametrize(
    ("text", "key", "expected"),
    [
        (MINIMAL.replace("  epochs: 1", "  epoch: 1"), "training.epoch", "did you mean 'epochs'"),
        (MINIMAL.replace("  epochs: 1", "  epochs: ten"), "training.epochs", "valid integer"),
        (MINIMAL.replace("  epochs: 1", "  epochs: 0"), "training.epochs", "at least 1"),
        (MINIMAL.replace("device: cpu", "device: tpu"), "hardware[0].device", "'cpu' or 'gpu'"),
        (MINIMAL.replace("device: cpu", "device: cpu\n    cpus: -2"), "hardware[0].cpus",
         "greater than or equal to 0.01"),
        (MINIMAL.replace("device: cpu", "device: cpu\n    memory: lots"), "hardware[0].memory",
         "not a memory size"),
        (MINIMAL.replace("device: cpu", "device: cpu\n    gpus: 1"), "hardware[0]",
         "gpus and gpu_ids are for device: gpu"),
        (MINIMAL.replace("home: FRA", "home: XYZ"), "regions.home", "unknown country 'XYZ'"),
        (MINIMAL.replace("[DEU]", "[USA/californa]"), "regions.compare", "california"),
        (MINIMAL.replace("name: mini", "name: Mini Scenario"), "name", "lower-case letters"),
        (MINIMAL.replace("name: cpu-a", "name: cpu-a\n    device: cpu\n  - name: cpu-a"),
         "hardware", "listed twice: cpu-a"),
        (MINIMAL + "colour: red\n", "colour", "unknown key"),
        (MINIMAL.replace("regions:\n  home: FRA\n  compare: [DEU]\n", ""), "regions",
         "Field required"),
    ],
)
def test_bad_values_name_file_key_and_fix(write_yaml, text: str, key: str, expected: str) -> None:
    path = write_yaml(text)
    with pytest.raises(UserError) as info:
        load_scenario(path)
    rendered = info.value.render()
    assert f"{path}: {key}" in rendered
    assert expected in rendered
    assert "fix:" in rendered or "did you mean" in rendered or "ISO 3166" in rendered


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", "the file is empty"),
        ("name: [unclosed\n", "YAML syntax error at line 2"),
        ("name: a\nname: b\n", "key 'name' appears twice"),
        ("- just\n- a list\n", "expected a mapping"),
    ],
)
def test_unusable_files_exit_2_without_traceback(write_yaml, text: str, expected: str) -> None:
    path = write_yaml(text)
    result = run_cli("validate", str(path))
    assert result.returncode == 2
    assert expected in result.stderr
    assert str(path) in result.stderr
    assert "Traceback" not in result.stderr + result.stdout


def test_missing_file_exit_2(tmp_path: Path) -> None:
    result = run_cli("plan", str(tmp_path / "nope.yaml"))
    assert result.returncode == 2
    assert "nope.yaml: no such file" in result.stderr
    assert "Traceback" not in result.stderr


def test_schema_error_through_cli_lists_every_problem(write_yaml) -> None:
    text = MINIMAL.replace("  epochs: 1", "  epochs: 0\n  batch: 3")
    result = run_cli("run", str(write_yaml(text)))
    assert result.returncode == 2
    assert "training.epochs" in result.stderr and "training.batch: unknown key" in result.stderr
    assert "did you mean 'batch_size'" in result.stderr
    assert "Traceback" not in result.stderr


def test_duplicate_scenario_names_across_files(write_yaml) -> None:
    first = write_yaml(MINIMAL, "a.yaml")
    second = write_yaml(MINIMAL, "b.yaml")
    with pytest.raises(UserError, match="scenario name 'mini' is already used by"):
        load_scenarios([first, second])
