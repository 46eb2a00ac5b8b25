"""The one loader: reads, checks, hashes and verifies a data set of any kind and size.

Every batch file is read once into memory, hashed (SHA-256, for the manifest check) and
unpickled from those bytes by an unpickler that can build numpy arrays and nothing else.
Official CIFAR-10 files (Python 2, numpy 1), files this harness writes (the same
dialect, :mod:`harness.dataset.pickle2`) and files older versions of it wrote (Python 3
protocol 2, bytes as ``_codecs.encode``) all load the same way.
"""

from __future__ import annotations

import io
import pickle
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from harness.dataset import manifest as manifest_lib
from harness.dataset.paths import (
    BATCHES_DIRNAME,
    CHANNELS,
    IMAGE_SIZE,
    META_FILE,
    NUM_CLASSES,
    PIXELS_PER_IMAGE,
    TEST_FILE,
    TRAIN_FILES,
    Kind,
    cifar10_root,
    custom_name,
    data_root,
    guess_kind,
    repair_hint,
    synthetic_root,
)
from harness.errors import UserError

# Extra key in a generated batches.meta; its presence is what makes a data set synthetic.
SYNTHETIC_KEY = "harness_synthetic"
GENERATOR_NAME = "harness-shapes"
# Bump a difficulty's version whenever its images for a given (seed, sizes) change:
# ensure_synthetic then rebuilds. easy is still the first version's images.
GENERATOR_VERSIONS = {"easy": 1, "cifar-like": 1}


