"""The performance benchmark: ``python -m harness bench``.

It answers two questions on the machine it runs on, in one invocation:

1. Is the worker's training faster and leaner than the research's own script? It runs
   the research pipeline (float32 arrays and one-hot labels into ``model.fit``) and the
   worker's pipeline (``harness.model.fit_arguments``, the code the worker trains with)
   in alternating child processes on the same generated data of CIFAR-10's size, and
   compares images/s (first epoch excluded as warm-up), peak RSS, start-up, the longest
   gap between training steps and the fraction of the compute ceiling reached.
2. What does the harness add? It times a full ``harness run`` (local process, then a
   container) against the training time inside it.

``--isa native,avx2`` runs every measurement once per instruction set, alternating: oneDNN
(TensorFlow's CPU kernels for convolutions, matmuls, pooling...) capped with
``ONEDNN_MAX_CPU_ISA`` beside the uncapped run, so an AVX-512 host also shows what an
AVX2-only host of its size gets. A short probe per instruction set runs a few training
steps with ``ONEDNN_VERBOSE=1`` and records what oneDNN reported: the instruction set it
dispatched to and the kernels it ran (``jit:avx2``, ``brgconv:avx512_core``...).

The host side never imports TensorFlow: each measurement runs in a child process,
``python -m harness.bench child ...``, that prints one ``HARNESS_BENCH {json}`` line.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any

from tabulate import tabulate

from harness.errors import UserError
from harness.hostinfo import ONEDNN_ISA_NAMES, ONEDNN_ISA_VARIABLES

RESULT_PREFIX = "HARNESS_BENCH "
BENCH_FORMAT = "harness.bench"
# Version history of bench-*.json:
#   1: first version.
#   2: --isa: rows, runs, matmul and overhead carry the instruction set ("isa") they were
#      measured with; "isa_probes" holds oneDNN's verbose report per instruction set;
#      "matmul_gflops" is per instruction set.
BENCH_VERSION = 2
REPO_ROOT = Path(__file__).resolve().parent.parent

#: Targets of the performance issue (README, "Performance").
TARGET_SPEEDUP = 1.3
TARGET_MAX_GAP_S = 1.0
TARGET_PEAK_RSS_MB = 1300.0
TARGET_CEILING_FRACTION = 0.45
TARGET_OVERHEAD_FRACTION = 0.05
TARGET_CONTAINER_RATIO = 1.05

#: The uncapped instruction set (whatever the host has).
ISA_NATIVE = "native"

COLUMNS = ["variant", "isa", "processes", "images/s median", "images/s range", "ratio worker/research",
           "warm-up epoch images/s", "peak RSS MB", "first step s", "max step gap s",
           "ceiling fraction", "val accuracy"]


def parse_variant(text: str) -> tuple[str, dict[str, str]]:
    """``research``, ``worker`` or ``worker:FIELD=VALUE:...`` -> kind, overrides (as text).

    FIELD names a :class:`harness.model.Pipeline` field; the child checks it (the host
    side does not import TensorFlow).
    """
    kind, *pairs = text.split(":")
    if kind not in ("research", "worker"):
        raise UserError(f"unknown variant {text!r}", key="--variants",
                        fix="use research, worker, or worker:FIELD=VALUE:... with FIELD a "
                            "harness.model.Pipeline field")
    overrides: dict[str, str] = {}
    for pair in pairs:
        key, _, value = pair.partition("=")
        if not key or not value:
            raise UserError(f"bad option {pair!r} in variant {text!r}", key="--variants",
                            fix="write FIELD=VALUE, e.g. worker:steps_per_execution=1")
        overrides[key] = value
    if kind == "research" and overrides:
        raise UserError(f"the research variant takes no options ({text!r})", key="--variants",
                        fix="options apply to worker variants only")
    return kind, overrides


def parse_isa(text: str) -> tuple[str, str | None]:
    """``native`` or a oneDNN ISA name (any case) -> label (lower case), cap (oneDNN's
    upper-case name for ONEDNN_MAX_CPU_ISA, None for native)."""
    label = text.strip().lower()
    if label == ISA_NATIVE:
        return label, None
    if _isa_index(label) is None:
        raise UserError(f"unknown instruction set {text!r}", key="--isa",
                        fix="use native or a oneDNN ONEDNN_MAX_CPU_ISA name: "
                            + ", ".join(n.lower() for n in ONEDNN_ISA_NAMES))
    return label, label.upper()


def isa_environment(isa: str, env: dict[str, str]) -> dict[str, str]:
    """``env`` with oneDNN capped to ``isa`` (native: any cap inherited is removed)."""
    env = {k: v for k, v in env.items() if k not in ONEDNN_ISA_VARIABLES}
    cap = parse_isa(isa)[1]
    if cap is not None:
        env["ONEDNN_MAX_CPU_ISA"] = cap
    return env


def _isa_index(name: str) -> int | None:
    """``name``'s rank among oneDNN's levels, lowest 0 (any case); None if not one."""
    name = name.upper()
    return ONEDNN_ISA_NAMES.index(name) if name in ONEDNN_ISA_NAMES else None


def parse_onednn_verbose(text: str) -> dict[str, Any]:
    """What ``ONEDNN_VERBOSE=1`` output says: oneDNN's version and detected instruction
    set, and per primitive kind the implementations executed (count, total ms).

    Lines look like ``onednn_verbose,v1,info,cpu,isa:Intel AVX2`` and
    ``onednn_verbose,v1,primitive,exec,cpu,convolution,jit:avx2,forward_training,...,0.12``
    (older versions: no ``v1``/``primitive`` fields; a timestamp may lead).
    """
    info: dict[str, str] = {}
    kernels: dict[str, dict[str, dict[str, float]]] = {}
    lines = 0
    for line in text.splitlines():
        if not line.startswith(("onednn_verbose,", "dnnl_verbose,")):
            continue
        lines += 1
        fields = line.split(",")[1:]
        while fields and (fields[0] in ("v1", "primitive") or _is_number(fields[0])):
            fields.pop(0)
        if not fields:
            continue
        if fields[0] == "info":
            for item in fields[1:]:
                if item.startswith("isa:"):
                    info["isa"] = item[4:]
                elif item.startswith("oneDNN v"):
                    info["version"] = item
                elif item.startswith("runtime:") and fields[1:2] == ["cpu"]:
                    info["runtime"] = item[8:]
                elif item.startswith("nthr:"):
                    info["threads"] = item[5:]
        elif fields[0] == "exec" and len(fields) >= 5:
            kind, impl = fields[2], fields[3]
            entry = kernels.setdefault(kind, {}).setdefault(impl, {"count": 0, "ms": 0.0})
            entry["count"] += 1
            if _is_number(fields[-1]):
                entry["ms"] += float(fields[-1])
    # Implementation names carry the instruction set after a colon: jit:avx2,
    # brg_conv_bwd:avx512_core+brg_conv_fwd:avx512_core, x64:gemm:jit (none).
    isas = sorted({name for impls in kernels.values() for impl in impls
                   for name in re.findall(r":(\w+)", impl) if _isa_index(name) is not None},
                  key=lambda name: _isa_index(name) or 0)
    return {"lines": lines, **info, "kernels": kernels, "kernel_isas": isas}


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def cap_took_effect(probe: dict[str, Any], cap: str) -> tuple[bool, str]:
    """Whether oneDNN's verbose report shows the cap in force: a jit kernel ran, none
    for an instruction set above the cap, and the detected ISA is no AVX-512 one when
    the cap is below AVX-512."""
    limit = _isa_index(cap)
    above = [name for name in probe["kernel_isas"] if (_isa_index(name) or 0) > (limit or 0)]
    detected = probe.get("isa", "")
    below_512 = limit is not None and limit < (_isa_index("avx512_core") or 0)
    problems = []
    if not probe["kernel_isas"]:
        problems.append("no instruction-set-specific kernel ran")
    if above:
        problems.append(f"kernels above the cap ran: {', '.join(above)}")
    if below_512 and "512" in detected:
        problems.append(f"oneDNN detected {detected!r}")
    if problems:
        return False, "; ".join(problems)
    return True, (f"oneDNN reported isa {detected!r}; kernels for "
                  f"{', '.join(probe['kernel_isas'])} only")


# --- the host side (no TensorFlow) ------------------------------------------------------


@dataclass
class BenchConfig:
    """What one ``harness bench`` measures."""

    epochs: int = 3
    """Epochs per training process; the first is warm-up, reported separately."""
    processes: int = 3
    """Training processes per variant, run alternately."""
    train_size: int = 50_000
    test_size: int = 10_000
    variants: list[str] = field(default_factory=lambda: ["research", "worker"])
    isas: list[str] = field(default_factory=lambda: [ISA_NATIVE])
    """Instruction sets oneDNN is capped to, each measured alternately (native: none)."""
    overhead_epochs: int = 2
    """Epochs of the full ``harness run`` timed for the overhead (0: skip)."""
    docker: bool = True
    """Also time the same run in a container."""
    data_dir: Path = Path("data")
    out: Path | None = None
    timeout_s: float = 1800


def child_environment(isa: str = ISA_NATIVE, extra: dict[str, str] | None = None
                      ) -> dict[str, str]:
    """The environment of a measuring child process: the worker's variables, oneDNN capped
    to ``isa``, this checkout importable, then ``extra``."""
    from harness.backends import worker_environment

    env = isa_environment(isa, worker_environment())
    env["PYTHONPATH"] = str(REPO_ROOT)
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    env.update(extra or {})
    return env


def _run_child(args: list[str], timeout_s: float, log, isa: str = ISA_NATIVE,
               extra_env: dict[str, str] | None = None) -> dict[str, Any]:
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "harness.worker.bench", *args],
                          capture_output=True, text=True, env=child_environment(isa, extra_env),
                          cwd=REPO_ROOT, timeout=timeout_s)
    lines = [line for line in proc.stdout.splitlines() if line.startswith(RESULT_PREFIX)]
    if proc.returncode != 0 or not lines:
        raise UserError(f"benchmark child {' '.join(args)} failed (exit {proc.returncode}):\n"
                        + "\n".join(proc.stderr.splitlines()[-15:]),
                        fix="run `python -m harness.worker.bench " + " ".join(args)
                            + "` by hand to see the whole error")
    result = json.loads(lines[-1][len(RESULT_PREFIX):])
    result["process_wall_s"] = time.perf_counter() - start
    result["isa"] = isa
    if extra_env and extra_env.get("ONEDNN_VERBOSE"):
        result["onednn_verbose"] = parse_onednn_verbose(proc.stdout)
    log(f"  {args[0]} {args[1] if len(args) > 1 and args[0] == 'train' else ''} [{isa}] "
        f"done in {result['process_wall_s']:.0f} s")
    return result


def _probe(isa: str, timeout_s: float, log) -> dict[str, Any]:
    """A few training steps with oneDNN's verbose output: what it dispatched to."""
    result = _run_child(["probe"], timeout_s, log, isa=isa, extra_env={"ONEDNN_VERBOSE": "1"})
    probe = result.pop("onednn_verbose")
    cap = parse_isa(isa)[1]
    effective, detail = (cap_took_effect(probe, cap) if cap is not None
                         else (None, f"uncapped: oneDNN reported isa {probe.get('isa')!r}"))
    return {"isa": isa, "cap": cap, "child": result, "verbose": probe,
            "cap_took_effect": effective, "detail": detail}


