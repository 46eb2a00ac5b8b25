"""The container path against a real Docker engine: limits, kills, Ctrl-C, both images.

These tests need a running Docker engine and fail (never skip) without one; CI starts
it (.ci/run). They build the worker images on first use, which takes minutes.
"""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest

from harness.results import LoadedRun, load
from tests.conftest import harness_process, run_cli, wait_for

pytestmark = [pytest.mark.docker, pytest.mark.slow]

SCENARIO = """\
name: {name}
dataset:
  kind: synthetic
  train_size: 2000
  test_size: 400
hardware:
{hardware}
regions:
  home: FRA
  compare: [DEU, cloud:gcp/europe-west1]
training:
  epochs: {epochs}
tracker:
  measure_power_secs: 1
timeout_s: 900
"""
TWO_CPU_ENTRIES = """\
  - name: one-cpu
    device: cpu
    cpus: 1
    cpuset: "0"
    memory: 3g
  - name: two-cpus
    device: cpu
    cpus: 2
    memory: 4g"""


def _write(tmp_path: Path, name: str, hardware: str, epochs: int = 1) -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(SCENARIO.format(name=name, hardware=hardware, epochs=epochs))
    return path


def _args(tmp_path: Path, session: str) -> list[str]:
    return ["--backend", "docker", "--results-dir", str(tmp_path / "results"),
            "--data-dir", str(tmp_path / "data"), "--session", session,
            "--no-idle"]


def _runs(session: Path) -> dict[str, LoadedRun]:
    sessions, _ = load([session])
    return {run.run_id: run for item in sessions for run in item.runs}


def _leftovers(client, session: str) -> list:
    return client.containers.list(all=True, filters={"label": f"harness.session={session}"})


def test_two_hardware_entries_run_in_containers_with_their_limits(tmp_path, docker_client):
    scenario = _write(tmp_path, "dock", TWO_CPU_ENTRIES)
    # A short idle baseline (measured once for the session, never reused from elsewhere).
    args = [a for a in _args(tmp_path, "d1") if a != "--no-idle"]
    result = run_cli("run", str(scenario), *args, "--idle-s", "3", "--idle-max-age", "0",
                     timeout=3600, env={**os.environ, "HARNESS_STATE_DIR": str(tmp_path / "st")})
    assert result.returncode == 0, result.stderr[-4000:]
    runs = _runs(tmp_path / "results" / "d1")
    one, two = runs["dock__one-cpu__r01"], runs["dock__two-cpus__r01"]
    _machine_and_attributed_follow_the_rule(one)
    for run in (one, two):
        assert run.status == "ok"
        prov = run.outcome.provenance
        assert prov["backend"] == "docker" and prov["image"].startswith("harness-worker:cpu-")
        assert prov["container_id"] and prov["docker_server_version"]
        assert run.metrics.environment.in_container is True
        assert run.metrics.environment.backend == "docker"
        assert run.metrics.scopes.run.energy.energy_kwh == run.emissions.energy_consumed > 0
        assert run.metrics.dataset.kind == "synthetic"
        # Never root in the container, whoever runs the harness.
        assert prov["limits"]["user"] != "0:0" and not prov["limits"]["user"].startswith("0:")
        # Files written in the container belong to the invoking user.
        assert (run.run_dir / "metrics.json").stat().st_uid == os.getuid()
    # The limits Docker applied, read back from container inspect.
    assert one.outcome.provenance["limits"]["cpus"] == 1.0
    assert one.outcome.provenance["limits"]["cpuset"] == "0"
    assert one.outcome.provenance["limits"]["memory_bytes"] == 3 * 2**30
    assert two.outcome.provenance["limits"]["cpus"] == 2.0
    assert two.outcome.provenance["limits"]["memory_bytes"] == 4 * 2**30
    # ...and as the worker saw them from inside its cgroup.
    assert one.metrics.environment.cpus_effective == 1.0
    assert one.metrics.environment.cpus_visible == 1
    assert one.metrics.environment.memory_limit_bytes == 3 * 2**30
    # The attributed share: 1 CPU of the host's, 3 GiB of its memory.
    host_cpus = os.cpu_count()
    assert one.metrics.attribution.cpu_share == 1 / host_cpus
    assert 0 < one.metrics.attribution.ram_share < 1
    assert _leftovers(docker_client, "d1") == []
    report = run_cli("report", str(tmp_path / "results" / "d1"))
    assert report.returncode == 0, report.stderr
    assert "one-cpu" in report.stdout and "two-cpus" in report.stdout


