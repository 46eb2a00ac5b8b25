"""The Slurm backend without a cluster: the ``slurm:`` block and ``home_region`` of a
hardware entry, the sbatch and srun options and the batch script built from them, the
parsers of Slurm's output, the final state from canned sacct and squeue answers, and the
runner's Slurm-aware paths (reaping, --detach, attach). The cluster tests are in
tests/test_slurm_backend.py."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from harness import hostinfo
from harness.backends import Job
from harness.backends.slurm_backend import (
    JOB_FILE,
    OutputFacts,
    SlurmBackend,
    parse_config,
    parse_tres,
    scontrol_status,
    squeue_status,
    step_exit_codes,
    wait_status,
)
from harness.plan import describe, expand
from harness.regions import carbon_intensity, parse_region
from harness.scenario import HardwareSpec, load_scenario
from harness.schema import Outcome, RunStatus, SlurmJobFile
from harness.slurm_spec import SlurmSpec, parse_time_limit
from tests.conftest import REPO, run_cli

SCENARIO = """\
name: sl
dataset: {kind: synthetic, train_size: 600, test_size: 200}
hardware:
  - name: small-1
    device: cpu
    cpus: 1.5
    memory: 1g
    slurm: {constraint: small, partition: cpu, sbatch: {reservation: bench, contiguous: true}}
  - name: big
    device: cpu
    home_region: pol
    slurm: {constraint: large, time_limit: "0:03:00"}
  - name: gpu-a
    device: gpu
    gpus: 1
    slurm: {constraint: gpu, exclusive: false}
