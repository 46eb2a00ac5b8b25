"""Shared fixtures: a scenario writer and a CLI runner that works from a clean checkout."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
# The tests' sessions register in a state directory of their own (harness.state), so a
# test that kills a harness on purpose leaves nothing for the user's own sessions to reap.
os.environ.setdefault("HARNESS_STATE_DIR", tempfile.mkdtemp(prefix="harness-test-state-"))


def run_cli(*args: str, cwd: Path | None = None, timeout: float = 600,
            env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``python -m harness ARGS`` as a user would and capture its output."""
    return subprocess.run([sys.executable, "-m", "harness", *args], cwd=cwd or REPO,
                          capture_output=True, text=True, timeout=timeout, env=env)


def wait_for(predicate: Callable[[], bool], timeout_s: float) -> bool:
    """Poll ``predicate`` every 0.2 s until it holds (True) or ``timeout_s`` passes (False)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.2)
    return predicate()


@contextmanager
def harness_process(*args: str) -> Iterator[subprocess.Popen[str]]:
    """``python -m harness ARGS`` in the background; stopped cleanly (SIGTERM, the
    Ctrl-C path) if the test leaves before it ends, so no worker or container outlives it."""
    proc = subprocess.Popen([sys.executable, "-m", "harness", *args], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.terminate()
            proc.wait(timeout=120)


@pytest.fixture
def write_yaml(tmp_path: Path):
    """Write a YAML text to a file in tmp_path and return its path."""

    def _write(text: str, name: str = "scenario.yaml") -> Path:
        path = tmp_path / name
        path.write_text(text)
        return path

    return _write


MINIMAL = """\
name: mini
dataset:
  kind: synthetic
  train_size: 600
  test_size: 200
hardware:
  - name: cpu-a
    device: cpu
regions:
  home: FRA
  compare: [DEU]
training:
  epochs: 1
tracker:
  measure_power_secs: 1
"""


@pytest.fixture(scope="module")
def docker_client():
    """A client for the engine; a missing engine is a failure, not a skip."""
    import docker

    try:
        client = docker.from_env(timeout=10)
        client.ping()
    except docker.errors.DockerException as exc:
        pytest.fail(f"these tests need a running Docker engine (start it with "
                    f"docker/start-engine.sh): {exc}")
    return client
