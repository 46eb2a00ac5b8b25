"""The single-host test Slurm cluster (slurm/, ``make slurm-cluster``): nodes, features,
limits, fake GPUs, cancel and time limit, as the harness's Slurm backend relies on them.

The cluster must run: these tests fail, never skip, when it does not answer. Each job
writes into pytest's tmp_path (one host: the same file system for the job and the test),
and every test leaves none of its jobs in squeue.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.slurm

STATE_DIR = Path(os.environ.get("HARNESS_SLURM_DIR") or "/var/tmp/harness-slurm")
START_HINT = "start it with `make slurm-cluster` (as root; see slurm/README.md)"
# Job states in which a job is not finished (squeue %T / sacct names).
ACTIVE = {"PENDING", "CONFIGURING", "RUNNING", "COMPLETING", "SUSPENDED", "RESIZING",
          "SIGNALING", "STAGE_OUT", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED", "STOPPED"}


class Slurm:
    """Client commands against the test cluster, with timeouts; remembers submitted jobs."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env = env
        self.submitted: list[str] = []

    def run(self, *args: str, timeout: float = 30, check: bool = True) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(list(args), env=self.env, capture_output=True, text=True, timeout=timeout)
        if check and proc.returncode != 0:
            raise AssertionError(f"{' '.join(args)} exited {proc.returncode}: {proc.stderr.strip()}")
        return proc

    def sbatch(self, *args: str, timeout: float = 30) -> str:
        """Submit; return the job id (the job is cancelled at the end of the test if still there)."""
        out = self.run("sbatch", "--parsable", *args, timeout=timeout).stdout.strip()
        job_id = out.split(";")[0]
        assert job_id.isdigit(), f"sbatch printed {out!r}, not a job id"
        self.submitted.append(job_id)
        return job_id

    def queue_state(self, job_id: str) -> str | None:
        """The job's state in the controller (e.g. RUNNING, COMPLETING), None once gone."""
        proc = self.run("squeue", "-h", "-t", "all", "-j", job_id, "-o", "%T", check=False)
        return proc.stdout.strip() or None if proc.returncode == 0 else None

    def wait_state(self, job_id: str, states: set[str], timeout_s: float) -> str | None:
        deadline = time.monotonic() + timeout_s
        while True:
            state = self.queue_state(job_id)
            if state is None or state in states or time.monotonic() > deadline:
                return state
            time.sleep(0.2)

    def wait_finished(self, job_id: str, timeout_s: float = 60) -> None:
        deadline = time.monotonic() + timeout_s
        while (state := self.queue_state(job_id)) in ACTIVE:
            assert time.monotonic() < deadline, f"job {job_id} still {state} after {timeout_s} s"
            time.sleep(0.2)

    def json(self, *args: str) -> dict[str, Any]:
        """``CMD --json ARGS``; fails on the "errors" 22.05 reports with exit status 0."""
        answer = json.loads(self.run(args[0], "--json", *args[1:]).stdout)
        assert not answer.get("errors"), f"{' '.join(args)} --json: {answer['errors']}"
        return answer

    def accounting(self, job_id: str, timeout_s: float = 30) -> dict[str, Any]:
        """The job's record in ``sacct --json`` once it shows a final state (accounting lags ~1 s)."""
        deadline = time.monotonic() + timeout_s
        while True:
            jobs = self.json("sacct", "-j", job_id)["jobs"]
            job = next((j for j in jobs if str(j["job_id"]) == job_id), None)
            if job is not None and state_of(job) not in ACTIVE:
                return job
            assert time.monotonic() < deadline, f"job {job_id}: no final state in sacct after {timeout_s} s"
            time.sleep(0.3)

    def batch(self, tmp_path: Path, script: str, *args: str, timeout_s: float = 60) -> dict[str, Any]:
        """Run a batch script (output in tmp_path) to its end; return its sacct record."""
        path = tmp_path / "job.sh"
        path.write_text("#!/bin/bash\nset -eu\n" + script)
        job_id = self.sbatch(f"--output={tmp_path}/slurm-%j.out", f"--chdir={tmp_path}",
                             "--job-name=harness-test", *args, str(path))
        self.wait_finished(job_id, timeout_s)
        return self.accounting(job_id)