regions: {home: FRA, compare: [DEU, POL]}
training: {epochs: 1}
timeout_s: 600
"""

CONFIG = """\
Configuration data as of 2026-01-01T00:00:00
AccountingStorageType   = accounting_storage/slurmdbd
AcctGatherEnergyType    = acct_gather_energy/none
ClusterName             = harness
KillWait                = 10 sec
MinJobAge               = 5 sec
"""


class FakeSlurm:
    """subprocess.run for Slurm commands: canned answers by command name."""

    def __init__(self, answers: dict[str, Any]) -> None:
        self.answers = answers
        self.calls: list[list[str]] = []

    def __call__(self, argv: list[str], **_: Any) -> subprocess.CompletedProcess[str]:
        self.calls.append(argv)
        key = argv[0] if argv[0] != "sacct" else ("sacct-json" if "--json" in argv else "sacct")
        answer = self.answers.get(key, "")
        if callable(answer):
            answer = answer(argv)
        return subprocess.CompletedProcess(argv, 0, answer, "")


def _backend(**answers: Any) -> tuple[SlurmBackend, FakeSlurm]:
    fake = FakeSlurm({"scontrol": CONFIG, **answers})
    path = os.environ.get("PATH", "")
    if not shutil.which("sacct"):  # accounting needs sacct on PATH: a stand-in directory
        bin_dir = Path(os.environ.get("HARNESS_STATE_DIR", "/tmp")) / "fake-bin"
        bin_dir.mkdir(parents=True, exist_ok=True)
        (bin_dir / "sacct").write_text("#!/bin/sh\n")
        (bin_dir / "sacct").chmod(0o755)
        path = f"{bin_dir}:{path}"
    return SlurmBackend(log=lambda line: None, env={"PATH": path, "SLURM_CONF": "/x/slurm.conf"},
                        run=fake), fake


@pytest.fixture
def runs(tmp_path: Path) -> list:
    path = tmp_path / "sl.yaml"
    path.write_text(SCENARIO)
    return expand([load_scenario(path)])


# --- the slurm block and home_region --------------------------------------------------------


@pytest.mark.parametrize(("text", "seconds"), [
    (5, 300), ("5", 300), ("5:30", 330), ("1:00:00", 3600), ("2-3", 2 * 86400 + 3 * 3600),
    ("1-0:30", 86400 + 1800), ("1-00:00:10", 86410)])
def test_time_limit_forms(text: Any, seconds: int) -> None:
    assert parse_time_limit(text) == seconds


@pytest.mark.parametrize(("block", "message"), [
    ({"time_limit": 2}, "at least 3 minutes"),
    ({"time_limit": "UNLIMITED"}, "is not a Slurm time limit"),
    ({"time_limit": "1:2:3:4"}, "is not a Slurm time limit"),
    ({"sbatch": {"mem": "4g"}}, "--mem is set by the harness"),
    ({"sbatch": {"time": 5}}, "time_limit"),
    ({"sbatch": {"requeue": True}}, "--requeue is set by the harness"),
    ({"sbatch": {"frobnicate": 1}}, "not an sbatch option the harness passes on"),
    ({"sbatch": {"comment": "two\nlines"}}, "one line"),
    ({"constraint": "a b"}, "not a feature expression"),
    ({"partition": "cpu;rm"}, "not a Slurm name"),
    ({"gres": "gpu:a100:x:1"}, "not a GRES request"),
    ({"nodes": 2}, "Extra inputs are not permitted"),
])
def test_bad_slurm_blocks_are_refused_with_a_fix(block: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError) as info:
        SlurmSpec.model_validate(block)
    assert message in str(info.value)


def test_gres_must_match_the_entry(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="asks for 2 GPU"):
        HardwareSpec.model_validate({"name": "g", "device": "gpu", "gpus": 1,
                                     "slurm": {"gres": "gpu:a100:2"}})
    with pytest.raises(ValidationError, match="asks for 1 GPU"):
        HardwareSpec.model_validate({"name": "c", "device": "cpu", "slurm": {"gres": "gpu:1"}})
    ok = HardwareSpec.model_validate({"name": "g", "device": "gpu", "gpus": 2,
                                      "slurm": {"gres": "gpu:a100:2"}})
    assert ok.slurm is not None and ok.slurm.gres_gpus() == 2


def test_an_unknown_home_region_is_refused_naming_the_key(write_yaml) -> None:
    path = write_yaml(SCENARIO.replace("home_region: pol", "home_region: ATLANTIS"))
    result = run_cli("validate", str(path))
    assert result.returncode == 2
    assert "hardware[1].home_region" in result.stderr and "ATLANTIS" in result.stderr


def test_a_hardware_home_region_overrides_the_scenarios(runs: list) -> None:
    by_name = {run.hardware.name: run for run in runs}
    assert by_name["small-1"].home_region == "FRA"
    assert by_name["small-1"].regions == ["FRA", "DEU", "POL"]
    assert by_name["big"].home_region == "POL"  # upper-cased by validation
    assert by_name["big"].regions == ["POL", "FRA", "DEU"]
    rows = {row["run"]: row for row in map(describe, runs)}
    assert rows["sl__big__r01"]["home"] == "POL"
    assert "slurm[constraint=large time_limit=0:03:00 exclusive]" in rows["sl__big__r01"]["limits"]
    assert "shared" in rows["sl__gpu-a__r01"]["limits"]


# --- options and script -----------------------------------------------------------------------


def test_sbatch_and_srun_options_follow_the_entry(runs: list) -> None:
    backend, _ = _backend()
    small, big, gpu = runs
    options = backend.job_options(small)
    assert {"--nodes=1", "--ntasks=1", "--no-requeue", "--exclusive", "--cpus-per-task=2",
            "--mem=1088M", "--constraint=small", "--partition=cpu",
            "--reservation=bench", "--contiguous", "--signal=B:USR1@90"} <= set(options)
    # timeout_s 600 + the warning's 90 s lead + Slurm's up to 60 s earliness, in whole
    # minutes: the earliest warning (13 min - 150 s = 630 s) comes after timeout_s.
    assert "--time=13" in options
    assert backend.step_options(small)[-3:] == ["--exact", "--cpus-per-task=2", "--mem=1024M"]
    options = backend.job_options(big)
    assert "--mem=0" in options and "--time=3" in options  # exclusive: the node's memory
    assert not any(o.startswith("--cpus-per-task") for o in options)
    assert "--exact" not in backend.step_options(big)  # no cpus: the whole allocation
    options = backend.job_options(gpu)
    assert "--gres=gpu:1" in options and "--exclusive" not in options
    assert not any(o.startswith("--mem") for o in options)  # shared: the site's default
    assert "--gres=gpu:1" in backend.step_options(gpu)


def test_the_batch_script_is_valid_bash_and_runs_the_worker_as_a_step(runs: list,
                                                                     tmp_path: Path) -> None:
    backend, _ = _backend()
    script = backend.script(Job(run=runs[0], run_dir=tmp_path / "run dir", data_dir=tmp_path,
                                session="s", session_id="0" * 32))
    path = tmp_path / "job.sh"
    path.write_text(script)
    assert subprocess.run(["bash", "-n", str(path)]).returncode == 0
    assert f"run_dir='{tmp_path}/run dir'" in script
    assert "srun --nodes=1 --ntasks=1 --kill-on-bad-exit=1 --input=none --exact" in script
    assert '-m harness.worker "$run_dir" --data-dir "$data_dir"' in script
    assert "scancel --signal=TERM" in script and "USR1" in script
    env = backend.job_environment()
    assert "HARNESS_LIFELINE" not in env and "CUDA_VISIBLE_DEVICES" not in env
    assert env["SLURM_CONF"] == "/x/slurm.conf" and env["PYTHONPATH"] == str(REPO)


# --- parsers --------------------------------------------------------------------------------


def test_parsers_of_slurm_output() -> None:
    assert parse_tres("cpu=2,mem=1G,node=1,billing=2,gres/gpu=1") == {
        "cpu": 2, "mem": 1024, "node": 1, "gpu": 1}
    assert parse_tres("cpu=1,mem=23081M") == {"cpu": 1, "mem": 23081}
    assert wait_status(768) == 3 and wait_status(9) == -9 and wait_status(0) == 0
    assert wait_status(None) is None
    assert step_exit_codes("46|1:0\n46.batch|1:0\n46.0|0:125\n47.0|0:9\n") == {
        "": 1, "batch": 1, "0": -9}
    assert parse_config(CONFIG)["KillWait"] == "10 sec"
    status = squeue_status({"job_id": 7, "job_state": "PENDING", "state_reason": "Resources",
                            "nodes": "", "shared": "none", "tres_alloc_str": "",
                            "time_limit": 3, "submit_time": 100, "start_time": 0})
    assert (status.job_id, status.state, status.reason, status.exclusive) == (
        "7", "PENDING", "Resources", True)
    assert status.active and status.start is None and status.time_limit_s == 180
    status = scontrol_status("JobId=9 JobName=x JobState=OUT_OF_MEMORY Reason=OutOfMemory "
                             "ExitCode=0:125 NodeList=c1 Partition=cpu TRES=cpu=1,mem=300M")
    assert status is not None and status.state == "OUT_OF_MEMORY" and status.node == "c1"
    assert status.exit_code is None or status.exit_code == -125
    facts = OutputFacts()
    for line in ["HARNESS_SLURM start node=g1 job=5 cpus_on_node=2 cuda_visible_devices=0,1",
                 "HARNESS_SLURM step node=g1 cuda=1", "srun: error: c1: task 0: Out Of Memory",
                 "HARNESS_SLURM time-limit"]:
        facts.scan(line)
    assert (facts.node, facts.cuda_visible_devices, facts.oom, facts.time_limit) == (
        "g1", "1", True, True)


# --- the final state ----------------------------------------------------------------------


def _sacct(state: str, steps: dict[str, str], energy: int = 0) -> dict[str, Any]:
    return {"errors": [], "jobs": [{
        "job_id": 42, "state": {"current": state, "reason": "None"}, "nodes": "c2",
        "partition": "harness",
        "tres": {"allocated": [{"type": "cpu", "count": 2}, {"type": "mem", "count": 1088},
                               {"type": "node", "count": 1}]},
        "time": {"submission": 100, "start": 103, "end": 160, "limit": 12},
        "steps": [{"step": {"id": name}, "state": value,
                   "statistics": {"energy": {"consumed": energy}}}
                  for name, value in steps.items()]}]}


def _job(tmp_path: Path, runs: list) -> SlurmJobFile:
    run_dir = tmp_path / "run"
    run_dir.mkdir(exist_ok=True)
    from harness.plan import write_run_file

    write_run_file(run_dir, runs[1], session="s", session_id="0" * 32,
                   created_at="2026-01-01T00:00:00+00:00", backend="slurm")
    return SlurmJobFile(run_id=runs[1].run_id, session_id="0" * 32, job_id="42",
                        submitted_at="t", script="slurm-job.sh", output="slurm-42.out",
                        sbatch=["sbatch"], exclusive=True, time_limit_s=720.0)


@pytest.mark.parametrize(("state", "steps", "flag", "text"), [
    ("FAILED", {"batch": "FAILED", "0": "OUT_OF_MEMORY"}, "oom_killed", "OUT_OF_MEMORY"),
    ("NODE_FAIL", {"batch": "CANCELLED", "0": "CANCELLED"}, "failed", "NODE_FAIL"),
    ("PREEMPTED", {"batch": "CANCELLED"}, "failed", "preempted"),
    ("TIMEOUT", {"batch": "CANCELLED", "0": "CANCELLED"}, "timed_out", "time limit"),
    ("CANCELLED", {"batch": "CANCELLED"}, "interrupted", "outside the harness"),
])
def test_final_state_from_sacct(tmp_path: Path, runs: list, state: str, steps: dict[str, str],
                                flag: str, text: str) -> None:
    backend, _ = _backend(**{"sacct-json": json.dumps(_sacct(state, steps)),
                             "sacct": "42|1:0\n42.batch|1:0\n42.0|0:125\n"})
    outcome = backend.final(_job(tmp_path, runs), tmp_path / "run", None, OutputFacts(),
                            cancelled=None)
    assert getattr(outcome, flag) is True
    assert text in (outcome.reason or "")
    record = outcome.slurm
    assert record.accounting == "sacct" and record.node == "c2" and record.cpus == 2
    assert record.memory_bytes == 1088 * 2**20 and record.queued_s == 3
    assert record.steps == steps and record.consumed_energy_j is None
    assert "gathers no energy" in record.energy_note
    from harness.runner import classify

    status, reason = classify(outcome, None, [])
    expected = {"oom_killed": RunStatus.FAILED, "failed": RunStatus.FAILED,
                "timed_out": RunStatus.TIMEOUT, "interrupted": RunStatus.INTERRUPTED}[flag]
    assert status is expected and text in reason


def test_final_state_with_energy_and_without_accounting(tmp_path: Path, runs: list) -> None:
    config = CONFIG.replace("acct_gather_energy/none", "acct_gather_energy/rapl")
    backend, _ = _backend(scontrol=config, **{
        "sacct-json": json.dumps(_sacct("COMPLETED", {"batch": "COMPLETED", "0": "COMPLETED"},
                                        energy=7200)),
        "sacct": "42|0:0\n42.0|0:0\n"})
    outcome = backend.final(_job(tmp_path, runs), tmp_path / "run", None, OutputFacts(),
                            cancelled=None)
    assert outcome.exit_code == 0 and outcome.slurm.consumed_energy_j == 7200
    assert "acct_gather_energy/rapl" in outcome.slurm.energy_note
    # No accounting: squeue's last view, then the worker's files.
    config = CONFIG.replace("accounting_storage/slurmdbd", "accounting_storage/none")
    backend, fake = _backend(scontrol=lambda argv: "" if "job" in argv else config)
    last = squeue_status({"job_id": 42, "job_state": "FAILED", "exit_code": 768, "nodes": "c1",
                          "tres_alloc_str": "cpu=1,mem=1G", "start_time": 10, "end_time": 20})
    outcome = backend.final(_job(tmp_path, runs), tmp_path / "run", last, OutputFacts(),
                            cancelled=None)
    assert outcome.exit_code == 3 and outcome.duration_s == 10
    assert outcome.slurm.accounting.startswith("squeue/scontrol (no accounting")
    assert not any(call[0] == "sacct" for call in fake.calls)
    outcome = backend.final(_job(tmp_path, runs), tmp_path / "run", None, OutputFacts(),
                            cancelled="stopped by the user (Ctrl-C): job 42 cancelled while queued")
    assert outcome.interrupted and outcome.slurm.state == "UNKNOWN"
    assert outcome.slurm.accounting.startswith("worker files only")


# --- runner and CLI -------------------------------------------------------------------------


def test_detach_needs_a_batch_backend(write_yaml, tmp_path: Path) -> None:
    path = write_yaml(SCENARIO)
    result = run_cli("run", str(path), "--backend", "local", "--detach", "--results-dir",
                     str(tmp_path / "results"), "--no-idle")
    assert result.returncode == 2 and "--detach" in result.stderr
    assert not (tmp_path / "results").exists() or not any((tmp_path / "results").iterdir())


def test_attach_refuses_a_session_of_another_backend(tmp_path: Path) -> None:
    session = tmp_path / "machine-a"
    shutil.copytree(REPO / "tests/fixtures/sessions/machine-a", session)
    result = run_cli("attach", str(session))
    assert result.returncode == 2 and "only Slurm sessions" in result.stderr
    assert run_cli("attach", str(tmp_path / "nothing")).returncode == 2


def test_a_dead_harness_slurm_session_is_left_for_attach(tmp_path: Path) -> None:
    from harness import state
    from harness.runner import reap_dead_sessions

    session = tmp_path / "sess"
    run_dir = session / "r1"
    run_dir.mkdir(parents=True)
    (run_dir / "run.json").write_text("{}")
    (run_dir / JOB_FILE).write_text("{}")
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    entry = {"session_id": "f" * 32, "session": "sess", "session_dir": str(session),
             "pid": dead.pid, "start_ticks": 1, "host": os.uname().nodename}
    (state.state_dir() / "sessions").mkdir(parents=True, exist_ok=True)
    (state.state_dir() / "sessions" / f"{'f' * 32}.json").write_text(json.dumps(entry))
    said: list[str] = []
    assert reap_dead_sessions(said.append) == 0
    assert not (run_dir / "outcome.json").exists()
    assert any("harness attach" in line for line in said)
    assert all(e.session_id != "f" * 32 for e in state.entries())


def test_memory_limit_of_an_enclosing_cgroup_counts(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """A Slurm job's limit sits on job_N; the task's own cgroup reads unlimited (v1)."""
    root = tmp_path / "cgroup"
    task = root / "memory/slurm_c1/uid_0/job_27/step_0/task_0"
    task.mkdir(parents=True)
    unlimited = "9223372036854771712\n"
    for level, text in ((task, unlimited), (task.parent, "1073741824\n"),
                        (task.parent.parent, "1140850688\n"), (root / "memory", unlimited)):
        (level / "memory.limit_in_bytes").write_text(text)
    monkeypatch.setattr(hostinfo, "_own_cgroup_dirs", lambda r, c: [task])
    assert hostinfo.cgroup_memory_limit(root) == 1073741824
    (task.parent / "memory.limit_in_bytes").write_text(unlimited)
    (task.parent.parent / "memory.limit_in_bytes").write_text(unlimited)
    assert hostinfo.cgroup_memory_limit(root) is None


def test_outcome_json_carries_the_slurm_record() -> None:
    """The record round-trips through outcome.json's model (its fields are typed)."""
    from harness.schema import SlurmRecord

    record = SlurmRecord(job_id="5", state="OUT_OF_MEMORY", job_state="FAILED",
                         steps={"batch": "FAILED", "0": "OUT_OF_MEMORY"}, node="c1",
                         cpus=2, memory_bytes=2**30, gpus=0, exclusive=True, queued_s=1.0)
    outcome = Outcome(run_id="r", status=RunStatus.FAILED, exit_code=1, duration_s=3.0,
                      reason="x", log_tail=[], backend="slurm", provenance={},
                      finished_at="t", slurm=record)
    assert Outcome.model_validate_json(outcome.model_dump_json()).slurm == record
    carbon = {label: carbon_intensity(parse_region(label)).g_per_kwh for label in ("FRA", "POL")}
    assert carbon["POL"] > carbon["FRA"]  # the cluster test below prices in both
