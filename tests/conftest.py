"""Shared fixtures: a scenario writer and a CLI runner that works from a clean checkout."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def run_cli(*args: str, cwd: Path | None = None, timeout: float = 600,
            env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``python -m harness ARGS`` as a user would and capture its output."""
    return subprocess.run([sys.executable, "-m", "harness", *args], cwd=cwd or REPO,
                          capture_output=True, text=True, timeout=timeout, env=env)


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
