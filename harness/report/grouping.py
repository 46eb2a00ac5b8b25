"""Which runs may be averaged together, and which may be compared.

Runs that differ only in their repeat index (and so their seed) form a *group*, matched
by scenario, variant and hardware names across sessions and machines. Before a group's
runs are averaged, every setting that could change the figures must agree: the workload
(training settings, the data actually loaded, PUE), the device, the home region, the
code that produced them and the versions of the frameworks. A group that mixes them is
refused, naming the field and the runs; nothing of it is averaged.

A *workload* is what a baseline comparison must share: the same training and the same
data on two pieces of hardware.
"""

from __future__ import annotations

import json

from harness.results import LoadedRun

#: Settings whose keys start with these make a workload: a hardware is compared only with
#: a baseline that shares every one of them.
WORKLOAD_FIELDS = ("training.", "dataset.", "tracker.pue")


def settings(run: LoadedRun) -> dict[str, str]:
    """The settings that must agree between runs averaged together, as display text."""
    spec, metrics = run.spec, run.metrics
    assert spec is not None and metrics is not None
    result = {f"training.{k}": repr(v)
              for k, v in spec.training.model_dump(mode="json").items()}
    data = metrics.dataset
    result.update({
        "dataset.label": data.label if data else "?",
        "dataset.verified": str(data.verified) if data else "?",
        "dataset.sizes": f"{data.train_size}/{data.test_size}" if data else "?",
        "dataset.arrays_sha256": data.arrays_sha256[:12] if data else "?",
        "tracker.pue": repr(spec.tracker.pue),
        "device": spec.hardware.device,
        "home region": spec.home_region,
        "code.source_sha256": metrics.code.source_sha256[:12],
    })
    versions = metrics.environment.versions if metrics.environment else {}
    for package in ("tensorflow", "keras", "codecarbon"):
        result[f"versions.{package}"] = str(versions.get(package))
    return result


def workload(run: LoadedRun) -> str:
    """Canonical text of a run's workload settings; a baseline must share it."""
    return json.dumps({k: v for k, v in settings(run).items() if k.startswith(WORKLOAD_FIELDS)},
                      sort_keys=True)


def incomparable(runs: list[LoadedRun]) -> dict[str, str]:
    """Setting -> which runs have which value, for each setting that differs in ``runs``."""
    per_run = [(run.name, settings(run)) for run in runs]
    problems = {}
    for key in per_run[0][1]:
        values: dict[str, list[str]] = {}
        for name, items in per_run:
            values.setdefault(items.get(key, "?"), []).append(name)
        if len(values) > 1:
            problems[key] = "; ".join(f"{value} in {', '.join(names)}"
                                      for value, names in values.items())
    return problems