@dataclass(frozen=True, eq=False)  # eq=False: comparing numpy arrays with == is ambiguous
class Dataset:
    """A loaded data set: official, custom or generated.

    Images are uint8 NHWC arrays of shape (N, 32, 32, 3), pixel values 0..255, C-contiguous;
    labels are uint8 arrays of shape (N,) with values 0..9 indexing ``CLASS_NAMES``.
    Scaling to [0, 1] is left to the training code, which can do it per batch.
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    kind: Kind
    root: Path  # the directory that contains cifar-10-batches-py/
    generator: dict[str, Any] | None  # generator parameters, None unless synthetic
    name: str | None = None  # a custom data set's name
    verified: bool = False
    verification: str = ""  # why verified or not, in a few words
    files_sha256: dict[str, str] = field(default_factory=dict)
    arrays_sha256: str = ""

    @property
    def train_size(self) -> int:
        """Number of training images."""
        return int(self.x_train.shape[0])

    @property
    def test_size(self) -> int:
        """Number of test images."""
        return int(self.x_test.shape[0])

    @property
    def label(self) -> str:
        """Display text: "CIFAR-10", "CIFAR-10 (unverified)", "synthetic (cifar-like)"..."""
        return display_label(self.kind, self.verified, self.name, self.generator)

    def describe(self) -> dict[str, Any]:
        """JSON-ready identity of the data for metrics.json (``harness.schema.DatasetRecord``)."""
        return {
            "kind": self.kind,
            "label": self.label,
            "verified": self.verified,
            "verification": self.verification,
            "name": self.name,
            "train_size": self.train_size,
            "test_size": self.test_size,
            "arrays_sha256": self.arrays_sha256,
            "files_sha256": dict(self.files_sha256),
            "root": str(self.root),
            "generator": dict(self.generator) if self.generator is not None else None,
        }


def display_label(kind: Kind | None, verified: bool, name: str | None,
                  generator: dict[str, Any] | None) -> str:
    """The label a data set is shown with everywhere."""
    if kind == "cifar10":
        return "CIFAR-10" if verified else "CIFAR-10 (unverified)"
    if kind == "custom":
        return f"{name} (CIFAR-format, unofficial{'' if verified else ', unverified'})"
    if kind == "synthetic":
        difficulty = (generator or {}).get("difficulty", "?")
        return f"synthetic ({difficulty}{'' if verified else ', unverified'})"
    return "unknown data set"


def load(root: Path) -> Dataset:
    """Load any data set from ``root/cifar-10-batches-py/``, checked, hashed and verified.

    ``root`` may also name the ``cifar-10-batches-py`` directory itself. Pixels stay uint8;
    each split is converted to NHWC and made contiguous in one copy. A data set that reads
    fine but does not match its manifest loads, labelled unverified (``Dataset.verification``
    says why); only unreadable or malformed files are errors.

    Raises:
        UserError: a file is missing, damaged or has wrong shapes, types or labels; the
            message names the file and the command that repairs it.
    """
    root = data_root(Path(root))
    scan = _Scan(root, keep=True)
    x_train, y_train = _join(scan.train)  # empties scan.train: the raw arrays go as joined
    x_test, y_test = _join(scan.test)
    return Dataset(
        x_train, y_train, x_test, y_test, scan.kind, root, scan.generator,
        name=scan.name, verified=scan.verified, verification=scan.verification,
        files_sha256=scan.files_sha256,
        arrays_sha256=manifest_lib.arrays_sha256(x_train, y_train, x_test, y_test),
    )


def status(data_dir: Path) -> list[dict[str, Any]]:
    """Describe every data set under ``data_dir``: cifar10, custom-* and synthetic-* roots.

    Each entry has ``kind``, ``label``, ``verified``, ``verification``, ``name``, ``root``,
    ``train_size``, ``test_size``, ``generator``, ``ok``, and, when not ok, ``problem`` and
    ``fix``. Reads and hashes every batch file (one at a time) so a damaged or modified file
    is reported here rather than at training time.
    """
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        return []
    roots = [cifar10_root(data_dir)]
    roots += sorted(p for p in data_dir.glob("custom-*") if p.is_dir())
    roots += sorted(p for p in data_dir.glob("synthetic-*") if p.is_dir())
    return [_status_entry(root) for root in roots if root.exists()]


def inspect(root: Path) -> dict[str, Any]:
    """Validate, hash and verify every file of the data set at ``root`` without keeping
    the images; memory stays at one batch.

    Returns:
        ``kind``, ``label``, ``verified``, ``verification``, ``name``, ``root``,
        ``train_size``, ``test_size``, ``generator`` and ``files_sha256``.

    Raises:
        UserError: as :func:`load`.
    """
    scan = _Scan(data_root(Path(root)), keep=False)
    return {
        "kind": scan.kind,
        "label": display_label(scan.kind, scan.verified, scan.name, scan.generator),
        "verified": scan.verified,
        "verification": scan.verification,
        "name": scan.name,
        "root": str(scan.root),
        "train_size": scan.train_size,
        "test_size": scan.test_size,
        "generator": scan.generator,
        "files_sha256": scan.files_sha256,
    }


def _status_entry(root: Path) -> dict[str, Any]:
    """One status() entry; problems are reported, not raised."""
    try:
        info = inspect(root)
        del info["files_sha256"]
        return {**info, "ok": True, "problem": None, "fix": None}
    except UserError as exc:
        kind = guess_kind(root)
        return {
            "kind": kind, "label": display_label(kind, False, custom_name(root), None),
            "verified": False, "verification": "unreadable", "name": custom_name(root),
            "root": str(root), "train_size": None, "test_size": None, "generator": None,
            "ok": False, "problem": exc.render().split("\n", 1)[0], "fix": exc.fix,
        }


class _Scan:
    """One pass over a data set's files: read, hash, unpickle, check, verify."""

    def __init__(self, root: Path, *, keep: bool) -> None:
        self.root = root
        self.files_sha256: dict[str, str] = {}
        self.train: list[tuple[np.ndarray, np.ndarray]] = []
        self.test: list[tuple[np.ndarray, np.ndarray]] = []
        self.name = custom_name(root)
        self.kind, self.generator = self._read_meta()
        fix = repair_hint(root, self.kind)
        batches = root / BATCHES_DIRNAME
        train_sizes = []
        for file in TRAIN_FILES:
            data, labels = self._read_batch(batches / file, fix)
            train_sizes.append(labels.shape[0])
            if keep:
                self.train.append((data, labels))
        data, labels = self._read_batch(batches / TEST_FILE, fix)
        self.test_size = labels.shape[0]
        if keep:
            self.test.append((data, labels))
        self.train_size = sum(train_sizes)
        self.verified, self.verification = self._verify()

    def _read(self, path: Path, fix: str) -> Any:
        """Read one file once: hash its bytes, unpickle from them."""
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            raise UserError("incomplete data set: file is missing", source=path,
                            fix=fix) from None
        except OSError as exc:
            raise UserError(f"cannot read ({exc.strerror or exc})", source=path,
                            fix=fix) from None
        self.files_sha256[path.name] = manifest_lib.sha256_bytes(raw)
        return unpickle(raw, path, fix)

    def _read_meta(self) -> tuple[Kind, dict[str, Any] | None]:
        """batches.meta: the data set's kind and, if generated, its generator parameters."""
        path = self.root / BATCHES_DIRNAME / META_FILE
        fix = repair_hint(self.root, None)
        if not path.exists():
            problem = "no data set here" if not self.root.exists() else "incomplete data set"
            raise UserError(f"{problem}: {META_FILE} is missing", source=path, fix=fix)
        meta = self._read(path, fix)
        if not isinstance(meta, dict):
            raise UserError("not a CIFAR-10 batches.meta (not a dict)", source=path, fix=fix)
        names = get(meta, "label_names")
        if names is not None and (not isinstance(names, list | tuple)
                                  or len(names) != NUM_CLASSES):
            raise UserError(f"expected a list of {NUM_CLASSES} label names, found "
                            f"{names!r:.80}", source=path, key="label_names", fix=fix)
        generator = generator_of(meta)
        if self.name is not None:
            return "custom", None
        if generator is None:
            return "cifar10", None
        return "synthetic", generator

    def _read_batch(self, path: Path, fix: str) -> tuple[np.ndarray, np.ndarray]:
        """One batch file: pixels uint8 (n, 3072) and labels uint8 (n,)."""
        batch = self._read(path, fix)
        if not isinstance(batch, dict):
            raise UserError("not a CIFAR-10 batch (not a dict)", source=path, fix=fix)
        data, labels = get(batch, "data"), get(batch, "labels")
        for key, value in (("data", data), ("labels", labels)):
            if value is None:
                raise UserError("key is missing", source=path, key=key, fix=fix)
        data = np.asarray(data)
        if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != PIXELS_PER_IMAGE:
            raise UserError(
                f"expected uint8 pixels of shape (n, {PIXELS_PER_IMAGE}), "
                f"found {data.dtype} {data.shape}", source=path, key="data", fix=fix,
            )
        return data, _check_labels(np.asarray(labels), data.shape[0], path, fix)

    def _verify(self) -> tuple[bool, str]:
        """Whether the files are what they claim to be, and why (not)."""
        manifest, missing = manifest_lib.read_manifest(self.root)
        differs = manifest_lib.compare_files(manifest, self.files_sha256) if manifest else None
        if self.kind == "synthetic":
            problem = self._generator_problem()
            if problem is not None:
                return False, problem
            if differs is not None:
                return False, differs
            if manifest is None:
                return True, f"generator parameters match the files ({missing})"
            return True, "generator parameters and manifest.json match the files"
        if manifest is None:
            return False, f"{missing}: files not checked against the archive"
        if differs is not None:
            return False, differs
        archive = manifest.get("archive") or {}
        if self.kind == "cifar10":
            md5, expected = archive.get("md5"), archive.get("expected_md5")
            if manifest.get("kind") != "cifar10" or not md5 or md5 != expected:
                return False, "manifest.json records no official MD5 check"
            return True, f"files match manifest.json (archive MD5 {md5} checked)"
        if manifest.get("kind") != "custom" or manifest.get("name") != self.name:
            return False, f"manifest.json is not the one of custom data set {self.name}"
        return True, f"files match manifest.json (archive MD5 {archive.get('md5')})"

    def _generator_problem(self) -> str | None:
        """Why the generator parameters do not describe these files, or None."""
        gen = self.generator or {}
        difficulty = gen.get("difficulty")
        if gen.get("name") != GENERATOR_NAME or difficulty not in GENERATOR_VERSIONS:
            return f"unknown generator {gen.get('name')!r} ({difficulty!r})"
        if gen.get("version") != GENERATOR_VERSIONS[difficulty]:
            return (f"generator version {gen.get('version')!r} is not this harness's "
                    f"{GENERATOR_VERSIONS[difficulty]}")
        if (gen.get("train_size"), gen.get("test_size")) != (self.train_size, self.test_size):
            return (f"generator says {gen.get('train_size')}/{gen.get('test_size')} images, "
                    f"the files hold {self.train_size}/{self.test_size}")
        seed = gen.get("seed")
        if self.root.name.startswith("synthetic-") and isinstance(seed, int) and \
                self.root != synthetic_root(self.root.parent, self.train_size, self.test_size,
                                            seed, difficulty):
            return f"folder name {self.root.name} does not match the generator parameters"
        return None


