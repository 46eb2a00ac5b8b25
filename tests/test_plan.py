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
