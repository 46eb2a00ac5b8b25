"""Planning: deterministic, file-name-safe run ids; nothing runs."""

from __future__ import annotations

import re

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
    assert {r.group for r in runs} == {"mini__cpu-a", "mini__cpu-b"}


def test_run_file_round_trip(write_yaml, tmp_path) -> None:
    run = expand([load_scenario(write_yaml(MINIMAL))])[0]
    write_run_file(tmp_path, run, "s1", "2026-01-01T00:00:00+00:00")
    spec, envelope = read_run_file(tmp_path)
    assert spec == run
    assert envelope["format"] == "harness.run" and envelope["version"] == 1


def test_plan_command_prints_runs_and_runs_nothing(write_yaml, tmp_path) -> None:
    result = run_cli("plan", str(write_yaml(MINIMAL)), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "mini__cpu-a__r01" in result.stdout and "1 run(s); nothing was run" in result.stdout
    assert not (tmp_path / "results").exists()
