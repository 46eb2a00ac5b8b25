"""Every file format of a run and a session, as versioned, typed models.

Host and worker talk through files only (``run.json`` one way; ``metrics.json``,
``history.json``, CodeCarbon's CSVs the other; ``outcome.json`` and ``session.json``
are the host's records). Each format is one pydantic model here, imported by both
sides; nothing else in the harness defines a file layout.

Reading is checked, never trusting: :mod:`harness.results` reads these files through
:func:`harness.fileio.read_model`, which refuses a foreign format, an unknown version,
a wrong type, a non-finite number or a number out of its range, naming the file and
the field. Units are in the field names (``_s`` seconds, ``_kwh`` kilowatt-hours,
``_kg`` kilograms of CO2-equivalent, ``_w`` watts, ``_bytes``) or in the docstring.

Version history (all formats share one number, bumped together):
  1: first release (harness 0.1.0): loose dicts, no scopes, no code identity.
  2: typed models; one status vocabulary; time and energy in three nested scopes
     (training, run, process); per-epoch energy; code identity and data checksums;
     machine and attributed energy, idle baseline, forecast, budget.
Version 1 files are refused by name (:data:`UPGRADE_HINT`): they lack the scopes and
identities every figure now needs, so an upgrade would have to invent them.
"""

from __future__ import annotations

import math
from enum import StrEnum
from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from harness.scenario import (
    DatasetSpec,
    HardwareSpec,
    TrackerSpec,
    TrainingSpec,
)

SCHEMA_VERSION = 2
#: What a reader says about a file of an older version.
UPGRADE_HINT = ("it was written by harness 0.1 (format version 1), before time and energy "
                "had scopes and runs recorded their code and data identity; re-run the "
                "scenario with this harness, or report it with harness 0.1")
#: Worker stdout lines starting with this carry a JSON progress event for the host.
PROGRESS_PREFIX = "HARNESS_PROGRESS "

# --- value types --------------------------------------------------------------------------

#: A finite number >= 0 (durations, energies, powers, masses).
NonNeg = Annotated[float, Field(ge=0, allow_inf_nan=False)]
#: A finite number in [0, 1] (accuracies, shares, fractions).
Fraction = Annotated[float, Field(ge=0, le=1, allow_inf_nan=False)]
#: A whole count >= 0.
Count = Annotated[int, Field(ge=0)]
#: A finite number of any sign (a loss may be anything but NaN).
Finite = Annotated[float, Field(allow_inf_nan=False)]
Sha256 = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]


