"""Reports: tables rendered from result directories alone (no Docker, no TensorFlow).

A pure function of the files: the same directories always give the same tables.
"""

from __future__ import annotations

from typing import Any

from tabulate import tabulate

from harness.results import RunResult


def _power_method(metrics: dict[str, Any], component: str) -> str:
    for entry in metrics.get("power", []):
        if entry.get("component") == component:
            kind = "measured" if entry.get("measured") else "estimated"
            return f"{kind} ({entry.get('method')})"
    return "unknown"


def run_rows(results: list[RunResult]) -> list[dict[str, Any]]:
    """One row per run with the headline figures; failed runs show their status only."""
    rows = []
    for result in results:
        spec, metrics = result.spec, result.metrics or {}
        dataset_info = metrics.get("dataset", {})
        usable = result.usable
        rows.append({
            "run": result.run_id,
            "status": result.status,
            "scenario": spec.scenario if spec else "?",
            "hardware": spec.hardware.name if spec else "?",
            "home region": spec.home_region if spec else "?",
            "dataset": dataset_info.get("kind", spec.dataset.kind if spec else "?"),
            "epochs": metrics.get("training", {}).get("epochs_run") if usable else None,
            "training time (s)": metrics.get("training_s") if usable else None,
            "test accuracy": metrics.get("test_accuracy") if usable else None,
            "energy (kWh)": float(result.emissions["energy_consumed"]) if usable else None,
            "CO2 (kg)": float(result.emissions["emissions"]) if usable else None,
            "images/s": metrics.get("images_per_s") if usable else None,
            "CPU power": _power_method(metrics, "cpu") if metrics else "-",
        })
    return rows


def runs_table(results: list[RunResult], tablefmt: str = "simple") -> str:
    """The per-run table, ready to print."""
    rows = run_rows(results)
    if not rows:
        return "(no runs)"
    return tabulate(rows, headers="keys", tablefmt=tablefmt, floatfmt=".4g", missingval="-")
