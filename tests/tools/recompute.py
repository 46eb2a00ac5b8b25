"""Recompute a report's figures from the raw result files, without the harness's code.

Reads each run's metrics.json and emissions.csv with json/csv only, CodeCarbon's own data
file for country carbon intensities, and scipy for the intervals; then compares with the
report's summary.json (written by `harness report`) and prints every figure side by side
with the relative difference. A disagreement beyond 1e-9 exits 1.

    .venv/bin/python tests/tools/recompute.py results/SESSION [results/SESSION/report/summary.json]

Checked: per group (scenario, variant, hardware) the training-scope time, the attributed
training energy (CPU x cpu_share + GPU + RAM x ram_share), its CO2 in the home region and
in every declared country region, the test accuracy, each mean with its Student's t 95%
half-width; every ratio against the baseline hardware and every strategy ratio against the
baseline variant (geometric means; paired t on the per-seed log ratios when the runs pair
up by seed, else Welch's interval on the logs); the emissions.csv
total row against the sum of its components and metrics.json's run scope.
"""

from __future__ import annotations

import csv
import json
import math
import statistics
import sys
from pathlib import Path

from scipy import stats

TOLERANCE = 1e-9


def intensity_table() -> dict[str, float]:
    """g CO2/kWh per ISO3 country, straight from CodeCarbon's global_energy_mix.json."""
    import codecarbon

    path = Path(codecarbon.__file__).parent / "data/private_infra/global_energy_mix.json"
    data = json.loads(path.read_text())
    return {iso: float(row["carbon_intensity"]) for iso, row in data.items()
            if isinstance(row, dict) and "carbon_intensity" in row}


def mean_ci(values: list[float]) -> tuple[float, float | None]:
    mean = statistics.fmean(values)
    if len(values) < 2:
        return mean, None
    return mean, stats.t.ppf(0.975, len(values) - 1) * statistics.stdev(values) / math.sqrt(
        len(values))


def log_ratio(a: list[dict], b: list[dict], figure: str
              ) -> tuple[float, float | None, float | None]:
    """Ratio of geometric means with its 95% interval: paired t on the per-seed log ratios
    when the runs pair up one to one by seed, else Welch's t on the logs."""
    mine = {run["seed"]: run[figure] for run in a}
    theirs = {run["seed"]: run[figure] for run in b}
    paired = (len(mine) == len(a) and len(theirs) == len(b) and set(mine) == set(theirs)
              and len(mine) >= 2)
    if paired:
        seeds = sorted(mine)
        la, lb = [math.log(mine[s]) for s in seeds], [math.log(theirs[s]) for s in seeds]
    else:
        la, lb = [math.log(r[figure]) for r in a], [math.log(r[figure]) for r in b]
    estimate = math.exp(statistics.fmean(la) - statistics.fmean(lb))
    if len(la) < 2 or len(lb) < 2:
        return estimate, None, None
    test = stats.ttest_rel(la, lb) if paired else stats.ttest_ind(la, lb, equal_var=False)
    low, high = test.confidence_interval(0.95)
    return estimate, math.exp(low), math.exp(high)


def load_runs(session: Path) -> list[dict]:
    runs = []
    for run_dir in sorted(p for p in session.iterdir() if (p / "metrics.json").exists()):
        metrics = json.loads((run_dir / "metrics.json").read_text())
        outcome = json.loads((run_dir / "outcome.json").read_text())
        spec = json.loads((run_dir / "run.json").read_text())["spec"]
        if outcome["status"] != "ok":
            continue
        with (run_dir / "emissions.csv").open() as fh:
            row = list(csv.DictReader(fh))[-1]
        parts = float(row["cpu_energy"]) + float(row["gpu_energy"]) + float(row["ram_energy"])
        assert math.isclose(float(row["energy_consumed"]), parts, rel_tol=1e-6), run_dir
        assert float(row["energy_consumed"]) == metrics["scopes"]["run"]["energy"]["energy_kwh"]
        energy = metrics["scopes"]["training"]["energy"]
        share = metrics["attribution"]
        runs.append({
            "key": (spec["scenario"], spec["variant"], spec["hardware"]["name"]),
            "seed": spec["seed"],
            "home": spec["home_region"], "regions": spec["regions"],
            "time_s": metrics["scopes"]["training"]["duration_s"],
            "energy_kwh": energy["cpu_kwh"] * share["cpu_share"] + energy["gpu_kwh"]
            + energy["ram_kwh"] * share["ram_share"],
            "accuracy_pct": 100 * metrics["test_accuracy"],
        })
    return runs


def main(argv: list[str]) -> int:
    session = Path(argv[0])
    summary_path = Path(argv[1]) if len(argv) > 1 else session / "report" / "summary.json"
    summary = json.loads(summary_path.read_text())
    assert summary["scope"] == "training" and summary["attribution"] == "attributed"
    table = intensity_table()
    runs = load_runs(session)
    groups: dict[tuple, list[dict]] = {}
    for run in runs:
        groups.setdefault(run["key"], []).append(run)
    worst = 0.0
    checked = 0

    def compare(name: str, mine: float | None, theirs: float | None) -> None:
        nonlocal worst, checked
        if mine is None or theirs is None:
            assert mine is None and theirs is None, (name, mine, theirs)
            return
        rel = abs(mine - theirs) / max(abs(theirs), 1e-300)
        worst = max(worst, rel)
        checked += 1
        print(f"{name:70s} {mine:.9g} {theirs:.9g} rel {rel:.1e}")

    by_key = {(g["scenario"], g["variant"], g["hardware"]): g for g in summary["groups"]}
    for key, members in groups.items():
        group = by_key[key]
        for figure in ("time_s", "energy_kwh", "accuracy_pct"):
            mean, half = mean_ci([m[figure] for m in members])
            compare(f"{'/'.join(key)} {figure} mean", mean, group["figures"][figure]["mean"])
            compare(f"{'/'.join(key)} {figure} ci95", half, group["figures"][figure]["ci95"])
        for label in members[0]["regions"]:
            if "/" in label or label.startswith("cloud:"):
                continue  # countries only: their intensity is one number in the file
            co2 = [m["energy_kwh"] * table[label] / 1000 for m in members]
            mean, _ = mean_ci(co2)
            compare(f"{'/'.join(key)} co2 {label}", mean,
                    group["co2_kg_by_region"][label]["mean"])
    for c in summary["comparisons"]:
        key = (c["scenario"], c["variant"], c["hardware"])
        base_key = next((k for k in groups if k[0] == c["scenario"] and k[1] == c["variant"]
                         and c["baseline"].endswith(k[2])), None)
        if base_key is None:
            continue
        mine = log_ratio(groups[key], groups[base_key], "energy_kwh")
        for i, part in enumerate(("estimate", "low", "high")):
            compare(f"{'/'.join(key)} energy ratio {part}", mine[i], c["energy_ratio"][part])
    strategies = summary.get("strategies") or {}
    for row in strategies.get("rows", []):
        key = (row["scenario"], row["strategy"], row["hardware"])
        base_key = (row["scenario"], "baseline", row["hardware"])
        for figure, name in (("energy_kwh", "energy_ratio"), ("time_s", "time_ratio")):
            mine = log_ratio(groups[key], groups[base_key], figure)
            for i, part in enumerate(("estimate", "low", "high")):
                compare(f"{'/'.join(key)} {name} {part}", mine[i], row[name][part])
    print(f"\n{checked} figures recomputed from the raw files; largest relative difference "
          f"{worst:.1e} (tolerance {TOLERANCE:g})")
    return 0 if worst <= TOLERANCE else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