def _machine_and_attributed_follow_the_rule(run: LoadedRun) -> None:
    """A cpus: 1 container on this host: the machine meter measured the whole host around
    the run; the attributed energy is the tracker's GPU energy + CPU energy x (1 CPU /
    host CPUs) + RAM energy x (3 GiB / host memory); the idle baseline was measured once
    for the session and net = gross - idle power x duration, attributed the same way."""
    from harness.report.model import run_energy

    machine = run.outcome.machine
    assert machine is not None and machine.energy.energy_kwh > 0
    assert machine.window_s >= run.metrics.scopes.run.duration_s
    assert (run.run_dir / "machine-emissions.csv").exists()
    energy = run.metrics.scopes.training.energy
    cpu_share = 1 / os.cpu_count()
    ram_share = 3 * 2**30 / run.metrics.environment.ram_total_bytes
    assert run.metrics.attribution.cpu_share == pytest.approx(cpu_share)
    assert run.metrics.attribution.ram_share == pytest.approx(ram_share)
    want = energy.gpu_kwh + energy.cpu_kwh * cpu_share + energy.ram_kwh * ram_share
    assert run_energy(run, "training") == pytest.approx(want, rel=1e-12)
    assert run_energy(run, "training") < energy.energy_kwh  # a share of what it saw
    idle = run.idle
    assert idle is not None and idle.duration_s >= 3 and idle.reused_from is None
    duration = run.metrics.scopes.training.duration_s
    idle_kwh = (idle.cpu_w * cpu_share + idle.ram_w * ram_share) * duration / 3.6e6
    assert run_energy(run, "training", net=True) == pytest.approx(want - idle_kwh, rel=1e-9)


def test_a_killed_container_is_recorded_and_the_other_run_completes(tmp_path, docker_client):
    # A long run to kill (it must still be training when we look), then a short one.
    victim = _write(tmp_path, "kill", TWO_CPU_ENTRIES.split("\n  - name: two-cpus")[0],
                    epochs=200)
    after = _write(tmp_path, "after", "  - name: two-cpus" + TWO_CPU_ENTRIES.split(
        "\n  - name: two-cpus")[1])
    with harness_process("run", str(victim), str(after), *_args(tmp_path, "d2")) as proc:
        history = tmp_path / "results" / "d2" / "kill__one-cpu__r01" / "history.json"
        assert wait_for(history.exists, 900), "the first run never finished an epoch"
        (victim_container,) = docker_client.containers.list(
            filters={"label": "harness.run=kill__one-cpu__r01"})
        victim_container.kill()
        _, err = proc.communicate(timeout=1800)
    assert proc.returncode == 1, err[-4000:]
    runs = _runs(tmp_path / "results" / "d2")
    killed = runs["kill__one-cpu__r01"]
    assert killed.status == "failed"
    assert killed.outcome.exit_code == 137
    assert runs["after__two-cpus__r01"].status == "ok"
    assert _leftovers(docker_client, "d2") == []


def test_ctrl_c_removes_every_container_and_leaves_a_readable_session(tmp_path, docker_client):
    # More epochs than the stop's grace period could train: a run that ignored the stop
    # would be killed, not finished.
    scenario = _write(tmp_path, "intr", TWO_CPU_ENTRIES, epochs=300)
    history = tmp_path / "results" / "d3" / "intr__one-cpu__r01" / "history.json"
    with harness_process("run", str(scenario), *_args(tmp_path, "d3")) as proc:
        assert wait_for(history.exists, 900)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=300)
    assert proc.returncode == 130, err[-3000:]
    assert _leftovers(docker_client, "d3") == []
    runs = _runs(tmp_path / "results" / "d3")
    run = runs["intr__one-cpu__r01"]
    assert runs["intr__two-cpus__r01"].status == "not_started"
    assert run.status == "interrupted"
    # The worker got SIGTERM and wrote its results.
    log = (history.parent / "worker.log").read_text()[-3000:]
    assert run.metrics is not None, log
    assert run.metrics.status == "partial", log
    assert run.metrics.training.epochs_run < 300
    assert run_cli("report", str(tmp_path / "results" / "d3")).returncode == 0


def test_gpu_image_runs_the_same_workload_on_cpu_with_the_same_versions(tmp_path, docker_client):
    hardware = "  - name: cpu-any\n    device: cpu"
    scenario = _write(tmp_path, "flav", hardware)
    versions = {}
    for flavour in ("cpu", "gpu"):
        session = f"img-{flavour}"
        result = run_cli("run", str(scenario), *_args(tmp_path, session), "--image-flavour",
                         flavour, timeout=3600)
        assert result.returncode == 0, result.stderr[-4000:]
        (run,) = _runs(tmp_path / "results" / session).values()
        assert run.outcome.provenance["image"].startswith(f"harness-worker:{flavour}-")
        assert run.metrics.test_accuracy > 0.5
        versions[flavour] = run.metrics.environment.versions
    assert versions["cpu"]["tensorflow"] == versions["gpu"]["tensorflow"] == "2.21.0"
    assert versions["cpu"]["codecarbon"] == versions["gpu"]["codecarbon"] == "3.3.2"
    assert versions["cpu"] == versions["gpu"]


def test_gpu_scenario_stops_at_preflight_without_nvidia_support(tmp_path, docker_client):
    scenario = _write(tmp_path, "gpuless", "  - name: gpu-1\n    device: gpu")
    result = run_cli("run", str(scenario), *_args(tmp_path, "d4"), timeout=3600)
    assert result.returncode == 2, result.stderr[-3000:]
    assert "NVIDIA" in result.stderr and "never run on the CPU" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "results" / "d4").exists()
    assert _leftovers(docker_client, "gpu-probe") == []


