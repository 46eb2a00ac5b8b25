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
from harness.scenario import DatasetSpec, LoadedScenario, Scenario
from harness.schema import UPGRADE_HINT, BudgetSpec, RunFile, RunSpec


def run_id(scenario: str, hardware: str, repeat: int, repeats: int) -> str:
    """Deterministic, file-name-safe id; repeat numbers are zero-padded so ids sort."""
    width = max(2, len(str(repeats)))
    return f"{scenario}__{hardware}__r{repeat:0{width}d}"


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
                        seed=scenario.training.seed_for(repeat),
                        budget=_budget(scenario, "run"),
                        session_budget=_budget(scenario, "session"),
                        forecast_after_epoch=scenario.forecast_after_epoch,
                        target_accuracy=scenario.target_accuracy,
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
    budget = f"{run.budget.limit:g} {run.budget.unit}" if run.budget else "-"
    return {
        "run": run.run_id,
        "device": hw.device,
        "limits": " ".join(limits) or "-",
        "dataset": f"{run.dataset.kind} {train}/{test}",
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
