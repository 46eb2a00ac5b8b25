"""Does generated data of a difficulty give the research CNN the curve it promises?

Generates a data set (``harness.dataset.synthesize``), trains the research CNN on it as
the worker does (``harness.model.build_model`` and ``fit_arguments``: Adam, batch 64,
validation on the test set after each epoch), prints the per-epoch training and
validation accuracy and a verdict against the ranges ``cifar-like`` is documented to
meet on CIFAR-10's sizes (50,000 / 10,000 images, 10 epochs):

- final validation accuracy 65-80%;
- still learning after epoch 1: epoch-1 validation accuracy at least 10 points below
  the best;
- training accuracy pulling away: at the last epoch, above validation accuracy by at
  least 3 points.

    .venv/bin/python tests/tools/difficulty_check.py --train 50000 --test 10000 --epochs 10

About 2-4 minutes on 2 CPU cores. Exit status 0 when every check passes, 1 otherwise.
Imports TensorFlow: it is a tool, not harness code.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

FINAL_RANGE = (0.65, 0.80)
MIN_RISE_AFTER_EPOCH_1 = 0.10
MIN_TRAIN_VAL_GAP = 0.03


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--train", type=int, default=50_000, help="training images")
    parser.add_argument("--test", type=int, default=10_000, help="test images")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--difficulty", default="cifar-like", choices=("easy", "cifar-like"))
    parser.add_argument("--data-seed", type=int, default=0, help="generator seed")
    parser.add_argument("--seed", type=int, default=42, help="training seed (the research's)")
    parser.add_argument("--data-dir", type=Path, default=None,
                        help="keep the data set here (default: a temporary directory)")
    parser.add_argument("--json", type=Path, default=None, help="also write the result here")
    args = parser.parse_args(argv)

    from harness import dataset

    with tempfile.TemporaryDirectory(prefix="difficulty-") as scratch:
        data_dir = args.data_dir or Path(scratch)
        root = dataset.synthetic_root(data_dir, args.train, args.test, args.data_seed,
                                      args.difficulty)
        start = time.perf_counter()
        dataset.synthesize(root, train_size=args.train, test_size=args.test,
                           seed=args.data_seed, difficulty=args.difficulty)
        generate_s = time.perf_counter() - start
        start = time.perf_counter()
        data = dataset.load(root)
        load_s = time.perf_counter() - start
    print(f"data: {data.label}, {data.train_size} train / {data.test_size} test, "
          f"seed {args.data_seed}: generated in {generate_s:.1f} s, loaded in {load_s:.1f} s",
          flush=True)

    history, train_s = _train(data, args.epochs, args.seed)
    train_acc, val_acc = history["accuracy"], history["val_accuracy"]
    print(f"\nresearch CNN, batch 64, training seed {args.seed}, {train_s:.0f} s")
    print("epoch  train acc  val acc")
    for epoch, (train, val) in enumerate(zip(train_acc, val_acc, strict=True), start=1):
        print(f"{epoch:5d}  {train:9.3f}  {val:7.3f}")

    checks = _verdict(train_acc, val_acc)
    print()
    for name, ok, detail in checks:
        print(f"{'PASS' if ok else 'FAIL'}  {name}: {detail}")
    if (args.train, args.test, args.epochs) != (50_000, 10_000, 10):
        print("note: the ranges are stated for 50,000 / 10,000 images and 10 epochs")
    if args.json:
        args.json.write_text(json.dumps({
            "difficulty": args.difficulty, "train_size": args.train, "test_size": args.test,
            "epochs": args.epochs, "data_seed": args.data_seed, "training_seed": args.seed,
            "generate_s": generate_s, "train_s": train_s, "accuracy": train_acc,
            "val_accuracy": val_acc, "checks": {name: ok for name, ok, _ in checks},
        }, indent=2) + "\n")
    return 0 if all(ok for _, ok, _ in checks) else 1


def _train(data, epochs: int, seed: int) -> tuple[dict[str, list[float]], float]:
    """Train the research CNN as the worker does; return its history and the fit time."""
    import tensorflow as tf

    from harness import model as model_lib
    from harness.scenario import TrainingSpec

    training = TrainingSpec(epochs=epochs, seed=seed)
    model_lib.configure_threads(len(os.sched_getaffinity(0)))
    tf.keras.utils.set_random_seed(seed)
    model = model_lib.build_model(training)
    start = time.perf_counter()
    fit = model.fit(**model_lib.fit_arguments(data.x_train, data.y_train, data.x_test,
                                              data.y_test, training))
    seconds = time.perf_counter() - start
    history = {key: [float(v) for v in fit.history[key]] for key in ("accuracy", "val_accuracy")}
    return history, seconds


def _verdict(train_acc: list[float], val_acc: list[float]) -> list[tuple[str, bool, str]]:
    final, best, first = val_acc[-1], max(val_acc), val_acc[0]
    gap = train_acc[-1] - val_acc[-1]
    low, high = FINAL_RANGE
    return [
        ("final validation accuracy", low <= final <= high,
         f"{final:.3f} (wanted {low:.2f}-{high:.2f})"),
        ("still learning after epoch 1", best - first >= MIN_RISE_AFTER_EPOCH_1,
         f"epoch 1 {first:.3f}, best {best:.3f}: +{best - first:.3f} "
         f"(wanted >= {MIN_RISE_AFTER_EPOCH_1:.2f})"),
        ("training accuracy above validation at the end", gap >= MIN_TRAIN_VAL_GAP,
         f"{train_acc[-1]:.3f} - {final:.3f} = {gap:+.3f} (wanted >= {MIN_TRAIN_VAL_GAP:.2f})"),
    ]


if __name__ == "__main__":
    sys.exit(main())
