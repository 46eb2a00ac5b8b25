"""Planning: scenarios x hardware x repeats expanded into named runs, before anything runs.

Run ids are deterministic and file-name safe (``<scenario>__<hardware>__r<repeat>``),
so the same scenario files always give the same plan and the same directory names.
The :class:`RunSpec` is what the host writes into ``run.json`` and the worker reads.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from harness.errors import UserError
from harness.fileio import read_json, write_json
from harness.scenario import (
    DatasetSpec,
    HardwareSpec,
    LoadedScenario,
    TrackerSpec,
    TrainingSpec,
)

RUN_FORMAT = "harness.run"
# Version history of run.json:
#   1: first version (spec, session, created_at).
RUN_VERSION = 1


class RunSpec(BaseModel):
    """Everything the worker needs to run one training, and nothing host-specific."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    run_id: str
    scenario: str
    scenario_file: str
    description: str
    hardware: HardwareSpec
    repeat: int
    """1-based repeat index."""
    repeats: int
    home_region: str
    """Region label the tracker runs with (see harness.regions)."""
    regions: list[str]
    """Every region the report prices the energy in, home first."""
    dataset: DatasetSpec
    training: TrainingSpec
    tracker: TrackerSpec
    timeout_s: float

    @property
    def group(self) -> str:
        """Runs that differ only in their repeat index share a group key."""
        return f"{self.scenario}__{self.hardware.name}"


def run_id(scenario: str, hardware: str, repeat: int, repeats: int) -> str:
    """Deterministic, file-name-safe id; repeat numbers are zero-padded so ids sort."""
    width = max(2, len(str(repeats)))
    return f"{scenario}__{hardware}__r{repeat:0{width}d}"


def expand(loaded: list[LoadedScenario], dataset: DatasetSpec | None = None) -> list[RunSpec]:
    """Expand each scenario into one run per hardware entry and repeat, in file order.

    Repeats are interleaved across hardware entries (r1 of every entry, then r2...)
    so slow drift of the machine (thermal, background load) spreads over all of them.
    ``dataset`` replaces every scenario's dataset (``run --synthetic`` where CIFAR-10
    cannot be downloaded); the results say which data each run used.
    """
    runs: list[RunSpec] = []
    for item in loaded:
        scenario = item.scenario
        for repeat in range(1, scenario.repeats + 1):
            for hardware in scenario.hardware:
                runs.append(
                    RunSpec(
                        run_id=run_id(scenario.name, hardware.name, repeat, scenario.repeats),
                        scenario=scenario.name,
                        scenario_file=str(item.path),
                        description=scenario.description,
                        hardware=hardware,
                        repeat=repeat,
                        repeats=scenario.repeats,
                        home_region=scenario.regions.home,
                        regions=scenario.regions.all,
                        dataset=dataset or scenario.dataset,
                        training=scenario.training,
                        tracker=scenario.tracker,
                        timeout_s=scenario.timeout_s,
                    )
                )
    return runs


def describe(run: RunSpec) -> dict[str, Any]:
    """One row of the printed plan."""
    hw = run.hardware
    limits = []
    if hw.cpus is not None:
        limits.append(f"cpus={hw.cpus:g}")
    if hw.cpuset:
        limits.append(f"cpuset={hw.cpuset}")
    if hw.memory:
        limits.append(f"mem={hw.memory}")
    if hw.device == "gpu":
        limits.append(f"gpus={hw.gpu_ids if hw.gpu_ids is not None else hw.gpu_count}")
    train, test = run.dataset.sizes
    deviations = run.training.deviations()
    return {
        "run": run.run_id,
        "device": hw.device,
        "limits": " ".join(limits) or "-",
        "dataset": f"{run.dataset.kind} {train}/{test}",
        "epochs": run.training.epochs,
        "batch": run.training.batch_size,
        "deviations": ", ".join(f"{k}={v}" for k, v in deviations.items()) or "-",
        "home": run.home_region,
        "regions": len(run.regions),
    }


def write_run_file(run_dir: Path, run: RunSpec, session: str, created_at: str) -> None:
    """Write ``run.json``, the host's half of the host/worker contract."""
    write_json(
        run_dir / "run.json",
        RUN_FORMAT,
        RUN_VERSION,
        {"session": session, "created_at": created_at, "spec": run.model_dump(mode="json")},
    )


def read_run_file(run_dir: Path) -> tuple[RunSpec, dict[str, Any]]:
    """Read ``run.json``: the spec and the envelope (session, created_at)."""
    document = read_json(run_dir / "run.json", RUN_FORMAT, (RUN_VERSION,))
    try:
        spec = RunSpec.model_validate(document["spec"])
    except Exception as exc:
        raise UserError(f"the run spec does not match this harness ({exc})",
                        source=run_dir / "run.json", key="spec") from None
    return spec, document
