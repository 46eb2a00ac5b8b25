"""Where a training step's time and the process's memory go, per instruction set.

Every measurement runs in its own child process started with its own environment (the
oneDNN cap, TF_ENABLE_ONEDNN_OPTS, the allocator...), alternating between settings so
the machine's drift hits each alike. Subcommands (all print tables for the README):

    .venv/bin/python tests/tools/profile_step.py ops     [--isa native,avx2] [--onednn 1,0]
    .venv/bin/python tests/tools/profile_step.py onednn  [--isa native,avx2]
    .venv/bin/python tests/tools/profile_step.py ab      --config NAME=VAR=VALUE,... ...
    .venv/bin/python tests/tools/profile_step.py rss     [--isa native,avx2] [--config ...]
    .venv/bin/python tests/tools/profile_step.py eval    [--isa native,avx2] [--batches 256,...]
    .venv/bin/python tests/tools/profile_step.py layout  [--isa native,avx2]

- ``ops``: TensorFlow's profiler around a number of the worker's training steps (its
  model, pipeline and steps_per_execution); time per step by op (self time, summed over
  threads), grouped: per layer convolution forward / input gradient / filter gradient,
  bias and ReLU, pooling, dense, loss, optimizer (Adam), input pipeline, the rest.
- ``onednn``: the same steps with ONEDNN_VERBOSE=1: time per oneDNN primitive kind and
  implementation (``jit:avx2``, ``brgconv:avx512_core``, ``reorder``: layout changes).
- ``ab``: whole training processes (``harness.worker.bench train``) with each setting,
  alternating: images/s after warm-up, validation s, peak RSS; ratio to the first
  setting, per pair. A setting is ``NAME=VAR=VALUE,VAR=VALUE`` (environment) and/or
  ``NAME=@worker:FIELD=VALUE`` (a harness.model.Pipeline variant) e.g.
  ``--config base= --config arena2=MALLOC_ARENA_MAX=2 --config spe1=@worker:steps_per_execution=1``.
- ``rss``: the worker's resident memory phase by phase (import, data, tensors, model,
  each epoch), anonymous and file-backed.
- ``eval``: the per-epoch validation (10,000 images) at several evaluation batch sizes.
- ``layout``: the training step in NHWC (as trained) against NCHW (the same weights).
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from harness.bench import child_environment, parse_isa, parse_onednn_verbose  # noqa: E402

PREFIX = "PROFILE_RESULT "
MARK = "PROFILE_MARK"


# --- the child side (TensorFlow) ----------------------------------------------------------


def _rss() -> dict[str, float]:
    fields = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM", "RssAnon", "RssFile", "RssShmem"):
            fields[key] = int(value.split()[0]) / 1024.0
    return fields


def _random_data(n: int, seed: int = 0) -> tuple[Any, Any]:
    import numpy as np

    rng = np.random.default_rng(seed)
    return (rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8),
            rng.integers(0, 10, n).astype(np.uint8))


def _setup(threads: bool = True) -> tuple[Any, Any, Any]:
    import tensorflow as tf

    from harness import hostinfo
    from harness import model as model_lib
    from harness.scenario import TrainingSpec

    if threads:
        model_lib.configure_threads(hostinfo.effective_cpus())
    tf.keras.utils.set_random_seed(0)
    return tf, model_lib, TrainingSpec(epochs=1)


def _flush_c_stdio() -> None:
    sys.stdout.flush()
    ctypes.CDLL(None).fflush(None)


def child_ops(steps: int, verbose_mark: bool) -> dict[str, Any]:
    """Profile ``steps`` training steps (after a warm-up pass) with TensorFlow's profiler,
    or, with ``verbose_mark``, print a mark before them (oneDNN's verbose output)."""
    tf, model_lib, training = _setup()
    x, y = _random_data(steps * training.batch_size)
    model = model_lib.build_model(training)
    data = model_lib.train_dataset(x, y, training.batch_size, 0)
    model.fit(data, epochs=1, verbose=0)  # warm-up: tracing, primitive creation
    start = time.perf_counter()
    model.fit(data, epochs=1, verbose=0)
    plain_s = time.perf_counter() - start
    result: dict[str, Any] = {"steps": steps, "step_ms_unprofiled": 1000 * plain_s / steps}
    if verbose_mark:
        _flush_c_stdio()
        os.write(1, f"{MARK}\n".encode())
        start = time.perf_counter()
        model.fit(data, epochs=1, verbose=0)
        _flush_c_stdio()
        result["step_ms_verbose"] = 1000 * (time.perf_counter() - start) / steps
        os.write(1, f"{MARK}\n".encode())
        return result
    with tempfile.TemporaryDirectory() as logdir:
        tf.profiler.experimental.start(logdir)
        start = time.perf_counter()
        model.fit(data, epochs=1, verbose=0)
        result["step_ms_profiled"] = 1000 * (time.perf_counter() - start) / steps
        tf.profiler.experimental.stop()
        files = list(Path(logdir).rglob("*.xplane.pb"))
        result["ops"] = _xplane_ops(files[0]) if files else {}
    return result


def _xplane_ops(path: Path) -> dict[str, float]:
    """Self time (ms, summed over threads) per TensorFlow op event ``name:type`` of the
    host plane; nested events (a function call's ops) are subtracted from their parent."""
    from tensorflow.tsl.profiler.protobuf import xplane_pb2

    space = xplane_pb2.XSpace()
    space.ParseFromString(path.read_bytes())
    totals: dict[str, float] = {}
    for plane in space.planes:
        if not plane.name.startswith("/host:"):
            continue
        names = {k: v.name for k, v in plane.event_metadata.items()}
        for line in plane.lines:
            events = sorted(((e.offset_ps, e.offset_ps + e.duration_ps, names.get(e.metadata_id, "?"))
                             for e in line.events), key=lambda e: (e[0], -e[1]))
            stack: list[list[Any]] = []  # [end, name, self_ps]
            for begin, end, name in [*events, (2**63, 2**63, None)]:
                while stack and stack[-1][0] <= begin:
                    _, done, own = stack.pop()
                    totals[done] = totals.get(done, 0.0) + own / 1e9
                if name is None:
                    break
                if stack:
                    stack[-1][2] -= end - begin
                stack.append([end, name, end - begin])
    return totals


def child_rss(epochs: int, data_root: str) -> dict[str, Any]:
    """The worker's phases with the resident memory after each."""
    phases = [("start", _rss())]
    import tensorflow as tf

    from harness import dataset, hostinfo
    from harness import model as model_lib
    from harness.scenario import TrainingSpec

    phases.append(("import tensorflow", _rss()))
    model_lib.configure_threads(hostinfo.effective_cpus())
    data = dataset.load(Path(data_root))
    phases.append(("data loaded", _rss()))
    training = TrainingSpec(epochs=epochs)
    tf.keras.utils.set_random_seed(0)
    model = model_lib.build_model(training)
    args = model_lib.fit_arguments(data.x_train, data.y_train, data.x_test, data.y_test,
                                   training)
    phases.append(("model built, datasets made", _rss()))

    class Phase(tf.keras.callbacks.Callback):
        def on_train_batch_end(self, batch: int, logs: Any = None) -> None:
            if batch == 7 and len(phases) < 6:
                phases.append(("first execution (8 steps)", _rss()))

        def on_test_end(self, logs: Any = None) -> None:
            phases.append(("validation", _rss()))

        def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
            phases.append((f"epoch {epoch + 1}", _rss()))

    model.fit(**args, callbacks=[Phase()])
    model.evaluate(args["validation_data"], verbose=0)
    phases.append(("final evaluation", _rss()))
    return {"phases": phases}


def child_eval(batches: list[int], repeats: int) -> dict[str, Any]:
    """Seconds per evaluation of 10,000 images at each batch size, interleaved."""
    from dataclasses import replace

    _, model_lib, training = _setup()
    x, y = _random_data(10_000, seed=1)
    model = model_lib.build_model(training)
    times: dict[int, list[float]] = {b: [] for b in batches}
    peak: dict[int, float] = {}
    datasets = {}
    for b in batches:
        datasets[b] = model_lib.eval_dataset(
            x, y, replace(model_lib.DEFAULT_PIPELINE, eval_batch=b))
        model.evaluate(datasets[b], verbose=0)  # trace
    for _ in range(repeats):
        for b in batches:
            start = time.perf_counter()
            model.evaluate(datasets[b], verbose=0)
            times[b].append(time.perf_counter() - start)
            peak[b] = _rss()["VmHWM"]
    return {"eval_s": {str(b): t for b, t in times.items()},
            "peak_rss_after_mb": {str(b): v for b, v in peak.items()}}


def child_layout(steps: int, repeats: int) -> dict[str, Any]:
    """ms per training step of the research model in NHWC (as trained) and in NCHW
    (channels_first convolutions and pooling, transposed back before Flatten: the same
    weights, the same function), alternating in one process."""
    tf, model_lib, training = _setup()
    layers = tf.keras.layers

    def build(fmt: str) -> Any:
        tf.keras.utils.set_random_seed(0)
        stack: list[Any] = [tf.keras.Input(shape=(32, 32, 3))]
        if fmt == "channels_first":
            stack.append(layers.Permute((3, 1, 2)))
        for filters in (32, 64, 128):
            stack += [layers.Conv2D(filters, (3, 3), activation="relu", data_format=fmt),
                      layers.MaxPooling2D((2, 2), data_format=fmt)]
        if fmt == "channels_first":
            stack.append(layers.Permute((2, 3, 1)))
        stack += [layers.Flatten(), layers.Dense(256, activation="relu"),
                  layers.Dense(model_lib.NUM_CLASSES, activation="softmax")]
        model = tf.keras.Sequential(stack)
        model.compile(optimizer=tf.keras.optimizers.Adam(training.effective_learning_rate),
                      loss="sparse_categorical_crossentropy", metrics=["accuracy"],
                      steps_per_execution=model_lib.DEFAULT_PIPELINE.steps_per_execution)
        return model

    x, y = _random_data(steps * training.batch_size)
    data = model_lib.train_dataset(x, y, training.batch_size, 0)
    models = {fmt: build(fmt) for fmt in ("channels_last", "channels_first")}
    same = all(bool((a.numpy() == b.numpy()).all()) for a, b in
               zip(models["channels_last"].weights, models["channels_first"].weights,
                   strict=True))
    times: dict[str, list[float]] = {fmt: [] for fmt in models}
    for model in models.values():
        model.fit(data, epochs=1, verbose=0)  # warm-up
    for _ in range(repeats):
        for fmt, model in models.items():
            start = time.perf_counter()
            model.fit(data, epochs=1, verbose=0)
            times[fmt].append(1000 * (time.perf_counter() - start) / steps)
    return {"same_initial_weights": same, "step_ms": times}


def child_main(argv: list[str]) -> int:
    what = argv[0]
    if what == "ops":
        result = child_ops(int(argv[1]), verbose_mark=argv[2] == "1")
    elif what == "rss":
        result = child_rss(int(argv[1]), argv[2])
    elif what == "eval":
        result = child_eval([int(b) for b in argv[1].split(",")], int(argv[2]))
    elif what == "layout":
        result = child_layout(int(argv[1]), int(argv[2]))
    else:
        raise SystemExit(f"unknown child {what}")
    print(PREFIX + json.dumps(result), flush=True)
    return 0


# --- the driver side ----------------------------------------------------------------------


def _child(args: list[str], env: dict[str, str], timeout: float = 1800
           ) -> tuple[dict[str, Any], str]:
    proc = subprocess.run([sys.executable, __file__, "child", *args], capture_output=True,
                          text=True, env=env, cwd=REPO, timeout=timeout)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith(PREFIX)]
    if proc.returncode != 0 or not lines:
        raise SystemExit(f"child {args} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return json.loads(lines[-1][len(PREFIX):]), proc.stdout


# Op groups: (group, regular expression on "name:type"), first match wins.
GROUPS = [
    ("input pipeline (iterator, gather, cast)",
     r"IteratorGetNext|Iterator|GatherV2|:Cast|MapAndBatch|ParallelMap|Prefetch"),
    ("loss (softmax, cross-entropy) and metrics",
     r"SparseSoftmax|[Ss]oftmax|[Cc]ross|loss|accuracy|[Mm]ean|ArgMax|Equal"),
    ("optimizer (Adam)", r"[Aa]dam|AssignAdd|AssignSub|AssignVariable|ReadVariable|"
                         r"ResourceApply|/Sqrt|Pow|optimizer"),
]
# Op names hold the layer's name scope, which TensorFlow made unique by a suffix when the
# training step was traced: conv2d -> conv2d_1, conv2d_1 -> conv2d_1_2, conv2d_2 ->
# conv2d_2_1 (one model per process). Without that last suffix, the Keras layer name:
LAYER_RE = re.compile(r"cifar10_cnn(?:_\d+)?/((?:conv2d|max_pooling2d|dense|flatten)(?:_\d+)*)/")
LAYERS = {"conv2d": "conv1 (3->32)", "conv2d_1": "conv2 (32->64)", "conv2d_2": "conv3 (64->128)",
          "max_pooling2d": "pool1", "max_pooling2d_1": "pool2", "max_pooling2d_2": "pool3",
          "dense": "dense1 (512->256)", "dense_1": "dense2 (256->10)", "flatten": "flatten"}


def classify(name: str) -> str:
    """A profile event ``name:type`` -> its group (per layer for the layers)."""
    op_type = name.rsplit(":", 1)[-1]
    layer = LAYER_RE.search(name)
    if layer:
        scope = re.sub(r"_\d+$", "", layer.group(1))
        lname = LAYERS.get(scope, scope)
        if "Conv2DBackpropFilter" in op_type or "BackpropFilter" in name:
            part = "filter gradient"
        elif "Conv2DBackpropInput" in op_type or "BackpropInput" in name:
            part = "input gradient"
        elif "Conv2D" in op_type:
            part = "forward (conv + bias + relu)" if "Bias" in op_type else "forward"
        elif "MaxPoolGrad" in op_type:
            part = "backward"
        elif "MaxPool" in op_type:
            part = "forward"
        elif "MatMul" in op_type:
            part = "backward" if "gradient" in name.lower() else "forward"
        elif "BiasAddGrad" in op_type:
            part = "bias gradient"
        elif "ReluGrad" in op_type:
            part = "relu gradient"
        elif op_type in ("BiasAdd", "Relu", "_FusedMatMul", "_MklNativeFusedMatMul"):
            part = "forward"
        else:
            part = "other"
        return f"{lname} {part}"
    for group, pattern in GROUPS:
        if re.search(pattern, name):
            return group
    return "other"


def _op_events(ops: dict[str, float]) -> dict[str, float]:
    """Only TensorFlow op events (``name:Type``), not the profiler's own spans."""
    return {k: v for k, v in ops.items() if re.fullmatch(r"[^\s:]+:[A-Za-z_0-9]+", k)}


def cmd_ops(args: argparse.Namespace) -> None:
    configs = [(isa, onednn) for onednn in args.onednn.split(",") for isa in args.isa.split(",")]
    results: dict[tuple[str, str], list[dict[str, Any]]] = {c: [] for c in configs}
    for i in range(args.repeats):
        for isa, onednn in (configs if i % 2 == 0 else configs[::-1]):
            env = child_environment(isa, {"TF_ENABLE_ONEDNN_OPTS": onednn})
            results[(isa, onednn)].append(_child(["ops", str(args.steps), "0"], env)[0])
    table: dict[str, dict[str, float]] = {}
    types: dict[str, dict[str, float]] = {}
    step_ms: dict[str, tuple[float, float]] = {}
    for (isa, onednn), items in results.items():
        label = f"{isa}, oneDNN {'on' if onednn == '1' else 'off'}"
        step_ms[label] = (statistics.median(r["step_ms_unprofiled"] for r in items),
                          statistics.median(r["step_ms_profiled"] for r in items))
        per_run = []
        for r in items:
            ops = _op_events(r["ops"])
            groups: dict[str, float] = {}
            for name, ms in ops.items():
                groups[classify(name)] = groups.get(classify(name), 0.0) + ms / r["steps"]
            per_run.append(groups)
            for name, ms in ops.items():
                t = name.rsplit(":", 1)[-1]
                types.setdefault(label, {})
                types[label][t] = types[label].get(t, 0.0) + ms / r["steps"] / len(items)
        keys = set().union(*per_run)
        table[label] = {k: statistics.median(g.get(k, 0.0) for g in per_run) for k in keys}
    labels = list(table)
    print(f"ms per training step (batch 64), self time of TensorFlow ops summed over threads, "
          f"median of {args.repeats} process(es) of {args.steps} steps")
    print("| group | " + " | ".join(labels) + " |")
    print("|---|" + "---|" * len(labels))
    order = sorted(set().union(*table.values()),
                   key=lambda k: -max(t.get(k, 0.0) for t in table.values()))
    for key in order:
        print(f"| {key} | " + " | ".join(f"{table[lab].get(key, 0.0):.2f}" for lab in labels)
              + " |")
    print("| **sum of op self times** | " + " | ".join(
        f"{sum(table[lab].values()):.2f}" for lab in labels) + " |")
    print("| **step wall time (profiled)** | " + " | ".join(
        f"{step_ms[lab][1]:.2f}" for lab in labels) + " |")
    print("| **step wall time (not profiled)** | " + " | ".join(
        f"{step_ms[lab][0]:.2f}" for lab in labels) + " |")
    print("\nop types (ms per step, mean):")
    for lab in labels:
        top = sorted(types[lab].items(), key=lambda kv: -kv[1])[:args.top]
        print(f"  {lab}: " + ", ".join(f"{t} {ms:.2f}" for t, ms in top))
    _dump(args, {"step_ms": step_ms, "groups": table, "types": types,
                 "raw": {f"{k[0]},{k[1]}": v for k, v in results.items()}})


def cmd_onednn(args: argparse.Namespace) -> None:
    isas = args.isa.split(",")
    out: dict[str, Any] = {}
    for isa in isas:
        env = child_environment(isa, {"ONEDNN_VERBOSE": "1", "TF_ENABLE_ONEDNN_OPTS": args.onednn_opts})
        result, stdout = _child(["ops", str(args.steps), "1"], env)
        parts = stdout.split(MARK)
        measured = parts[1] if len(parts) >= 3 else stdout
        parsed = parse_onednn_verbose(measured)
        whole = parse_onednn_verbose(stdout)
        out[isa] = {"child": result, "measured": parsed, "isa_info": whole.get("isa"),
                    "version": whole.get("version"), "runtime": whole.get("runtime"),
                    "threads": whole.get("threads")}
        print(f"\n[{isa}] oneDNN {whole.get('version')}, runtime {whole.get('runtime')}, "
              f"threads {whole.get('threads')}, isa: {whole.get('isa')}")
        print(f"ms per step, oneDNN's verbose output on: {result['step_ms_verbose']:.2f}")
        rows = []
        for kind, impls in parsed["kernels"].items():
            for impl, v in impls.items():
                rows.append((v["ms"] / args.steps, kind, impl, v["count"] / args.steps))
        rows.sort(reverse=True)
        total = sum(r[0] for r in rows)
        print("| primitive | implementation | executions per step | ms per step |")
        print("|---|---|---|---|")
        for ms, kind, impl, count in rows:
            print(f"| {kind} | {impl} | {count:.1f} | {ms:.2f} |")
        print(f"| all oneDNN primitives | | | {total:.2f} |")
        if args.shapes:
            _print_shapes(measured, args.steps)
    _dump(args, out)


def _print_shapes(text: str, steps: int) -> None:
    """Time per primitive kind, implementation, propagation and problem shape."""
    acc: dict[tuple[str, ...], list[float]] = {}
    for line in text.splitlines():
        if ",exec," not in line:
            continue
        f = line.split(",")
        i = f.index("exec")
        kind, impl, prop = f[i + 2], f[i + 3], f[i + 4]
        shape = f[-2]
        key = (kind, impl, prop, shape)
        acc.setdefault(key, [0, 0.0])
        acc[key][0] += 1
        acc[key][1] += float(f[-1])
    print("| primitive | impl | prop | shape | per step | ms per step |")
    print("|---|---|---|---|---|---|")
    for key, (n, ms) in sorted(acc.items(), key=lambda kv: -kv[1][1]):
        print(f"| {' | '.join(key)} | {n / steps:.1f} | {ms / steps:.3f} |")


def _parse_config(text: str) -> tuple[str, dict[str, str], str]:
    """``NAME=VAR=VALUE,VAR=VALUE[@worker:FIELD=VALUE]`` -> name, env, variant."""
    name, _, rest = text.partition("=")
    env_text, _, variant = rest.partition("@")
    env = dict(item.split("=", 1) for item in env_text.split(",") if item)
    return name, env, variant or "worker"


def cmd_ab(args: argparse.Namespace) -> None:
    from harness import dataset

    root = dataset.ensure_synthetic(REPO / "data", args.train_size, args.test_size, 0)
    configs = [_parse_config(c) for c in args.config]
    isas = args.isa.split(",")
    runs: dict[tuple[str, str], list[dict[str, Any]]] = {}
    combos = [(isa, c) for isa in isas for c in configs]
    for i in range(args.processes):
        for isa, (name, env, variant) in (combos if i % 2 == 0 else combos[::-1]):
            start = time.perf_counter()
            proc = subprocess.run(
                [sys.executable, "-m", "harness.worker.bench", "train", variant, str(root),
                 "--epochs", str(args.epochs)],
                capture_output=True, text=True, env=child_environment(isa, env), cwd=REPO, timeout=3600)
            lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("HARNESS_BENCH ")]
            if proc.returncode or not lines:
                raise SystemExit(f"{name} [{isa}] failed:\n{proc.stderr[-3000:]}")
            result = json.loads(lines[-1][len("HARNESS_BENCH "):])
            result["wall_s"] = time.perf_counter() - start
            runs.setdefault((isa, name), []).append(result)
            print(f"  {i + 1}: {name} [{isa}] {result['images_per_s_after_warmup']:.0f} img/s, "
                  f"peak RSS {result['peak_rss_mb']:.0f} MB", file=sys.stderr)
    print(f"{args.processes} process(es) per setting, {args.epochs} epochs of "
          f"{args.train_size} images (first epoch warm-up), alternating")
    print("| isa | setting | images/s median | range | ratio to first (pairs) | "
          "validation s/epoch | peak RSS MB median | RSS range | max step gap s |")
    print("|---|---|---|---|---|---|---|---|---|")
    for isa in isas:
        base = runs[(isa, configs[0][0])]
        for name, _, _ in configs:
            items = runs[(isa, name)]
            rates = [r["images_per_s_after_warmup"] for r in items]
            pairs = [r["images_per_s_after_warmup"] / b["images_per_s_after_warmup"]
                     for r, b in zip(items, base, strict=True)]
            rss = [r["peak_rss_mb"] for r in items]
            val = statistics.median(statistics.mean(e["validation_s"] for e in r["epochs"])
                                    for r in items)
            print(f"| {isa} | {name} | {statistics.median(rates):.0f} | "
                  f"{min(rates):.0f}-{max(rates):.0f} | {statistics.median(pairs):.3f} "
                  f"({min(pairs):.2f}-{max(pairs):.2f}) | {val:.2f} | "
                  f"{statistics.median(rss):.0f} | {min(rss):.0f}-{max(rss):.0f} | "
                  f"{max(r['max_step_gap_s'] for r in items):.2f} |")
    _dump(args, {f"{k[0]},{k[1]}": v for k, v in runs.items()})


