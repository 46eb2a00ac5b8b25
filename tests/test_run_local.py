"""End to end on the local backend: the real worker (TensorFlow, CodeCarbon) on small data.

No mocks: each test runs ``python -m harness run`` as a user would, on a generated
dataset in CIFAR-10's on-disk format, and reads the files it leaves behind.
"""

from __future__ import annotations

import csv
import json
import math
import os
import signal
import subprocess
from pathlib import Path

import pytest

from harness.backends.local import LocalBackend
from harness.identity import code_identity
from harness.results import LoadedRun, load, load_run
from tests.conftest import harness_process, run_cli, wait_for

pytestmark = pytest.mark.slow

SCENARIO = """\
name: e2e
dataset:
  kind: synthetic
  train_size: 3000
  test_size: 600
hardware:
{hardware}
regions:
  home: FRA
  compare: [DEU, USA/california]
training:
  epochs: {epochs}
tracker:
  measure_power_secs: 1
timeout_s: {timeout}
"""


def _scenario(tmp_path: Path, *, hardware: list[str], epochs: int, timeout: float = 600,
              name: str = "e2e") -> Path:
    entries = "\n".join(f"  - name: {h}\n    device: cpu" for h in hardware)
    path = tmp_path / f"{name}.yaml"
    path.write_text(SCENARIO.format(hardware=entries, epochs=epochs, timeout=timeout)
                    .replace("name: e2e", f"name: {name}"))
    return path


def _args(tmp_path: Path, session: str) -> list[str]:
    return ["--backend", "local", "--results-dir", str(tmp_path / "results"),
            "--data-dir", str(tmp_path / "data"), "--session", session,
            "--no-idle"]


def test_run_trains_to_accuracy_and_files_agree(tmp_path: Path) -> None:
    scenario = _scenario(tmp_path, hardware=["cpu-a"], epochs=2)
    result = run_cli("run", str(scenario), *_args(tmp_path, "s1"))
    assert result.returncode == 0, result.stderr[-3000:]
    run_dir = tmp_path / "results" / "s1" / "e2e__cpu-a__r01"
    run = load_run(run_dir)
    assert run.usable and not run.damage, run.reason
    metrics, history = run.metrics, run.history
    with (run_dir / "emissions.csv").open() as fh:
        row = list(csv.DictReader(fh))[-1]
    raw = json.loads((run_dir / "metrics.json").read_text())
    assert raw["format"] == "harness.metrics" and raw["version"] == 2
    assert metrics.status == "ok"
    assert metrics.dataset.kind == "synthetic" and metrics.dataset.train_size == 3000
    assert len(metrics.dataset.arrays_sha256) == 64
    assert metrics.test_accuracy >= 0.90
    assert len(history.epochs) == 2 == metrics.training.epochs_run
    assert [e.epoch for e in history.epochs] == [1, 2]
    # The run scope is CodeCarbon's own total row, to the last digit.
    scopes = metrics.scopes
    assert scopes.run.energy.energy_kwh == float(row["energy_consumed"]) > 0
    assert scopes.run.energy.co2_kg == float(row["emissions"]) > 0
    assert metrics.tracker_check.ok is True
    # Nested scopes on one clock: training within run within process.
    assert 0 < scopes.training.duration_s < scopes.run.duration_s < scopes.process.duration_s
    assert scopes.training.energy.energy_kwh < scopes.run.energy.energy_kwh \
        < scopes.process.energy.energy_kwh
    assert scopes.process.estimated_s > 0  # interpreter start and imports: estimated
    # The windows are CodeCarbon tasks: per-epoch energies plus fit-end are the training
    # scope exactly; with set-up and evaluation, the total row but for task switches.
    names = [w.name for w in metrics.phases]
    assert names == ["setup", "epoch-1", "epoch-2", "fit-end", "evaluation"]
    epochs_kwh = sum(e.energy.energy_kwh for e in history.epochs)
    fit_end = next(w for w in metrics.phases if w.name == "fit-end").energy.energy_kwh
    assert math.isclose(epochs_kwh + fit_end, scopes.training.energy.energy_kwh, rel_tol=1e-9)
    windows_kwh = sum(w.energy.energy_kwh for w in metrics.phases)
    assert 0.98 * scopes.run.energy.energy_kwh <= windows_kwh <= scopes.run.energy.energy_kwh
    # Durations come from our clock: the CSV's total row carries only the last task's.
    assert scopes.training.duration_s > float(row["duration"])
    # The forecast after epoch 1 is recorded and sensible (within 2x of the actual).
    assert metrics.forecast.after_epoch == 1
    assert 0.5 < metrics.forecast.energy_kwh / scopes.run.energy.energy_kwh < 2
    assert history.epochs[0].forecast == metrics.forecast
    # No RAPL here: CPU power is estimated and must say so.
    power = {p.component: p for p in metrics.power}
    assert power["cpu"].measured is (power["cpu"].method == "intel_rapl")
    assert power["ram"].measured is False
    env = metrics.environment
    assert env.versions["tensorflow"] == "2.21.0" and env.versions["codecarbon"] == "3.3.2"
    assert env.backend == "local" and env.in_container is False
    assert any(p.startswith("tensorflow-cpu==") for p in env.packages)
    assert metrics.code.source_sha256 == code_identity().source_sha256
    assert metrics.load.run_cpus > 0
    # Not a terminal: one plain line per run event and per epoch, for a log file.
    assert "e2e__cpu-a__r01: epoch 1/2, val_acc" in result.stderr
    assert "forecast after epoch 1" in result.stderr
    # The first report table is a pure function of the files.
    assert "e2e__cpu-a__r01" in result.stdout and "synthetic" in result.stdout
    report = run_cli("report", str(tmp_path / "results" / "s1"))
    assert report.returncode == 0, report.stderr
    assert "estimated" in report.stdout