def state_of(record: dict[str, Any]) -> str:
    """A sacct --json job or step state: {"current": "COMPLETED", ...} in 22.05, a string in others."""
    state = record["state"]
    value = state.get("current") if isinstance(state, dict) else state
    return value[0] if isinstance(value, list) else str(value)


@pytest.fixture(scope="module")
def slurm() -> Slurm:
    conf = os.environ.get("SLURM_CONF") or str(STATE_DIR / "slurm.conf")
    missing = [cmd for cmd in ("sinfo", "sbatch", "squeue", "sacct", "scancel") if not shutil.which(cmd)]
    if missing:
        pytest.fail(f"Slurm client commands not found ({', '.join(missing)}): {START_HINT}", pytrace=False)
    if not Path(conf).is_file():
        pytest.fail(f"no Slurm configuration at {conf}: the test Slurm cluster is not set up; {START_HINT}",
                    pytrace=False)
    env = {**os.environ, "SLURM_CONF": conf}
    try:
        proc = subprocess.run(["sinfo", "--json"], env=env, capture_output=True, text=True, timeout=20)
    except subprocess.TimeoutExpired:
        pytest.fail(f"the test Slurm cluster ({conf}) does not answer within 20 s; {START_HINT}",
                    pytrace=False)
    # sinfo --json exits 0 with {"errors": [...], "nodes": []} when slurmctld is down.
    errors = proc.stderr.strip()[-300:]
    if proc.returncode == 0:
        try:
            answer = json.loads(proc.stdout)
            errors = "; ".join(str(e.get("error", e)) for e in answer.get("errors", []))
            if not errors and answer.get("nodes"):
                return Slurm(env)
        except json.JSONDecodeError:
            errors = f"not JSON: {proc.stdout[:200]!r}"
    pytest.fail(f"the test Slurm cluster ({conf}) does not answer (sinfo --json: {errors or 'no nodes'}); "
                f"{START_HINT}", pytrace=False)


@pytest.fixture(autouse=True)
def no_job_left(slurm: Slurm) -> Iterator[None]:
    """After each test none of its jobs is in squeue: leftovers are cancelled and fail the test."""
    slurm.submitted = []
    yield
    if not slurm.submitted:
        return
    ids = ",".join(slurm.submitted)
    left = slurm.run("squeue", "-h", "-j", ids, "-o", "%i %T", check=False).stdout.split("\n")
    left = [line for line in left if line.strip()]
    if left:
        slurm.run("scancel", *slurm.submitted, check=False)
        for job_id in slurm.submitted:
            slurm.wait_state(job_id, set(), timeout_s=30)
    assert not left, f"jobs still in squeue after the test (now cancelled): {left}"
    # Completed jobs stay in the controller's list for MinJobAge: only active ones count.
    active = slurm.run("squeue", "-h", "-j", ids, "-o", "%i %T", check=False).stdout.strip()
    assert not active, f"jobs still in squeue after scancel: {active}"


def test_sinfo_lists_the_three_nodes_with_their_features(slurm: Slurm) -> None:
    nodes = {n["name"]: n for n in slurm.json("sinfo")["nodes"]}
    assert set(nodes) >= {"c1", "c2", "g1"}, f"nodes: {sorted(nodes)}"
    features = {name: set(nodes[name]["features"].split(",")) for name in ("c1", "c2", "g1")}
    assert features == {"c1": {"cpu", "small"}, "c2": {"cpu", "large"}, "g1": {"gpu"}}
    assert nodes["g1"]["gres"] == "gpu:fake:2"
    for name in ("c1", "c2", "g1"):
        assert "harness" in nodes[name]["partitions"]
        state = nodes[name]["state"]
        assert state in {"idle", "mixed", "allocated"}, f"{name} is {state}: see `sinfo -R`"


