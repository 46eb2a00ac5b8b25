"""CIFAR-10 on disk: fetch, import, generate, check, verify and load.

Every data set, official, custom or generated, lives in CIFAR-10's own "python version"
layout, a ``cifar-10-batches-py/`` directory holding ``data_batch_1`` .. ``data_batch_5``,
``test_batch`` and ``batches.meta`` (pickled dicts, byte for byte the dialect of the
originals), with a ``manifest.json`` of checksums beside it. One loader serves them all;
the worker tells them apart through ``Dataset.kind`` and ``Dataset.label``, and every
result records ``Dataset.describe()``: kind, label, verified or not and why, sizes and
the checksums of the files and of the arrays trained on.

Modules, by what they own:

- :mod:`~harness.dataset.paths`: the data directory, each kind's root, file names, constants
- :mod:`~harness.dataset.loading`: the one loader, checked reading, the numpy-only unpickler
- :mod:`~harness.dataset.fetch`: download, MD5, archive safety, atomic install
- :mod:`~harness.dataset.manifest`: manifest.json, file and array checksums
- :mod:`~harness.dataset.synthesis`: generated data sets (``difficulty``)
- :mod:`~harness.dataset.shapes`, :mod:`~harness.dataset.scenes`: their images
- :mod:`~harness.dataset.pickle2`: the Python 2 pickle writer

Shared by the host (``harness data ...`` commands) and the worker, so numpy and the
standard library only: never TensorFlow.
"""

from harness.dataset.fetch import fetch, import_archive
from harness.dataset.loading import (
    GENERATOR_NAME,
    GENERATOR_VERSIONS,
    SYNTHETIC_KEY,
    Dataset,
    inspect,
    load,
    status,
)
from harness.dataset.manifest import arrays_sha256
from harness.dataset.paths import (
    BATCH_FILES,
    BATCHES_DIRNAME,
    CIFAR10_MD5,
    CIFAR10_URL,
    CLASS_NAMES,
    DATA_DIR_ENV,
    DIFFICULTIES,
    MANIFEST_FILE,
    META_FILE,
    NUM_CLASSES,
    TEST_FILE,
    TRAIN_FILES,
    Difficulty,
    Kind,
    cifar10_root,
    custom_root,
    default_data_dir,
    synthetic_root,
)
from harness.dataset.synthesis import ensure_synthetic, generator_params, synthesize

__all__ = [
    "BATCHES_DIRNAME",
    "BATCH_FILES",
    "CIFAR10_MD5",
    "CIFAR10_URL",
    "CLASS_NAMES",
    "DATA_DIR_ENV",
    "DIFFICULTIES",
    "GENERATOR_NAME",
    "GENERATOR_VERSIONS",
    "MANIFEST_FILE",
    "META_FILE",
    "NUM_CLASSES",
    "SYNTHETIC_KEY",
    "TEST_FILE",
    "TRAIN_FILES",
    "Dataset",
    "Difficulty",
    "Kind",
    "arrays_sha256",
    "cifar10_root",
    "custom_root",
    "default_data_dir",
    "ensure_synthetic",
    "fetch",
    "generator_params",
    "import_archive",
    "inspect",
    "load",
    "status",
    "synthesize",
    "synthetic_root",
]
