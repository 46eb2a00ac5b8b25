"""Faults and hostile input at run time, tried as a user (or a crash) would.

- The harness itself killed (SIGKILL) or its terminal closed (SIGHUP) during a run: no
  container or worker outlives it for more than seconds, and the session stays readable;
  the next harness start marks the run and says so.
- Two sessions of the same name in two results directories: stopping one never touches
  the other, and both record that they shared the machine.
- A full or read-only disk, bad paths and names, hostile scenario files: a clear message,
  exit 2, no traceback, nothing half-written.

The container tests need the Docker engine and fail (never skip) without it; the disk
tests mount small tmpfs filesystems and need root (CI runs as root), and fail otherwise.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from harness.results import load
from tests.conftest import REPO, run_cli, wait_for

SCENARIO = """\
name: {name}
dataset:
  kind: synthetic
  train_size: 2000
  test_size: 400
hardware:
  - name: cpu-a
    device: cpu
regions:
  home: FRA
training:
  epochs: {epochs}
tracker:
  measure_power_secs: 1
timeout_s: 900
"""


def _scenario(tmp_path: Path, name: str = "flt", epochs: int = 1) -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(SCENARIO.format(name=name, epochs=epochs))
    return path


def _args(results: Path, data: Path, backend: str, session: str | None = None) -> list[str]:
    args = ["--backend", backend, "--results-dir", str(results), "--data-dir", str(data),
            "--no-idle"]
    return args + (["--session", session] if session else [])


def _start(*args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "harness", *args], cwd=REPO, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
                            start_new_session=True)


def _no_traceback(result: subprocess.CompletedProcess[str]) -> None:
    assert "Traceback" not in result.stderr + result.stdout, result.stderr[-2000:]


def _worker_running(run_dir: Path) -> bool:
    out = subprocess.run(["pgrep", "-f", f"harness.worker {run_dir}"], capture_output=True)
    return out.returncode == 0


# --- the harness killed: nothing outlives it ---------------------------------------------


@pytest.mark.slow
def test_sigkill_of_the_harness_stops_a_local_worker_and_the_next_start_marks_it(
        tmp_path: Path) -> None:
    results, data = tmp_path / "results", tmp_path / "data"
    scenario = _scenario(tmp_path, epochs=300)
    proc = _start("run", str(scenario), *_args(results, data, "local", "k1"))
    run_dir = (results / "k1" / "flt__cpu-a__r01").resolve()
    try:
        assert wait_for(lambda: (run_dir / "history.json").exists(), 300)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        # The worker's lifeline (its stdin) closed with the harness: it stops itself,
        # writing what it had.
        assert wait_for(lambda: not _worker_running(run_dir), 30), "the worker outlived it"
    finally:
        with_kill = subprocess.run(["pkill", "-f", f"harness.worker {run_dir}"])
        del with_kill
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["status"] == "partial" and "lifeline" in metrics["error"]
    # The next harness start finds the dead session and marks its run.
    clean = run_cli("clean")
    assert clean.returncode == 0, clean.stderr
    assert f"marked {run_dir}" in clean.stdout and "orphaned" in clean.stdout
    sessions, _ = load([results / "k1"])
    (run,) = sessions[0].runs
    assert run.status == "orphaned" and "died" in run.reason
    report = run_cli("report", str(results / "k1"))
    assert report.returncode == 0 and "orphaned" in report.stdout


def _session_containers(client, session_dir: Path) -> list:
    return [c for c in client.containers.list(all=True, filters={"label": "harness.run-dir"})
            if c.labels.get("harness.run-dir", "").startswith(str(session_dir.resolve()))]


@pytest.mark.docker
@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGHUP])
def test_a_killed_or_hung_up_harness_leaves_no_running_container(tmp_path: Path, docker_client,
                                                                 sig: signal.Signals) -> None:
    results, data = tmp_path / "results", tmp_path / "data"
    scenario = _scenario(tmp_path, epochs=300)
    session = results / "d1"
    proc = _start("run", str(scenario), *_args(results, data, "docker", "d1"))
    history = session / "flt__cpu-a__r01" / "history.json"
    assert wait_for(history.exists, 600), proc.stderr.read() if proc.poll() is not None else ""
    assert [c.status for c in _session_containers(docker_client, session)] == ["running"]
    os.kill(proc.pid, sig)
    proc.wait(timeout=120)

    def stopped() -> bool:
        return all(c.status != "running" for c in _session_containers(docker_client, session))

    assert wait_for(stopped, 30), "a container of the dead harness still runs after 30 s"
    if sig == signal.SIGHUP:  # caught: the harness stopped and removed it itself
        assert _session_containers(docker_client, session) == []
        sessions, _ = load([session])
        assert sessions[0].runs[0].status == "interrupted"
    else:
        # SIGKILL: the worker stopped itself (lifeline); the next start removes the
        # container and marks the run.
        clean = run_cli("clean")
        assert clean.returncode == 0, clean.stderr
        assert "orphaned" in clean.stdout
        assert _session_containers(docker_client, session) == []
        sessions, _ = load([session])
        assert sessions[0].runs[0].status == "orphaned"
        assert sessions[0].runs[0].metrics.status == "partial"  # what it had is kept
    report = run_cli("report", str(session))
    assert report.returncode == 0, report.stderr
    _no_traceback(report)


@pytest.mark.docker
@pytest.mark.slow
def test_two_sessions_of_one_name_are_independent_and_know_of_each_other(
        tmp_path: Path, docker_client) -> None:
    data = tmp_path / "data"
    long = _scenario(tmp_path, "long", epochs=300)
    short = _scenario(tmp_path, "short", epochs=4)
    first = _start("run", str(long), *_args(tmp_path / "one", data, "docker", "same"))
    one = tmp_path / "one" / "same"
    assert wait_for((one / "long__cpu-a__r01" / "history.json").exists, 600)
    second = _start("run", str(short), *_args(tmp_path / "two", data, "docker", "same"))
    two = tmp_path / "two" / "same"
    assert wait_for((two / "short__cpu-a__r01" / "run.json").exists, 600)
    first.send_signal(signal.SIGTERM)  # stop the first session: the second must go on
    first.wait(timeout=180)
    _, err = second.communicate(timeout=900)
    assert second.returncode == 0, err[-3000:]
    one_runs, _ = load([one])
    two_runs, _ = load([two])
    assert one_runs[0].runs[0].status == "interrupted"
    assert two_runs[0].runs[0].status == "ok"
    # Both sessions record that they shared the machine.
    assert any(str(one.resolve()) in s for s in two_runs[0].runs[0].outcome.concurrent_sessions)
    assert any(str(two.resolve()) in s for s in one_runs[0].session.concurrent_sessions)
    assert "running on this machine too" in err
    assert _session_containers(docker_client, one) == []
    assert _session_containers(docker_client, two) == []


# --- disks ----------------------------------------------------------------------------


@contextmanager
def _tmpfs(path: Path, size: str, *, read_only: bool = False) -> Iterator[Path]:
    path.mkdir(parents=True, exist_ok=True)
    options = f"size={size}" + (",ro" if read_only else "")
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)],
                             capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.fail(f"this test mounts a tmpfs (needs root, as CI has): {mounted.stderr}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def _fill(directory: Path) -> None:
    """Fill a filesystem to the last byte."""
    with (directory / "filler").open("wb") as fh:
        try:
            while True:
                fh.write(b"\0" * 65536)
        except OSError:
            pass
    # Whatever partial block is left.
    try:
        with (directory / "filler2").open("wb") as fh:
            while True:
                fh.write(b"\0")
                fh.flush()
    except OSError:
        pass


def test_a_full_disk_before_the_session_is_a_message_and_leaves_nothing(tmp_path: Path) -> None:
    with _tmpfs(tmp_path / "disk", "1m") as disk:
        _fill(disk)
        result = run_cli("run", str(_scenario(tmp_path)),
                         *_args(disk / "results", tmp_path / "data", "local", "full"), timeout=300)
        assert result.returncode == 2, result.stderr[-2000:]
        assert "the disk is full" in result.stderr and "fix:" in result.stderr
        _no_traceback(result)
        assert not (disk / "results" / "full").exists(), "no empty session directory is left"


@pytest.mark.slow
def test_a_disk_filling_up_mid_session_keeps_the_finished_run(tmp_path: Path) -> None:
    scenario = _scenario(tmp_path, epochs=1)
    scenario.write_text(scenario.read_text().replace(
        "  - name: cpu-a\n    device: cpu", "  - name: cpu-a\n    device: cpu\n"
        "  - name: cpu-b\n    device: cpu"))
    with _tmpfs(tmp_path / "disk", "8m") as disk:
        results = disk / "results"
        proc = _start("run", str(scenario), *_args(results, tmp_path / "data", "local", "mid"))
        first = results / "mid" / "flt__cpu-a__r01" / "outcome.json"
        assert wait_for(first.exists, 300), "the first run never finished"
        _fill(disk)
        _, err = proc.communicate(timeout=600)
        assert proc.returncode in (1, 2), err[-2000:]
        assert "Traceback" not in err
        sessions, _ = load([results / "mid"])
        runs = {r.run_id: r for r in sessions[0].runs}
        assert runs["flt__cpu-a__r01"].usable, runs["flt__cpu-a__r01"].reason
        assert not runs["flt__cpu-b__r01"].usable  # marked or unknown, never believed
        out = tmp_path / "report"
        report = run_cli("report", str(results / "mid"), "--out", str(out))
        assert report.returncode == 0, report.stderr
        _no_traceback(report)


def test_a_read_only_results_directory_is_refused_before_anything_runs(tmp_path: Path) -> None:
    with _tmpfs(tmp_path / "ro", "1m", read_only=True) as disk:
        result = run_cli("run", str(_scenario(tmp_path)),
                         *_args(disk / "results", tmp_path / "data", "local"), timeout=300)
        assert result.returncode == 2
        assert "read-only" in result.stderr.lower() or "cannot write" in result.stderr
        _no_traceback(result)
        report = run_cli("report", str(REPO / "tests/fixtures/sessions/machine-a"), "--out",
                         str(disk / "out"))
        assert report.returncode == 2 and "--out" in report.stderr
        _no_traceback(report)


# --- bad paths, names and inputs ----------------------------------------------------------


@pytest.mark.parametrize("session", ["../escape", "/tmp/abs", "a/b", "..", ".", "x" * 300,
                                     "caf\u00e9", "name with space"])
def test_session_names_are_one_safe_path_component(tmp_path: Path, session: str) -> None:
    result = run_cli("run", str(_scenario(tmp_path)), "--session", session, "--results-dir",
                     str(tmp_path / "results"), "--backend", "local", "--no-idle")
    assert result.returncode == 2, result.stderr
    assert "--session" in result.stderr and "fix:" in result.stderr
    _no_traceback(result)
    assert not (tmp_path / "escape").exists() and not Path("/tmp/abs").exists()


def test_results_and_report_directories_that_are_files(tmp_path: Path) -> None:
    a_file = tmp_path / "file"
    a_file.write_text("x")
    run = run_cli("run", str(_scenario(tmp_path)), "--results-dir", str(a_file),
                  "--backend", "local", "--no-idle")
    assert run.returncode == 2 and "--results-dir" in run.stderr and "is a file" in run.stderr
    report = run_cli("report", str(REPO / "tests/fixtures/sessions/machine-a"), "--out",
                     str(a_file))
    assert report.returncode == 2 and "--out" in report.stderr
    for result in (run, report):
        _no_traceback(result)


HOSTILE = {
    "symlink loop": lambda d: (d / "loop.yaml").symlink_to(d / "loop.yaml") or d / "loop.yaml",
    "name too long": lambda d: d / ("x" * 300 + ".yaml"),
    "a device": lambda d: Path("/dev/zero"),
    "a directory": lambda d: d,
    "too large": lambda d: _write(d, "big.yaml", "name: x\n" + "# pad\n" * 100_000),
    "deep nesting": lambda d: _write(d, "deep.yaml", "name: x\na:\n" + "".join(
        "  " * i + "b:\n" for i in range(1, 40))),
    "complex key": lambda d: _write(d, "complex.yaml", "name: x\n? [a, b]\n: 1\n"),
    "billion laughs": lambda d: _write(d, "bomb.yaml", "".join(
        f"{c}: &{c} [{', '.join([f'*{p}'] * 9) if p else ', '.join(['lol'] * 9)}]\n"
        for p, c in zip(["", "a", "b", "c", "d"], "abcde", strict=True))),
    "reversed cpuset": lambda d: _write(d, "rev.yaml", SCENARIO.format(name="x", epochs=1)
                                        .replace("device: cpu", "device: cpu\n    cpuset: \"3-1\"")),
    "enormous cpuset": lambda d: _write(d, "huge.yaml", SCENARIO.format(name="x", epochs=1)
                                        .replace("device: cpu",
                                                 "device: cpu\n    cpuset: \"0-99999\"")),
    "seed beyond TensorFlow": lambda d: _write(d, "seed.yaml", SCENARIO.format(name="x", epochs=1)
                                               .replace("epochs: 1", "epochs: 1\n  seed: 4294967296")),
    "quota too small": lambda d: _write(d, "quota.yaml", SCENARIO.format(name="x", epochs=1)
                                        .replace("device: cpu", "device: cpu\n    cpus: 0.001")),
    "GPU entry without a GPU": lambda d: _write(d, "gpu.yaml", SCENARIO.format(name="x", epochs=1)
                                                .replace("device: cpu",
                                                         "device: gpu\n    gpu_ids: []")),
    "GPU listed twice": lambda d: _write(d, "gpu2.yaml", SCENARIO.format(name="x", epochs=1)
                                         .replace("device: cpu", "device: gpu\n    gpu_ids: [0, 0]")),
    "many problems": lambda d: _write(d, "many.yaml", "name: x\n" + "".join(
        f"unknown{i}: {i}\n" for i in range(500))),
}


def _write(directory: Path, name: str, text: str) -> Path:
    path = directory / name
    path.write_text(text)
    return path


@pytest.mark.parametrize("case", list(HOSTILE))
def test_hostile_scenario_files_exit_2_with_a_message(tmp_path: Path, case: str) -> None:
    path = HOSTILE[case](tmp_path)
    result = run_cli("validate", str(path), timeout=60)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "error:" in result.stderr and "fix:" in result.stderr
    _no_traceback(result)
    assert len(result.stderr.splitlines()) <= 60, "errors printed are bounded"


def test_merge_keys_are_accepted_as_safe_load_accepts_them(tmp_path: Path) -> None:
    text = SCENARIO.format(name="merged", epochs=1).replace(
        "hardware:\n  - name: cpu-a\n    device: cpu",
        "hardware:\n  - &base\n    name: cpu-a\n    device: cpu\n    memory: 2g\n"
        "  - <<: *base\n    name: cpu-b")
    result = run_cli("plan", str(_write(tmp_path, "merge.yaml", text)))
    assert result.returncode == 0, result.stderr
    assert "merged__cpu-a__r01" in result.stdout and "merged__cpu-b__r01" in result.stdout
    assert result.stdout.count("mem=2g") == 2


def test_a_damaged_generated_dataset_names_the_command_that_rebuilds_it(tmp_path: Path) -> None:
    from harness import dataset

    root = dataset.synthetic_root(tmp_path, 600, 200, 3)
    dataset.synthesize(root, train_size=600, test_size=200, seed=3)
    (root / "cifar-10-batches-py" / "data_batch_2").write_bytes(b"garbage")
    with pytest.raises(Exception) as info:
        dataset.load(root)
    fix = getattr(info.value, "fix", "") or ""
    assert "--train-size 600" in fix and "--test-size 200" in fix and "--seed 3" in fix
