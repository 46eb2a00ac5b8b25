"""The Slurm backend end to end, against the single-host test cluster (slurm/, started by
``make test``): real jobs, the real worker (TensorFlow, CodeCarbon) on tiny generated
data, as a user runs ``harness run --backend slurm``.

The cluster must run: these tests fail, never skip, when it does not answer (the
``slurm`` fixture of tests/test_slurm_cluster.py). Every test leaves no job of its own in
the queue. Results and data live in pytest's tmp directories, which the cluster's nodes
see (one host: the shared filesystem the backend needs).
"""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from harness.regions import carbon_intensity, parse_region
from harness.results import LoadedRun, load
from tests.conftest import REPO, run_cli, wait_for
from tests.test_slurm_cluster import STATE_DIR, Slurm, slurm  # noqa: F401  (the fixture)

pytestmark = [pytest.mark.slurm, pytest.mark.slow]

SCENARIO = """\
name: {name}
dataset: {{kind: synthetic, train_size: {train}, test_size: 200}}
hardware:
{hardware}
regions: {{home: FRA, compare: [DEU]}}
training: {{epochs: {epochs}}}
tracker: {{measure_power_secs: 1}}
timeout_s: {timeout}
"""


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One data directory for the module: each size is generated once."""
    return tmp_path_factory.mktemp("slurm-data")


@pytest.fixture
def env(slurm: Slurm) -> dict[str, str]:  # noqa: F811
    return {**os.environ, "SLURM_CONF": slurm.env["SLURM_CONF"]}


@pytest.fixture(autouse=True)
def queue_left_empty(slurm: Slurm) -> Iterator[None]:  # noqa: F811
    """No job of the harness is left queued or running after a test (squeue empty)."""
    yield
    deadline = time.monotonic() + 60
    while True:
        left = _harness_jobs(slurm)
        if not left or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    if left:
        slurm.run("scancel", *[job_id for job_id, _ in left], check=False)
    assert not left, f"jobs of the harness still in squeue after the test: {left}"


def _harness_jobs(slurm: Slurm) -> list[tuple[str, str]]:  # noqa: F811
    out = slurm.run("squeue", "-h", "-o", "%i %j %T", check=False).stdout
    return [(f[0], f[2]) for f in (line.split() for line in out.splitlines())
            if len(f) == 3 and f[1].startswith("harness-")]


def _scenario(tmp_path: Path, name: str, hardware: str, *, epochs: int = 1, train: int = 1000,
              timeout: int = 600) -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(SCENARIO.format(name=name, hardware=hardware, epochs=epochs, train=train,
                                    timeout=timeout))
    return path


def _args(tmp_path: Path, data_dir: Path, session: str) -> list[str]:
    return ["--backend", "slurm", "--results-dir", str(tmp_path / "results"),
            "--data-dir", str(data_dir), "--session", session]


def _runs(session: Path) -> dict[str, LoadedRun]:
    sessions, _ = load([session])
    return {run.run_id: run for item in sessions for run in item.runs}


def _outcome(run_dir: Path) -> dict[str, Any]:
    return json.loads((run_dir / "outcome.json").read_text())


def _background(args: list[str], env: dict[str, str], tmp_path: Path,
                name: str) -> tuple[subprocess.Popen[str], Path]:
    """``python -m harness ARGS`` in the background, its output in files (never a full pipe)."""
    err = tmp_path / f"{name}.err"
    proc = subprocess.Popen([sys.executable, "-m", "harness", *args], cwd=REPO, env=env,
                            stdout=(tmp_path / f"{name}.out").open("w"), stderr=err.open("w"),
                            text=True)
    return proc, err


def test_two_nodes_selected_by_features_with_limits_and_home_regions(
        tmp_path: Path, data_dir: Path, env: dict[str, str], slurm: Slurm) -> None:  # noqa: F811
    hardware = """\
  - name: small-1
    device: cpu
    cpus: 1
    memory: 1g
    slurm: {constraint: small}
  - name: large
    device: cpu
    home_region: POL
    slurm: {constraint: large}"""
    scenario = _scenario(tmp_path, "two", hardware)
    started = time.monotonic()
    result = run_cli("run", str(scenario), *_args(tmp_path, data_dir, "s1"), env=env,
                     timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert time.monotonic() - started < 120
    session = tmp_path / "results" / "s1"
    runs = _runs(session)
    small, large = runs["two__small-1__r01"], runs["two__large__r01"]
    for run, node in ((small, "c1"), (large, "c2")):
        assert run.usable, run.reason
        record = run.outcome.slurm
        assert record.job_id.isdigit() and record.node == node
        assert record.state == "COMPLETED" and record.accounting == "sacct"
        assert record.partition == "harness" and record.exclusive is True
        assert record.steps == {"batch": "COMPLETED", "0": "COMPLETED"}
        assert record.consumed_energy_j is None and "gathers no energy" in record.energy_note
        assert "exclusively" in record.machine_scope
        job = json.loads((run.run_dir / "slurm-job.json").read_text())
        assert job["format"] == "harness.slurm-job" and job["job_id"] == record.job_id
        assert run.outcome.machine is None and run.outcome.backend == "slurm"
        assert run.run_file.backend == "slurm"
        environment = run.metrics.environment
        assert environment.backend == "slurm" and environment.in_container is False
        # The job's accounting names the node the worker saw.
        assert slurm.accounting(record.job_id)["nodes"] == node
    # Limits inside the job: one CPU (srun --exact in an exclusive job), the memory limit
    # from the job's cgroup (cgroup v1: set on job_N/step_0, not on the task's own).
    assert small.metrics.environment.cpus_effective == 1
    assert small.metrics.environment.memory_limit_bytes == 2**30
    assert large.metrics.environment.cpus_effective == 2
    assert (large.metrics.environment.memory_limit_bytes or 0) > 2**30  # the node's (--mem=0)
    # No machine meter or idle baseline on the submitting host.
    session_record = json.loads((session / "session.json").read_text())
    assert session_record["idle"] is None and "nodes" in session_record["idle_note"]
    assert session_record["backend"]["backend"] == "slurm"
    # Progress as plain lines, queued/running/finished per run.
    assert "submitted as job" in result.stderr and "running on c1" in result.stderr
    assert "two__small-1__r01: epoch 1/1" in result.stderr
    # The same report as for the other backends, each hardware priced in its own home.
    assert "== Summary per scenario and hardware ==" in result.stdout
    assert "Slurm energy: none recorded" in result.stdout
    summary = json.loads((session / "report" / "summary.json").read_text())
    homes = {g["hardware"]: g["home_region"] for g in summary["groups"]}
    assert homes == {"small-1": "FRA", "large": "POL"}
    (comparison,) = summary["comparisons"]
    ratio = carbon_intensity(parse_region("POL")).g_per_kwh / carbon_intensity(
        parse_region("FRA")).g_per_kwh
    assert math.isclose(comparison["co2_ratio"]["estimate"],
                        comparison["energy_ratio"]["estimate"] * ratio, rel_tol=1e-6)
    report = run_cli("report", str(session), "--out", str(tmp_path / "report"))
    assert report.returncode == 0, report.stderr
    assert "POL (home)" in report.stdout and "FRA (home)" in report.stdout


def test_out_of_memory_and_a_gpu_entry_on_the_fake_gpu_node(
        tmp_path: Path, data_dir: Path, env: dict[str, str]) -> None:
    hardware = """\
  - name: tiny
    device: cpu
    cpus: 1
    memory: 300m
    slurm: {constraint: small}
  - name: gpu-1
    device: gpu
    gpus: 1
    slurm: {constraint: gpu}"""
    scenario = _scenario(tmp_path, "oom", hardware)
    result = run_cli("run", str(scenario), *_args(tmp_path, data_dir, "s2"), env=env,
                     timeout=300)
    assert result.returncode == 1, result.stderr[-3000:]
    session = tmp_path / "results" / "s2"
    tiny = _outcome(session / "oom__tiny__r01")
    assert tiny["status"] == "failed" and "OUT_OF_MEMORY" in tiny["reason"]
    assert tiny["slurm"]["state"] == "OUT_OF_MEMORY"
    assert tiny["slurm"]["steps"]["0"] == "OUT_OF_MEMORY"
    # Slurm scheduled the GPU entry on g1 (no nvidia-smi needed here); the worker refused.
    gpu = _outcome(session / "oom__gpu-1__r01")
    assert gpu["status"] == "failed" and "TensorFlow sees 0 GPU(s)" in gpu["reason"]
    assert gpu["slurm"]["node"] == "g1" and gpu["slurm"]["gpus"] >= 1
    assert gpu["slurm"]["cuda_visible_devices"] in ("0", "1")
    assert "OUT_OF_MEMORY" in result.stderr


def test_ctrl_c_cancels_a_queued_and_a_running_job(
        tmp_path: Path, data_dir: Path, env: dict[str, str]) -> None:
    # Both exclusive on the one small node: the second waits in the queue.
    hardware = "\n".join(f"""\
  - name: {name}
    device: cpu
    cpus: 1
    slurm: {{constraint: small}}""" for name in ("first", "second"))
    scenario = _scenario(tmp_path, "cc", hardware, epochs=200, train=2000)
    proc, err = _background(["run", str(scenario), *_args(tmp_path, data_dir, "s3")], env,
                            tmp_path, "cc")
    first = tmp_path / "results" / "s3" / "cc__first__r01"
    try:
        assert wait_for(lambda: (first / "history.json").exists(), 120), err.read_text()[-2000:]
        assert "cc__second__r01: queued" in err.read_text()
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=120) == 130
    finally:
        if proc.poll() is None:
            proc.terminate()
            proc.wait(timeout=120)
    text = err.read_text()
    assert "cancelling the session's 2 job(s)" in text
    runs = _runs(tmp_path / "results" / "s3")
    running, queued = runs["cc__first__r01"], runs["cc__second__r01"]
    assert running.status == "interrupted" and "while running on c1" in running.reason
    assert running.metrics.status == "partial" and running.metrics.training.epochs_run >= 1
    assert running.history is not None and running.history.epochs
    assert queued.status == "interrupted" and "while queued" in queued.reason
    assert queued.outcome.slurm.state == "CANCELLED" and queued.metrics is None


def test_time_limit_ends_in_timeout_with_partial_results(
        tmp_path: Path, data_dir: Path, env: dict[str, str]) -> None:
    # time_limit 3 min, the shortest: Slurm warns the batch script 90 s before it, or up
    # to 60 s earlier (sbatch(1)), so 30 to 90 s after the start: after epoch 1.
    hardware = """\
  - name: limited
    device: cpu
    cpus: 1
    slurm: {constraint: large, time_limit: 3}"""
    scenario = _scenario(tmp_path, "tl", hardware, epochs=1000, train=2000)
    started = time.monotonic()
    result = run_cli("run", str(scenario), *_args(tmp_path, data_dir, "s4"), env=env,
                     timeout=300)
    assert result.returncode == 1, result.stderr[-3000:]
    assert time.monotonic() - started < 180  # stopped by the warning, before the limit
    run = _runs(tmp_path / "results" / "s4")["tl__limited__r01"]
    assert run.status == "timeout" and "time limit" in run.reason
    assert run.metrics.status == "partial" and run.metrics.training.epochs_run >= 1
    assert run.outcome.slurm.time_limit_s == 180
    assert "HARNESS_SLURM time-limit" in (run.run_dir / "worker.log").read_text()


def test_a_node_daemon_killed_mid_run_is_node_fail(
        tmp_path: Path, data_dir: Path, env: dict[str, str], slurm: Slurm) -> None:  # noqa: F811
    hardware = """\
  - name: doomed
    device: cpu
    cpus: 1
    slurm: {constraint: large}"""
    scenario = _scenario(tmp_path, "nf", hardware, epochs=1000, train=2000)
    proc, err = _background(["run", str(scenario), *_args(tmp_path, data_dir, "s5")], env,
                            tmp_path, "nf")
    run_dir = tmp_path / "results" / "s5" / "nf__doomed__r01"
    try:
        assert wait_for(lambda: (run_dir / "history.json").exists(), 120), err.read_text()[-2000:]
        pid = int((STATE_DIR / "run" / "slurmd-c2.pid").read_text().strip())
        os.kill(pid, signal.SIGKILL)
        # SlurmdTimeout is 20 s on the test cluster: the job ends NODE_FAIL about 30 s later.
        assert proc.wait(timeout=150) == 1, err.read_text()[-2000:]
    finally:
        if proc.poll() is None:
            proc.terminate()
            proc.wait(timeout=120)
        # The cluster script restarts the missing daemon (it restarts all: idempotent), so
        # the next tests find three idle nodes; it also ends the orphaned worker.
        restart = subprocess.run(["bash", str(REPO / "slurm/start-cluster.sh")],
                                 capture_output=True, text=True, timeout=180)
        assert restart.returncode == 0, restart.stderr[-2000:]
    outcome = _outcome(run_dir)
    assert outcome["status"] == "failed" and "NODE_FAIL" in outcome["reason"]
    assert outcome["slurm"]["state"] == "NODE_FAIL" and outcome["slurm"]["node"] == "c2"
    assert outcome["exit_code"] is None
    assert slurm.accounting(outcome["slurm"]["job_id"])["state"]["current"] == "NODE_FAIL"


def test_detach_then_attach_even_after_the_follower_was_killed(
        tmp_path: Path, data_dir: Path, env: dict[str, str]) -> None:
    hardware = "\n".join(f"""\
  - name: {name}
    device: cpu
    cpus: 1
    slurm: {{constraint: {feature}}}""" for name, feature in (("a", "small"), ("b", "large")))
    scenario = _scenario(tmp_path, "dt", hardware, epochs=15, train=2000)
    result = run_cli("run", str(scenario), *_args(tmp_path, data_dir, "s6"), "--detach",
                     env=env, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    session = tmp_path / "results" / "s6"
    assert f"python -m harness attach {session}" in result.stderr
    assert result.stdout == ""  # no report yet: nothing has finished
    assert not (session / "dt__a__r01" / "outcome.json").exists()
    jobs = [json.loads((session / r / "slurm-job.json").read_text())["job_id"]
            for r in ("dt__a__r01", "dt__b__r01")]
    # A follower killed outright (SIGKILL: no handler runs) leaves the jobs running...
    proc, err = _background(["attach", str(session)], env, tmp_path, "attach")
    assert wait_for(lambda: (session / "dt__a__r01" / "history.json").exists(), 120), \
        err.read_text()[-2000:]
    proc.kill()
    proc.wait(timeout=30)
    assert not (session / "dt__a__r01" / "outcome.json").exists()
    # ...and a new attach follows them to the end, as `run` would have.
    result = run_cli("attach", str(session), env=env, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    runs = _runs(session)
    for run_id, job_id in zip(("dt__a__r01", "dt__b__r01"), jobs, strict=True):
        assert runs[run_id].usable, runs[run_id].reason
        assert runs[run_id].outcome.slurm.job_id == job_id
        assert runs[run_id].metrics.training.epochs_run == 15
    assert "== Summary per scenario and hardware ==" in result.stdout
    assert (session / "report" / "summary.json").exists()
    again = run_cli("attach", str(session), env=env, timeout=120)
    assert again.returncode == 0 and "2 run(s) already finished, 0 job(s)" in again.stderr