def cmd_rss(args: argparse.Namespace) -> None:
    from harness import dataset

    root = dataset.ensure_synthetic(REPO / "data", args.train_size, args.test_size, 0)
    configs = [_parse_config(c) for c in args.config] or [("default", {}, "worker")]
    out = {}
    for isa in args.isa.split(","):
        for name, env, _ in configs:
            result, _ = _child(["rss", str(args.epochs), str(root)], child_environment(isa, env))
            out[f"{isa},{name}"] = result
            print(f"\n[{isa}, {name}] MB: phase | VmRSS | RssAnon | RssFile | VmHWM (peak)")
            for phase, v in result["phases"]:
                print(f"  {phase:28s} {v['VmRSS']:7.0f} {v['RssAnon']:7.0f} "
                      f"{v['RssFile']:7.0f} {v['VmHWM']:7.0f}")
    _dump(args, out)


def cmd_eval(args: argparse.Namespace) -> None:
    out = {}
    print("seconds per evaluation of 10,000 images (the per-epoch validation), median of "
          f"{args.repeats} interleaved, peak RSS after (MB)")
    for isa in args.isa.split(","):
        result, _ = _child(["eval", args.batches, str(args.repeats)], child_environment(isa, {}))
        out[isa] = result
        for b, times in result["eval_s"].items():
            print(f"  [{isa}] batch {b:>6}: {statistics.median(times):.3f} s "
                  f"({min(times):.3f}-{max(times):.3f}), peak RSS "
                  f"{result['peak_rss_after_mb'][b]:.0f}")
    _dump(args, out)


