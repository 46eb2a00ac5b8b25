"""Scenario files: the YAML schema, strict loading and user-facing validation errors.

A scenario file declares one scenario: the dataset, the hardware entries to
compare, the regions to price the energy in, the training settings and the
tracker settings. It is validated once, here, at the edge: unknown keys, wrong
types, out-of-range values, unknown regions and duplicate names are refused
with a message that names the file, the key and the fix.
"""

from __future__ import annotations

import difflib
import re
import stat
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    field_validator,
    model_validator,
)

from harness.errors import UserError
from harness.regions import Region, parse_region
from harness.slurm_spec import SlurmSpec

#: Names become parts of run ids and directory names: keep them file-name safe.
NAME_PATTERN = r"^[a-z0-9]+(-[a-z0-9]+)*$"
Name = Annotated[str, StringConstraints(pattern=NAME_PATTERN, max_length=40)]


def _int_as_float(value: Any) -> Any:
    # Strict mode refuses an int for a float field, but "cpus: 2" is the natural spelling.
    return float(value) if isinstance(value, int) and not isinstance(value, bool) else value


#: A float that may be written as an integer in YAML.
Number = Annotated[float, BeforeValidator(_int_as_float)]

_MEMORY_RE = re.compile(r"^(\d+(?:\.\d+)?)([kmg])$", re.IGNORECASE)
_CPUSET_RE = re.compile(r"^\d{1,5}(-\d{1,5})?(,\d{1,5}(-\d{1,5})?)*$")
#: The highest CPU id a cpuset may name (Linux's default NR_CPUS is 8192; 4095 is plenty).
MAX_CPU_ID = 4095
_EXAMPLE = "see scenarios/demo.yaml for a complete example"
#: Separates the problem from its fix inside a validator's ValueError message.
_FIX = " || fix: "