def test_budget_below_the_forecast_stops_after_epoch_1_and_the_next_run_goes_on(
        tmp_path: Path) -> None:
    scenario = _scenario(tmp_path, hardware=["thrifty", "next"], epochs=5, name="bud")
    text = scenario.read_text()
    scenario.write_text(text + "budget:\n  run: {kwh: 0.0000001}\n")
    other = _scenario(tmp_path, hardware=["free"], epochs=1, name="free")
    result = run_cli("run", str(scenario), str(other), *_args(tmp_path, "s7"))
    assert result.returncode == 1, result.stderr[-3000:]
    runs = {r.run_id: r for item in load([tmp_path / "results" / "s7"])[0] for r in item.runs}
    stopped = runs["bud__thrifty__r01"]
    assert stopped.status == "over_budget", stopped.reason
    assert stopped.metrics.training.epochs_run == 1
    assert stopped.metrics.budget.exceeded and stopped.metrics.budget.action == "stopped"
    assert stopped.metrics.budget.forecast_value > 1e-7
    assert stopped.metrics.test_accuracy is None  # no final evaluation: stopped
    assert stopped.metrics.scopes.training.energy.energy_kwh > 0  # partial results kept
    assert runs["bud__next__r01"].status == "over_budget"
    assert runs["free__free__r01"].status == "ok"
    assert "over budget" in result.stderr


def _runs(session: Path) -> dict[str, LoadedRun]:
    sessions, _ = load([session])
    return {run.run_id: run for item in sessions for run in item.runs}


def _worker_pid(run_dir: Path) -> int | None:
    out = subprocess.run(["pgrep", "-f", f"harness.worker {run_dir}"], capture_output=True,
                         text=True)
    pids = [int(p) for p in out.stdout.split()]
    return pids[0] if pids else None


def test_killed_workers_are_recorded_and_the_next_run_completes(tmp_path: Path) -> None:
    # Long runs to kill (they must still be training when we look), then a short one.
    victims = _scenario(tmp_path, hardware=["term", "kill"], epochs=200)
    after = _scenario(tmp_path, hardware=["fine"], epochs=1, name="after")
    session = tmp_path / "results" / "s2"
    with harness_process("run", str(victims), str(after), *_args(tmp_path, "s2")) as proc:
        for name, sig in (("term", signal.SIGTERM), ("kill", signal.SIGKILL)):
            run_dir = (session / f"e2e__{name}__r01").resolve()
            # Mid-run: after the first epoch has been written.
            assert wait_for(lambda d=run_dir: (d / "history.json").exists(), 300), name
            pid = _worker_pid(run_dir)
            assert pid is not None, f"no worker process for {name}"
            os.kill(pid, sig)
        _, err = proc.communicate(timeout=600)
    assert proc.returncode == 1, err[-3000:]
    statuses = _runs(session)
    term = statuses["e2e__term__r01"]
    assert term.status == "partial"
    assert term.metrics.status == "partial" and term.metrics.training.epochs_run >= 1
    assert term.emissions.energy_consumed > 0  # the tracker was stopped cleanly
    killed = statuses["e2e__kill__r01"]
    assert killed.status == "failed"
    assert killed.outcome.exit_code == -signal.SIGKILL
    assert killed.outcome.log_tail, "the last log lines are kept"
    assert statuses["after__fine__r01"].status == "ok"
    assert "2 run(s) did not succeed" in err


