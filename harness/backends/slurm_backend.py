"""The Slurm backend: each run is one batch job on the nodes of a Slurm cluster.

The only module that runs Slurm commands, all through their command-line tools:
``sbatch`` (submit; ``--test-only`` in preflight), ``squeue --json`` (follow),
``sacct --json`` (the final state, allocation and energy, where accounting exists),
``scancel`` (stop), ``scontrol`` (configuration; a job's record without accounting) and
``sinfo --json`` (the controller answers). Written against Slurm 22.05 (Debian 12);
pyslurm has no release for it, and submitit is not used (see :data:`WHY_NOT_SUBMITIT`).

Each run is one job (not an array: each hardware entry has its own resources and
constraints, and one job id per run directory keeps cancel, re-attach and accounting
per run). Its batch script (``slurm-job.sh`` in the run directory) runs the worker as
one job step, ``srun --exact``, with the entry's CPUs and memory, so those limits hold
even when the job holds its node exclusively (the default: energy is measured per
machine). The worker runs with the submitting host's Python (the same venv path on a
filesystem the nodes share), writes into the run directory exactly as under the other
backends, and records ``backend: slurm``, ``in_container: false``.

Signals: a cancel (Ctrl-C) sends SIGTERM to the worker's step only (``scancel
--signal=TERM``: the batch shell and ``srun`` are not signalled; a signalled ``srun``
would kill its step at once), the worker writes its partial results and exits, then
the job ends on its own; whatever still runs after :data:`STOP_GRACE_S` gets a plain
``scancel`` (SIGTERM, SIGKILL after the cluster's KillWait). Before the time limit Slurm
sends SIGUSR1 to the batch shell (``--signal=B:USR1@90``: 90 to 150 s before it, as
Slurm may send it up to 60 s early); the script prints a marker
line and sends SIGTERM to the step: the run is recorded ``timeout`` with its partial
results. Jobs are never requeued (``--no-requeue``): a node failure or a preemption
ends the run (``failed``, with Slurm's state) instead of silently training again.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import platform
import re
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import harness
from harness.backends import STOP_GRACE_S, Job, LineSink, Outcome, worker_environment
from harness.backends.batch import BatchBackend, JobStatus
from harness.errors import UserError
from harness.fileio import FileProblem, read_model, write_atomic, write_model
from harness.schema import RunSpec, SlurmJobFile, SlurmRecord
from harness.slurm_spec import (
    MIN_TIME_LIMIT_S,
    SIGNAL_EARLY_S,
    TIME_LIMIT_LEAD_S,
    format_minutes,
)

WHY_NOT_SUBMITIT = (
    "submitit 1.5.4 works against Slurm 22.05, but it pickles a Python callable and runs "
    "it in its own wrapper: the worker is a command (python -m harness.worker RUN_DIR), "
    "its stdout is the harness's progress protocol, and its signals (SIGTERM for partial "
    "results, the time-limit warning) must reach it as they do under the other backends; "
    "submitit also waits forever on a job that died without writing its result when "
    "accounting is absent. The CLI tools do each of these jobs directly.")

#: Client commands the backend needs; sacct is optional (accounting may be absent).
REQUIRED_COMMANDS = ("sbatch", "squeue", "scancel", "scontrol", "sinfo")
#: Job states in which a job is not finished (squeue's job_state).
ACTIVE_STATES = frozenset({
    "PENDING", "CONFIGURING", "RUNNING", "COMPLETING", "SUSPENDED", "RESIZING", "SIGNALING",
    "STAGE_OUT", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED", "STOPPED", "RESV_DEL_HOLD",
})
#: Final states that fail a run whatever the worker wrote, and what they mean.
FAILURE_STATES = {
    "NODE_FAIL": "the node failed (its slurmd stopped answering) during the run",
    "PREEMPTED": "the job was preempted by a higher-priority job (never requeued by the "
                 "harness: a run is not trained twice)",
    "BOOT_FAIL": "the node failed to boot",
    "DEADLINE": "the job reached its --deadline",
    "OUT_OF_MEMORY": "the worker went over its memory limit and was killed by the cgroup "
                     "out-of-memory killer (raise hardware.memory)",
}
#: Lines the batch script prints into the job's output (never from the worker).
MARK = "HARNESS_SLURM "
#: The script's exit status when a path is not visible on the node.
EXIT_NOT_SHARED = 97
#: Extra memory the job gets beyond the worker step's limit: the batch shell and srun.
BATCH_HEADROOM_MIB = 64
#: How long the final state may lag in accounting after the job left the queue.
SACCT_LAG_S = 30.0
REPO_ROOT = Path(harness.__file__).resolve().parent.parent
#: Variables the host environment must not pass to a job: Slurm sets them per job.
_SLURM_SETS = ("CUDA_VISIBLE_DEVICES", "NVIDIA_VISIBLE_DEVICES", "HARNESS_LIFELINE")


class SlurmError(UserError):
    """A Slurm command failed or did not answer."""


@dataclass
class OutputFacts:
    """What the batch script said in the job's output (``HARNESS_SLURM`` lines) and
    Slurm's own messages there."""

    node: str | None = None
    cuda_visible_devices: str | None = None
    time_limit: bool = False
    missing: str | None = None
    oom: bool = False

    def scan(self, line: str) -> None:
        if line.startswith(MARK):
            words = line[len(MARK):].split()
            kind = words[0] if words else ""
            if kind in ("start", "step"):  # the batch shell's view, then the worker step's
                values = dict(w.split("=", 1) for w in words[1:] if "=" in w)
                self.node = values.get("node") or self.node
                cuda = values.get("cuda_visible_devices", values.get("cuda"))
                self.cuda_visible_devices = None if cuda in (None, "", "none") else cuda
            elif kind == "time-limit":
                self.time_limit = True
            elif kind == "missing":
                self.missing = line[len(MARK) + len("missing "):]
        elif "oom-kill event" in line or "Out Of Memory" in line:
            self.oom = True