def _check_labels(labels: np.ndarray, n: int, path: Path, fix: str) -> np.ndarray:
    """Labels must be n integers in 0..9; returned as uint8."""
    if n == 0:
        raise UserError("batch holds no images", source=path, key="data", fix=fix)
    if labels.shape != (n,) or not np.issubdtype(labels.dtype, np.integer):
        raise UserError(f"expected {n} integer labels, found {labels.dtype} {labels.shape}",
                        source=path, key="labels", fix=fix)
    low, high = int(labels.min()), int(labels.max())
    if low < 0 or high >= NUM_CLASSES:
        raise UserError(f"labels must be 0..{NUM_CLASSES - 1}, found {low}..{high}",
                        source=path, key="labels", fix=fix)
    return labels.astype(np.uint8, copy=False)


#: Byte alignment of the image arrays: TensorFlow uses a 64-byte-aligned array in place
#: (harness.model), an unaligned one it copies.
ALIGNMENT = 64


def aligned_empty(shape: tuple[int, ...]) -> np.ndarray:
    """An uninitialised uint8 array of ``shape`` starting on an :data:`ALIGNMENT` boundary."""
    size = int(np.prod(shape))
    buffer = np.empty(size + ALIGNMENT, dtype=np.uint8)
    start = -buffer.ctypes.data % ALIGNMENT
    return buffer[start:start + size].reshape(shape)