def _range(values: list[float], fmt: str = "{:.0f}") -> str:
    return f"{fmt.format(min(values))}-{fmt.format(max(values))}" if values else "-"


def summarize(runs: list[dict[str, Any]], matmul_gflops: dict[str, float]
              ) -> list[dict[str, Any]]:
    """One table row per instruction set and variant, from the child results; ratios and
    the ceiling are within one instruction set."""
    rows = []
    isas = list(dict.fromkeys(run.get("isa", ISA_NATIVE) for run in runs))
    for isa in isas:
        rows += _summarize_isa([r for r in runs if r.get("isa", ISA_NATIVE) == isa],
                               isa, matmul_gflops.get(isa))
    return rows


def _summarize_isa(runs: list[dict[str, Any]], isa: str, matmul_gflops: float | None
                   ) -> list[dict[str, Any]]:
    by_variant: dict[str, list[dict[str, Any]]] = {}
    for run in runs:
        by_variant.setdefault(run["variant"], []).append(run)
    research = next((v for v in by_variant if v == "research"), None)
    pairs_by_variant: dict[str, list[float]] = {}
    if research:
        for variant, items in by_variant.items():
            ratios = [w["images_per_s_after_warmup"] / r["images_per_s_after_warmup"]
                      for w, r in zip(items, by_variant[research], strict=False)
                      if w["images_per_s_after_warmup"] and r["images_per_s_after_warmup"]]
            pairs_by_variant[variant] = ratios
    rows = []
    for variant, items in by_variant.items():
        rates = [r["images_per_s_after_warmup"] for r in items if r["images_per_s_after_warmup"]]
        warmups = [r["images_per_s_epochs"][0] for r in items if r["images_per_s_epochs"]]
        flops = items[0]["flops_per_image"]["total"]
        median = statistics.median(rates) if rates else None
        ratios = pairs_by_variant.get(variant, [])
        rows.append({
            "variant": variant,
            "isa": isa,
            "cpu_isa": items[0].get("cpu_isa"),
            "processes": len(items),
            "images/s median": median,
            "images/s range": _range(rates),
            "ratio worker/research": statistics.median(ratios) if ratios else None,
            "ratio range": _range(ratios, "{:.2f}"),
            "warm-up epoch images/s": statistics.median(warmups) if warmups else None,
            "peak RSS MB": max(r["peak_rss_mb"] for r in items),
            "first step s": max(r["first_step_s"] for r in items),
            "max step gap s": max(r["max_step_gap_s"] for r in items),
            "ceiling fraction": (median * flops / (matmul_gflops * 1e9)
                                 if median and matmul_gflops else None),
            "val accuracy": statistics.median(r["val_accuracy"] for r in items),
            "validation s median": statistics.median(
                statistics.mean(e["validation_s"] for e in r["epochs"]) for r in items),
        })
    return rows