def wait_status(value: Any) -> int | None:
    """squeue's exit_code (a wait status: code << 8, or the signal) as an exit code,
    negative for a signal."""
    if not isinstance(value, int) or isinstance(value, bool):
        return None
    if value & 0x7F:
        return -(value & 0x7F)
    return value >> 8


def parse_tres(text: str) -> dict[str, int]:
    """``cpu=2,mem=1G,node=1,gres/gpu=1`` -> {"cpu": 2, "mem": 1024 (MiB), "gpu": 1}."""
    found: dict[str, int] = {}
    for part in (text or "").split(","):
        key, _, value = part.partition("=")
        if not value:
            continue
        key = key.removeprefix("gres/")
        if key == "mem":
            match = re.match(r"^(\d+(?:\.\d+)?)([KMGT]?)$", value)
            if match:
                scale = {"K": 1 / 1024, "": 1, "M": 1, "G": 1024, "T": 1024**2}[match.group(2)]
                found["mem"] = int(float(match.group(1)) * scale)
        elif key in ("cpu", "gpu", "node") and value.isdigit():
            found[key] = int(value)
    return found


def parse_config(text: str) -> dict[str, str]:
    """``scontrol show config`` as a mapping (``Key = Value`` lines)."""
    config = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep and key.strip() and " " not in key.strip():
            config[key.strip()] = value.strip()
    return config


def squeue_status(job: Mapping[str, Any]) -> JobStatus:
    """One job of ``squeue --json`` (22.05)."""

    def stamp(name: str) -> float | None:
        value = job.get(name)
        return float(value) if isinstance(value, int | float) and value > 0 else None

    limit = job.get("time_limit")
    shared = job.get("shared")
    state = str(job.get("job_state") or "UNKNOWN")
    return JobStatus(
        job_id=str(job.get("job_id")), state=state, active=state in ACTIVE_STATES,
        node=job.get("nodes") or None, partition=job.get("partition") or None,
        reason=job.get("state_reason") if job.get("state_reason") not in (None, "None") else None,
        exit_code=wait_status(job.get("exit_code")), submit=stamp("submit_time"),
        start=stamp("start_time"), end=stamp("end_time"),
        exclusive=None if shared is None else shared == "none",
        tres=parse_tres(str(job.get("tres_alloc_str") or "")),
        time_limit_s=float(limit) * 60 if isinstance(limit, int) and limit > 0 else None)


def scontrol_status(text: str) -> JobStatus | None:
    """``scontrol show job -o ID`` (one line of Key=Value) as a JobStatus."""
    values = dict(part.split("=", 1) for part in text.split() if "=" in part)
    if "JobId" not in values:
        return None
    code = values.get("ExitCode", "")
    exit_code = None
    if re.match(r"^\d+:\d+$", code):
        status, signal_ = (int(x) for x in code.split(":"))
        exit_code = -signal_ if signal_ else status
    state = values.get("JobState", "UNKNOWN")
    return JobStatus(job_id=values["JobId"], state=state, active=state in ACTIVE_STATES,
                     node=values.get("NodeList") if values.get("NodeList") not in (None, "(null)")
                     else None, partition=values.get("Partition"), exit_code=exit_code,
                     tres=parse_tres(values.get("AllocTRES") or values.get("TRES") or ""))


def sacct_state(record: Mapping[str, Any]) -> str:
    """A sacct --json job or step state: {"current": "COMPLETED"} in 22.05, a string later."""
    state = record.get("state")
    value = state.get("current") if isinstance(state, dict) else state
    if isinstance(value, list):
        value = value[0] if value else "UNKNOWN"
    return str(value or "UNKNOWN").split()[0]


def step_energy_j(step: Mapping[str, Any]) -> float | None:
    """A step's ConsumedEnergy (joules) in sacct --json, where the plugin recorded one."""
    stats = (step.get("statistics") or {}).get("energy") or {}
    value = stats.get("consumed")
    if isinstance(value, int | float) and value > 0:
        return float(value)
    for item in ((step.get("tres") or {}).get("consumed") or {}).get("total") or []:
        if item.get("type") == "energy" and isinstance(item.get("count"), int | float) \
                and item["count"] > 0:
            return float(item["count"])
    return None