@pytest.mark.parametrize(("constraint", "node"), [("large", "c2"), ("gpu", "g1"), ("small", "c1")])
def test_constraint_picks_the_node_with_that_feature(slurm: Slurm, tmp_path: Path,
                                                     constraint: str, node: str) -> None:
    job = slurm.batch(tmp_path, 'echo "$SLURMD_NODENAME" > node.txt\n', f"--constraint={constraint}")
    assert state_of(job) == "COMPLETED"
    assert (tmp_path / "node.txt").read_text().strip() == node
    assert job["nodes"] == node


def test_one_cpu_job_sees_one_cpu(slurm: Slurm, tmp_path: Path) -> None:
    job = slurm.batch(tmp_path, "nproc > nproc.txt\n", "--cpus-per-task=1", "--constraint=cpu")
    assert state_of(job) == "COMPLETED"
    assert (tmp_path / "nproc.txt").read_text().strip() == "1"


def test_job_over_its_memory_ends_out_of_memory(slurm: Slurm, tmp_path: Path) -> None:
    # 300 MB actually written (b"x" * n touches every page) under a 100 MB limit.
    script = f'{sys.executable} -c \'data = b"x" * (300 * 1024 * 1024); print(len(data))\'\n'
    job = slurm.batch(tmp_path, script, "--mem=100M", "--constraint=cpu")
    states = {state_of(job), *(state_of(step) for step in job["steps"])}
    assert "OUT_OF_MEMORY" in states, f"job and step states: {states}"


def test_fake_gpu_request_sets_cuda_visible_devices(slurm: Slurm, tmp_path: Path) -> None:
    job = slurm.batch(tmp_path, 'echo "${CUDA_VISIBLE_DEVICES:-unset} $SLURMD_NODENAME" > gpu.txt\n',
                      "--gres=gpu:fake:1")
    assert state_of(job) == "COMPLETED"
    visible, node = (tmp_path / "gpu.txt").read_text().split()
    assert node == "g1"
    assert visible in {"0", "1"}, f"CUDA_VISIBLE_DEVICES={visible}"


def test_more_fake_gpus_than_the_node_has_are_refused_at_submit(slurm: Slurm) -> None:
    proc = slurm.run("sbatch", "--parsable", "--gres=gpu:fake:3", "--wrap=true", check=False)
    if proc.returncode == 0:
        slurm.submitted.append(proc.stdout.strip().split(";")[0])
    assert proc.returncode != 0, "a job asking for 3 fake GPUs (g1 has 2) was accepted"
    assert "Requested node configuration is not available" in proc.stderr


def test_scancel_runs_the_term_trap_and_ends_cancelled(slurm: Slurm, tmp_path: Path) -> None:
    script = tmp_path / "job.sh"
    script.write_text(
        "#!/bin/bash\n"
        f"trap 'echo trapped > {tmp_path}/term.txt; exit 0' TERM\n"
        f"touch {tmp_path}/started\n"
        "sleep 300 & wait\n"
    )
    job_id = slurm.sbatch(f"--output={tmp_path}/slurm-%j.out", "--job-name=harness-test", str(script))
    deadline = time.monotonic() + 30
    while not (tmp_path / "started").exists():
        assert time.monotonic() < deadline, f"job {job_id} did not start within 30 s"
        time.sleep(0.1)
    slurm.run("scancel", job_id)
    slurm.wait_finished(job_id, timeout_s=30)  # CANCELLED shows while the trap still runs
    assert (tmp_path / "term.txt").read_text().strip() == "trapped"
    assert state_of(slurm.accounting(job_id)) == "CANCELLED"


def test_time_limit_ends_timeout(slurm: Slurm, tmp_path: Path) -> None:
    # --time=1 is the shortest limit (one minute); slurmctld checks limits every 30 s,
    # so this test takes 60 to 90 s.
    started = time.monotonic()
    job = slurm.batch(tmp_path, "sleep 300\n", "--time=1", timeout_s=130)
    assert state_of(job) == "TIMEOUT"
    assert 55 <= time.monotonic() - started <= 130