OVERHEAD_SCENARIO = """\
name: bench-overhead
description: harness overhead measurement (python -m harness bench)
dataset:
  kind: synthetic
  train_size: {train}
  test_size: {test}
  seed: 0
hardware:
  - name: cpu
    device: cpu
regions:
  home: FRA
training:
  epochs: {epochs}
timeout_s: 3600
"""


def _timed_harness_run(backend: str, scenario: Path, results_dir: Path, data_dir: Path,
                       session: str, timeout_s: float, isa: str = ISA_NATIVE
                       ) -> dict[str, Any]:
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "harness", "run", str(scenario),
                           "--backend", backend, "--results-dir", str(results_dir),
                           "--data-dir", str(data_dir), "--session", session,
                           # The idle baseline is a once-per-session (or per-hour) cost,
                           # not a run's; the machine meter runs, as in every run.
                           "--no-idle"],
                          capture_output=True, text=True, cwd=REPO_ROOT, timeout=timeout_s,
                          # The worker inherits the cap (ONEDNN_MAX_CPU_ISA is passed on).
                          env=isa_environment(isa, dict(os.environ)))
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise UserError(f"`harness run --backend {backend}` failed (exit {proc.returncode}):\n"
                        + "\n".join(proc.stderr.splitlines()[-15:]),
                        fix="run it by hand; for docker, check `python -m harness image cpu`")
    from harness.results import load_run

    run = load_run(results_dir / session / "bench-overhead__cpu__r01")
    if not run.usable or run.metrics is None or run.history is None:
        raise UserError(f"the overhead run is {run.status.value}: {run.reason}",
                        source=run.run_dir, fix="read its worker.log")
    metrics, history = run.metrics, run.history
    assert metrics.scopes is not None
    phases = {p.name: p.duration_s for p in metrics.phases}
    durations = [e.duration_s for e in history.epochs]
    training_s = metrics.scopes.training.duration_s
    process_s = metrics.scopes.process.duration_s
    # Overhead is nearly all fixed (start-up, imports, data load, tracker, result files,
    # the report): extrapolate the training, not the overhead, to 10 epochs: the first
    # (warm-up) epoch plus 9 times the mean of the later ones. The final evaluation on
    # the test set is part of the research workload, not something the harness adds, so
    # the overhead leaves it out; overhead_with_evaluation_s keeps it in.
    later = durations[1:] or durations
    training_10 = durations[0] + 9 * statistics.mean(later)
    evaluation = phases.get("evaluation") or 0.0
    overhead = wall - training_s - evaluation
    environment = metrics.environment
    return {
        "backend": backend, "isa": isa,
        "cpu_isa": environment.cpu_isa if environment is not None else None,
        "epochs": len(durations), "wall_s": wall,
        "training_s": training_s, "overhead_s": overhead,
        "overhead_with_evaluation_s": overhead + evaluation,
        "setup_s": phases.get("setup"), "evaluation_s": phases.get("evaluation"),
        "worker_wall_s": process_s,
        "outside_worker_s": wall - process_s,
        "training_10_epochs_s": training_10,
        "overhead_fraction_10_epochs": overhead / training_10,
        "images_per_s_after_warmup": metrics.speed.images_per_s_after_warmup,
        "max_step_gap_s": metrics.speed.max_step_gap_s,
    }


