"""Planning: scenarios x hardware x repeats expanded into named runs, before anything runs.

Run ids are deterministic and file-name safe (``<scenario>__<hardware>__r<repeat>``),
so the same scenario files always give the same plan and the same directory names.
The :class:`~harness.schema.RunSpec` is what the host writes into ``run.json`` and the
worker reads.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from harness.fileio import read_model, write_model
from harness.identity import code_identity
from harness.scenario import DatasetSpec, LoadedScenario, Scenario, TrainingSpec
from harness.schema import UPGRADE_HINT, BudgetSpec, RunFile, RunSpec


def run_id(scenario: str, hardware: str, repeat: int, repeats: int,
           variant: str | None = None) -> str:
    """Deterministic, file-name-safe id; repeat numbers are zero-padded so ids sort.

    ``<scenario>__<hardware>__r01``, or ``<scenario>__<variant>__<hardware>__r01`` in a
    scenario that declares variants (its baseline too).
    """
    width = max(2, len(str(repeats)))
    middle = f"{variant}__" if variant else ""
    return f"{scenario}__{middle}{hardware}__r{repeat:0{width}d}"


def _budget(scenario: Scenario, which: str) -> BudgetSpec | None:
    """The scenario's ``run`` or ``session`` budget as the run spec carries it."""
    budget = scenario.budget
    limit = getattr(budget, which) if budget is not None else None
    if budget is None or limit is None:
        return None
    return BudgetSpec(limit=limit.limit, unit=limit.unit, on_exceed=budget.on_exceed,
                      source="run" if which == "run" else "session")


def expand(loaded: list[LoadedScenario], dataset: DatasetSpec | None = None) -> list[RunSpec]:
    """Expand each scenario into one run per hardware entry and repeat, in file order.

    Repeats are interleaved across variants and hardware entries (r1 of every variant on
    every entry, then r2...) so slow drift of the machine (thermal, background load)
    spreads over all of them.
    ``dataset`` replaces every scenario's dataset (``run --synthetic`` where CIFAR-10
    cannot be downloaded); the results say which data each run used.
    """
    runs: list[RunSpec] = []
    for item in loaded:
        scenario = item.scenario
        trainings = scenario.trainings()
        for repeat in range(1, scenario.repeats + 1):
            for variant, training in trainings.items():
                runs.extend(_runs_of(item, scenario, variant, training, repeat, dataset))
    return runs


def _regions_for(scenario: Scenario, home: str | None) -> list[str]:
    """The regions a run is priced in, its home first: a hardware entry's own
    ``home_region`` (a cluster in another region) replaces the scenario's home."""
    if home is None:
        return scenario.regions.all
    return [home, *[label for label in scenario.regions.all if label != home]]


def _runs_of(item: LoadedScenario, scenario: Scenario, variant: str, training: TrainingSpec,
             repeat: int, dataset: DatasetSpec | None) -> list[RunSpec]:
    """One repeat of one variant on every hardware entry."""
    named = variant if scenario.variants else None
    return [
        RunSpec(
            run_id=run_id(scenario.name, hardware.name, repeat, scenario.repeats, named),
            scenario=scenario.name,
            variant=variant,
            scenario_file=str(item.path),
            description=scenario.description,
            hardware=hardware,
            repeat=repeat,
            repeats=scenario.repeats,
            home_region=hardware.home_region or scenario.regions.home,
            regions=_regions_for(scenario, hardware.home_region),
            dataset=dataset or scenario.dataset,
            training=training,
            tracker=scenario.tracker,
            timeout_s=scenario.timeout_s,
            seed=training.seed_for(repeat),
            budget=_budget(scenario, "run"),
            session_budget=_budget(scenario, "session"),
            forecast_after_epoch=scenario.forecast_after_epoch,
            target_accuracy=scenario.target_accuracy,
            accuracy_tolerance_pp=scenario.strategies.accuracy_tolerance_pp,
        )
        for hardware in scenario.hardware
    ]


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
    if hw.slurm is not None:
        limits.append(hw.slurm.describe())
    deviations = run.training.deviations()
    budget = f"{run.budget.limit:g} {run.budget.unit}" if run.budget else "-"
    return {
        "run": run.run_id,
        "variant": run.variant,
        "device": hw.device,
        "limits": " ".join(limits) or "-",
        "dataset": run.dataset.describe(),
        "epochs": run.training.epochs,
        "batch": run.training.batch_size,
        "seed": run.seed,
        "deviations": ", ".join(f"{k}={v}" for k, v in deviations.items()) or "-",
        "budget": budget,
        "home": run.home_region,
        "regions": len(run.regions),
    }


def write_run_file(run_dir: Path, run: RunSpec, *, session: str, session_id: str,
                   created_at: str, backend: str) -> None:
    """Write ``run.json``, the host's half of the host/worker contract."""
    write_model(run_dir / "run.json", RunFile(session=session, session_id=session_id,
                                              created_at=created_at, backend=backend,
                                              code=code_identity(), spec=run))


def read_run_file(run_dir: Path) -> RunFile:
    """Read and check ``run.json``.

    Raises:
        FileProblem: missing, damaged, of another format or version.
    """
    return read_model(run_dir / "run.json", RunFile, upgrade_hint=UPGRADE_HINT)