def test_timeout_stops_the_run_and_keeps_partial_results(tmp_path: Path) -> None:
    scenario = _scenario(tmp_path, hardware=["slow"], epochs=200, timeout=25, name="tmo")
    result = run_cli("run", str(scenario), *_args(tmp_path, "s3"))
    assert result.returncode == 1
    (run,) = _runs(tmp_path / "results" / "s3").values()
    assert run.status == "timeout"
    assert run.metrics.status == "partial"
    assert run.outcome.duration_s < 25 + 35  # timeout plus the stop grace period


def test_ctrl_c_leaves_no_worker_and_a_readable_session(tmp_path: Path) -> None:
    scenario = _scenario(tmp_path, hardware=["one", "two"], epochs=50, name="intr")
    session = tmp_path / "results" / "s4"
    run_dir = (session / "intr__one__r01").resolve()
    with harness_process("run", str(scenario), *_args(tmp_path, "s4")) as proc:
        assert wait_for(lambda: (run_dir / "history.json").exists(), 300)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err[-2000:]
    assert _worker_pid(run_dir) is None
    runs = _runs(session)
    assert runs["intr__one__r01"].status == "interrupted"
    assert runs["intr__one__r01"].metrics.status == "partial"
    assert runs["intr__two__r01"].status == "not_started"  # planned, listed, never run
    report = run_cli("report", str(session))
    assert report.returncode == 0 and "interrupted" in report.stdout
    assert "not_started" in report.stdout


def test_missing_cifar10_names_both_ways_to_get_it(tmp_path: Path) -> None:
    path = tmp_path / "real.yaml"
    path.write_text(SCENARIO.replace("""dataset:
  kind: synthetic
  train_size: 3000
  test_size: 600""", "dataset: cifar10").format(hardware="  - name: a\n    device: cpu",
                                                  epochs=1, timeout=60))
    result = run_cli("run", str(path), *_args(tmp_path, "s5"))
    assert result.returncode == 2
    assert "data fetch" in result.stderr and "data import" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "results" / "s5").exists()


def test_session_is_never_overwritten(tmp_path: Path) -> None:
    (tmp_path / "results" / "taken").mkdir(parents=True)
    scenario = _scenario(tmp_path, hardware=["a"], epochs=1)
    result = run_cli("run", str(scenario), *_args(tmp_path, "taken"))
    assert result.returncode == 2
    assert "already exists" in result.stderr


class _BackendDyingOnce(LocalBackend):
    """A local backend whose first execute fails as a lost Docker daemon would. A stand-in:
    stopping the real engine in the middle of the suite would break the other tests."""

    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    def execute(self, job, on_line):
        self.calls += 1
        if self.calls == 1:
            raise ConnectionError("the backend went away")
        return super().execute(job, on_line)


def test_a_backend_failure_fails_that_run_only(tmp_path: Path) -> None:
    from rich.console import Console

    from harness.plan import expand
    from harness.runner import Runner
    from harness.scenario import load_scenario

    scenario = _scenario(tmp_path, hardware=["lost", "fine"], epochs=1)
    runs = expand([load_scenario(scenario)])
    runner = Runner(_BackendDyingOnce(), tmp_path / "results", tmp_path / "data",
                    Console(stderr=True))
    session, records = runner.run(runs, session="s6", scenario_files=[str(scenario)], argv=[])
    assert [r.status for r in records] == ["failed", "ok"]
    results = _runs(session)
    lost, fine = results["e2e__lost__r01"], results["e2e__fine__r01"]
    assert "backend error: ConnectionError: the backend went away" in lost.outcome.reason
    assert fine.status == "ok" and fine.metrics.status == "ok"