def _overhead(config: BenchConfig, log) -> list[dict[str, Any]]:
    results = []
    with tempfile.TemporaryDirectory(prefix="harness-bench-") as tmp:
        scenario = Path(tmp, "bench-overhead.yaml")
        scenario.write_text(OVERHEAD_SCENARIO.format(train=config.train_size,
                                                     test=config.test_size,
                                                     epochs=config.overhead_epochs))
        backends = ["local"]
        if config.docker:
            from harness.backends.docker_backend import DockerBackend

            log("  building/checking the cpu worker image (not timed)")
            DockerBackend(log=lambda _line: None).ensure_image("cpu")
            backends.append("docker")
        for isa in config.isas:
            for backend in backends:
                log(f"  harness run --backend {backend} [{isa}], {config.overhead_epochs} "
                    "epoch(s)")
                results.append(_timed_harness_run(
                    backend, scenario, Path(tmp, "results"), config.data_dir.resolve(),
                    f"bench-{backend}-{isa}", config.timeout_s, isa))
                log(f"    wall {results[-1]['wall_s']:.1f} s, training "
                    f"{results[-1]['training_s']:.1f} s")
    return results


def _fmt(value: Any) -> Any:
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) < 10 else f"{value:.0f}"
    return "-" if value is None else value


def render(report: dict[str, Any]) -> str:
    """The tables and the target verdicts, as text."""
    def cell(row: dict[str, Any], column: str) -> Any:
        if column == "ratio worker/research" and row.get(column) is not None:
            return f"{row[column]:.2f} ({row['ratio range']})"
        if column == "isa" and row.get("cpu_isa"):
            return f"{row['isa']} ({row['cpu_isa'].lower()})"
        return _fmt(row.get(column))

    rows = [[cell(row, c) for c in COLUMNS] for row in report["rows"]]
    out = [tabulate(rows, headers=COLUMNS, tablefmt="github")]
    ceilings = "; ".join(f"{isa}: {gflops:.0f} GFLOP/s = "
                         f"{report['ceiling_images_per_s'][isa]:.0f} images/s"
                         for isa, gflops in report["matmul_gflops"].items())
    out.append(f"\nimages/s: training steps only, epochs 2..{report['config']['epochs']} of each "
               f"process (epoch 1 is the warm-up column); ratio: median (range) of the pairs "
               f"run side by side, within one instruction set. Ceiling: "
               f"{report['flops_per_image'] / 1e6:.1f} MFLOP per training image (from the "
               f"model's layers) at the float32 matmul throughput measured in this invocation "
               f"with the same instruction set ({ceilings}). Step gaps and first step are "
               "measured at Keras batch callbacks, i.e. per execution (steps_per_execution "
               "steps) for the worker; epoch boundaries and the end of fit are included, "
               "validation is not.")
    for probe in report.get("isa_probes", []):
        verdict = {True: "cap took effect", False: "CAP DID NOT TAKE EFFECT",
                   None: "no cap"}[probe["cap_took_effect"]]
        out.append(f"isa {probe['isa']}: {verdict} ({probe['detail']})")
    if report["overhead"]:
        orows = [[o["backend"], o.get("isa", ISA_NATIVE), o["epochs"], _fmt(o["wall_s"]),
                  _fmt(o["training_s"]),
                  _fmt(o["evaluation_s"]), _fmt(o["overhead_s"]), _fmt(o["setup_s"]),
                  _fmt(o["outside_worker_s"]), _fmt(o["training_10_epochs_s"]),
                  f"{o['overhead_fraction_10_epochs']:.1%}",
                  f"{o['overhead_with_evaluation_s'] / o['training_10_epochs_s']:.1%}"]
                 for o in report["overhead"]]
        out.append("\n" + tabulate(orows, headers=[
            "backend", "isa", "epochs", "harness run wall s", "training s", "final evaluation s",
            "overhead s", "of which setup s", "of which outside worker s",
            "10-epoch training s (extrapolated)", "overhead / 10-epoch training",
            "same, final evaluation counted as overhead"], tablefmt="github"))
        out.append("overhead = harness run wall - training (fit, with per-epoch validation) - "
                   "final evaluation (both the research workload's own work).")
        for isa, ratios in report.get("container_ratio", {}).items():
            out.append(f"container / local wall time [{isa}]: {ratios['measured']:.3f} measured "
                       f"({report['overhead'][0]['epochs']} epochs), "
                       f"{ratios['extrapolated_10_epochs']:.3f} extrapolated to 10 epochs")
    out.append("\ntargets:")
    for name, ok, detail in report["targets"]:
        out.append(f"  [{'PASS' if ok else 'FAIL' if ok is not None else 'n/a '}] {name}: {detail}")
    return "\n".join(out)


