"""The benchmark's measuring side: one training or one matmul, in its own process.

Worker side (imports TensorFlow). ``python -m harness.bench`` (:mod:`harness.bench`, the
host side) starts ``python -m harness.worker.bench train VARIANT DATA_ROOT`` or
``... matmul`` and reads the one ``HARNESS_BENCH_RESULT {json}`` line it prints.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import fields, replace
from pathlib import Path
from typing import Any

from harness.bench import RESULT_PREFIX, parse_variant


def _peak_rss_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KiB on Linux


def _pipeline(overrides: dict[str, str]) -> Any:
    from harness import model as model_lib

    types = {f.name: f.type for f in fields(model_lib.Pipeline)}
    values: dict[str, Any] = {}
    for key, text in overrides.items():
        if key not in types:
            raise SystemExit(f"unknown Pipeline field {key!r}; fields: {', '.join(types)}")
        values[key] = (text.lower() in ("1", "true", "yes")) if types[key] in (bool, "bool") \
            else int(text)
    return replace(model_lib.DEFAULT_PIPELINE, **values)


def _child_train(variant: str, data_root: Path, epochs: int) -> dict[str, Any]:
    kind, overrides = parse_variant(variant)
    import numpy as np

    from harness import dataset, hostinfo
    from harness.scenario import TrainingSpec
    from harness.worker.callbacks import LoopState, make_callback

    # The worker's own bookkeeping callback, without a tracker (no energy windows), a
    # forecast or a budget: the same step-gap and first-step measurement as a real run.
    state = LoopState()
    process_start = time.time() - hostinfo.process_age_s()
    training = TrainingSpec(epochs=epochs)
    import tensorflow as tf

    from harness import model as model_lib

    pipeline = _pipeline(overrides)
    if kind == "worker":
        model_lib.configure_threads(hostinfo.effective_cpus(), pipeline)
    data = dataset.load(data_root)
    tf.keras.utils.set_random_seed(training.seed)
    callback = make_callback(state=state, tracking=None, epochs=epochs,
                             process_start=process_start, forecast_after=epochs + 1,
                             budget=None, price=lambda _kwh: 0.0, on_history=lambda: None,
                             emit=lambda **_event: None)
    if kind == "research":
        # The research script: float32 copies scaled to [0, 1], one-hot labels, arrays
        # into fit; TensorFlow's default threads and one step per execution.
        x_train = data.x_train.astype("float32") / 255.0
        x_test = data.x_test.astype("float32") / 255.0
        y_train = tf.keras.utils.to_categorical(data.y_train, model_lib.NUM_CLASSES)
        y_test = tf.keras.utils.to_categorical(data.y_test, model_lib.NUM_CLASSES)
        model = model_lib.build_model(training, replace(pipeline, steps_per_execution=1),
                                      one_hot=True)
        model.fit(x_train, y_train, batch_size=training.batch_size, epochs=epochs,
                  validation_data=(x_test, y_test), callbacks=[callback], verbose=0)
    else:
        model = model_lib.build_model(training, pipeline)
        model.fit(**model_lib.fit_arguments(data.x_train, data.y_train, data.x_test,
                                            data.y_test, training, pipeline),
                  callbacks=[callback])
    callback.gap(time.perf_counter())  # leaving fit: the training iterator is destroyed
    train_s = [e.train_s for e in state.epochs]
    return {
        "variant": variant,
        "kind": kind,
        "pipeline": {f.name: getattr(pipeline, f.name) for f in fields(pipeline)}
        if kind == "worker" else None,
        "train_size": data.train_size,
        "epochs": [e.model_dump(mode="json") for e in state.epochs],
        "images_per_s_epochs": [data.train_size / s for s in train_s],
        "images_per_s_after_warmup": (data.train_size * (len(train_s) - 1) / sum(train_s[1:])
                                      if len(train_s) > 1 else None),
        "peak_rss_mb": _peak_rss_mb(),
        "first_step_s": state.first_step_s,
        "max_step_gap_s": state.max_step_gap_s,
        "val_accuracy": state.epochs[-1].val_accuracy if state.epochs else None,
        "intra_op_threads": tf.config.threading.get_intra_op_parallelism_threads(),
        "inter_op_threads": tf.config.threading.get_inter_op_parallelism_threads(),
        "flops_per_image": model_lib.training_flops_per_image(model),
        "np_version": np.__version__,
        **_isa_record(),
    }


def _isa_record() -> dict[str, Any]:
    """The instruction set oneDNN dispatches to in this process (harness.hostinfo)."""
    from harness import hostinfo

    isa = hostinfo.onednn_isa()
    return {"cpu_isa": isa.effective, "cpu_isa_cap": isa.cap, "cpu_isa_native": isa.native}


def _child_probe() -> dict[str, Any]:
    """A few training steps and an evaluation of the worker's model on random data: run
    with ONEDNN_VERBOSE=1 by the host, which reads what oneDNN printed."""
    import numpy as np
    import tensorflow as tf

    from harness import hostinfo
    from harness import model as model_lib
    from harness.scenario import TrainingSpec

    model_lib.configure_threads(hostinfo.effective_cpus())
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (512, 32, 32, 3), dtype=np.uint8)
    y = rng.integers(0, model_lib.NUM_CLASSES, 512).astype(np.uint8)
    training = TrainingSpec(epochs=1)
    model = model_lib.build_model(training)
    model.fit(**model_lib.fit_arguments(x, y, x[:256], y[:256], training))
    tf.matmul(tf.ones((64, 64)), tf.ones((64, 64))).numpy()
    return {"steps": model_lib.steps(len(x), training.batch_size),
            "onednn_opts": _onednn_opts(), **_isa_record()}


def _onednn_opts() -> bool:
    """Whether TensorFlow's oneDNN rewrites are on (TF_ENABLE_ONEDNN_OPTS, default on x86)."""
    import os

    return os.environ.get("TF_ENABLE_ONEDNN_OPTS", "1").lower() not in ("0", "false")