class _Strict(BaseModel):
    """Base of every schema model: unknown keys are errors, values are not coerced."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class HardwareSpec(_Strict):
    """One hardware entry to compare: the device and the limits the backend applies."""

    name: Name
    device: Literal["cpu", "gpu"]
    cpus: Number | None = Field(default=None, ge=0.01, le=1024)
    """Number of CPUs the run may use (Docker ``--cpus``: a CPU-time quota; Docker's
    smallest is 0.01)."""
    cpuset: str | None = None
    """CPUs the run is pinned to, e.g. ``"0"`` or ``"0-3,8"`` (Docker ``--cpuset-cpus``)."""
    memory: str | None = None
    """Memory limit, e.g. ``"4g"`` or ``"512m"`` (Docker ``--memory``)."""
    gpus: int | None = Field(default=None, ge=1, le=64)
    """Number of GPUs (GPU devices only; default 1)."""
    gpu_ids: list[Annotated[int, Field(ge=0, le=255)]] | None = Field(default=None, min_length=1,
                                                                       max_length=64)
    """Explicit GPU indices (GPU devices only; excludes ``gpus``; at least one)."""
    home_region: str | None = None
    """The region this hardware's runs are priced in and tracked with, overriding
    ``regions.home`` (a cluster in another region); validated like the scenario's."""
    slurm: SlurmSpec | None = None
    """Slurm backend only: partition, features, GRES, account, QoS, time limit, exclusive
    node and further sbatch options (harness.slurm_spec)."""

    @field_validator("home_region")
    @classmethod
    def _home_region_is_known(cls, value: str | None) -> str | None:
        return None if value is None else parse_region(value).label

    @field_validator("cpuset")
    @classmethod
    def _cpuset_syntax(cls, value: str | None) -> str | None:
        if value is None:
            return value
        if not _CPUSET_RE.match(value) or len(value) > 200:
            raise ValueError(f"{value[:40]!r} is not a CPU list{_FIX}write it like \"0\", "
                             "\"0-3\" or \"0,2-3\"")
        for part in value.split(","):
            low, _, high = part.partition("-")
            if high and int(high) < int(low):
                raise ValueError(f"range {part!r} runs backwards{_FIX}write it low-high, e.g. "
                                 f"\"{high}-{low}\"")
            if int(high or low) > MAX_CPU_ID:
                raise ValueError(f"CPU {int(high or low)} is beyond any machine this harness "
                                 f"knows (ids up to {MAX_CPU_ID}){_FIX}name CPUs the host has")
        return value

    @field_validator("gpu_ids")
    @classmethod
    def _gpu_ids_unique(cls, value: list[int] | None) -> list[int] | None:
        if value is not None and len(set(value)) != len(value):
            raise ValueError(f"a GPU is listed twice in {value}{_FIX}list each GPU once")
        return value

    @field_validator("memory")
    @classmethod
    def _memory_syntax(cls, value: str | None) -> str | None:
        if value is not None:
            match = _MEMORY_RE.match(value)
            if not match:
                raise ValueError(f"{value!r} is not a memory size{_FIX}write it like \"512m\" or \"4g\"")
            if parse_memory_bytes(value) < 64 * 2**20:
                raise ValueError(f"{value!r} is below 64m, too little to start TensorFlow"
                                 f"{_FIX}give at least \"2g\" for CIFAR-10")
        return value

    @model_validator(mode="after")
    def _gpu_fields_match_device(self) -> HardwareSpec:
        if self.device == "cpu" and (self.gpus is not None or self.gpu_ids is not None):
            raise ValueError(f"gpus and gpu_ids are for device: gpu{_FIX}remove them or set device: gpu")
        if self.gpus is not None and self.gpu_ids is not None:
            raise ValueError(f"both gpus and gpu_ids are given{_FIX}keep gpus (a count) or gpu_ids "
                             "(a list), not both")
        gres_gpus = self.slurm.gres_gpus() if self.slurm is not None else None
        if gres_gpus is not None and gres_gpus != self.gpu_count:
            raise ValueError(f"slurm.gres asks for {gres_gpus} GPU(s) but the entry for "
                             f"{self.gpu_count}{_FIX}make the gres count match gpus (a CPU "
                             "entry asks for none)")
        return self

    @property
    def memory_bytes(self) -> int | None:
        """The memory limit in bytes, or None when unlimited."""
        return parse_memory_bytes(self.memory) if self.memory else None

    @property
    def gpu_count(self) -> int:
        """Number of GPUs requested (0 for a CPU entry)."""
        if self.device == "cpu":
            return 0
        return len(self.gpu_ids) if self.gpu_ids is not None else (self.gpus or 1)


def parse_memory_bytes(text: str) -> int:
    """Parse ``"512m"`` / ``"4g"`` / ``"1.5g"`` into bytes (binary units, like Docker)."""
    match = _MEMORY_RE.match(text)
    if not match:
        raise ValueError(f"not a memory size: {text!r}")
    number, unit = float(match.group(1)), match.group(2).lower()
    return int(number * {"k": 2**10, "m": 2**20, "g": 2**30}[unit])