def _targets(report: dict[str, Any]) -> list[tuple[str, bool | None, str]]:
    out: list[tuple[str, bool | None, str]] = []
    for isa in report["config"]["isas"]:
        rows = {r["variant"]: r for r in report["rows"] if r["isa"] == isa}
        local = next((o for o in report["overhead"]
                      if o["backend"] == "local" and o["isa"] == isa), None)
        out += _targets_isa(f" [{isa}]", rows.get("worker"), local,
                            report.get("container_ratio", {}).get(isa))
    return out


def _targets_isa(tag: str, worker: dict[str, Any] | None, local: dict[str, Any] | None,
                 container: dict[str, float] | None) -> list[tuple[str, bool | None, str]]:
    out: list[tuple[str, bool | None, str]] = []
    if worker and worker["ratio worker/research"] is not None:
        ratio = worker["ratio worker/research"]
        out.append((f"worker images/s >= 1.3x research{tag}", ratio >= TARGET_SPEEDUP,
                    f"{ratio:.2f}x (pairs {worker['ratio range']})"))
    if worker:
        gap = worker["max step gap s"]
        out.append((f"no step gap > 1 s (worker){tag}", gap <= TARGET_MAX_GAP_S,
                    f"max {gap:.2f} s"))
        rss = worker["peak RSS MB"]
        out.append((f"peak RSS <= 1.3 GB (worker){tag}", rss <= TARGET_PEAK_RSS_MB,
                    f"{rss:.0f} MB"))
        frac = worker["ceiling fraction"]
        out.append((f"compute ceiling fraction >= 0.45 (worker){tag}",
                    frac is not None and frac >= TARGET_CEILING_FRACTION,
                    f"{frac:.2f}" if frac is not None else "-"))
    if local:
        frac = local["overhead_fraction_10_epochs"]
        out.append((f"harness overhead <= 5% of 10-epoch training{tag}",
                    frac <= TARGET_OVERHEAD_FRACTION,
                    f"{frac:.1%} ({local['overhead_s']:.1f} s)"))
    if container:
        ratio = container["measured"]
        out.append((f"container / local <= 1.05{tag}", ratio <= TARGET_CONTAINER_RATIO,
                    f"{ratio:.3f}"))
    return out


