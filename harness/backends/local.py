"""The local backend: each run is a worker subprocess on this host.

It pins the worker to the scenario's CPU set (CPU affinity) but cannot enforce a
CPU quota or a memory limit; preflight says so, and the results record it.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import harness
from harness.backends import STOP_GRACE_S, Backend, Job, LineSink, Outcome, worker_environment
from harness.errors import UserError
from harness.schema import RunSpec


def parse_cpuset(text: str) -> set[int]:
    """``"0-2,5"`` -> {0, 1, 2, 5}."""
    cpus: set[int] = set()
    for part in text.split(","):
        low, _, high = part.partition("-")
        cpus.update(range(int(low), int(high or low) + 1))
    return cpus


def visible_gpus() -> int:
    """NVIDIA GPUs on this host according to nvidia-smi (0 when it is missing)."""
    if not shutil.which("nvidia-smi"):
        return 0
    try:
        out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return 0
    return sum(1 for line in out.stdout.splitlines() if line.startswith("GPU "))


class LocalBackend(Backend):
    """Runs ``python -m harness.worker RUN_DIR`` as a child process."""

    name = "local"

    def __init__(self, fallback_reason: str | None = None) -> None:
        """
        Args:
            fallback_reason: why the local backend runs although another was wanted
                (``--backend auto`` without a Docker daemon); recorded in every result.
        """
        self.fallback_reason = fallback_reason
        self._current: subprocess.Popen[str] | None = None
        self._lock = threading.Lock()

    def preflight(self, runs: list[RunSpec]) -> list[str]:
        warnings: list[str] = []
        host_cpus = set(os.sched_getaffinity(0))
        gpus_needed = max((r.hardware.gpu_count for r in runs), default=0)
        if gpus_needed:
            found = visible_gpus()
            if found < gpus_needed:
                raise UserError(
                    f"a GPU scenario needs {gpus_needed} GPU(s) but nvidia-smi finds {found} on "
                    "this host; GPU scenarios never run on the CPU",
                    key="hardware.device",
                    fix="run GPU scenarios on a host with an NVIDIA GPU and driver, "
                        "or use the cpu scenarios here",
                )
        unenforced = sorted({f"{r.hardware.name}: {what}" for r in runs
                             for what, value in (("cpus", r.hardware.cpus),
                                                 ("memory", r.hardware.memory))
                             if value is not None})
        if unenforced:
            warnings.append("the local backend cannot enforce these limits (use --backend "
                            "docker): " + "; ".join(unenforced))
        for r in runs:
            if r.hardware.cpuset and not parse_cpuset(r.hardware.cpuset) <= host_cpus:
                raise UserError(
                    f"cpuset {r.hardware.cpuset!r} names CPUs this host does not have "
                    f"(available: {sorted(host_cpus)})",
                    source=r.scenario_file, key=f"hardware[{r.hardware.name}].cpuset",
                    fix="choose CPUs from the available list",
                )
        return warnings

    def execute(self, job: Job, on_line: LineSink) -> Outcome:
        hw = job.run.hardware
        env = worker_environment()
        if hw.device == "gpu":
            # The run's own GPUs only (TensorFlow then numbers them from 0; the worker's
            # tracker follows the same physical ids through NVML).
            ids = hw.gpu_ids if hw.gpu_ids is not None else list(range(hw.gpu_count))
            env["CUDA_VISIBLE_DEVICES"] = ",".join(map(str, ids))
        # The worker imports harness from this checkout, whatever the venv holds.
        env["PYTHONPATH"] = str(Path(harness.__file__).resolve().parent.parent)
        cpus = sorted(parse_cpuset(hw.cpuset)) if hw.cpuset else None
        limits: dict[str, Any] = {
            "cpuset": hw.cpuset if cpus else None,
            "cpus": None, "memory_bytes": None, "gpus": hw.gpu_count,
            "not_enforced": [k for k, v in (("cpus", hw.cpus), ("memory", hw.memory)) if v],
        }
        command = [sys.executable, "-m", "harness.worker", str(job.run_dir.resolve()),
                   "--data-dir", str(job.data_dir.resolve())]
        with tempfile.TemporaryDirectory(prefix="harness-home-") as home:
            # A private HOME keeps ~/.codecarbon.config and ~/.keras out of the measurement.
            env["HOME"] = home
            start = time.perf_counter()
            # stdin is the lifeline: never written, held open until the run ends; if the
            # harness dies, the pipe closes and the worker stops itself (partial results).
            proc = subprocess.Popen(
                command, cwd=job.run_dir, env=env, stdin=subprocess.PIPE,
                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1,
                # Own session: a Ctrl-C in the terminal reaches the runner, which then
                # stops the worker cleanly, instead of killing both at once.
                start_new_session=True,
                preexec_fn=(lambda: os.sched_setaffinity(0, cpus)) if cpus else None,
            )
            with self._lock:
                self._current = proc
            reader = threading.Thread(target=_pump, args=(proc, on_line), daemon=True)
            reader.start()
            timed_out = False
            try:
                proc.wait(timeout=job.run.timeout_s)
            except subprocess.TimeoutExpired:
                timed_out = True
                _stop(proc)
            reader.join(timeout=10)
            if proc.stdin is not None:
                proc.stdin.close()
            with self._lock:
                self._current = None
        return Outcome(
            exit_code=proc.returncode, duration_s=time.perf_counter() - start,
            timed_out=timed_out,
            provenance={"backend": self.name, "fallback_reason": self.fallback_reason,
                        "command": command, "pid": proc.pid, "limits": limits},
        )

    def describe(self) -> dict[str, Any]:
        return {"backend": self.name, "fallback_reason": self.fallback_reason}

    def stop_all(self) -> None:
        with self._lock:
            proc = self._current
        if proc is not None and proc.poll() is None:
            _stop(proc)


def _pump(proc: subprocess.Popen[str], on_line: LineSink) -> None:
    assert proc.stdout is not None
    for line in proc.stdout:
        on_line(line.rstrip("\n"))


def _stop(proc: subprocess.Popen[str], grace_s: float = STOP_GRACE_S) -> None:
    """SIGTERM (the worker writes partial results), then SIGKILL after ``grace_s``."""
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    except ProcessLookupError:
        pass
