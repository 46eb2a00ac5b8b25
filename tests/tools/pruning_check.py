"""Measure magnitude pruning on the research model: dense vs pruned to 50% and 80%.

    .venv/bin/python tests/tools/pruning_check.py [--train 5000] [--epochs 3] [--json OUT]

Trains the research CNN with the worker's own pipeline (harness.model: build_model,
fit_arguments, steps_per_execution 8) on generated CIFAR-10-format data, once dense and
once per sparsity. Pruning follows Zhu & Gupta's schedule from the first step to the end
of epoch ``epochs - 1`` (4 mask updates an epoch), and the last epoch fine-tunes at the
target. Prints per-epoch training time and images/s, final test accuracy, sparsity,
sizes, forward MACs and inference time (dense model vs pruned; and the pruned model with
its zeros filled in, same graph). Timings on a shared machine are noisy: one run each.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def _parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--train", type=int, default=5000, help="training images (default 5000)")
    parser.add_argument("--test", type=int, default=1000, help="test images (default 1000)")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--sparsities", type=float, nargs="+", default=[0.5, 0.8])
    parser.add_argument("--data-dir", type=Path, default=Path("/tmp/harness-pruning-check"))
    parser.add_argument("--runs", type=int, default=1, help="trainings per variant (medians shown)")
    parser.add_argument("--repeats", type=int, default=5, help="timed predict calls per model")
    parser.add_argument("--infer-images", type=int, default=5000, help="images per timed predict")
    parser.add_argument("--json", type=Path, help="also write the results here")
    return parser.parse_args()


def main() -> int:
    args = _parse()
    if args.epochs < 2:
        sys.exit("--epochs must be >= 2 (pruning epochs, then one fine-tuning epoch)")
    import keras

    from harness import dataset, pruning
    from harness import model as model_lib
    from harness.scenario import TrainingSpec

    cpus = len(os.sched_getaffinity(0))
    model_lib.configure_threads(cpus)
    data = dataset.load(dataset.ensure_synthetic(args.data_dir, args.train, args.test, 0))
    training = TrainingSpec(epochs=args.epochs)
    steps_per_epoch = model_lib.steps(data.train_size, training.batch_size)
    print(f"data: synthetic {data.train_size} train / {data.test_size} test; {cpus} CPUs; "
          f"keras {keras.__version__}; batch {training.batch_size}, {steps_per_epoch} steps an epoch, "
          f"steps_per_execution {model_lib.DEFAULT_PIPELINE.steps_per_execution}")

    class EpochTimes(keras.callbacks.Callback):
        def __init__(self) -> None:
            super().__init__()
            self.train_s: list[float] = []

        def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
            self._start = time.perf_counter()

        def on_test_begin(self, logs: dict | None = None) -> None:
            self.train_s.append(time.perf_counter() - self._start)

    results: dict[str, Any] = {}
    variants = [None, *args.sparsities]
    infer = data.x_train[: args.infer_images]
    for run in range(args.runs):  # interleaved, so drift in machine load hits every variant
        for target in variants:
            name = "dense" if target is None else f"pruned-{round(target * 100)}%"
            keras.utils.set_random_seed(training.seed)
            model = model_lib.build_model(training)
            timer = EpochTimes()
            callbacks: list[Any] = [timer]
            if target is not None:
                spec = pruning.PruningSpec.from_epochs(
                    target, begin_epoch=0, end_epoch=args.epochs - 1, steps_per_epoch=steps_per_epoch,
                    frequency=max(1, steps_per_epoch // 4))
                callbacks = [*pruning.attach_pruning(model, spec), timer]
            fit = model_lib.fit_arguments(data.x_train, data.y_train, data.x_test, data.y_test,
                                          training)
            model.fit(**fit, callbacks=callbacks)
            result = results.setdefault(name, {"train_s": [], "predict_images_per_s": []})
            result["train_s"].append(timer.train_s)
            result["predict_images_per_s"].append(
                pruning.time_predict(model, infer, repeats=args.repeats).images_per_s)
            if run < args.runs - 1:
                continue
            loss, accuracy = model.evaluate(fit["validation_data"], verbose=0)
            report = pruning.sparsity(model)
            macs = pruning.inference_macs(model)
            result.update({
                "test_accuracy": accuracy, "test_loss": loss,
                "pruned_sparsity": report.pruned_sparsity, "overall_sparsity": report.overall_sparsity,
                "layer_sparsity": {s.name: round(s.sparsity, 4) for s in report.layers},
                "size": pruning.model_size(model).as_dict(),
                "forward_macs": macs["dense_macs"], "nonzero_macs": macs["nonzero_macs"],
            })
            if target is not None:
                same_graph = pruning.compare_inference(model, infer, repeats=args.repeats)
                result["densified_predict_images_per_s"] = same_graph["densified"].images_per_s
                result["pruned_predict_images_per_s"] = same_graph["pruned"].images_per_s
                result["zero_skipping_speedup"] = same_graph["speedup"]
    for result in results.values():
        per_epoch = list(zip(*result["train_s"], strict=True))
        result["median_train_s"] = [statistics.median(epoch) for epoch in per_epoch]
        result["median_images_per_s"] = [data.train_size / s for s in result["median_train_s"]]
        result["median_predict_images_per_s"] = statistics.median(result["predict_images_per_s"])

    _print(results, args.epochs, len(infer), args.runs)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


def _print(results: dict[str, Any], epochs: int, infer_images: int, runs: int) -> None:
    names = list(results)
    dense = results["dense"]

    def row(label: str, values: list[str]) -> None:
        print(f"| {label:<40} | " + " | ".join(f"{v:>14}" for v in values) + " |")

    print(f"\n(training and predict times: median of {runs} run(s); the rest: the last run)")
    row("", names)
    print("|" + "-" * 42 + "|" + "|".join("-" * 16 for _ in names) + "|")
    for epoch in range(epochs):
        row(f"epoch {epoch + 1} train s (images/s)",
            [f"{r['median_train_s'][epoch]:.2f} ({r['median_images_per_s'][epoch]:.0f})"
             for r in results.values()])
    warm = {n: sum(r["median_train_s"][1:]) for n, r in results.items()}
    row("epochs 2.. train s (vs dense)", [f"{warm[n]:.2f} ({warm[n] / warm['dense']:.2f}x)" for n in names])
    row("final test accuracy", [f"{r['test_accuracy']:.4f}" for r in results.values()])
    row("sparsity: pruned kernels", [f"{r['pruned_sparsity']:.4f}" for r in results.values()])
    row("sparsity: all weights", [f"{r['overall_sparsity']:.4f}" for r in results.values()])
    for key in ("dense_bytes", "bitmask_bytes", "csr_bytes", "saved_bytes", "saved_gzip_bytes",
                "raw_gzip_bytes"):
        row(f"size {key}", [f"{r['size'][key]:,}" for r in results.values()])
    row("forward MACs/image: dense kernels", [f"{r['forward_macs']:,}" for r in results.values()])
    row("forward MACs/image: non-zero weights", [f"{r['nonzero_macs']:,}" for r in results.values()])
    row(f"predict {infer_images} images: images/s",
        [f"{r['median_predict_images_per_s']:.0f}" for r in results.values()])
    row("  vs dense model",
        [f"{r['median_predict_images_per_s'] / dense['median_predict_images_per_s']:.2f}x"
         for r in results.values()])
    row("  same model, pruned: images/s",
        ["-", *[f"{results[n]['pruned_predict_images_per_s']:.0f}" for n in names[1:]]])
    row("  same model, zeros filled: images/s",
        ["-", *[f"{results[n]['densified_predict_images_per_s']:.0f}" for n in names[1:]]])
    row("  pruned speed-up over zeros filled",
        ["-", *[f"{results[n]['zero_skipping_speedup']:.2f}x" for n in names[1:]]])
    for name in names[1:]:
        print(f"{name} per-layer sparsity: {results[name]['layer_sparsity']}")


if __name__ == "__main__":
    sys.exit(main())