class DatasetSpec(_Strict):
    """Which data the run trains on. Synthetic data is labelled as such in every result."""

    kind: Literal["cifar10", "synthetic", "custom"]
    """cifar10: the official data set (``data fetch`` / ``data import``); synthetic:
    generated in CIFAR-10's format; custom: a CIFAR-format archive imported under its
    own name (``data import --name NAME``), labelled with that name everywhere."""
    train_size: int | None = Field(default=None, ge=100, le=1_000_000)
    """Synthetic only: number of training images (default 50,000, CIFAR-10's)."""
    test_size: int | None = Field(default=None, ge=100, le=1_000_000)
    """Synthetic only: number of test images (default 10,000, CIFAR-10's)."""
    seed: int = Field(default=0, ge=0, le=2**32 - 1)
    """Synthetic only: generator seed."""
    difficulty: Literal["easy", "cifar-like"] = "easy"
    """Synthetic only: ``easy`` is learnt to ~99% in one epoch (a smoke test);
    ``cifar-like`` gives the research CNN a CIFAR-10-like curve (README, "Data")."""
    name: Name | None = None
    """Custom only: the name the archive was imported under."""

    @model_validator(mode="before")
    @classmethod
    def _accept_bare_kind(cls, value: Any) -> Any:
        # "dataset: cifar10" is the common spelling; the mapping form carries options.
        return {"kind": value} if isinstance(value, str) else value

    @model_validator(mode="after")
    def _options_match_kind(self) -> DatasetSpec:
        synthetic_only = self.train_size or self.test_size or self.seed or self.difficulty != "easy"
        if self.kind != "synthetic" and synthetic_only:
            raise ValueError(
                "train_size, test_size, seed and difficulty are for kind: synthetic (a data "
                f"set on disk has the sizes it has){_FIX}remove them or set kind: synthetic"
            )
        if self.kind == "custom" and self.name is None:
            raise ValueError(f"kind: custom needs the name it was imported under{_FIX}add "
                             "name: (see `python -m harness data status`)")
        if self.kind != "custom" and self.name is not None:
            raise ValueError(f"name is for kind: custom{_FIX}remove it or set kind: custom")
        return self

    @property
    def sizes(self) -> tuple[int, int]:
        """(train, test) image counts (nominal: CIFAR-10's unless synthetic sizes are set)."""
        return (self.train_size or 50_000, self.test_size or 10_000)

    def describe(self) -> str:
        """Short text for the plan."""
        if self.kind == "synthetic":
            train, test = self.sizes
            return f"synthetic {self.difficulty} {train}/{test}"
        return f"custom {self.name}" if self.kind == "custom" else "cifar10"

    def root(self, data_dir: Path) -> Path:
        """The directory holding this data set (it contains ``cifar-10-batches-py/``)."""
        from harness import dataset

        if self.kind == "cifar10":
            return dataset.cifar10_root(data_dir)
        if self.kind == "custom":
            return dataset.custom_root(data_dir, str(self.name))
        train, test = self.sizes
        return dataset.synthetic_root(data_dir, train, test, self.seed, self.difficulty)


class EarlyStoppingSpec(_Strict):
    """Stop when the monitored validation figure has not improved for ``patience`` epochs,
    and keep the best epoch's weights (Keras' EarlyStopping, restore_best_weights)."""

    monitor: Literal["val_accuracy", "val_loss"] = "val_accuracy"
    patience: int = Field(default=2, ge=1, le=1000)
    min_delta: Number = Field(default=0.0, ge=0, le=1)
    """The smallest change that counts as an improvement (accuracy as a fraction)."""


class PruningSettings(_Strict):
    """Magnitude pruning of the Conv2D and Dense kernels (the classifier excepted) during
    training, on a polynomial schedule (Zhu & Gupta 2017), masks kept through fine-tuning
    (harness/pruning.py)."""

    sparsity: Number = Field(gt=0, lt=1)
    """Fraction of each pruned kernel's weights set to zero at the end of the schedule."""
    begin_epoch: int = Field(default=0, ge=0, le=1000)
    """The schedule starts at the beginning of this 0-based epoch."""
    end_epoch: int | None = Field(default=None, ge=1, le=1000)
    """The target is reached at the beginning of this 0-based epoch; the epochs after it
    fine-tune (default: two epochs before the end, at least one epoch after begin)."""
    updates_per_epoch: int = Field(default=4, ge=1, le=1000)


#: The learning-rate scaling rules for a batch size other than the research's 64.
LR_RULES = {
    "none": "the learning rate as given",
    "linear": "learning rate x batch_size / 64 (Goyal et al. 2017, for SGD)",
    "sqrt": "learning rate x sqrt(batch_size / 64) (Hoffer et al. 2017; suits Adam)",
}
RESEARCH_BATCH = 64