def _join(parts: list[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    """Concatenate batches, converting channel-planar rows to NHWC in the same single copy.

    ``parts`` is emptied batch by batch as each is copied, so the raw batches and the
    joined array are never all in memory at once (about 120 MB less at the peak of
    loading CIFAR-10, README "Performance")."""
    labels = np.concatenate([labels for _, labels in parts])
    images = aligned_empty((labels.shape[0], IMAGE_SIZE, IMAGE_SIZE, CHANNELS))
    start = 0
    while parts:
        data, _ = parts.pop(0)
        # (n, 3072) rows are 1024 R, 1024 G, 1024 B, each row-major: (n, 3, 32, 32) -> NHWC.
        view = data.reshape(-1, CHANNELS, IMAGE_SIZE, IMAGE_SIZE).transpose(0, 2, 3, 1)
        images[start:start + view.shape[0]] = view
        start += view.shape[0]
        del data, view
    return images, labels


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """An unpickler that can build numpy arrays and nothing else.

    Batch files may come from an imported archive; a pickle can otherwise run arbitrary
    code. These globals are all that CIFAR-10's files (Python 2, numpy 1), ours, and those
    older versions of this harness wrote (protocol 2 from Python 3, numpy 2) need.
    """

    _ALLOWED = frozenset({
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "scalar"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("_codecs", "encode"),
    })

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load global {module}.{name}")
        return super().find_class(module, name)


def unpickle(raw: bytes, path: Path, fix: str) -> Any:
    """Unpickle one CIFAR-10 file's bytes as Python 3 must: ``encoding="bytes"``,
    numpy-only globals. ``path`` and ``fix`` are for the error message."""
    try:
        return _NumpyOnlyUnpickler(io.BytesIO(raw), encoding="bytes").load()
    # A damaged pickle can fail in almost any way (EOFError, UnpicklingError, ValueError,
    # KeyError, MemoryError...): all of them mean the same thing to the user.
    except Exception as exc:
        raise UserError(
            f"damaged or not a CIFAR-10 file ({type(exc).__name__}: {exc})",
            source=path, fix=fix,
        ) from None


def get(mapping: dict[Any, Any], key: str) -> Any:
    """``mapping[key]`` whether the file used bytes keys (CIFAR-10's) or str keys."""
    if key.encode() in mapping:
        return mapping[key.encode()]
    return mapping.get(key)


def generator_of(meta: Any) -> dict[str, Any] | None:
    """The generator parameters in a batches.meta (str keys and values), or None.

    Data sets written before difficulties existed have no ``difficulty``: they are "easy".
    """
    if not isinstance(meta, dict):
        return None
    generator = _normalise(get(meta, SYNTHETIC_KEY))
    if not isinstance(generator, dict):
        return None
    generator.setdefault("difficulty", "easy")
    return generator


def _normalise(value: Any) -> Any:
    """Bytes to str throughout nested dicts and lists, so parameters compare and serialise."""
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, dict):
        return {_normalise(k): _normalise(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_normalise(v) for v in value]
    if isinstance(value, np.integer):
        return int(value)
    return value
