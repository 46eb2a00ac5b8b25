"""The report as text: terminal tables and report.md (GitHub Markdown), from one outline."""

from __future__ import annotations

from dataclasses import dataclass

from tabulate import tabulate

from harness.report import tables
from harness.report.model import Report
from harness.report.strategies import strategies
from harness.report.tables import ESTIMATE_MARK, Table
from harness.results import LoadedRun


@dataclass(frozen=True)
class Section:
    """One part of the report: a title, a table (or a sentence saying why there is none)."""

    title: str
    table: Table | None
    empty: str
    notes: list[str]


def _render(table: Table, fmt: str) -> str:
    headers, rows = table
    return tabulate(rows, headers=headers, tablefmt=fmt, disable_numparse=True)


def _non_empty(table: Table | None) -> bool:
    return table is not None and bool(table[1])


def sections(report: Report) -> list[Section]:
    """The report's sections, in order; shared by the terminal and Markdown renderings."""
    none = "no usable run: every run failed, was partial, damaged or not comparable (see runs left out)"
    sources = tables.data_sources(report)
    baseline = report.baseline or "the first CPU hardware of each workload"
    estimated_any = any(g.estimated for g in report.with_figures)
    energy_word = "estimated" if estimated_any else "measured"
    result = [
        Section("Summary per scenario and hardware", tables.summary_table(report),
                "no run to report", tables.footnotes(report)),
        Section(f"CO2 by region (kg CO2eq of the {energy_word} energy: {report.basis.text})",
                tables.regions_table(report), none,
                ([] if report.with_figures else [none])
                + [f"[{i}] {source}" for i, source in enumerate(sources, start=1)]
                + ["Every region is priced with CodeCarbon's own data and functions from the "
                   "energy measured once; the home region reproduces the tracker's figure."]),
        Section(f"Against the baseline ({baseline})", tables.comparison_table(report),
                "no comparison: fewer than two hardware entries with usable runs share a "
                "workload" + (f" with {report.baseline}" if report.baseline else ""),
                tables.comparison_notes(report)),
        Section("Scopes (time in s, energy in kWh)", tables.scopes_table(report), none,
                [f"{name}: {text}" for name, text in tables.SCOPE_TEXT.items()]),
        Section("Machine and attributed energy, gross and net", tables.attribution_table(report),
                none, tables.attribution_notes(report)),
        Section("Phases (time in s, energy in kWh, tracker)", tables.phases_table(report), none,
                []),
    ]
    forecast = tables.forecast_table(report)
    if _non_empty(forecast):
        result.append(Section("Forecast after the first epochs against the actual run", forecast,
                              "", ["The worker's forecast (set-up + mean epoch x planned epochs "
                                   "+ one validation pass) against the run scope it then spent."]))
    target = tables.target_table(report)
    if _non_empty(target):
        result.append(Section("Time and energy to the target accuracy", target, "",
                              ["To the end of the first epoch whose validation accuracy reached "
                               "the target (epoch granularity; training scope)."]))
    found = strategies(report)
    if found is not None:
        result.insert(3, Section(f"Strategies against the baseline ({report.basis.text})",
                                 tables.strategies_table(report, found),
                                 "no variant with usable runs beside a usable baseline",
                                 tables.strategies_notes(report, found)))
    if report.left_out:
        result.append(Section("Runs left out", tables.left_out_table(report), "", []))
    return result


def _status_line(report: Report) -> str:
    parts = ", ".join(f"{n} {status}" for status, n in report.statuses)
    runs = sum(n for _, n in report.statuses)
    return f"{runs} run(s) from {len(report.sessions)} session(s): {parts or 'none'}"


def _pareto_line(report: Report) -> str | None:
    if len(report.with_figures) < 2:
        return None
    if not report.pareto_resolved:
        return ("Pareto front (accuracy against CO2): no hardware is distinguishably better "
                "than another on either axis; no best can be named.")
    return ("Pareto front (accuracy against CO2, among distinguishable differences): "
            + ", ".join(report.pareto) + ".")


def render_text(report: Report, fmt: str = "simple") -> str:
    """The report's tables for the terminal (``fmt``: a tabulate format)."""
    parts = [_status_line(report), ""]
    for section in sections(report):
        parts.append(f"== {section.title} ==")
        parts.append(_render(section.table, fmt) if _non_empty(section.table) else section.empty)
        parts.extend(section.notes)
        parts.append("")
    pareto = _pareto_line(report)
    if pareto:
        parts += [pareto, ""]
    return "\n".join(parts).rstrip() + "\n"


def _header_lines(report: Report) -> list[str]:
    lines = []
    for info in report.sessions:
        extra = []
        if info.host:
            extra.append(f"host {info.host}")
        if info.backend:
            extra.append(f"backend {info.backend}")
        if info.commit:
            extra.append(f"commit {info.commit[:12]}{' (modified)' if info.dirty else ''}")
        if info.idle:
            extra.append(f"idle {info.idle}")
        if info.concurrent:
            extra.append(f"ran beside {', '.join(info.concurrent)}")
        lines.append(f"- session `{info.name}`" + (f" ({', '.join(extra)})" if extra else ""))
    synthetic = [g.label for g in report.groups if g.synthetic]
    if synthetic:
        lines.append("")
        lines.append("**Synthetic data**: " + (
            "every run" if len(synthetic) == len(report.groups) else ", ".join(synthetic))
            + " trained on generated images, not CIFAR-10; the accuracy says nothing about "
            "CIFAR-10.")
    unverified = [g.label for g in report.groups if not g.synthetic and not g.verified]
    if unverified:
        lines += ["", "**Unverified data**: " + ", ".join(unverified) + " trained on a CIFAR-10 "
                  "folder that does not match the manifest of an official download."]
    return lines


def render_markdown(report: Report, plots: list[tuple[str, str]] | None = None) -> str:
    """report.md: the tables as GitHub Markdown, then the plots (``(file, title)`` pairs)."""
    lines = ["# Carbon benchmark report", "", _status_line(report) + ":", "",
             *_header_lines(report), ""]
    for section in sections(report):
        lines += [f"## {section.title}", ""]
        lines.append(_render(section.table, "github") if _non_empty(section.table)
                     else f"_{section.empty}_")
        lines.append("")
        for note in section.notes:
            lines += [note.replace("*", "\\*", 1) if note.startswith(ESTIMATE_MARK) else note, ""]
    pareto = _pareto_line(report)
    if pareto:
        lines += [pareto, ""]
    if report.warnings:
        lines += ["## Warnings", ""]
        lines += ["- " + " ".join(line.strip() for line in w.splitlines())
                  for w in report.warnings]
        lines.append("")
    lines += ["## Plots", ""]
    if plots:
        for filename, title in plots:
            lines += [f"![{title}]({filename})", ""]
    else:
        lines += ["_no plots: no usable run_", ""]
    return "\n".join(lines).rstrip() + "\n"


def runs_table(runs: list[LoadedRun], tablefmt: str = "simple", scope: str = "training") -> str:
    """The per-run table `harness run` prints, ready to print."""
    rows = tables.run_rows(runs, scope)
    if not rows:
        return "(no runs)"
    keys = list(dict.fromkeys(k for row in rows for k in row))
    return tabulate([[row.get(k, "-") for k in keys] for row in rows], headers=keys,
                    tablefmt=tablefmt, disable_numparse=True)