class TrainingSpec(_Strict):
    """Training settings. Defaults are the research workload; anything else is a deviation."""

    epochs: int = Field(default=10, ge=1, le=1000)
    batch_size: int = Field(default=64, ge=1, le=65536)
    learning_rate: Number = Field(default=0.001, gt=0, le=1)
    """The learning rate at batch size 64; see ``lr_scaling`` for other batch sizes."""
    lr_scaling: Literal["none", "linear", "sqrt"] = "none"
    """How the learning rate follows the batch size (:data:`LR_RULES`)."""
    seed: int = Field(default=42, ge=0, le=2**31 - 1)
    """Training seed of the first repeat (TensorFlow, NumPy and Python accept 0..2**31-1)."""
    seed_policy: Literal["per_repeat", "fixed"] = "per_repeat"
    """per_repeat: repeat k trains with seed + k - 1, so repeats show robustness, not
    determinism; fixed: every repeat uses ``seed``."""
    mixed_precision: bool = False
    """Deviation: float16 compute (mixed_float16 policy). Changes the numbers."""
    xla: bool = False
    """Deviation: XLA compilation (jit_compile). Changes the numbers and the speed."""
    early_stopping: EarlyStoppingSpec | None = None
    """Deviation: stop when validation has stopped improving (keeps the best weights)."""
    pruning: PruningSettings | None = None
    """Deviation: magnitude pruning of the kernels during training."""

    @model_validator(mode="after")
    def _pruning_fits_the_epochs(self) -> TrainingSpec:
        if self.pruning is not None:
            end = self.pruning_end_epoch
            if not self.pruning.begin_epoch < end <= self.epochs:
                raise ValueError(
                    f"pruning runs from epoch {self.pruning.begin_epoch} to {end}, which does "
                    f"not fit {self.epochs} epochs{_FIX}set 0 <= begin_epoch < end_epoch <= "
                    "epochs (0-based epochs)")
        return self

    @property
    def pruning_end_epoch(self) -> int:
        """The 0-based epoch at whose beginning the pruning target is reached."""
        assert self.pruning is not None
        if self.pruning.end_epoch is not None:
            return self.pruning.end_epoch
        return max(self.pruning.begin_epoch + 1, self.epochs - 2)

    @property
    def effective_learning_rate(self) -> float:
        """The learning rate the optimizer gets, after ``lr_scaling`` for the batch size."""
        factor = self.batch_size / RESEARCH_BATCH
        if self.lr_scaling == "linear":
            return self.learning_rate * factor
        if self.lr_scaling == "sqrt":
            return self.learning_rate * factor ** 0.5
        return self.learning_rate

    def deviations(self) -> dict[str, Any]:
        """Settings that differ from the research workload, by name."""
        reference = TrainingSpec()
        changed: dict[str, Any] = {}
        for name in type(self).model_fields:
            value = getattr(self, name)
            if name in ("seed", "seed_policy") or value == getattr(reference, name):
                continue
            changed[name] = value.model_dump(mode="json") if isinstance(value, BaseModel) else value
        if self.effective_learning_rate != self.learning_rate:
            changed["effective_learning_rate"] = self.effective_learning_rate
        return changed

    def seed_for(self, repeat: int) -> int:
        """The training seed of 1-based ``repeat`` under :attr:`seed_policy`."""
        if self.seed_policy == "fixed":
            return self.seed
        return (self.seed + repeat - 1) % 2**31


class TrainingOverrides(_Strict):
    """A variant: the training settings it changes, every one a declared deviation."""

    epochs: int | None = Field(default=None, ge=1, le=1000)
    batch_size: int | None = Field(default=None, ge=1, le=65536)
    learning_rate: Number | None = Field(default=None, gt=0, le=1)
    lr_scaling: Literal["none", "linear", "sqrt"] | None = None
    mixed_precision: bool | None = None
    xla: bool | None = None
    early_stopping: EarlyStoppingSpec | None = None
    pruning: PruningSettings | None = None

    def apply(self, base: TrainingSpec) -> TrainingSpec:
        """``base`` with these settings changed (validated again as a whole)."""
        changes = {name: getattr(self, name) for name in self.model_fields_set}
        return TrainingSpec.model_validate({**base.model_dump(), **{
            k: (v.model_dump() if isinstance(v, BaseModel) else v) for k, v in changes.items()}})