def test_unreachable_daemon_is_a_clear_error(tmp_path):
    scenario = _write(tmp_path, "nodaemon", "  - name: a\n    device: cpu")
    env = {**os.environ, "DOCKER_HOST": f"unix://{tmp_path}/no.sock"}
    result = run_cli("run", str(scenario), *_args(tmp_path, "d5"), env=env)
    assert result.returncode == 2
    assert "does not answer" in result.stderr and "--backend local" in result.stderr
    assert "Traceback" not in result.stderr


def test_auto_backend_falls_back_to_local_and_says_so(tmp_path):
    scenario = _write(tmp_path, "auto", "  - name: a\n    device: cpu")
    env = {**os.environ, "DOCKER_HOST": f"unix://{tmp_path}/no.sock"}
    args = [a for a in _args(tmp_path, "d6") if a not in ("--backend", "docker")]
    result = run_cli("run", str(scenario), *args, env=env, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "running workers as local processes" in result.stderr
    (run,) = _runs(tmp_path / "results" / "d6").values()
    assert run.outcome.provenance["backend"] == "local"
    assert "no Docker daemon" in run.outcome.provenance["fallback_reason"]
    session = json.loads((tmp_path / "results" / "d6" / "session.json").read_text())
    assert session["backend"]["fallback_reason"]
    assert run.metrics.environment.in_container is False


def test_rapl_opt_in_mounts_powercap_read_only(tmp_path, docker_client):
    """This host has no RAPL, so the container config is checked against stand-in trees
    (directories made here); that RAPL is then read is verified only on a RAPL host."""
    from harness.backends import Job
    from harness.backends.docker_backend import DockerBackend
    from harness.plan import expand
    from harness.scenario import load_scenario

    scenario = _write(tmp_path, "rapl", "  - name: a\n    device: cpu")
    scenario.write_text(scenario.read_text().replace("measure_power_secs: 1",
                                                     "measure_power_secs: 1\n  rapl: true"))
    (run,) = expand([load_scenario(scenario)])
    trees = (str(tmp_path / "class-powercap"), str(tmp_path / "devices-powercap"))
    for tree in trees:
        Path(tree).mkdir()
    job = Job(run=run, run_dir=tmp_path, data_dir=tmp_path, session="rapl", session_id="r1")
    config = DockerBackend().container_config(job, powercap_trees=trees)
    assert config["volumes"][trees[0]] == {"bind": trees[0], "mode": "ro"}
    assert config["volumes"][trees[1]] == {"bind": trees[1], "mode": "ro"}
    assert config["security_opt"] == ["systempaths=unconfined"]
    assert config["user"] == "0:0"
    assert config["environment"]["HARNESS_OWNER"] == f"{os.getuid()}:{os.getgid()}"
    # Without the opt-in: no mounts of sysfs, no lifted masks, the invoking user.
    plain = DockerBackend().container_config(
        Job(run=run.model_copy(update={"tracker": run.tracker.model_copy(update={"rapl": False})}),
            run_dir=tmp_path, data_dir=tmp_path, session="rapl", session_id="r1"),
        powercap_trees=trees)
    assert trees[0] not in plain["volumes"] and "security_opt" not in plain
    # The invoking user, or the image's unprivileged user when that is root.
    expected = "1000:1000" if os.getuid() == 0 else f"{os.getuid()}:{os.getgid()}"
    assert plain["user"] == expected


def test_out_of_memory_and_timeout_are_recorded(tmp_path, docker_client):
    # 300m cannot hold TensorFlow and the data: the kernel's OOM killer ends the container.
    oom = _write(tmp_path, "oom", "  - name: small\n    device: cpu\n    memory: 300m")
    slow = _write(tmp_path, "slow", "  - name: a\n    device: cpu", epochs=500)
    slow.write_text(slow.read_text().replace("timeout_s: 900", "timeout_s: 25"))
    result = run_cli("run", str(oom), str(slow), *_args(tmp_path, "d7"), timeout=900)
    assert result.returncode == 1, result.stderr[-3000:]
    runs = _runs(tmp_path / "results" / "d7")
    starved = runs["oom__small__r01"]
    assert starved.status == "failed"
    assert "out-of-memory" in starved.outcome.reason
    assert starved.outcome.exit_code == 137
    timed = runs["slow__a__r01"]
    assert timed.status == "timeout"
    assert timed.metrics.status == "partial"  # SIGTERM first: the worker wrote its files
    assert _leftovers(docker_client, "d7") == []


def test_missing_base_image_says_how_to_build_one(tmp_path, docker_client):
    scenario = _write(tmp_path, "nobase", "  - name: a\n    device: cpu")
    result = run_cli("run", str(scenario), *_args(tmp_path, "d8"), "--base-image",
                     "harness-no-such-base:none", timeout=300)
    assert result.returncode == 2
    assert "harness-no-such-base:none is not on this host" in result.stderr
    assert "make base-image" in result.stderr
    assert "Traceback" not in result.stderr