def step_exit_codes(text: str) -> dict[str, int]:
    """``sacct -P -n -o JobID,ExitCode`` -> {"": job, "batch": ..., "0": ...}: 22.05's JSON
    gives every exit code as 0 (a known bug), its text output the right ones."""
    codes = {}
    for line in text.splitlines():
        job_step, _, code = line.partition("|")
        if not re.match(r"^\d+:\d+$", code.strip()):
            continue
        status, signal_ = (int(x) for x in code.strip().split(":"))
        if signal_ > 64:
            continue  # not a signal: Slurm's own code (0:125 for a step OUT_OF_MEMORY)
        step = job_step.partition(".")[2]
        codes[step] = -signal_ if signal_ else status
    return codes


class SlurmBackend(BatchBackend):
    """Submits each run as a batch job; the runner follows them (harness.backends.batch)."""

    name = "slurm"
    batch = True
    measures_host = False

    def __init__(self, *, log: LineSink = print, python: str | None = None,
                 env: Mapping[str, str] | None = None,
                 run: Callable[..., subprocess.CompletedProcess[str]] = subprocess.run) -> None:
        """
        Args:
            log: where notices go (queued, running, cancelling).
            python: the worker's interpreter on the nodes (default: this one, whose venv
                must be at the same path on the nodes).
            env: the environment Slurm commands run with (default: this process's).
            run: subprocess.run (tests pass a fake).
        """
        self.log = log
        self.python = python or sys.executable
        self.env = dict(os.environ if env is None else env)
        self._run_command = run
        self._config: dict[str, str] | None = None
        self._jobs: dict[str, str] = {}
        """job id -> run id of every job this backend submitted."""
        self._release: str | None = None

    # --- commands ----------------------------------------------------------------------

    def command(self, *args: str, timeout: float = 60, check: bool = True
                ) -> subprocess.CompletedProcess[str]:
        """Run one Slurm command; SlurmError when it cannot run or (``check``) fails."""
        try:
            proc = self._run_command(list(args), capture_output=True, text=True,
                                     timeout=timeout, env=self.env)
        except FileNotFoundError:
            raise SlurmError(f"{args[0]} is not on PATH", key="--backend slurm",
                             fix="install Slurm's client commands on this host (the "
                                 "submitting host must be a Slurm client)") from None
        except subprocess.TimeoutExpired:
            raise SlurmError(f"{' '.join(args[:2])} did not answer within {timeout:.0f} s",
                             key="--backend slurm",
                             fix="check that slurmctld runs and SLURM_CONF names the cluster's "
                                 "slurm.conf (`harness doctor --backend slurm`)") from None
        if check and proc.returncode != 0:
            lines = [line for line in (proc.stderr or "").splitlines() if line.strip()]
            raise SlurmError(f"{' '.join(args[:2])} failed: "
                             f"{(lines[-1] if lines else 'exit ' + str(proc.returncode))[:300]}",
                             key="--backend slurm",
                             fix="check the cluster (`sinfo`, `harness doctor --backend slurm`)")
        return proc

    def json_command(self, *args: str, timeout: float = 60) -> dict[str, Any]:
        """``CMD --json ARGS``: 22.05 exits 0 with an ``errors`` list on failure."""
        proc = self.command(args[0], "--json", *args[1:], timeout=timeout)
        try:
            document = json.loads(proc.stdout)
        except ValueError:
            raise SlurmError(f"{args[0]} --json printed no JSON (Slurm older than 21.08?)",
                             key="--backend slurm", fix="use Slurm 21.08 or later") from None
        errors = [str(e.get("error", e)) if isinstance(e, dict) else str(e)
                  for e in document.get("errors") or []]
        if errors:
            raise SlurmError(f"{args[0]} --json: {'; '.join(errors)[:300]}",
                             key="--backend slurm",
                             fix="check that slurmctld runs (`sinfo`); SLURM_CONF="
                                 f"{self.env.get('SLURM_CONF', '(default)')}")
        return document

    @property
    def config(self) -> dict[str, str]:
        """The controller's configuration (``scontrol show config``), read once."""
        if self._config is None:
            self._config = parse_config(self.command("scontrol", "show", "config").stdout)
        return self._config

    @property
    def accounting(self) -> bool:
        """Whether sacct can answer: an accounting storage is configured and sacct exists."""
        storage = self.config.get("AccountingStorageType", "accounting_storage/none")
        return storage != "accounting_storage/none" and shutil.which(
            "sacct", path=self.env.get("PATH")) is not None

    @property
    def energy_plugin(self) -> str | None:
        """The AcctGatherEnergyType plugin, or None when energy is not gathered."""
        plugin = self.config.get("AcctGatherEnergyType", "acct_gather_energy/none")
        return None if plugin.endswith("/none") or plugin in ("", "(null)") else plugin

    # --- preflight ---------------------------------------------------------------------

    def preflight(self, runs: list[RunSpec]) -> list[str]:
        missing = [c for c in REQUIRED_COMMANDS if not shutil.which(c, path=self.env.get("PATH"))]
        if missing:
            raise SlurmError(f"Slurm client commands not found: {', '.join(missing)}",
                             key="--backend slurm",
                             fix="run the harness on a Slurm submit host (login node); for the "
                                 "single-host test cluster: `make slurm-cluster` and "
                                 "`export SLURM_CONF=/var/tmp/harness-slurm/slurm.conf`")
        nodes = self.nodes()
        if not nodes:
            raise SlurmError("sinfo lists no node", key="--backend slurm",
                             fix="check the cluster's configuration (`sinfo`)")
        warnings: list[str] = []
        for path, what in ((Path(self.python), "the worker's Python"),
                           (REPO_ROOT / "harness", "the harness sources")):
            if not path.exists():
                raise UserError(f"{what} ({path}) does not exist", key="--backend slurm",
                                fix="run the harness from its venv")
        checked: set[str] = set()
        for run in runs:
            hw = run.hardware
            where = f"hardware[{hw.name}]"
            if hw.name in checked:
                continue
            checked.add(hw.name)
            options = self.job_options(run)
            proc = self.command("sbatch", "--test-only", *options, "--wrap=true", check=False)
            if proc.returncode != 0:
                lines = [line for line in proc.stderr.splitlines() if line.strip()]
                raise UserError(
                    f"Slurm refuses this entry's job ({(lines[-1] if lines else 'no reason')[:200]};"
                    f" sbatch {' '.join(options)})", source=run.scenario_file, key=f"{where}.slurm",
                    fix="choose a partition, features (constraint) and resources some node has: "
                        + "; ".join(f"{n['name']}: features {n['features'] or '-'}, "
                                    f"{n['cpus']} CPUs, {n['memory_mb']} MB, "
                                    f"gres {n['gres'] or '-'}, partitions "
                                    f"{','.join(n['partitions'])}" for n in nodes[:12]))
            spec = hw.slurm
            if hw.cpuset:
                warnings.append(f"{hw.name}: cpuset {hw.cpuset!r} is not applied under Slurm "
                                "(Slurm chooses the cores; the entry's cpus count is)")
            if hw.gpu_ids is not None:
                warnings.append(f"{hw.name}: gpu_ids {hw.gpu_ids} are not applied under Slurm "
                                f"(it chooses which {len(hw.gpu_ids)} GPU(s))")
            exclusive = spec.exclusive if spec else True
            if not exclusive:
                warnings.append(f"{hw.name}: exclusive: false: the node may run other jobs, "
                                "whose work its tracker and Slurm's node energy then include "
                                "(recorded in each outcome, flagged in the report)")
                if hw.memory is None:
                    warnings.append(f"{hw.name}: no memory given and the node is shared: the "
                                    "job gets the cluster's default memory (DefMemPerCPU)")
                if hw.cpus is None:
                    warnings.append(f"{hw.name}: no cpus given and the node is shared: the job "
                                    "gets Slurm's default of 1 CPU")
        if not self.accounting:
            warnings.append("Slurm accounting (sacct) is not configured: final states come from "
                            "squeue and scontrol while the controller remembers the job "
                            f"(MinJobAge {self.config.get('MinJobAge', '?')}), then from the "
                            "worker's own files")
        warnings.append("machine scope: the workers run on the cluster's nodes, so the host's "
                        "machine meter and idle baseline are off; an exclusive node's worker "
                        "tracker (run scope) sees the whole node"
                        + (f", and Slurm's ConsumedEnergy ({self.energy_plugin}) is recorded "
                           "beside it" if self.energy_plugin else
                           "; this cluster gathers no energy (AcctGatherEnergyType "
                           f"{self.config.get('AcctGatherEnergyType', '?')})"))
        warnings.append("the nodes must see this host's venv, harness sources, results and "
                        "data directories at the same paths (a shared filesystem); a job that "
                        "cannot fails at once, saying which path it misses")
        return warnings

    def nodes(self) -> list[dict[str, Any]]:
        """The cluster's nodes (``sinfo --json``): name, features, CPUs, memory, GRES."""
        document = self.json_command("sinfo")
        self._release = ((document.get("meta") or {}).get("Slurm") or {}).get("release")
        return [{"name": str(n.get("name")), "features": n.get("features") or "",
                 "cpus": n.get("cpus"), "memory_mb": n.get("real_memory"),
                 "gres": n.get("gres") or "", "partitions": n.get("partitions") or [],
                 "state": n.get("state")} for n in document.get("nodes") or []]

    # --- the job -----------------------------------------------------------------------

    def time_limit_s(self, run: RunSpec) -> int:
        """The job's time limit (s): the scenario's timeout_s plus the warning's lead and
        its possible earliness, so the warning never stops a run before timeout_s (it
        comes 0 to about 2 min after it); capped by the entry's slurm.time_limit; in
        whole minutes, at least 3."""
        limit = run.timeout_s + TIME_LIMIT_LEAD_S + SIGNAL_EARLY_S
        spec = run.hardware.slurm
        if spec is not None and spec.time_limit_s is not None:
            limit = min(limit, spec.time_limit_s)
        return max(MIN_TIME_LIMIT_S, math.ceil(limit / 60) * 60)

    def job_options(self, run: RunSpec) -> list[str]:
        """The resource options of the job (sbatch), from the hardware entry."""
        hw, spec = run.hardware, run.hardware.slurm
        exclusive = spec.exclusive if spec else True
        options = ["--nodes=1", "--ntasks=1", "--no-requeue",
                   f"--time={format_minutes(self.time_limit_s(run))}",
                   f"--signal=B:USR1@{TIME_LIMIT_LEAD_S}"]
        if hw.cpus is not None:
            options.append(f"--cpus-per-task={math.ceil(hw.cpus)}")
        if hw.memory_bytes:
            options.append(f"--mem={math.ceil(hw.memory_bytes / 2**20) + BATCH_HEADROOM_MIB}M")
        elif exclusive:
            options.append("--mem=0")  # the node's memory: an exclusive job has it all
        gres = spec.gres if spec and spec.gres else (f"gpu:{hw.gpu_count}" if hw.gpu_count else None)
        if gres:
            options.append(f"--gres={gres}")
        if exclusive:
            options.append("--exclusive")
        if spec is not None:
            for key in ("partition", "constraint", "account", "qos"):
                value = getattr(spec, key)
                if value is not None:
                    options.append(f"--{key}={value}")
            for name, value in spec.sbatch.items():
                if value is True:
                    options.append(f"--{name}")
                elif value is not False:
                    options.append(f"--{name}={value}")
        return options

    def step_options(self, run: RunSpec) -> list[str]:
        """The worker step's options (srun): exactly the entry's CPUs, memory and GPUs."""
        hw, spec = run.hardware, run.hardware.slurm
        options = ["--nodes=1", "--ntasks=1", "--kill-on-bad-exit=1", "--input=none"]
        if hw.cpus is not None:
            options += ["--exact", f"--cpus-per-task={math.ceil(hw.cpus)}"]
        if hw.memory_bytes:
            options.append(f"--mem={math.ceil(hw.memory_bytes / 2**20)}M")
        gres = spec.gres if spec and spec.gres else (f"gpu:{hw.gpu_count}" if hw.gpu_count else None)
        if gres:
            options.append(f"--gres={gres}")
        return options

    def script(self, job: Job) -> str:
        """The batch script of one run."""
        q = shlex.quote
        run_dir, data_dir = job.run_dir.resolve(), job.data_dir.resolve()
        step = " ".join(q(o) for o in self.step_options(job.run))
        return f"""#!/bin/bash
# Written by the harness (Slurm backend): run {job.run.run_id} of session {job.session}.
# The worker runs as one job step (srun --exact) with the entry's CPUs and memory, so
# those limits hold even when the job holds its node exclusively.
run_dir={q(str(run_dir))}
python={q(self.python)}
data_dir={q(str(data_dir))}
output="$run_dir/slurm-$SLURM_JOB_ID.out"
echo "{MARK}start node=${{SLURMD_NODENAME:-?}} job=$SLURM_JOB_ID" \\
    "cpus_on_node=${{SLURM_CPUS_ON_NODE:-?}} cuda_visible_devices=${{CUDA_VISIBLE_DEVICES:-none}}"
for need in "$python" "$run_dir/run.json" "$data_dir" {q(str(REPO_ROOT / "harness"))}; do
    if [ ! -e "$need" ]; then
        echo "{MARK}missing $need on node ${{SLURMD_NODENAME:-?}}: the nodes must see the" \\
            "submitting host's venv, sources, results and data at the same paths (a shared" \\
            "filesystem)"
        exit {EXIT_NOT_SHARED}
    fi
done
HOME=$(mktemp -d "${{TMPDIR:-/tmp}}/harness-home-XXXXXX") || exit 98
export HOME  # a private HOME: no ~/.codecarbon.config or ~/.keras in the measurement
trap 'rm -rf "$HOME"' EXIT
# Slurm's warning before the time limit (sbatch --signal=B:USR1@{TIME_LIMIT_LEAD_S}): say so, then
# SIGTERM to the worker's step only, so the worker writes its partial results.
trap 'echo "{MARK}time-limit"; scancel --signal=TERM "$SLURM_JOB_ID"' USR1
cd "$run_dir" || exit {EXIT_NOT_SHARED}
# The step says what it was given (its CUDA_VISIBLE_DEVICES), then becomes the worker.
srun {step} --output="$output" --open-mode=append /bin/bash -c \\
    'echo "{MARK}step node=$SLURMD_NODENAME cuda=${{CUDA_VISIBLE_DEVICES:-none}}"; exec "$@"' \\
    harness-step "$python" -m harness.worker "$run_dir" --data-dir "$data_dir" &
step=$!
wait "$step"; rc=$?
while kill -0 "$step" 2>/dev/null; do wait "$step"; rc=$?; done
exit "$rc"
"""

    def job_environment(self) -> dict[str, str]:
        """What the job's processes get (sbatch --export=ALL of this): the worker's
        allow-list, the checkout on PYTHONPATH, SLURM_CONF; no lifeline (a job outlives
        its harness by design) and nothing Slurm sets per job."""
        env = {k: v for k, v in worker_environment(self.env).items() if k not in _SLURM_SETS}
        env["PYTHONPATH"] = str(REPO_ROOT)
        if self.env.get("SLURM_CONF"):
            env["SLURM_CONF"] = self.env["SLURM_CONF"]
        return env

    def submit(self, job: Job) -> SlurmJobFile:
        """Write the batch script, submit it, and record the job in slurm-job.json."""
        run_dir = job.run_dir.resolve()
        script_path = run_dir / "slurm-job.sh"
        write_atomic(script_path, self.script(job))
        exclusive = job.run.hardware.slurm.exclusive if job.run.hardware.slurm else True
        command = ["sbatch", "--parsable", f"--job-name=harness-{job.run.run_id}"[:120],
                   f"--output={run_dir}/slurm-%j.out", "--open-mode=append",
                   f"--chdir={run_dir}", "--export=ALL", *self.job_options(job.run),
                   str(script_path)]
        try:
            proc = self._run_command(command, capture_output=True, text=True, timeout=120,
                                     env=self.job_environment())
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise SlurmError(f"sbatch did not answer ({exc})", key="--backend slurm",
                             fix="check the cluster (`sinfo`)") from None
        if proc.returncode != 0:
            lines = [line for line in proc.stderr.splitlines() if line.strip()]
            raise SlurmError(f"sbatch refused run {job.run.run_id}: "
                             f"{(lines[-1] if lines else 'exit ' + str(proc.returncode))[:300]}",
                             key="--backend slurm", fix="see `harness plan` and the entry's "
                                                        "slurm block")
        job_id = proc.stdout.strip().split(";")[0]
        if not job_id.isdigit():
            raise SlurmError(f"sbatch printed {proc.stdout.strip()[:80]!r}, not a job id",
                             key="--backend slurm", fix="check the cluster's sbatch")
        record = SlurmJobFile(
            run_id=job.run.run_id, session_id=job.session_id, job_id=job_id,
            submitted_at=_now(), cluster=self.config.get("ClusterName"),
            slurm_conf=self.env.get("SLURM_CONF"), script=script_path.name,
            output=f"slurm-{job_id}.out", sbatch=command, exclusive=exclusive,
            time_limit_s=float(self.time_limit_s(job.run)))
        write_model(run_dir / JOB_FILE, record)
        self._jobs[job_id] = job.run.run_id
        return record

    # --- following ---------------------------------------------------------------------

    def queue(self, job_ids: Iterable[str]) -> dict[str, JobStatus]:
        """The jobs among ``job_ids`` the controller still knows (``squeue --json``: in
        22.05 it lists every job, finished ones until MinJobAge, whatever -j says)."""
        wanted = set(job_ids)
        if not wanted:
            return {}
        document = self.json_command("squeue", timeout=60)
        found = {}
        for job in document.get("jobs") or []:
            status = squeue_status(job)
            if status.job_id in wanted:
                found[status.job_id] = status
        return found

    def scontrol_job(self, job_id: str) -> JobStatus | None:
        """The controller's record of one job (no accounting needed); None once purged."""
        proc = self.command("scontrol", "show", "job", "-o", job_id, check=False)
        return scontrol_status(proc.stdout) if proc.returncode == 0 else None

    def sacct_job(self, job_id: str, wait_s: float = SACCT_LAG_S) -> dict[str, Any] | None:
        """The job's accounting record once it shows a final state (accounting lags the
        queue by about a second); None without accounting or after ``wait_s``."""
        if not self.accounting:
            return None
        deadline = time.monotonic() + wait_s
        while True:
            with contextlib.suppress(SlurmError):
                jobs = self.json_command("sacct", "-j", job_id)["jobs"]
                record = next((j for j in jobs if str(j.get("job_id")) == job_id), None)
                if record is not None and sacct_state(record) not in ACTIVE_STATES:
                    return record
            if time.monotonic() >= deadline:
                return None
            time.sleep(0.5)

    def final(self, job: SlurmJobFile, run_dir: Path, last: JobStatus | None,
              facts: OutputFacts, *, cancelled: str | None,
              settle_s: float | None = None) -> Outcome:
        """How a finished job ended: the Outcome with its SlurmRecord.

        Sources, best first: sacct (final state, every step's state, allocation, energy;
        exit codes from its text output), else squeue's last view of the job (kept while
        following), else scontrol, else only the worker's own files (metrics.json).
        ``cancelled``: why the harness cancelled it (None: it did not); ``settle_s``: how
        long accounting may take to show the end.
        """
        record = self.sacct_job(job.job_id, SACCT_LAG_S if settle_s is None else settle_s)
        steps: dict[str, str] = {}
        energy_j: float | None = None
        exit_codes: dict[str, int] = {}
        if record is not None:
            accounting = "sacct"
            job_state = sacct_state(record)
            for step in record.get("steps") or []:
                name = str((step.get("step") or {}).get("id", step.get("step_id", "?")))
                steps[name] = sacct_state(step)
                if name == "0":
                    energy_j = step_energy_j(step)
            tres = {}
            for item in (record.get("tres") or {}).get("allocated") or []:
                kind = "gpu" if item.get("type") == "gres" and item.get("name") == "gpu" \
                    else item.get("type")
                if kind in ("cpu", "mem", "gpu", "node") and isinstance(item.get("count"), int):
                    tres[kind] = item["count"]
            times = record.get("time") or {}
            start, end = times.get("start") or None, times.get("end") or None
            submit = times.get("submission") or None
            node = record.get("nodes") if record.get("nodes") not in (None, "None assigned") \
                else None
            partition = record.get("partition")
            limit = times.get("limit")
            with contextlib.suppress(SlurmError):
                exit_codes = step_exit_codes(self.command(
                    "sacct", "-j", job.job_id, "-P", "-n", "-o", "JobID,ExitCode").stdout)
        else:
            status = last if last is not None and not last.active else (
                self.scontrol_job(job.job_id) or last)
            if status is not None and not status.active:
                accounting = ("squeue/scontrol (no accounting: sacct is not configured)"
                              if not self.accounting else
                              "squeue/scontrol (sacct did not show the job's end in time)")
                job_state, tres = status.state, status.tres
                start, end, submit = status.start, status.end, status.submit
                node, partition = status.node, status.partition
                limit = status.time_limit_s / 60 if status.time_limit_s else None
                if status.exit_code is not None:
                    exit_codes[""] = status.exit_code
            else:
                accounting = ("worker files only: the job left the controller before its "
                              "end was seen, and no accounting exists")
                job_state, tres = "UNKNOWN", {}
                start = end = submit = limit = None
                node, partition = None, None
        state = job_state
        if "OUT_OF_MEMORY" in steps.values() or (facts.oom and job_state in ("FAILED", "UNKNOWN")):
            state = "OUT_OF_MEMORY"
        elif steps.get("0") in FAILURE_STATES and job_state not in FAILURE_STATES:
            state = steps["0"]
        node = node or facts.node
        exit_code = exit_codes.get("0", exit_codes.get(""))
        if state in ("NODE_FAIL", "PREEMPTED", "BOOT_FAIL"):
            exit_code = None  # the worker's end was never seen: Slurm's 0:0 means nothing
        if exit_code is None and state == "UNKNOWN":
            exit_code = _inferred_exit(run_dir)
        exclusive = job.exclusive if last is None or last.exclusive is None else last.exclusive
        energy_note = self._energy_note(energy_j)
        slurm = SlurmRecord(
            job_id=job.job_id, state=state, node=node, partition=partition,
            cpus=tres.get("cpu"), memory_bytes=tres["mem"] * 2**20 if "mem" in tres else None,
            gpus=tres.get("gpu", 0 if tres else None), exclusive=exclusive,
            consumed_energy_j=energy_j, energy_note=energy_note, accounting=accounting,
            job_state=job_state, steps=steps, cluster=job.cluster,
            queued_s=max(0.0, start - submit) if start and submit else None,
            time_limit_s=float(limit) * 60 if isinstance(limit, int | float) and limit
            else job.time_limit_s,
            cuda_visible_devices=facts.cuda_visible_devices,
            machine_scope=_machine_scope(exclusive, energy_j is not None))
        outcome = Outcome(exit_code=exit_code,
                          duration_s=max(0.0, end - start) if start and end else 0.0,
                          slurm=slurm, provenance=self._provenance(job, run_dir, slurm))
        if cancelled is not None:
            outcome.interrupted = True
            outcome.reason = f"{cancelled}; Slurm state {state}"
        elif state == "CANCELLED":
            outcome.interrupted = True
            outcome.reason = "job cancelled outside the harness (scancel; Slurm state CANCELLED)"
        elif state == "TIMEOUT" or facts.time_limit:
            outcome.timed_out = True
            outcome.reason = (f"Slurm's time limit ({format_minutes(slurm.time_limit_s or 0)} min: "
                              f"the smaller of timeout_s + {TIME_LIMIT_LEAD_S + SIGNAL_EARLY_S}"
                              " s and slurm.time_limit): the worker was warned and stopped "
                              f"{TIME_LIMIT_LEAD_S} to {TIME_LIMIT_LEAD_S + SIGNAL_EARLY_S} s "
                              f"before it; Slurm state {state}")
        elif state == "OUT_OF_MEMORY":
            outcome.oom_killed = True
            outcome.reason = f"Slurm state OUT_OF_MEMORY: {FAILURE_STATES['OUT_OF_MEMORY']}"
        elif state in FAILURE_STATES:
            outcome.failed = True
            outcome.reason = f"Slurm state {state}: {FAILURE_STATES[state]}"
        elif facts.missing:
            outcome.failed = True
            outcome.reason = f"the node cannot see {facts.missing}"
        elif state not in ("COMPLETED", "FAILED", "UNKNOWN"):
            outcome.reason = f"Slurm state {state}"
        return outcome

    def _energy_note(self, energy_j: float | None) -> str:
        plugin = self.energy_plugin
        if plugin is None:
            return ("Slurm gathers no energy on this cluster (AcctGatherEnergyType "
                    f"{self.config.get('AcctGatherEnergyType', '?')}): nothing to cross-check "
                    "CodeCarbon's figure with")
        if energy_j is None:
            return (f"{plugin} is configured but recorded no ConsumedEnergy for the worker's "
                    "step (no accounting, or the plugin could not read a counter)")
        return (f"Slurm's ConsumedEnergy of the worker's step ({plugin}): {energy_j:.0f} J = "
                f"{energy_j / 3.6e6:.6g} kWh, the node's energy while the step ran: compare "
                "with CodeCarbon's run scope (the report does)")

    def _provenance(self, job: SlurmJobFile, run_dir: Path, slurm: SlurmRecord) -> dict[str, Any]:
        run_file = None
        with contextlib.suppress(FileProblem):
            from harness.plan import read_run_file

            run_file = read_run_file(run_dir)
        limits: dict[str, Any] = {}
        if run_file is not None:
            hw = run_file.spec.hardware
            limits = {"cpus": math.ceil(hw.cpus) if hw.cpus is not None else None,
                      "memory_bytes": hw.memory_bytes, "gpus": hw.gpu_count,
                      "exclusive": job.exclusive,
                      "not_enforced": [k for k, v in (("cpuset", hw.cpuset),
                                                      ("gpu_ids", hw.gpu_ids)) if v]}
        return {"backend": self.name, "job_id": job.job_id, "cluster": job.cluster,
                "sbatch": job.sbatch, "script": job.script, "output": job.output,
                "python": self.python, "submitted_at": job.submitted_at,
                "node": slurm.node, "limits": limits,
                "step_options": self.step_options(run_file.spec) if run_file else None}

    # --- stopping ----------------------------------------------------------------------

    def terminate_steps(self, job_ids: list[str]) -> None:
        """SIGTERM to the running jobs' worker steps only (not the batch shell, not srun)."""
        if job_ids:
            self.command("scancel", "--signal=TERM", *job_ids, check=False)

    def cancel(self, job_ids: list[str]) -> None:
        """Plain scancel: pending jobs leave the queue; running ones get SIGTERM, then
        SIGKILL after the cluster's KillWait."""
        if job_ids:
            self.command("scancel", *job_ids, check=False)

    def stop_all(self) -> None:
        """Cancel every job this backend submitted that is still queued or running: the
        running ones' workers get SIGTERM first and :data:`STOP_GRACE_S` to write."""
        ids = list(self._jobs)
        with contextlib.suppress(SlurmError):
            states = self.queue(ids)
            active = {i: s for i, s in states.items() if s.active}
            self.cancel([i for i, s in active.items() if s.state == "PENDING"])
            running = [i for i, s in active.items() if s.state != "PENDING"]
            self.terminate_steps(running)
            deadline = time.monotonic() + STOP_GRACE_S
            while running and time.monotonic() < deadline:
                time.sleep(1)
                states = self.queue(running)
                running = [i for i in running if i in states and states[i].active]
            self.cancel(running)

    # --- the batch interface's small parts ---------------------------------------------

    def read_job(self, run_dir: Path) -> SlurmJobFile | None:
        return read_job_file(run_dir)

    def new_facts(self) -> OutputFacts:
        return OutputFacts()

    @property
    def kill_wait_s(self) -> float:
        """The cluster's KillWait (SIGTERM to SIGKILL on a cancel)."""
        try:
            return float(self.config.get("KillWait", "30").split()[0])
        except (ValueError, IndexError):
            return 30.0

    def log_line(self, text: str) -> None:
        self.log(text)

    def describe(self) -> dict[str, Any]:
        config = self.config
        return {"backend": self.name, "release": self._release or config.get("SLURM_VERSION"),
                "cluster": config.get("ClusterName"),
                "slurm_conf": self.env.get("SLURM_CONF") or "(default)",
                "accounting": config.get("AccountingStorageType"),
                "energy_plugin": config.get("AcctGatherEnergyType"),
                "kill_wait": config.get("KillWait"), "submit_host": platform.node(),
                "python": self.python, "sources": str(REPO_ROOT),
                "submitit": WHY_NOT_SUBMITIT}


