"""Device-placement probe for `python -m harness gpu-check`, run inside the CUDA worker image.

    python gpu_probe.py --gpus N        # N = 0 checks that everything runs on the CPU

It trains the research model (``harness.model``, the worker's own model and input
pipeline, from the image's harness) for a few steps on random images, with TensorFlow's
device-placement log on, and checks where the placer put the model's heavy kernels
(Conv2D, its two gradients, MatMul): on the GPU, on every one of the N GPUs when N > 1
(MirroredStrategy, as the worker uses it), never on the CPU. Placement is read from the
log, not assumed from the GPUs being visible. The result is one line on stdout,
``GPU_PROBE {json}``; exit status 0 when the placement is as expected, 1 otherwise.

Why here and not in harness/: it imports TensorFlow, and the harness package keeps its
TensorFlow users in the worker modules (tests/test_architecture.py); gpu-check mounts
this file read-only into the container, so it needs no image rebuild either. It does
not run inside the worker process itself (the worker has no placement hook): it is a
separate process of the same image, model, pipeline and GPU request.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import sys
import tempfile
from collections.abc import Iterable, Iterator

PREFIX = "GPU_PROBE "
#: The kernels that carry the model's arithmetic: where they run is where the model runs.
HEAVY_OPS = ("Conv2D", "Conv2DBackpropFilter", "Conv2DBackpropInput", "MatMul")
#: ``node: (Op): /job:localhost/replica:0/task:0/device:GPU:0``, printed by the placer
#: (stdout), or the same after a glog prefix ``I0000 ... placer.cc:162] `` (stderr).
_PLACEMENT = re.compile(r"(?:^|\] )(?P<node>\S+): \((?P<op>\w+)\): "
                        r"(?P<device>/job:\S*device:(?P<kind>[A-Z]+):(?P<index>\d+))\s*$")


def parse_placement(lines: Iterable[str]) -> dict[str, dict[str, int]]:
    """Op type -> device (``GPU:0``, ``CPU:0``) -> number of nodes placed there (each node
    once, although the placer logs it on two streams)."""
    seen: set[tuple[str, str]] = set()
    placement: dict[str, dict[str, int]] = {}
    for line in lines:
        match = _PLACEMENT.search(line.rstrip("\n"))
        if not match:
            continue
        device = f"{match['kind']}:{match['index']}"
        if (match["node"], device) in seen:
            continue
        seen.add((match["node"], device))
        counts = placement.setdefault(match["op"], {})
        counts[device] = counts.get(device, 0) + 1
    return placement


def judge(placement: dict[str, dict[str, int]], gpus: int) -> tuple[bool, str]:
    """Whether the heavy kernels ran where they should, and why not."""
    heavy = {op: placement.get(op, {}) for op in HEAVY_OPS}
    absent = [op for op, devices in heavy.items() if not devices]
    if absent:
        return False, f"no placement logged for {', '.join(absent)}"
    used = {device for devices in heavy.values() for device in devices}
    if gpus == 0:
        wrong = sorted(d for d in used if not d.startswith("CPU"))
        return (not wrong, "every heavy kernel on the CPU" if not wrong
                else f"heavy kernels on {wrong} although no GPU was requested")
    on_cpu = {op: devices for op, devices in heavy.items()
              if any(d.startswith("CPU") for d in devices)}
    if on_cpu:
        return False, f"heavy kernels placed on the CPU: {on_cpu}"
    missing = [f"GPU:{i}" for i in range(gpus) if f"GPU:{i}" not in used]
    if missing:
        return False, f"no heavy kernel on {', '.join(missing)} (expected one replica per GPU)"
    return True, f"every heavy kernel on the GPU ({', '.join(sorted(used))})"


@contextlib.contextmanager
def captured(path: str) -> Iterator[None]:
    """Send file descriptors 1 and 2 (TensorFlow's C++ logs) to ``path`` meanwhile."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    with open(path, "w") as sink:
        os.dup2(sink.fileno(), 1)
        os.dup2(sink.fileno(), 2)
        try:
            yield
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])


def probe(gpus: int, images: int = 1024) -> dict:
    import numpy as np
    import tensorflow as tf

    from harness import model as model_lib
    from harness.scenario import TrainingSpec

    physical = tf.config.list_physical_devices("GPU")
    names = [tf.config.experimental.get_device_details(g).get("device_name", g.name)
             for g in physical]
    result: dict = {"gpus_requested": gpus, "gpus_visible": names,
                    "tensorflow": tf.__version__,
                    "built_with_cuda": bool(tf.test.is_built_with_cuda())}
    if len(physical) < gpus:
        return {**result, "ok": False,
                "reason": f"TensorFlow sees {len(physical)} GPU(s), {gpus} requested"}
    tf.config.set_visible_devices(physical[:gpus], "GPU")
    training = TrainingSpec(epochs=1)
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (images, 32, 32, 3), dtype=np.uint8)
    y = rng.integers(0, 10, (images,), dtype=np.uint8)
    with tempfile.NamedTemporaryFile("r", suffix=".log") as log:
        tf.debugging.set_log_device_placement(True)
        with captured(log.name):
            strategy = (tf.distribute.MirroredStrategy() if gpus > 1
                        else tf.distribute.get_strategy())
            with strategy.scope():
                model = model_lib.build_model(training)
            model.fit(**model_lib.fit_arguments(x, y, x[:256], y[:256], training, seed=0))
        tf.debugging.set_log_device_placement(False)
        lines = log.readlines()
    placement = parse_placement(lines)
    ok, reason = judge(placement, gpus)
    peaks = {}
    for index in range(gpus):
        with contextlib.suppress(Exception):
            peaks[f"GPU:{index}"] = tf.config.experimental.get_memory_info(f"GPU:{index}")["peak"]
    return {**result, "ok": ok, "reason": reason, "strategy": type(strategy).__name__,
            "placement": {op: placement.get(op, {}) for op in HEAVY_OPS},
            "variables_on": sorted({str(device) for v in model.trainable_weights
                                    if (device := getattr(getattr(v, "value", v), "device",
                                                          None))}),
            "gpu_memory_peak_bytes": peaks, "log_lines": len(lines)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gpus", type=int, default=1)
    args = parser.parse_args(argv)
    # The placer logs at INFO; the image sets TF_CPP_MIN_LOG_LEVEL=1. Before TensorFlow loads.
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "0"
    try:
        result = probe(args.gpus)
    except Exception as exc:  # reported, not raised: the host reads the line
        result = {"gpus_requested": args.gpus, "ok": False,
                  "reason": f"{type(exc).__name__}: {exc}"}
    print(PREFIX + json.dumps(result, default=str), flush=True)
    return 0 if result.get("ok") else 1


if __name__ == "__main__":
    sys.exit(main())