def _machine() -> dict[str, Any]:
    from harness import hostinfo

    return {"cpu_model": hostinfo.cpu_model(), "cpus_effective": hostinfo.effective_cpus(),
            "host": platform.node(), "platform": platform.platform(),
            "python": platform.python_version(), "load_avg_at_start": os.getloadavg()}


def run_bench(config: BenchConfig, log=print) -> dict[str, Any]:
    """Run the whole benchmark; returns the report (also written as JSON)."""
    from harness import dataset, hostinfo

    for variant in config.variants:
        parse_variant(variant)
    caps = {isa: parse_isa(isa)[1] for isa in config.isas}
    machine = _machine()
    native = hostinfo.native_onednn_isa(hostinfo.cpu_flags())
    machine["onednn_isa_native"] = native
    for isa, cap in caps.items():
        if cap is not None and hostinfo.onednn_isa({"ONEDNN_MAX_CPU_ISA": cap}).effective == native:
            log(f"note: {isa} is not below this host's own instruction set ({native}): "
                "it measures the same as native")
    log(f"data: {config.train_size} train / {config.test_size} test (generated)")
    root = dataset.ensure_synthetic(config.data_dir, config.train_size, config.test_size, 0)
    probes = []
    if config.isas != [ISA_NATIVE]:
        log("oneDNN verbose probe per instruction set")
        probes = [_probe(isa, config.timeout_s, log) for isa in config.isas]
        for probe in probes:
            log(f"  {probe['isa']}: {probe['detail']}")
    log("matmul throughput")
    matmul = [_run_child(["matmul"], config.timeout_s, log, isa) for isa in config.isas]
    combos = [(isa, variant) for isa in config.isas for variant in config.variants]
    runs: list[dict[str, Any]] = []
    for i in range(config.processes):
        # Alternate the order too, so a drift in machine load does not favour one side.
        order = combos if i % 2 == 0 else list(reversed(combos))
        for isa, variant in order:
            log(f"process {i + 1}/{config.processes}: {variant} [{isa}]")
            runs.append(_run_child(["train", variant, str(root), "--epochs", str(config.epochs)],
                                   config.timeout_s, log, isa))
    matmul += [_run_child(["matmul"], config.timeout_s, log, isa)
               for isa in reversed(config.isas)]
    gflops = {isa: max(m["matmul_gflops"] for m in matmul if m["isa"] == isa)
              for isa in config.isas}
    flops = runs[0]["flops_per_image"]["total"]
    overhead = _overhead(config, log) if config.overhead_epochs > 0 else []
    report: dict[str, Any] = {
        "format": BENCH_FORMAT, "version": BENCH_VERSION,
        "created": datetime.now().isoformat(timespec="seconds"),
        "command": sys.argv, "machine": machine,
        "config": {k: (str(v) if isinstance(v, Path) else v)
                   for k, v in config.__dict__.items()},
        "isa_probes": probes,
        "matmul": matmul, "matmul_gflops": gflops, "flops_per_image": flops,
        "ceiling_images_per_s": {isa: g * 1e9 / flops for isa, g in gflops.items()},
        "runs": runs, "rows": summarize(runs, gflops), "overhead": overhead,
    }
    ratios: dict[str, dict[str, float]] = {}
    for isa in config.isas:
        local = next((o for o in overhead if o["backend"] == "local" and o["isa"] == isa), None)
        docker_run = next((o for o in overhead if o["backend"] == "docker" and o["isa"] == isa),
                          None)
        if local and docker_run:
            ratios[isa] = {
                "measured": docker_run["wall_s"] / local["wall_s"],
                # The measured runs are short, so their fixed costs weigh more than in a
                # 10-epoch run; this is the same comparison with each run's training
                # extrapolated.
                "extrapolated_10_epochs": (
                    (docker_run["training_10_epochs_s"] + docker_run["overhead_s"])
                    / (local["training_10_epochs_s"] + local["overhead_s"])),
            }
    report["container_ratio"] = ratios
    report["targets"] = _targets(report)
    out = config.out or Path("results", f"bench-{datetime.now().strftime('%Y%m%d-%H%M%S')}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp")
    tmp.write_text(json.dumps(report, indent=1))
    tmp.replace(out)
    report["written_to"] = str(out)
    return report


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``harness bench`` (shared by the CLI and ``python -m harness.bench``)."""
    parser.add_argument("--epochs", type=int, default=3,
                        help="epochs per training process; the first is warm-up (default 3)")
    parser.add_argument("--processes", type=int, default=3,
                        help="training processes per variant, alternating (default 3)")
    parser.add_argument("--train-size", type=int, default=50_000)
    parser.add_argument("--test-size", type=int, default=10_000)
    parser.add_argument("--variants", default="research,worker",
                        help="comma-separated: research, worker, worker:FIELD=VALUE:... "
                             "(harness.model.Pipeline fields), default research,worker")
    parser.add_argument("--isa", default=ISA_NATIVE,
                        help="comma-separated instruction sets to measure, alternating: native "
                             "(uncapped) and/or oneDNN ONEDNN_MAX_CPU_ISA names, e.g. "
                             "native,avx2 (default native)")
    parser.add_argument("--overhead-epochs", type=int, default=2,
                        help="epochs of the timed full `harness run` (0: skip; default 2)")
    parser.add_argument("--no-docker", action="store_true",
                        help="skip the container run of the overhead measurement")
    parser.add_argument("--quick", action="store_true",
                        help="a smoke test: 3000/600 images, 2 epochs, 1 process, no overhead")
    parser.add_argument("--data-dir", type=Path, help="default: $HARNESS_DATA_DIR or data/")
    parser.add_argument("--out", type=Path, help="JSON report (default results/bench-TIME.json)")


def config_from_args(args: argparse.Namespace) -> BenchConfig:
    from harness import dataset

    config = BenchConfig(epochs=args.epochs, processes=args.processes,
                         train_size=args.train_size, test_size=args.test_size,
                         variants=[v.strip() for v in args.variants.split(",") if v.strip()],
                         isas=list(dict.fromkeys(parse_isa(v)[0] for v in args.isa.split(",")
                                                 if v.strip())),
                         overhead_epochs=args.overhead_epochs, docker=not args.no_docker,
                         data_dir=args.data_dir or dataset.default_data_dir(), out=args.out)
    if args.quick:
        config = replace(config, epochs=2, processes=1, train_size=3000, test_size=600,
                         overhead_epochs=0)
    if config.epochs < 2:
        raise UserError("needs at least 2 epochs: the first is warm-up", key="--epochs",
                        fix="use --epochs 2 or more")
    if config.processes < 1:
        raise UserError("needs at least 1 process per variant", key="--processes",
                        fix="use --processes 1 or more")
    return config


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(prog="python -m harness.bench")
    add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        report = run_bench(config_from_args(args), log=lambda m: print(m, file=sys.stderr))
    except UserError as exc:
        print(f"error: {exc.render()}", file=sys.stderr)
        return 2
    print(render(report))
    print(f"\nreport written to {report['written_to']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