#: The per-run record of its job (harness.schema.SlurmJobFile).
JOB_FILE = "slurm-job.json"


def read_job_file(run_dir: Path) -> SlurmJobFile | None:
    """A run's slurm-job.json, or None when it has none (never submitted)."""
    path = run_dir / JOB_FILE
    if not path.exists():
        return None
    return read_model(path, SlurmJobFile)


def _machine_scope(exclusive: bool, slurm_energy: bool) -> str:
    if exclusive:
        return ("no machine meter: the worker ran on a Slurm node, not on the submitting "
                "host; the node was held exclusively, so the worker's own tracker (run "
                "scope) saw the whole node" + (" and Slurm's ConsumedEnergy is the node's "
                                               "energy" if slurm_energy else ""))
    return ("no machine meter, and the node was shared with other jobs: neither the "
            "worker's tracker (its CPU and RAM models read the whole node) nor Slurm's node "
            "energy are this run's alone")


def _inferred_exit(run_dir: Path) -> int | None:
    """Without any Slurm record of the job's end: 0 when the worker wrote a complete
    metrics.json (it exits 0 right after), else unknown."""
    from harness.schema import UPGRADE_HINT, Metrics, RunStatus

    try:
        metrics = read_model(run_dir / "metrics.json", Metrics, upgrade_hint=UPGRADE_HINT)
    except FileProblem:
        return None
    return 0 if metrics.status is RunStatus.OK else None


def _now() -> str:
    from harness.results import now_iso

    return now_iso()