class StrategiesSettings(_Strict):
    """How the strategies report picks the greenest variant."""

    accuracy_tolerance_pp: Number = Field(default=1.0, ge=0, le=100)
    """A strategy qualifies only if it loses at most this many accuracy points against the
    baseline (its accuracy difference's estimate is at least minus this)."""


class TrackerSpec(_Strict):
    """CodeCarbon settings."""

    measure_power_secs: Number = Field(default=5.0, ge=0.5, le=300)
    """Interval between power samples, seconds."""
    pue: Number = Field(default=1.0, ge=1.0, le=3.0)
    """Power usage effectiveness of the data centre (1.0: count the machine only)."""
    rapl: bool = False
    """Container backends: mount the host's RAPL counters read-only so CPU energy is measured."""


class BudgetLimit(_Strict):
    """A carbon budget: kg CO2eq (priced in the home region) or kWh; exactly one."""

    kg: Number | None = Field(default=None, gt=0, le=1e6)
    kwh: Number | None = Field(default=None, gt=0, le=1e9)

    @model_validator(mode="after")
    def _exactly_one(self) -> BudgetLimit:
        if (self.kg is None) == (self.kwh is None):
            raise ValueError(f"give exactly one of kg and kwh{_FIX}write e.g. {{kg: 0.01}} "
                             "or {kwh: 0.05}")
        return self

    @property
    def unit(self) -> Literal["kg", "kwh"]:
        return "kg" if self.kg is not None else "kwh"

    @property
    def limit(self) -> float:
        return float(self.kg if self.kg is not None else self.kwh)  # type: ignore[arg-type]


class BudgetSettings(_Strict):
    """Carbon budgets, checked against the worker's forecast after the forecasting epoch."""

    run: BudgetLimit | None = None
    """Each run: when its forecast exceeds this, it stops (or warns)."""
    session: BudgetLimit | None = None
    """All runs of this scenario in one session: no run starts when what was spent plus
    its forecast would exceed it, and a running one is held to what is left."""
    on_exceed: Literal["stop", "warn"] = "stop"


class RegionsSpec(_Strict):
    """Where the energy is priced: the home region the tracker runs with, and the others."""

    home: str
    compare: list[str] = Field(default_factory=list)

    @field_validator("home")
    @classmethod
    def _home_is_known(cls, value: str) -> str:
        return parse_region(value).label

    @field_validator("compare")
    @classmethod
    def _compare_are_known(cls, values: list[str]) -> list[str]:
        labels = [parse_region(value).label for value in values]
        duplicates = sorted({label for label in labels if labels.count(label) > 1})
        if duplicates:
            raise ValueError(f"listed twice: {', '.join(duplicates)}{_FIX}list each region once")
        return labels

    @property
    def all(self) -> list[str]:
        """Every region label to report, home first, without duplicates."""
        return [self.home, *[label for label in self.compare if label != self.home]]

    def home_region(self) -> Region:
        """The home region, parsed."""
        return parse_region(self.home)


