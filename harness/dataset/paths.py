"""Where data sets live and what their files are called.

Layout under the data directory (``$HARNESS_DATA_DIR`` or ``./data``)::

    data/cifar10/                                  the official CIFAR-10 (data fetch / import)
    data/custom-NAME/                              a CIFAR-format archive imported as NAME
    data/synthetic-3000-600-s0/                    generated, difficulty "easy"
    data/synthetic-cifar-like-3000-600-s0/         generated, difficulty "cifar-like"

Each root holds ``cifar-10-batches-py/`` (CIFAR-10's "python version" layout:
``data_batch_1`` .. ``data_batch_5``, ``test_batch``, ``batches.meta``) and, beside it,
``manifest.json`` (checksums; see :mod:`harness.dataset.manifest`).
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Literal

from harness.errors import UserError

CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
CIFAR10_MD5 = "c58f30108f718f92721af3b95e74349a"
BATCHES_DIRNAME = "cifar-10-batches-py"
MANIFEST_FILE = "manifest.json"
CLASS_NAMES = (
    "airplane", "automobile", "bird", "cat", "deer",
    "dog", "frog", "horse", "ship", "truck",
)

DATA_DIR_ENV = "HARNESS_DATA_DIR"
TRAIN_FILES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_FILE = "test_batch"
META_FILE = "batches.meta"
BATCH_FILES = (*TRAIN_FILES, TEST_FILE, META_FILE)
IMAGE_SIZE = 32
CHANNELS = 3
PIXELS_PER_IMAGE = IMAGE_SIZE * IMAGE_SIZE * CHANNELS  # 3072, CIFAR-10's "num_vis"
NUM_CLASSES = len(CLASS_NAMES)

FETCH_CMD = "python -m harness data fetch"
IMPORT_CMD = "python -m harness data import"
SYNTH_CMD = "python -m harness data synth"

Kind = Literal["cifar10", "synthetic", "custom"]
Difficulty = Literal["easy", "cifar-like"]
DIFFICULTIES: tuple[Difficulty, ...] = ("easy", "cifar-like")

CUSTOM_PREFIX = "custom-"
_NAME = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")


def default_data_dir() -> Path:
    """The data directory: ``$HARNESS_DATA_DIR`` if set, else ``./data``; made absolute."""
    configured = os.environ.get(DATA_DIR_ENV, "").strip()
    return (Path(configured).expanduser() if configured else Path("data")).absolute()


def cifar10_root(data_dir: Path) -> Path:
    """Where the official CIFAR-10 lives under ``data_dir``."""
    return Path(data_dir) / "cifar10"


def synthetic_root(data_dir: Path, train_size: int, test_size: int, seed: int,
                   difficulty: Difficulty = "easy") -> Path:
    """Where the generated data set with these parameters lives under ``data_dir``.

    ``easy`` keeps its historical name (``synthetic-50000-10000-s0``); other difficulties
    carry theirs (``synthetic-cifar-like-50000-10000-s0``).
    """
    check_difficulty(difficulty)
    tag = "" if difficulty == "easy" else f"{difficulty}-"
    return Path(data_dir) / f"synthetic-{tag}{train_size}-{test_size}-s{seed}"


def custom_root(data_dir: Path, name: str) -> Path:
    """Where the CIFAR-format archive imported as ``name`` lives: ``data_dir/custom-NAME``.

    Raises:
        UserError: ``name`` is not lower-case letters, digits and single inner hyphens.
    """
    return Path(data_dir) / f"{CUSTOM_PREFIX}{check_name(name)}"


def check_name(name: str) -> str:
    """``name`` if it is a valid custom data set name, else a UserError."""
    if not isinstance(name, str) or len(name) > 64 or not _NAME.fullmatch(name):
        raise UserError(
            f"invalid data set name {name!r}", key="name",
            fix="use lower-case letters, digits and hyphens (e.g. my-set), at most 64 "
                "characters",
        )
    return name


def check_difficulty(difficulty: str) -> Difficulty:
    """``difficulty`` if known, else a UserError naming the choices."""
    if difficulty not in DIFFICULTIES:
        raise UserError(f"unknown difficulty {difficulty!r}", key="difficulty",
                        fix=f"use one of: {', '.join(DIFFICULTIES)}")
    return difficulty  # type: ignore[return-value]


def data_root(root: Path) -> Path:
    """Accept the batches directory itself as well as the directory that contains it."""
    root = Path(root)
    if root.name == BATCHES_DIRNAME and not (root / BATCHES_DIRNAME).is_dir():
        return root.parent
    return root


def custom_name(root: Path) -> str | None:
    """The custom data set name a root stands for (``custom-NAME``), else None."""
    name = root.name.removeprefix(CUSTOM_PREFIX)
    return name if root.name.startswith(CUSTOM_PREFIX) and name else None


def synthetic_params(root: Path) -> tuple[int, int, int, str] | None:
    """(train size, test size, seed, difficulty) a synthetic root's name stands for, as
    :func:`synthetic_root` names it; None for another name."""
    match = re.fullmatch(r"synthetic-(?:(?P<difficulty>[a-z][a-z-]*)-)?(?P<train>\d+)-"
                         r"(?P<test>\d+)-s(?P<seed>\d+)", root.name)
    if match is None:
        return None
    return (int(match["train"]), int(match["test"]), int(match["seed"]),
            match["difficulty"] or "easy")


def guess_kind(root: Path) -> Kind | None:
    """The kind a root is meant to hold, from its name (for messages about broken ones)."""
    if root.name.startswith("synthetic-"):
        return "synthetic"
    if custom_name(root) is not None:
        return "custom"
    if root.name == cifar10_root(root.parent).name:
        return "cifar10"
    return None


def repair_hint(root: Path, kind: Kind | None) -> str:
    """The command that repairs the data set at ``root``."""
    kind = kind or guess_kind(root)
    if kind == "synthetic":
        params = synthetic_params(root)
        if params is None:
            return f"(re)create it with `{SYNTH_CMD}` (it rewrites every file)"
        train, test, seed, difficulty = params
        return (f"rebuild this very data set in place: `{SYNTH_CMD} --train-size {train} "
                f"--test-size {test} --seed {seed} --difficulty {difficulty} --data-dir "
                f"{root.parent}` (it rewrites every file)")
    if kind == "cifar10":
        return (f"run `{FETCH_CMD}`, or without network `{IMPORT_CMD} "
                "PATH/cifar-10-python.tar.gz`")
    if kind == "custom":
        return (f"import its archive again: `{IMPORT_CMD} ARCHIVE --name "
                f"{custom_name(root) or 'NAME'}`")
    return (f"run `{FETCH_CMD}` (or `{IMPORT_CMD}`) for CIFAR-10, "
            f"or `{SYNTH_CMD}` for synthetic data")
