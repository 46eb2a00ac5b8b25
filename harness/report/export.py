"""Report files: report.md, summary.csv, summary.json and the plots, written atomically.

summary.json is versioned (format ``harness.report``); summary.csv has one row per group
with every figure's mean, interval and CV, and one row per run left out, so that a
damaged or failed run is in every export, never silently missing.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from harness.fileio import ensure_writable_dir, write_atomic
from harness.report.model import COMPONENTS, FIGURES, PHASES, Report
from harness.report.render import render_markdown
from harness.results import LoadedSession
from harness.schema import SCHEMA_VERSION, Summary
from harness.stats import Stat

REPORT_FORMAT = "harness.report"


def _stat_columns(prefix: str, stat: Stat | None) -> dict[str, Any]:
    if stat is None:
        return {f"{prefix}_mean": "", f"{prefix}_ci95": "", f"{prefix}_cv": ""}
    return {f"{prefix}_mean": repr(stat.mean),
            f"{prefix}_ci95": "" if stat.ci95 is None else repr(stat.ci95),
            f"{prefix}_cv": "" if stat.cv is None else repr(stat.cv)}


def summary_csv(report: Report) -> str:
    """One row per group (every figure: mean, 95% CI half-width, CV), then one row per
    run left out (status and reason), so no run is missing from the export."""
    rows = []
    for group in report.groups:
        row: dict[str, Any] = {
            "kind": "group", "scenario": group.scenario, "variant": group.variant,
            "hardware": group.hardware, "device": group.device, "scope": report.scope,
            "attribution": report.basis.attribution, "net": report.basis.net,
            "n": len(group.usable), "runs": len(group.runs), "refused": group.refused or "",
            "dataset": group.dataset, "verified": group.verified, "backend": group.backend,
            "home_region": group.home_region or "",
            **{f"{c}_power": group.power.get(c, "") for c in COMPONENTS},
            "estimated": " ".join(sorted(group.estimated)),
            "cpu_power_fallback": group.fallback,
        }
        for key in FIGURES:
            row.update(_stat_columns(key, group.figures.get(key)))
        for info in report.regions:
            row.update(_stat_columns(f"co2_kg[{info.label}]", group.co2_by_region.get(info.label)))
        for name in PHASES:
            phase = group.phases.get(name, {})
            row.update(_stat_columns(f"phase_{name}_s", phase.get("time_s")))
            row.update(_stat_columns(f"phase_{name}_kwh", phase.get("energy_kwh")))
        rows.append(row)
    for item in report.left_out:
        rows.append({"kind": "left_out", "session": item.session, "run": item.run,
                     "status": item.status, "reason": item.reason})
    buffer = io.StringIO()
    fieldnames = list(dict.fromkeys(k for row in rows for k in row)) or ["kind"]
    writer = csv.DictWriter(buffer, fieldnames=fieldnames, lineterminator="\n", restval="")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def _stats(stats: dict[Any, Stat | None]) -> dict[str, Any]:
    return {str(k): (s.as_dict() if s else None) for k, s in stats.items()}


def summary_json(report: Report) -> str:
    """summary.json: every figure of every group with its interval, every comparison with
    its interval and verdict, every run with its status."""
    groups = []
    for group in report.groups:
        groups.append({
            "scenario": group.scenario, "variant": group.variant, "hardware": group.hardware,
            "device": group.device, "refused": group.refused, "dataset": group.dataset,
            "verified": group.verified, "synthetic": group.synthetic, "backend": group.backend,
            "home_region": group.home_region, "power": group.power,
            "estimated": group.estimated, "cpu_power_fallback": group.fallback,
            "seeds": list(group.seeds),
            "runs": [{"session": r.session, "run": r.run_id, "status": r.status.value,
                      "usable": any(r is u for u in group.usable), "reason": r.reason}
                     for r in group.runs],
            "figures": _stats(group.figures),
            "co2_kg_by_region": _stats(group.co2_by_region),
            "phases": {name: _stats(p) for name, p in group.phases.items()},
            "curves": {str(e): _stats(c) for e, c in group.curves.items()},
        })
    document = {
        "format": REPORT_FORMAT, "version": SCHEMA_VERSION, "scope": report.scope,
        "attribution": report.basis.attribution, "net": report.basis.net,
        "units": {"time_s": "s", "accuracy_pct": "%", "energy_kwh": "kWh",
                  "co2_kg": "kg CO2eq (home region)", "images_per_s": "1/s",
                  "wh_per_accuracy_point": "Wh per test-accuracy percentage point",
                  "ci95": "half-width of the 95% confidence interval (Student's t)",
                  "ratios": "ratio of geometric means; [low, high] 95% interval from "
                            "Welch's t on log values"},
        "sessions": [vars(s) | {"concurrent": list(s.concurrent)} for s in report.sessions],
        "regions": [{"label": i.label, "g_per_kwh": i.intensity.g_per_kwh,
                     "source": i.intensity.source, "year": i.intensity.year,
                     "method": i.intensity.method} for i in report.regions],
        "groups": groups,
        "comparisons": [{"scenario": c.group.scenario, "variant": c.group.variant,
                         "hardware": c.group.hardware, "baseline": c.baseline.name,
                         "speedup": c.speedup.as_dict() if c.speedup else None,
                         "energy_ratio": c.energy_ratio.as_dict() if c.energy_ratio else None,
                         "co2_ratio": c.co2_ratio.as_dict() if c.co2_ratio else None,
                         "accuracy_diff_pp": (c.accuracy_diff_pp.as_dict()
                                              if c.accuracy_diff_pp else None),
                         "estimated": c.estimated}
                        for c in report.comparisons],
        "pareto": {"front": list(report.pareto), "resolved": report.pareto_resolved},
        "strategies": _strategies_json(report),
        "left_out": [vars(r) for r in report.left_out],
        "warnings": list(report.warnings),
    }
    # Through its schema model: what is written is what a reader of summary.json checks.
    return Summary.model_validate(document, strict=False).model_dump_json(indent=2) + "\n"


def _strategies_json(report: Report) -> dict[str, Any] | None:
    from harness.report.strategies import strategies

    found = strategies(report)
    if found is None:
        return None

    def comparison(value: Any) -> Any:
        return value.as_dict() if value is not None else None

    return {
        "tolerance_pp": found.tolerance_pp, "greenest": found.greenest,
        "front": list(found.front), "front_resolved": found.front_resolved,
        "rows": [{"scenario": r.group.scenario, "hardware": r.group.hardware,
                  "strategy": r.name, "accuracy_diff_pp": comparison(r.accuracy_pp),
                  "time_ratio": comparison(r.time), "energy_ratio": comparison(r.energy),
                  "co2_ratio": comparison(r.co2),
                  "epochs_run": r.epochs_run.as_dict() if r.epochs_run else None,
                  "energy_to_target_kwh": r.target_kwh.as_dict() if r.target_kwh else None,
                  "target_reached": list(r.target_reached), "pruning": r.pruning}
                 for r in found.rows],
        "regions": [{"scenario": g.scenario, "hardware": g.hardware, "home": g.home,
                     "cleanest": g.cleanest, "co2_ratio": g.ratio,
                     "saving_kg": g.saving_kg.as_dict() if g.saving_kg else None}
                    for g in found.regions],
    }


def default_out_dir(sessions: list[LoadedSession],
                    now: Callable[[], datetime] = datetime.now) -> Path:
    """``<session>/report`` for one session; ``<parent>/report-<timestamp>`` for several,
    next to the first session, so a merged report never lands inside one machine's session.
    """
    if len(sessions) == 1:
        return sessions[0].path / "report"
    return sessions[0].path.parent / f"report-{now().strftime('%Y%m%d-%H%M%S')}"


def check_out_dir(out_dir: Path) -> None:
    """The report directory is (or can be made) a writable directory, before any work.

    Raises:
        UserError: it is a file, or cannot be created or written.
    """
    ensure_writable_dir(out_dir, "--out")


def write_report(report: Report, out_dir: Path) -> list[Path]:
    """Write report.md, summary.csv, summary.json and the PNG plots into ``out_dir``.

    Each file is written atomically; returns the paths written.
    """
    from harness.report import plots  # matplotlib is slow to import: only when files are written

    check_out_dir(out_dir)
    made = plots.make_plots(report, out_dir)
    files = {
        "summary.csv": summary_csv(report),
        "summary.json": summary_json(report),
        "report.md": render_markdown(report, [(p.name, title) for p, title in made]),
    }
    written = []
    for name, text in files.items():
        write_atomic(out_dir / name, text)
        written.append(out_dir / name)
    return written + [p for p, _ in made]