class Scenario(_Strict):
    """One scenario file."""

    name: Name
    description: str = ""
    dataset: DatasetSpec
    hardware: list[HardwareSpec] = Field(min_length=1)
    regions: RegionsSpec
    training: TrainingSpec = Field(default_factory=TrainingSpec)
    variants: dict[Name, TrainingOverrides] = Field(default_factory=dict, max_length=50)
    """Named training variants, each run beside the baseline (the scenario's ``training``),
    e.g. ``{early-stop: {early_stopping: {patience: 2}}}``; ``baseline`` is reserved."""
    strategies: StrategiesSettings = Field(default_factory=StrategiesSettings)
    tracker: TrackerSpec = Field(default_factory=TrackerSpec)
    repeats: int = Field(default=1, ge=1, le=100)
    budget: BudgetSettings | None = None
    target_accuracy: Number | None = Field(default=None, gt=0, le=1)
    """Record the time and energy until validation accuracy first reaches this."""
    forecast_after_epoch: int = Field(default=1, ge=1, le=1000)
    """The worker forecasts the run's time, energy and CO2 after this many epochs."""
    timeout_s: Number = Field(default=3600.0, gt=0, le=7 * 24 * 3600)
    """Wall-clock limit of one run, seconds; the run is stopped and recorded as timed out."""

    @field_validator("variants")
    @classmethod
    def _variants_named(cls, variants: dict[str, TrainingOverrides]) -> dict[str, TrainingOverrides]:
        if "baseline" in variants:
            raise ValueError(f"'baseline' is the scenario's own training{_FIX}give the variant "
                             "another name (the baseline runs anyway)")
        return variants

    @model_validator(mode="after")
    def _variants_are_valid_trainings(self) -> Scenario:
        for name, overrides in self.variants.items():
            try:
                overrides.apply(self.training)
            except ValidationError as exc:
                message = exc.errors(include_url=False)[0]["msg"].removeprefix("Value error, ")
                raise ValueError(f"variant {name!r} makes an invalid training: {message}") \
                    from None
        return self

    def trainings(self) -> dict[str, TrainingSpec]:
        """Every variant's training, the baseline first."""
        return {"baseline": self.training,
                **{name: o.apply(self.training) for name, o in self.variants.items()}}

    @field_validator("hardware")
    @classmethod
    def _hardware_names_unique(cls, entries: list[HardwareSpec]) -> list[HardwareSpec]:
        names = [entry.name for entry in entries]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise ValueError(f"hardware names must be unique; listed twice: "
                             f"{', '.join(duplicates)}{_FIX}rename one of them")
        return entries


class LoadedScenario(BaseModel):
    """A validated scenario and the file it came from."""

    model_config = ConfigDict(frozen=True)

    scenario: Scenario
    path: Path


# --- loading ---------------------------------------------------------------------------

#: Bounds on what is read from a scenario file: a real one is a few hundred bytes.
MAX_FILE_BYTES = 256 * 1024
MAX_DEPTH = 16
MAX_NODES = 20_000
#: Problems printed at most; the rest are counted.
MAX_PROBLEMS = 20


class _ScenarioLoader(yaml.SafeLoader):
    """A safe loader that refuses duplicate keys (PyYAML silently keeps the last one) and
    keys that are not scalars (a mapping or a list as a key names nothing), and accepts
    merge keys (``<<: *defaults``) as ``yaml.safe_load`` does: an explicit key then wins
    over a merged one, as the YAML spec says."""


def _construct_mapping(loader: _ScenarioLoader, node: yaml.MappingNode) -> dict:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        if key_node.tag == "tag:yaml.org,2002:merge":
            continue
        if not isinstance(key_node, yaml.ScalarNode):
            raise yaml.constructor.ConstructorError(
                None, None, "a key must be a plain name, not a mapping or a list (a YAML "
                "'complex key')", key_node.start_mark)
        key = loader.construct_object(key_node)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"key {key!r} appears twice in one mapping", key_node.start_mark)
        seen.add(key)
    loader.flatten_mapping(node)  # merge keys: explicit keys stay, merged ones fill in
    return loader.construct_mapping(node)


_ScenarioLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def _check_shape(root: yaml.Node, path: Path) -> None:
    """Refuse a document nested deeper than MAX_DEPTH or holding more than MAX_NODES
    nodes once aliases are expanded (a "billion laughs" file): before anything of it is
    constructed."""
    count = 0
    stack: list[tuple[yaml.Node, int]] = [(root, 1)]
    while stack:
        node, depth = stack.pop()
        count += 1
        if depth > MAX_DEPTH:
            raise UserError(f"nested more than {MAX_DEPTH} levels deep", source=path,
                            fix=f"a scenario is a few levels deep; {_EXAMPLE}")
        if count > MAX_NODES:
            raise UserError(f"more than {MAX_NODES} values (aliases expanded)", source=path,
                            fix=f"a scenario holds a few dozen values; {_EXAMPLE}")
        if isinstance(node, yaml.MappingNode):
            stack.extend((child, depth + 1) for pair in node.value for child in pair)
        elif isinstance(node, yaml.SequenceNode):
            stack.extend((child, depth + 1) for child in node.value)


def _read_scenario(path: Path) -> str:
    """The text of a scenario file: a regular file, not too large, UTF-8."""
    fix = "check the path; scenario files live in scenarios/"
    try:
        info = path.stat()
    except FileNotFoundError:
        raise UserError("no such file", source=path, fix=fix) from None
    except OSError as exc:  # a symlink loop, a name too long, no permission on the way
        raise UserError(f"cannot be opened ({exc.strerror or exc})", source=path,
                        fix=fix) from None
    if not stat.S_ISREG(info.st_mode):
        kind = "a directory" if stat.S_ISDIR(info.st_mode) else "not a regular file (a device, " \
            "a pipe or a socket)"
        raise UserError(f"is {kind}", source=path, fix="pass a YAML file")
    if info.st_size > MAX_FILE_BYTES:
        raise UserError(f"is {info.st_size} bytes; a scenario file may have {MAX_FILE_BYTES}",
                        source=path, fix=f"a scenario is a few hundred bytes; {_EXAMPLE}")
    try:
        with path.open("rb") as fh:
            data = fh.read(MAX_FILE_BYTES + 1)
        return data.decode("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"cannot be read ({exc.__class__.__name__})", source=path,
                        fix="pass a readable UTF-8 YAML file") from None


def load_scenario(path: Path) -> LoadedScenario:
    """Read and validate one scenario file.

    Raises:
        UserError: the file is missing, not a regular file, too large, empty, not YAML, of
            an unsafe shape, or does not match the schema.
    """
    text = _read_scenario(path)
    try:
        loader = _ScenarioLoader(text)
        try:
            root = loader.get_single_node()
            if root is not None:
                _check_shape(root, path)
            document = loader.construct_document(root) if root is not None else None
        finally:
            loader.dispose()
    except yaml.YAMLError as exc:
        duplicate = "appears twice" in str(exc)
        raise UserError(_describe_yaml_error(exc), source=path,
                        fix="keep one of the two keys" if duplicate
                        else "correct the YAML at that line") from None
    except RecursionError:
        raise UserError(f"nested more than {MAX_DEPTH} levels deep", source=path,
                        fix=_EXAMPLE) from None
    if document is None:
        raise UserError("the file is empty", source=path,
                        fix=f"declare name, dataset, hardware and regions; {_EXAMPLE}")
    if not isinstance(document, dict):
        raise UserError(f"expected a mapping of keys at the top, found a {type(document).__name__}",
                        source=path, fix=_EXAMPLE)
    try:
        scenario = Scenario.model_validate(document)
    except ValidationError as exc:
        raise _schema_error(exc, path) from None
    return LoadedScenario(scenario=scenario, path=path)


def load_scenarios(paths: list[Path]) -> list[LoadedScenario]:
    """Load several files; scenario names must be unique across them."""
    if not paths:
        raise UserError("no scenario file given", fix="pass one or more files, e.g. scenarios/demo.yaml")
    loaded = [load_scenario(path) for path in paths]
    seen: dict[str, Path] = {}
    for item in loaded:
        name = item.scenario.name
        if name in seen:
            raise UserError(
                f"scenario name {name!r} is already used by {seen[name]}",
                source=item.path, key="name", fix="give each scenario a unique name",
            )
        seen[name] = item.path
    return loaded