class Record(BaseModel):
    """Base of every file model: unknown keys and coerced types are errors; immutable."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class RunStatus(StrEnum):
    """How a run ended: one vocabulary for the worker, the runner and the report.

    The worker writes ``ok``, ``partial``, ``failed`` or ``over_budget`` in
    metrics.json; the runner writes the final status in outcome.json (it may override
    the worker's: a timeout or Ctrl-C ends a run whatever the worker wrote); the report
    adds two verdicts of its own, never written by a run: ``damaged`` and ``unknown``.
    """

    OK = "ok"
    """Complete: every figure measured; the only status that enters averages."""
    PARTIAL = "partial"
    """Stopped early by a signal; the worker wrote what it had."""
    FAILED = "failed"
    """The worker or its backend failed (exit code, out-of-memory kill, error)."""
    TIMEOUT = "timeout"
    """Exceeded the scenario's timeout_s and was stopped (partial results kept)."""
    INTERRUPTED = "interrupted"
    """The user stopped the session (Ctrl-C, SIGTERM, SIGHUP to the harness)."""
    OVER_BUDGET = "over_budget"
    """Its forecast exceeded the carbon budget: stopped after the forecasting epoch."""
    ORPHANED = "orphaned"
    """Its harness died; a later harness found the worker still running and stopped it."""
    NOT_STARTED = "not_started"
    """Planned in session.json but never started (the session ended first)."""
    DAMAGED = "damaged"
    """Report verdict: a result file failed its checks; nothing of it is believed."""
    UNKNOWN = "unknown"
    """Report verdict: no outcome.json (the harness died during the run)."""

    @property
    def usable(self) -> bool:
        """Whether a run with this status may enter averages."""
        return self is RunStatus.OK


#: Statuses the worker itself writes into metrics.json.
WORKER_STATUSES = frozenset({RunStatus.OK, RunStatus.PARTIAL, RunStatus.FAILED,
                             RunStatus.OVER_BUDGET})


# --- identity -----------------------------------------------------------------------------


class CodeIdentity(Record):
    """Which code produced a run: runs of different code are never averaged together."""

    harness_version: str
    source_sha256: Sha256
    """SHA-256 over the harness package's Python sources (paths and contents)."""
    commit: str | None = None
    """Git commit of the checkout the host ran from; None outside a checkout."""
    dirty: bool | None = None
    """True when the checkout had uncommitted changes to tracked files."""


class DatasetRecord(Record):
    """The data a run really loaded (not only what the scenario named)."""

    kind: Literal["cifar10", "synthetic", "custom"]
    label: str
    """Display name: "CIFAR-10", "CIFAR-10 (unverified)", "synthetic (easy)"..."""
    verified: bool
    """CIFAR-10: every file matches the manifest written after the official MD5 check."""
    verification: str
    name: str | None = None
    train_size: Count
    test_size: Count
    arrays_sha256: Sha256
    """SHA-256 of the arrays trained and tested on (x_train, y_train, x_test, y_test)."""
    files_sha256: dict[str, Sha256] = Field(default_factory=dict)
    root: str
    generator: dict[str, Any] | None = None


# --- run.json (host -> worker) ------------------------------------------------------------


class BudgetSpec(Record):
    """A carbon budget for one run (kg CO2eq in the home region, or kWh)."""

    limit: NonNeg
    unit: Literal["kg", "kwh"]
    on_exceed: Literal["stop", "warn"] = "stop"
    source: Literal["run", "session"] = "run"
    """``session``: the limit is what is left of the session's budget."""


class RunSpec(Record):
    """Everything the worker needs to run one training, and nothing host-specific."""

    run_id: str
    scenario: str
    variant: str = "baseline"
    scenario_file: str
    description: str
    hardware: HardwareSpec
    repeat: Annotated[int, Field(ge=1)]
    """1-based repeat index."""
    repeats: Annotated[int, Field(ge=1)]
    home_region: str
    """Region label the tracker runs with (see harness.regions)."""
    regions: list[str]
    """Every region the report prices the energy in, home first."""
    dataset: DatasetSpec
    training: TrainingSpec
    tracker: TrackerSpec
    timeout_s: NonNeg
    seed: Annotated[int, Field(ge=0)]
    """The training seed this repeat uses (``training.seed`` + repeat - 1 unless
    ``training.seed_policy`` is ``fixed``)."""
    budget: BudgetSpec | None = None
    """What the worker is held to (the run's budget, or what is left of the session's)."""
    session_budget: BudgetSpec | None = None
    """The scenario's budget for all its runs in one session (the runner checks it)."""
    forecast_after_epoch: Annotated[int, Field(ge=1)] = 1
    target_accuracy: Fraction | None = None
    accuracy_tolerance_pp: NonNeg = 1.0
    """The strategies report: how many accuracy points a greener variant may lose."""

    @property
    def group(self) -> str:
        """Runs that differ only in their repeat index share a group key."""
        return f"{self.scenario}__{self.variant}__{self.hardware.name}"


class RunFile(Record):
    """run.json: the run spec and its envelope."""

    format: Literal["harness.run"] = "harness.run"
    version: Literal[2] = SCHEMA_VERSION
    session: str
    session_id: str
    """Unique id of the session (a directory name may repeat across results dirs)."""
    created_at: str
    backend: str
    """Where the worker runs: local, docker or slurm (decides ``in_container``)."""
    code: CodeIdentity
    """The host's code identity; the worker records its own beside it."""
    spec: RunSpec


# --- CodeCarbon's emissions.csv ---------------------------------------------------------


class EmissionsRow(Record):
    """The total (last) row of CodeCarbon's emissions.csv, typed and checked.

    CodeCarbon writes energies in kWh, powers in W, emissions in kg CO2eq. Its
    ``duration`` is the last task's duration when tasks are used, never the run's.
    """

    energy_consumed: NonNeg
    cpu_energy: NonNeg
    gpu_energy: NonNeg
    ram_energy: NonNeg
    emissions: NonNeg
    duration: NonNeg
    cpu_power: NonNeg
    gpu_power: NonNeg
    ram_power: NonNeg
    codecarbon_version: str
    country_iso_code: str
    region: str
    cloud_provider: str
    cloud_region: str
    tracking_mode: str
    cpu_model: str
    cpu_count: NonNeg
    gpu_count: NonNeg
    gpu_model: str
    ram_total_size: NonNeg
    pue: NonNeg
    cpu_utilization_percent: NonNeg

    #: Relative tolerance of energy_consumed against the sum of its components: the
    #: CSV prints floats with repr, so a sound file agrees to rounding.
    SUM_TOLERANCE: ClassVar[float] = 1e-6

    @model_validator(mode="after")
    def _components_add_up(self) -> EmissionsRow:
        parts = self.cpu_energy + self.gpu_energy + self.ram_energy
        if not math.isclose(self.energy_consumed, parts, rel_tol=self.SUM_TOLERANCE,
                            abs_tol=1e-15):
            raise ValueError(
                f"energy_consumed {self.energy_consumed!r} kWh is not the sum of cpu, gpu and "
                f"ram energy ({parts!r} kWh): the file is damaged or truncated")
        return self

    @classmethod
    def numeric_columns(cls) -> frozenset[str]:
        """Columns read as numbers (the rest are text)."""
        return frozenset(name for name, info in cls.model_fields.items()
                         if info.annotation is not str)


# --- metrics.json (worker -> host) --------------------------------------------------------


class Energy(Record):
    """Energy by component over one window, in kWh, and its CO2 in the home region."""

    energy_kwh: NonNeg
    cpu_kwh: NonNeg
    gpu_kwh: NonNeg
    ram_kwh: NonNeg
    co2_kg: NonNeg

    @model_validator(mode="after")
    def _components_add_up(self) -> Energy:
        parts = self.cpu_kwh + self.gpu_kwh + self.ram_kwh
        if not math.isclose(self.energy_kwh, parts, rel_tol=1e-6, abs_tol=1e-15):
            raise ValueError(f"energy_kwh {self.energy_kwh!r} is not the sum of its components "
                             f"({parts!r})")
        return self


class Window(Record):
    """One scope or phase: a stretch of the worker's clock and the energy in it."""

    name: str
    duration_s: NonNeg
    """Our own clock (time.perf_counter), the same clock for every window."""
    energy: Energy | None = None
    """None when no tracker covered the window."""
    estimated_s: NonNeg = 0.0
    """Seconds of this window no tracker saw, priced at the run's mean power (process
    scope only: interpreter start and imports before the tracker started)."""


class Scopes(Record):
    """Three nested scopes on one clock: training within run within process."""

    training: Window
    """fit(), its per-epoch validation included: the sum of the epoch windows."""
    run: Window
    """What the tracker saw: set-up, training, evaluation (emissions.csv's total)."""
    process: Window
    """From process start: ``run`` plus the untracked start, estimated."""


class PowerMethod(Record):
    """How CodeCarbon obtained one component's power."""

    component: Literal["cpu", "gpu", "ram"]
    measured: bool
    """True only when an energy counter (RAPL, NVML...) was read."""
    method: str
    detail: str
    fallback: bool = False
    """True when CodeCarbon used a default because it did not recognise the hardware
    (an unknown CPU model: a default power per thread)."""


class TrackerRecord(Record):
    """The tracker's settings and what it reported about location and mode."""

    measure_power_secs: NonNeg
    pue: NonNeg
    rapl: bool
    tracking_mode: str
    country_iso_code: str
    region: str
    cloud_provider: str
    cloud_region: str
    csv_duration_s: NonNeg
    """The CSV's ``duration``: CodeCarbon puts the last task's duration there."""


class TrackerCheck(Record):
    """The total row's energy re-priced in the home region against the row's CO2."""

    ok: bool
    repriced_kg: NonNeg
    csv_kg: NonNeg
    relative_difference: NonNeg
    detail: str


class TrainingRecord(Record):
    """The training settings a run used, and how far it got."""

    settings: TrainingSpec
    deviations: dict[str, Any]
    """Settings that differ from the research workload."""
    seed: Annotated[int, Field(ge=0)]
    epochs_planned: Count
    epochs_run: Count
    stopped_early: bool = False
    """Early stopping ended the training before epochs_planned."""
    best_epoch: Count | None = None
    """Early stopping with restored weights: the epoch whose weights were kept."""
    pruning: dict[str, Any] | None = None


class Speed(Record):
    """Throughput and responsiveness of the training loop."""

    images_per_s: NonNeg | None
    """Training images / time spent in training steps (validation excluded)."""
    images_per_s_after_warmup: NonNeg | None
    first_step_s: NonNeg | None
    """From process start to the end of the first training execution."""
    max_step_gap_s: NonNeg | None
    train_only_s: NonNeg


class HostLoad(Record):
    """The machine's CPU use during the run that was not the run's (from /proc/stat)."""

    host_cpus: Annotated[int, Field(ge=1)]
    background_cpus: NonNeg
    """Mean CPUs busy with other processes during the run window."""
    run_cpus: NonNeg
    """Mean CPUs the worker itself used (its CPU time / wall time)."""
    flagged: bool
    """True when background load exceeded :data:`BACKGROUND_LOAD_LIMIT` CPUs."""


#: Background CPU load (in CPUs) above which a run's timing and energy are flagged.
BACKGROUND_LOAD_LIMIT = 0.25


class Environment(Record):
    """Provenance an auditor needs to reproduce or distrust a run."""

    versions: dict[str, str]
    packages: list[str]
    """Every installed distribution as ``name==version`` (sorted)."""
    cpu_model: str
    ram_total_bytes: Count
    host_cpus: Annotated[int, Field(ge=1)]
    cpus_visible: Annotated[int, Field(ge=1)]
    cpus_effective: NonNeg
    """CPUs the run may use: the affinity set, capped by the cgroup CPU quota."""
    memory_limit_bytes: Count | None
    """The cgroup memory limit; None when unlimited."""
    tf_threads: Count
    tf_inter_op_threads: Count
    pipeline: dict[str, Any]
    gpu_models: list[str]
    gpu_count: Count
    hostname: str
    platform: str
    backend: str
    in_container: bool
    """From the backend that started the worker (docker: true), not guessed."""
    cpu_isa: str | None = None
    """The instruction set oneDNN dispatches to (its ONEDNN_MAX_CPU_ISA name: the host's
    best, from the CPUID flags, or lower where a cap applies); None where unknown (not
    x86). TensorFlow's Eigen kernels ignore it (README, "Performance")."""
    cpu_isa_cap: str | None = None
    """The cap as the worker's environment gave it (ONEDNN_MAX_CPU_ISA, else
    DNNL_MAX_CPU_ISA), None if unset; a name oneDNN does not know leaves it uncapped."""


class Attribution(Record):
    """How the run's own share of the machine is computed (the attributed scope)."""

    cpu_share: Fraction
    """CPUs granted / host CPUs (cgroup quota or cpuset; 1 when unlimited)."""
    ram_share: Fraction
    """Memory limit / host memory (1 when unlimited)."""
    rule: str


class Forecast(Record):
    """The worker's forecast of the whole run, made after ``after_epoch`` epochs."""

    after_epoch: Annotated[int, Field(ge=1)]
    duration_s: NonNeg
    energy_kwh: NonNeg
    co2_kg: NonNeg
    method: str


class BudgetRecord(Record):
    """A budget the run was held to and what happened."""

    spec: BudgetSpec
    exceeded: bool
    forecast_value: NonNeg
    """The forecast in the budget's unit when the decision was made."""
    action: Literal["none", "stopped", "warned"]


class TargetRecord(Record):
    """Time and energy until validation accuracy first reached the target."""

    accuracy: Fraction
    reached: bool
    epoch: Count | None = None
    duration_s: NonNeg | None = None
    """Training time (fit clock) to the end of that epoch."""
    energy_kwh: NonNeg | None = None
    co2_kg: NonNeg | None = None


class Metrics(Record):
    """metrics.json: everything the worker measured, written even when cut short."""

    format: Literal["harness.metrics"] = "harness.metrics"
    version: Literal[2] = SCHEMA_VERSION
    run_id: str
    status: RunStatus
    error: str | None
    started_at: str
    finished_at: str
    code: CodeIdentity
    dataset: DatasetRecord | None
    """None when the run failed before the data was loaded."""
    training: TrainingRecord
    test_accuracy: Fraction | None
    test_loss: Finite | None
    scopes: Scopes | None
    """None when the tracker never produced a total row."""
    phases: list[Window]
    """setup, epoch-1 .. epoch-N, fit-end, evaluation: CodeCarbon tasks on our clock."""
    speed: Speed
    power: list[PowerMethod]
    tracker: TrackerRecord | None
    tracker_check: TrackerCheck | None
    environment: Environment | None
    load: HostLoad | None
    attribution: Attribution | None
    forecast: Forecast | None = None
    budget: BudgetRecord | None = None
    target: TargetRecord | None = None

    @model_validator(mode="after")
    def _status_is_a_worker_status(self) -> Metrics:
        if self.status not in WORKER_STATUSES:
            raise ValueError(f"status {self.status.value!r} is not one the worker writes")
        if self.status is RunStatus.OK and (self.scopes is None or self.dataset is None
                                            or self.test_accuracy is None):
            raise ValueError("status ok without scopes, dataset or test accuracy")
        return self


# --- history.json -------------------------------------------------------------------------


class EpochRecord(Record):
    """One epoch: the loss and accuracy Keras reports, our time, CodeCarbon's energy."""

    epoch: Annotated[int, Field(ge=1)]
    loss: Finite | None
    """None when the loss was not finite (a diverged training)."""
    accuracy: Fraction
    val_loss: Finite | None
    val_accuracy: Fraction
    duration_s: NonNeg
    """The epoch's window: training steps and validation."""
    train_s: NonNeg
    validation_s: NonNeg
    energy: Energy | None = None
    """The epoch's CodeCarbon task; None if the tracker did not cover it."""
    forecast: Forecast | None = None


class History(Record):
    """history.json: per-epoch curves, rewritten after every epoch."""

    format: Literal["harness.history"] = "harness.history"
    version: Literal[2] = SCHEMA_VERSION
    run_id: str
    epochs: list[EpochRecord]

    @model_validator(mode="after")
    def _epochs_in_order(self) -> History:
        numbers = [e.epoch for e in self.epochs]
        if numbers != list(range(1, len(numbers) + 1)):
            raise ValueError(f"epochs are not numbered 1..{len(numbers)}: {numbers[:10]}")
        return self


# --- outcome.json (host) ------------------------------------------------------------------


class SlurmRecord(Record):
    """What Slurm said about a run's job."""

    job_id: str
    state: str
    """Slurm's final state (COMPLETED, CANCELLED, TIMEOUT, OUT_OF_MEMORY, NODE_FAIL...)."""
    node: str | None = None
    partition: str | None = None
    cpus: Count | None = None
    memory_bytes: Count | None = None
    gpus: Count | None = None
    exclusive: bool | None = None
    consumed_energy_j: NonNeg | None = None
    """Slurm's own ConsumedEnergy, when an energy-gathering plugin is configured."""
    energy_note: str = ""
    accounting: str = ""
    """Where the state came from: sacct, or squeue/scontrol when accounting is absent."""
    job_state: str | None = None
    """The job's own state when ``state`` is the worker step's (a step OUT_OF_MEMORY inside
    a job FAILED), else the same as ``state``."""
    steps: dict[str, str] = Field(default_factory=dict)
    """Each job step's state (``batch``, ``0`` the worker's step), from sacct."""
    cluster: str | None = None
    queued_s: NonNeg | None = None
    """From submission to the job's start (None: it never started)."""
    time_limit_s: NonNeg | None = None
    cuda_visible_devices: str | None = None
    """What the job was given (Slurm sets it for GRES GPUs); None: not set."""
    machine_scope: str = ""
    """What stands for the machine scope, which the submitting host cannot measure."""


class SlurmJobFile(Record):
    """slurm-job.json: a run's Slurm job, written as it is submitted, so a later harness
    (``harness attach``, after a ``--detach`` or a killed harness) follows it."""

    format: Literal["harness.slurm-job"] = "harness.slurm-job"
    version: Literal[2] = SCHEMA_VERSION
    run_id: str
    session_id: str
    job_id: Annotated[str, Field(pattern=r"^[0-9]{1,12}$")]
    submitted_at: str
    cluster: str | None = None
    slurm_conf: str | None = None
    """SLURM_CONF at submission (an attach without it set uses this one)."""
    script: str
    """The batch script, a file of the run directory (sbatch keeps its own copy)."""
    output: str
    """The job's output file in the run directory (batch script and worker step)."""
    sbatch: list[str]
    """The sbatch command line, script path last."""
    exclusive: bool
    time_limit_s: NonNeg


class MachineEnergy(Record):
    """The machine scope: what the whole host drew during the run's window."""

    window_s: NonNeg
    energy: Energy
    methods: list[PowerMethod]
    source: str
    """The file the figure comes from (machine-emissions.csv)."""


class Outcome(Record):
    """outcome.json: how the run ended, as the host saw it; never overwritten."""

    format: Literal["harness.outcome"] = "harness.outcome"
    version: Literal[2] = SCHEMA_VERSION
    run_id: str
    status: RunStatus
    exit_code: int | None
    duration_s: NonNeg
    """Wall time from the worker's start to its end, host clock."""
    reason: str | None
    log_tail: list[str]
    backend: str
    provenance: dict[str, Any]
    """Backend facts: limits applied, image and container ids, command..."""
    finished_at: str
    machine: MachineEnergy | None = None
    slurm: SlurmRecord | None = None
    concurrent_sessions: list[str] = Field(default_factory=list)
    """Other harness sessions running on this machine while this run ran."""


# --- session.json (host) ------------------------------------------------------------------


class IdleBaseline(Record):
    """The host's idle power, measured once before the session's runs."""

    measured_at: str
    duration_s: NonNeg
    cpu_w: NonNeg
    gpu_w: NonNeg
    ram_w: NonNeg
    estimated: bool
    """True when any component's power was estimated (then so is the baseline)."""
    methods: list[PowerMethod]
    gpu_count: Count = 0
    """GPUs the machine has (their idle power is gpu_w together)."""
    reused_from: str | None = None
    """A cached measurement reused (younger than the configured age)."""

    @property
    def total_w(self) -> float:
        return self.cpu_w + self.gpu_w + self.ram_w


class HostRecord(Record):
    hostname: str
    platform: str
    python: str


class Session(Record):
    """session.json: what was planned, where and how."""

    format: Literal["harness.session"] = "harness.session"
    version: Literal[2] = SCHEMA_VERSION
    session: str
    session_id: str
    created_at: str
    code: CodeIdentity
    host: HostRecord
    backend: dict[str, Any]
    argv: list[str]
    scenario_files: list[str]
    runs: list[str]
    """Run ids in plan order: every one of them appears in the report."""
    idle: IdleBaseline | None = None
    idle_note: str = ""
    """Why there is no idle baseline (skipped, failed)."""
    concurrent_sessions: list[str] = Field(default_factory=list)
    budget: BudgetSpec | None = None


# --- summary.json (report) -----------------------------------------------------------------


class StatRecord(Record):
    """One figure over a group's repeats (units: the figure's)."""

    mean: Finite
    ci95: NonNeg | None
    """Half-width of the 95% interval (Student's t); None for a single run."""
    low: Finite | None
    high: Finite | None
    n: Count
    cv: NonNeg | None
    values: list[Finite]


class ComparisonRecord(Record):
    """A ratio (geometric means, Welch on logs) or a difference, with its 95% interval."""

    estimate: Finite
    low: Finite | None
    high: Finite | None
    n: list[Count]
    kind: Literal["ratio", "difference"]
    paired: bool
    """True: runs paired by seed (t on the per-pair differences); False: Welch."""
    distinguishable: bool
    repeats_needed: Count | None


class SummaryRun(Record):
    session: str
    run: str
    status: RunStatus
    usable: bool
    reason: str


class SummaryGroup(Record):
    """One scenario/variant/hardware group of a report, every figure with its interval."""

    scenario: str
    variant: str
    hardware: str
    device: str
    refused: str | None
    dataset: str
    verified: bool
    synthetic: bool
    backend: str
    home_region: str | None
    power: dict[str, str]
    estimated: dict[str, str]
    cpu_power_fallback: bool
    seeds: list[int]
    runs: list[SummaryRun]
    figures: dict[str, StatRecord | None]
    co2_kg_by_region: dict[str, StatRecord | None]
    phases: dict[str, dict[str, StatRecord | None]]
    curves: dict[str, dict[str, StatRecord | None]]


class SummaryComparison(Record):
    scenario: str
    variant: str
    hardware: str
    baseline: str
    speedup: ComparisonRecord | None
    energy_ratio: ComparisonRecord | None
    co2_ratio: ComparisonRecord | None
    accuracy_diff_pp: ComparisonRecord | None
    estimated: bool


class Summary(Record):
    """summary.json: what a report shows, as data (written by ``harness report``)."""

    format: Literal["harness.report"] = "harness.report"
    version: Literal[2] = SCHEMA_VERSION
    scope: Literal["training", "run", "process"]
    attribution: Literal["attributed", "tracker"]
    net: bool
    units: dict[str, str]
    sessions: list[dict[str, Any]]
    regions: list[dict[str, Any]]
    groups: list[SummaryGroup]
    comparisons: list[SummaryComparison]
    pareto: dict[str, Any]
    strategies: dict[str, Any] | None
    left_out: list[dict[str, str]]
    warnings: list[str]


# --- registry of files -------------------------------------------------------------------

#: The JSON file models, by file name, with the format name each must carry.
RUN_FILES: dict[str, type[Record]] = {
    "run.json": RunFile,
    "metrics.json": Metrics,
    "history.json": History,
    "outcome.json": Outcome,
}
SESSION_FILE = "session.json"
EMISSIONS_CSV = "emissions.csv"
MACHINE_CSV = "machine-emissions.csv"
WORKER_LOG = "worker.log"


def format_name(model: type[Record]) -> str:
    """The ``format`` value a file of ``model`` carries."""
    return str(model.model_fields["format"].default)