def cmd_layout(args: argparse.Namespace) -> None:
    out = {}
    print(f"ms per training step, {args.steps} steps per pass, median of {args.repeats} "
          "alternating passes in one process")
    for isa in args.isa.split(","):
        result, _ = _child(["layout", str(args.steps), str(args.repeats)], child_environment(isa, {}))
        out[isa] = result
        last = statistics.median(result["step_ms"]["channels_last"])
        first = statistics.median(result["step_ms"]["channels_first"])
        print(f"  [{isa}] NHWC {last:.2f}, NCHW {first:.2f} (NCHW images/s vs NHWC: {last / first:.2f}); "
              f"same initial weights: {result['same_initial_weights']}")
    _dump(args, out)


def _dump(args: argparse.Namespace, data: Any) -> None:
    if args.json:
        Path(args.json).write_text(json.dumps(data, indent=1, default=str))


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "child":
        return child_main(sys.argv[2:])
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="what", required=True)
    for name in ("ops", "onednn", "ab", "rss", "eval", "layout"):
        p = sub.add_parser(name)
        p.add_argument("--isa", default="native,avx2")
        p.add_argument("--json", help="also write the raw figures here")
        if name in ("ops", "onednn", "layout"):
            p.add_argument("--steps", type=int, default=96)
        if name == "layout":
            p.add_argument("--repeats", type=int, default=4)
        if name == "ops":
            p.add_argument("--onednn", default="1", help="TF_ENABLE_ONEDNN_OPTS values, e.g. 1,0")
            p.add_argument("--repeats", type=int, default=1)
            p.add_argument("--top", type=int, default=12)
        if name == "onednn":
            p.add_argument("--onednn-opts", default="1")
            p.add_argument("--shapes", action="store_true")
        if name in ("ab", "rss"):
            p.add_argument("--config", action="append", default=[])
            p.add_argument("--train-size", type=int, default=50_000)
            p.add_argument("--test-size", type=int, default=10_000)
            p.add_argument("--epochs", type=int, default=2)
        if name == "ab":
            p.add_argument("--processes", type=int, default=2)
        if name == "eval":
            p.add_argument("--batches", default="64,256,1000,2500,10000")
            p.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    for isa in args.isa.split(","):
        parse_isa(isa)
    {"ops": cmd_ops, "onednn": cmd_onednn, "ab": cmd_ab, "rss": cmd_rss,
     "eval": cmd_eval, "layout": cmd_layout}[args.what](args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