def _describe_yaml_error(exc: yaml.YAMLError) -> str:
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or str(exc)
    if mark is not None:
        return f"YAML syntax error at line {mark.line + 1}, column {mark.column + 1}: {problem}"
    return f"YAML syntax error: {problem}"


def _key_path(loc: tuple[Any, ...]) -> str:
    """Render pydantic's error location as ``hardware[0].cpus``."""
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        elif part in ("function-after", "function-before", "function-plain") or "[" in str(part):
            continue  # pydantic's internal validator steps, not user keys
        else:
            text += f".{part}" if text else str(part)
    return text or "(top level)"


def _allowed_keys(loc: tuple[Any, ...]) -> list[str]:
    """The keys allowed in the mapping that holds ``loc``'s last element."""
    model: type[BaseModel] = Scenario
    for part in loc[:-1]:
        if isinstance(part, int):
            continue
        field = model.model_fields.get(str(part))
        if field is None:
            return []
        annotation = field.annotation
        for candidate in (annotation, *getattr(annotation, "__args__", ())):
            if isinstance(candidate, type) and issubclass(candidate, BaseModel):
                model = candidate
                break
            inner = getattr(candidate, "__args__", ())
            if inner and isinstance(inner[0], type) and issubclass(inner[0], BaseModel):
                model = inner[0]
                break
        else:
            return []
    return list(model.model_fields)


def _fix_for(error: dict[str, Any], key: str) -> str:
    kind = error["type"]
    ctx = error.get("ctx") or {}
    if kind == "extra_forbidden":
        allowed = _allowed_keys(error["loc"])
        unknown = str(error["loc"][-1])
        close = difflib.get_close_matches(unknown, allowed, n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        return f"{hint}remove it; the keys allowed here are: {', '.join(allowed)}"
    if kind == "missing":
        return f"add {key}; {_EXAMPLE}"
    if kind in ("greater_than", "greater_than_equal", "less_than", "less_than_equal"):
        bound = {"greater_than": "above", "greater_than_equal": "at least",
                 "less_than": "below", "less_than_equal": "at most"}[kind]
        return f"set {key} to a value {bound} {next(iter(ctx.values()))}"
    if kind == "string_pattern_mismatch":
        return f"use lower-case letters, digits and single hyphens for {key}, e.g. cpu-2"
    if kind == "literal_error":
        return f"set {key} to one of {ctx.get('expected')}"
    if kind.endswith("_type") or kind.endswith("_parsing"):
        return f"give {key} a value of the expected type; {_EXAMPLE}"
    if kind == "value_error" and key.startswith("regions"):
        return "run `python -m harness regions` to list the names CodeCarbon has data for"
    if kind == "too_short":
        return f"list at least one entry under {key}"
    return f"correct {key}; {_EXAMPLE}"


def _schema_error(exc: ValidationError, path: Path) -> UserError:
    """One UserError that lists every schema problem with its key and fix."""
    problems = []
    for error in exc.errors(include_url=False):
        key = _key_path(error["loc"])
        message, _, own_fix = error["msg"].removeprefix("Value error, ").partition(_FIX)
        scalar = isinstance(error.get("input"), (str, int, float, bool))
        if error["type"] not in ("missing", "extra_forbidden") and scalar:
            shown = repr(error["input"])
            message += f" (got {shown[:60]})"
        if error["type"] == "extra_forbidden":
            message = "unknown key"
        fix = own_fix or _fix_for(error, key)
        problems.append((key, message, fix))
    errors = [
        UserError(message, source=path, key=key, fix=fix or None)
        for key, message, fix in problems[:MAX_PROBLEMS]
    ]
    if len(problems) > MAX_PROBLEMS:
        errors.append(UserError(f"... and {len(problems) - MAX_PROBLEMS} more problem(s) not "
                                "shown", source=path, fix="correct the ones above first"))
    first = errors[0]
    return UserError(first.message, source=path, key=first.key, fix=first.fix, also=errors[1:])