def _child_matmul() -> dict[str, Any]:
    """float32 matrix-multiply throughput with the worker's thread settings."""
    import tensorflow as tf

    from harness import model as model_lib
    from harness.hostinfo import effective_cpus

    model_lib.configure_threads(effective_cpus())
    best: dict[str, float] = {}
    for n in (512, 1024, 2048):
        a = tf.random.uniform((n, n), dtype=tf.float32)
        b = tf.random.uniform((n, n), dtype=tf.float32)
        reps = max(2, int(4e9 // (2 * n**3)))

        @tf.function
        def loop(a: tf.Tensor, b: tf.Tensor, reps: int = reps) -> tf.Tensor:
            acc = tf.zeros((), tf.float32)
            for _ in tf.range(reps):
                acc += tf.reduce_sum(tf.matmul(a, b)[0, 0])
            return acc

        loop(a, b).numpy()  # trace and warm up
        rates = []
        for _ in range(5):
            start = time.perf_counter()
            loop(a, b).numpy()
            rates.append(2 * n**3 * reps / (time.perf_counter() - start) / 1e9)
        best[str(n)] = max(rates)
    return {"matmul_gflops": max(best.values()), "matmul_gflops_by_size": best,
            "threads": tf.config.threading.get_intra_op_parallelism_threads(),
            **_isa_record()}


def child_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m harness.worker.bench")
    sub = parser.add_subparsers(dest="what", required=True)
    train = sub.add_parser("train")
    train.add_argument("variant")
    train.add_argument("data_root", type=Path)
    train.add_argument("--epochs", type=int, default=3)
    sub.add_parser("matmul")
    sub.add_parser("probe")
    args = parser.parse_args(argv)
    result = (_child_train(args.variant, args.data_root, args.epochs) if args.what == "train"
              else _child_matmul() if args.what == "matmul" else _child_probe())
    print(RESULT_PREFIX + json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(child_main(sys.argv[1:]))
