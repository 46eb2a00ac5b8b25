"""CIFAR-10 on disk: fetch, import, synthesize, check and load.

Both the real data set and the synthetic stand-in live in CIFAR-10's own "python
version" layout, a ``cifar-10-batches-py/`` directory holding ``data_batch_1`` ..
``data_batch_5``, ``test_batch`` and ``batches.meta`` (pickled dicts), so one loader
serves both and the worker cannot tell them apart except through ``Dataset.kind``.

Layout under the data directory (``$HARNESS_DATA_DIR`` or ``./data``)::

    data/cifar10/cifar-10-batches-py/...                  real CIFAR-10 (fetch / import)
    data/synthetic-3000-600-s0/cifar-10-batches-py/...    synthetic (synth)

This module is shared by the host (``harness data ...`` commands) and the worker,
so it uses only numpy and the standard library: never TensorFlow.
"""

from __future__ import annotations

import gzip
import hashlib
import http.client
import os
import pickle
import shutil
import tarfile
import tempfile
import urllib.error
import urllib.parse
import urllib.request
import uuid
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, BinaryIO, Literal

import numpy as np

from harness.errors import UserError
from harness.fileio import write_atomic

CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
CIFAR10_MD5 = "c58f30108f718f92721af3b95e74349a"
BATCHES_DIRNAME = "cifar-10-batches-py"
CLASS_NAMES = (
    "airplane", "automobile", "bird", "cat", "deer",
    "dog", "frog", "horse", "ship", "truck",
)

DATA_DIR_ENV = "HARNESS_DATA_DIR"
TRAIN_FILES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_FILE = "test_batch"
META_FILE = "batches.meta"
IMAGE_SIZE = 32
CHANNELS = 3
PIXELS_PER_IMAGE = IMAGE_SIZE * IMAGE_SIZE * CHANNELS  # 3072, CIFAR-10's "num_vis"
NUM_CLASSES = len(CLASS_NAMES)

# Extra key in a synthetic batches.meta; its presence is what makes a data set synthetic.
SYNTHETIC_KEY = "harness_synthetic"
GENERATOR_NAME = "harness-shapes"
# Bump whenever the images for a given (seed, sizes) change: ensure_synthetic then rebuilds.
GENERATOR_VERSION = 1

FETCH_CMD = "python -m harness data fetch"
IMPORT_CMD = "python -m harness data import"
SYNTH_CMD = "python -m harness data synth"

Kind = Literal["cifar10", "synthetic"]
ProgressFn = Callable[[int, int | None], None]


@dataclass(frozen=True, eq=False)  # eq=False: comparing numpy arrays with == is ambiguous
class Dataset:
    """A loaded data set, real or synthetic.

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
    generator: dict[str, Any] | None  # synthetic generator parameters, None for cifar10

    @property
    def train_size(self) -> int:
        """Number of training images."""
        return int(self.x_train.shape[0])

    @property
    def test_size(self) -> int:
        """Number of test images."""
        return int(self.x_test.shape[0])

    def describe(self) -> dict[str, Any]:
        """JSON-ready summary for metrics.json: kind, sizes, root and generator."""
        return {
            "kind": self.kind,
            "train_size": self.train_size,
            "test_size": self.test_size,
            "root": str(self.root),
            "generator": dict(self.generator) if self.generator is not None else None,
        }


# --------------------------------------------------------------------------- paths


def default_data_dir() -> Path:
    """The data directory: ``$HARNESS_DATA_DIR`` if set, else ``./data``; made absolute."""
    configured = os.environ.get(DATA_DIR_ENV, "").strip()
    return (Path(configured).expanduser() if configured else Path("data")).absolute()


def cifar10_root(data_dir: Path) -> Path:
    """Where the real CIFAR-10 lives under ``data_dir``."""
    return Path(data_dir) / "cifar10"


def synthetic_root(data_dir: Path, train_size: int, test_size: int, seed: int) -> Path:
    """Where the synthetic data set with these parameters lives under ``data_dir``."""
    return Path(data_dir) / f"synthetic-{train_size}-{test_size}-s{seed}"


# --------------------------------------------------------------------------- fetch / import


def fetch(
    data_dir: Path,
    *,
    url: str = CIFAR10_URL,
    md5: str = CIFAR10_MD5,
    timeout_s: float = 30,
    progress: ProgressFn | None = None,
) -> Path:
    """Download, verify and unpack CIFAR-10 into ``cifar10_root(data_dir)``; return that root.

    Does nothing (and needs no network) when a complete real CIFAR-10 is already there.
    The archive is downloaded into ``data_dir`` and deleted afterwards; the data set
    appears atomically, so an interrupted fetch leaves the old state behind.

    Args:
        data_dir: the data directory.
        url: where to download the archive from.
        md5: expected MD5 hex digest of the archive.
        timeout_s: socket timeout in seconds, for connecting and for each read.
        progress: called as ``progress(bytes_done, bytes_total_or_None)`` while downloading.

    Raises:
        UserError: no network, HTTP error, timeout, checksum mismatch, unsafe archive.
    """
    data_dir = Path(data_dir)
    root = cifar10_root(data_dir)
    if _is_complete(root, kind="cifar10"):
        return root
    _make_dir(data_dir)
    with _temp_path(data_dir, ".cifar-10-python-", ".tar.gz.part") as archive:
        actual = _download(url, archive, timeout_s=timeout_s, progress=progress)
        _check_md5(actual, md5, source=url)
        _install_archive(archive, root)
    return root


def import_archive(archive: Path, data_dir: Path, *, md5: str = CIFAR10_MD5) -> Path:
    """Verify and unpack a local copy of ``cifar-10-python.tar.gz``; return the new root.

    For machines without network access: download ``CIFAR10_URL`` elsewhere, copy the
    file over, import it. Replaces (atomically) whatever ``cifar10_root(data_dir)`` held.

    Raises:
        UserError: the archive is missing or unreadable, its MD5 is not ``md5``, or it is
            not a safe, complete CIFAR-10 python archive.
    """
    archive = Path(archive)
    if not archive.is_file():
        raise UserError(
            "archive not found", source=archive,
            fix=f"download {CIFAR10_URL} and pass the path of the downloaded file",
        )
    try:
        actual = _md5_of_file(archive)
    except OSError as exc:
        raise UserError(
            f"cannot read the archive ({exc.strerror or exc})", source=archive
        ) from None
    _check_md5(actual, md5, source=archive)
    root = cifar10_root(Path(data_dir))
    _make_dir(root.parent)
    _install_archive(archive, root)
    return root


def _download(url: str, dest: Path, *, timeout_s: float, progress: ProgressFn | None) -> str:
    """Stream ``url`` into ``dest``; return the MD5 hex digest of what was received."""
    hasher = hashlib.md5(usedforsecurity=False)
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response, dest.open("wb") as out:
            _copy_stream(response, out, hasher, response.length, progress)
    except urllib.error.HTTPError as exc:
        raise _download_error(url, f"HTTP {exc.code} {exc.reason}") from None
    except (urllib.error.URLError, http.client.HTTPException, ConnectionError, TimeoutError) as exc:
        raise _download_error(url, _network_reason(exc, timeout_s)) from None
    except OSError as exc:  # after the network errors: this one is about our disk
        raise UserError(
            f"cannot write the download ({exc.strerror or exc})", source=dest,
            fix=f"free disk space or point {DATA_DIR_ENV} at a writable directory",
        ) from None
    return hasher.hexdigest()


def _copy_stream(
    src: BinaryIO, dst: BinaryIO, hasher: Any, total: int | None, progress: ProgressFn | None
) -> None:
    """Copy in 1 MiB chunks, hashing as we go so the archive is read from disk only once more."""
    done = 0
    while chunk := src.read(1 << 20):
        hasher.update(chunk)
        dst.write(chunk)
        done += len(chunk)
        if progress is not None:
            progress(done, total)


def _network_reason(exc: Exception, timeout_s: float) -> str:
    """A short human reason for a failed download."""
    if isinstance(exc, TimeoutError) or (
        isinstance(exc, urllib.error.URLError) and isinstance(exc.reason, TimeoutError)
    ):
        return f"no answer within {timeout_s:g} s"
    reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
    if isinstance(reason, OSError) and reason.strerror:
        return reason.strerror
    return str(reason) or type(reason).__name__


def _download_error(url: str, reason: str) -> UserError:
    """The UserError for a failed download: it names both ways to get the data."""
    filename = PurePosixPath(urllib.parse.urlparse(url).path).name or "cifar-10-python.tar.gz"
    return UserError(
        f"cannot download {url}: {reason}",
        fix=(
            f"retry `{FETCH_CMD}` once the network is reachable, or download {url} on a "
            f"machine that has access, copy it here and run `{IMPORT_CMD} PATH/{filename}`"
        ),
    )


def _md5_of_file(path: Path) -> str:
    """MD5 hex digest of a file, read in 1 MiB chunks."""
    hasher = hashlib.md5(usedforsecurity=False)
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 20):
            hasher.update(chunk)
    return hasher.hexdigest()


def _check_md5(actual: str, expected: str, *, source: str | Path) -> None:
    """Refuse an archive whose MD5 digest is not the expected one."""
    if actual.lower() != expected.strip().lower():
        raise UserError(
            f"MD5 checksum mismatch: expected {expected.strip().lower()}, got {actual}",
            source=source,
            fix=f"the file is damaged, truncated or not {CIFAR10_URL}; download it again",
        )


def _install_archive(archive: Path, root: Path) -> None:
    """Extract into a staging directory, check it is a complete data set, then swap it in.

    Readers therefore see either the previous data set or the new complete one, never a
    half-extracted one; on any failure the staging directory is removed.
    """
    staging = Path(tempfile.mkdtemp(dir=root.parent, prefix=f".{root.name}-extract-"))
    try:
        _extract_safely(archive, staging)
        _check_extracted(staging, archive)
        staging.chmod(0o755)  # mkdtemp makes it 0700; containers may read as another user
        _replace_dir(staging, root)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def _check_extracted(staging: Path, archive: Path) -> None:
    """Refuse an archive that does not hold a complete, valid data set, naming the member."""
    try:
        _inspect(staging)
    except UserError as exc:
        # The staging path is about to vanish: point at the archive and the member instead.
        member = Path(exc.source).relative_to(staging) if exc.source else None
        where = f"{member}: " if member else ""
        raise UserError(
            f"not a complete CIFAR-10 data set: {where}{exc.message}", source=archive,
            fix=f"use the unmodified {CIFAR10_URL}",
        ) from None


def _extract_safely(archive: Path, dest: Path) -> None:
    """Extract a CIFAR-10 python archive, refusing anything that could escape ``dest``."""
    fix = f"use the unmodified {CIFAR10_URL}"
    try:
        with tarfile.open(archive, "r:*") as tar:
            members = tar.getmembers()
            for member in members:
                _check_member(member, archive, fix)
            # filter="data" is a second line of defence behind the checks above.
            tar.extractall(dest, members=members, filter="data")
    except (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile) as exc:
        raise UserError(f"not a readable tar.gz archive ({exc})", source=archive, fix=fix) from None
    except OSError as exc:
        raise UserError(
            f"cannot extract into {dest.parent} ({exc.strerror or exc})", source=archive,
            fix=f"free disk space or point {DATA_DIR_ENV} at a writable directory",
        ) from None


def _check_member(member: tarfile.TarInfo, archive: Path, fix: str) -> None:
    """Allow only plain files and directories under ``cifar-10-batches-py/``."""
    path = PurePosixPath(member.name)
    if member.name.startswith(("/", "\\")) or path.is_absolute() or ".." in path.parts:
        raise UserError(
            f"refusing unsafe archive member {member.name!r} (absolute path or '..')",
            source=archive, fix=fix,
        )
    if not (member.isfile() or member.isdir()):
        raise UserError(
            f"refusing archive member {member.name!r}: only plain files and directories "
            "are allowed (no links or devices)",
            source=archive, fix=fix,
        )
    if not path.parts or path.parts[0] != BATCHES_DIRNAME:
        raise UserError(
            f"archive member {member.name!r} is outside {BATCHES_DIRNAME}/: "
            "not a CIFAR-10 python archive",
            source=archive, fix=fix,
        )


def _replace_dir(new: Path, dest: Path) -> None:
    """Move directory ``new`` to ``dest``, replacing an existing ``dest``."""
    old = None
    if dest.exists():
        # A directory cannot be renamed over a non-empty one: move the old one aside first.
        old = dest.with_name(f".{dest.name}-old-{uuid.uuid4().hex[:8]}")
        dest.rename(old)
    new.rename(dest)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


# --------------------------------------------------------------------------- synthetic data

# The synthetic images: one coloured shape per image on a dark, noisy, shaded background.
# The class decides the shape and, loosely, the hue; position, size, aspect, exact colour,
# background and noise are random. Tuned so that the research CNN reaches >= 90% test
# accuracy within 2 epochs on 3,000 training images while staying far from 100% after a
# handful of steps. The images do not depict the CIFAR-10 class names they are filed under.
#
# Only uniform random draws and +, -, *, /, floor, comparisons are used (no sin/exp or
# normal draws, whose last bits can differ between CPUs), so a seed gives the same bytes
# on every machine with the same numpy.
_SHIFT_PX = 5.0  # object centre moves up to this many pixels from the image centre
_RADIUS_PX = (8.0, 11.0)  # half width of the object, pixels
_ASPECT = (0.8, 1.25)  # height / width of the object
_HUE_JITTER = 0.025  # class hues are 0.1 apart on the [0, 1) hue circle
_FG_SAT_VAL = (0.8, 1.0)  # object saturation and value range
_BG_LEVEL = (0.2, 0.35)  # background colour is a random RGB colour scaled by this
_BG_GRADIENT = 0.3  # maximum brightness change across the background, full scale = 1
_NOISE = (0.08, 0.26)  # per-image noise amplitude range, full scale = 1
_CHUNK_IMAGES = 1000  # images rendered at once: bounds memory to ~100 MB
_TRAIN_STREAM, _TEST_STREAM = 0, 1

_COORD = np.arange(IMAGE_SIZE, dtype=np.float64)
_YY, _XX = np.meshgrid(_COORD, _COORD, indexing="ij")


def synthesize(
    root: Path, *, train_size: int = 50_000, test_size: int = 10_000, seed: int = 0
) -> Path:
    """Write a synthetic data set in CIFAR-10's exact on-disk format under ``root``.

    Writes ``root/cifar-10-batches-py/`` with ``data_batch_1`` .. ``data_batch_5`` (the
    ``train_size`` images split as evenly as possible), ``test_batch`` and, last,
    ``batches.meta``, so an interrupted run is recognised as incomplete. Deterministic
    for a seed. Memory stays at about one batch; 50k + 10k images take a few seconds.

    Returns:
        ``root``.

    Raises:
        UserError: invalid sizes or seed, or the directory is not writable.
    """
    _check_synthetic_params(train_size, test_size, seed)
    batches = Path(root) / BATCHES_DIRNAME
    generator = _generator_params(train_size, test_size, seed)
    _forget_other_generator(batches / META_FILE, generator)
    sizes = _split_evenly(train_size, len(TRAIN_FILES))
    first_index = 0
    for number, (name, size) in enumerate(zip(TRAIN_FILES, sizes, strict=True), start=1):
        batch = _synthetic_batch(
            size, seed, _TRAIN_STREAM, number, f"training batch {number} of 5", first_index
        )
        _write_pickle(batches / name, batch)
        first_index += size
    test = _synthetic_batch(test_size, seed, _TEST_STREAM, 1, "testing batch 1 of 1", 0)
    _write_pickle(batches / TEST_FILE, test)
    _write_pickle(batches / META_FILE, _synthetic_meta(sizes[0], generator))
    return Path(root)


def ensure_synthetic(data_dir: Path, train_size: int, test_size: int, seed: int) -> Path:
    """Return the root of the synthetic data set with these parameters, making it if needed.

    An existing complete data set made by the same generator version is reused as is.
    """
    _check_synthetic_params(train_size, test_size, seed)
    root = synthetic_root(Path(data_dir), train_size, test_size, seed)
    expected = _generator_params(train_size, test_size, seed)
    try:
        if _inspect(root)["generator"] == expected:
            return root
    except UserError:
        pass  # missing, incomplete or damaged: regenerate below
    return synthesize(root, train_size=train_size, test_size=test_size, seed=seed)


def _check_synthetic_params(train_size: int, test_size: int, seed: int) -> None:
    """Refuse sizes that cannot fill five training batches and one test batch."""
    fix = "choose train_size >= 5, test_size >= 1 and seed >= 0"
    for key, value, minimum in (("train_size", train_size, 5), ("test_size", test_size, 1),
                                ("seed", seed, 0)):
        if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < minimum:
            raise UserError(f"must be an integer >= {minimum}, got {value!r}", key=key, fix=fix)


def _generator_params(train_size: int, test_size: int, seed: int) -> dict[str, Any]:
    """The parameters recorded in batches.meta and reported in metrics.json."""
    return {
        "name": GENERATOR_NAME,
        "version": GENERATOR_VERSION,
        "seed": int(seed),
        "train_size": int(train_size),
        "test_size": int(test_size),
    }


def _forget_other_generator(meta_path: Path, generator: dict[str, Any]) -> None:
    """Delete a batches.meta left by other parameters before rewriting the batches.

    Otherwise an interrupted rewrite would mix old and new batches under an old, complete-
    looking meta. A meta with the same parameters is kept: the batches about to be written
    are byte-identical, so concurrent workers calling ``ensure_synthetic`` stay safe.
    """
    if not meta_path.exists():
        return
    try:
        current = _normalise(_get(_unpickle(meta_path, fix=""), SYNTHETIC_KEY))
    except UserError:
        current = None
    if current != generator:
        meta_path.unlink(missing_ok=True)


def _split_evenly(total: int, parts: int) -> list[int]:
    """``total`` split into ``parts`` sizes differing by at most one, larger ones first."""
    base, extra = divmod(total, parts)
    return [base + (1 if i < extra else 0) for i in range(parts)]


def _synthetic_batch(
    size: int, seed: int, stream: int, number: int, label: str, first_index: int
) -> dict[bytes, Any]:
    """One batch dict, exactly as ``pickle.load(f, encoding="bytes")`` yields CIFAR-10's."""
    # Each batch has its own random stream, so batches do not depend on one another.
    rng = np.random.default_rng([GENERATOR_VERSION, seed, stream, number])
    labels = rng.permutation(np.arange(size) % NUM_CLASSES).astype(np.uint8)  # balanced
    data = np.empty((size, PIXELS_PER_IMAGE), dtype=np.uint8)
    for start in range(0, size, _CHUNK_IMAGES):
        stop = min(start + _CHUNK_IMAGES, size)
        data[start:stop] = _render(labels[start:stop], rng).reshape(stop - start, -1)
    filenames = [
        f"{CLASS_NAMES[c]}_synthetic_{first_index + i:06d}.png".encode()
        for i, c in enumerate(labels.tolist())
    ]
    return {
        b"batch_label": label.encode(),
        b"labels": labels.tolist(),
        b"data": data,
        b"filenames": filenames,
    }


def _synthetic_meta(per_batch: int, generator: dict[str, Any]) -> dict[bytes, Any]:
    """batches.meta as CIFAR-10 has it, plus the generator parameters."""
    return {
        b"num_cases_per_batch": per_batch,
        b"label_names": [name.encode() for name in CLASS_NAMES],
        b"num_vis": PIXELS_PER_IMAGE,
        SYNTHETIC_KEY.encode(): dict(generator),
    }


def _render(labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Render images for ``labels`` as uint8, channel-planar (n, 3, 32, 32) like CIFAR-10."""
    n = labels.shape[0]
    mask = _object_masks(labels, rng)
    foreground = _hsv_to_rgb(
        (labels / NUM_CLASSES + rng.uniform(-_HUE_JITTER, _HUE_JITTER, n)) % 1.0,
        rng.uniform(*_FG_SAT_VAL, n),
        rng.uniform(*_FG_SAT_VAL, n),
    )
    background = rng.random((n, CHANNELS)) * rng.uniform(*_BG_LEVEL, (n, 1))
    slope = rng.uniform(-_BG_GRADIENT, _BG_GRADIENT, (n, 2, 1, 1))
    shading = (slope[:, 0] * (_XX / (IMAGE_SIZE - 1) - 0.5)
               + slope[:, 1] * (_YY / (IMAGE_SIZE - 1) - 0.5))
    # float32 from here on: the per-pixel work dominates the run time and 8-bit output
    # needs no more precision.
    image = np.where(
        mask[:, None],
        foreground[:, :, None, None].astype(np.float32),
        (background[:, :, None, None] + shading[:, None]).astype(np.float32),
    )
    # Triangular noise (sum of two uniforms): near-Gaussian without transcendental functions.
    amplitude = rng.uniform(*_NOISE, (n, 1, 1, 1)).astype(np.float32)
    noise = rng.random(image.shape, dtype=np.float32)
    noise += rng.random(image.shape, dtype=np.float32)
    noise -= 1.0
    noise *= amplitude
    image += noise
    image *= 255.0
    return np.clip(np.rint(image, out=image), 0, 255, out=image).astype(np.uint8)


def _object_masks(labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Boolean (n, 32, 32): where each image's class shape is, at a random place and size."""
    n = labels.shape[0]
    centre = (IMAGE_SIZE - 1) / 2 + rng.uniform(-_SHIFT_PX, _SHIFT_PX, (n, 2, 1, 1))
    half_w = rng.uniform(*_RADIUS_PX, (n, 1, 1))
    half_h = half_w * rng.uniform(*_ASPECT, (n, 1, 1))
    # u, v: pixel coordinates relative to the object, the object spans about [-1, 1].
    u = (_XX - centre[:, 0]) / half_w
    v = (_YY - centre[:, 1]) / half_h
    mask = np.zeros((n, IMAGE_SIZE, IMAGE_SIZE), dtype=bool)
    for label, shape in enumerate(_SHAPES):
        chosen = np.flatnonzero(labels == label)
        if chosen.size:
            mask[chosen] = shape(u[chosen], v[chosen])
    return mask


def _hsv_to_rgb(hue: np.ndarray, sat: np.ndarray, val: np.ndarray) -> np.ndarray:
    """(n,) hue, saturation, value in [0, 1] to (n, 3) RGB in [0, 1], piecewise linear."""
    channels = []
    for offset in (5.0, 3.0, 1.0):  # R, G, B
        k = (offset + hue * 6.0) % 6.0
        channels.append(val - val * sat * np.clip(np.minimum(k, 4.0 - k), 0.0, 1.0))
    return np.stack(channels, axis=1)


def _disc(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    return u * u + v * v <= 1.0


def _square(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    return np.maximum(np.abs(u), np.abs(v)) <= 0.85


def _ring(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    r2 = u * u + v * v
    return (r2 <= 1.0) & (r2 >= 0.36)


def _plus(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    au, av = np.abs(u), np.abs(v)
    return ((au <= 0.3) & (av <= 1.0)) | ((av <= 0.3) & (au <= 1.0))


def _cross(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    bars = (np.abs(u - v) <= 0.4) | (np.abs(u + v) <= 0.4)
    return bars & (np.maximum(np.abs(u), np.abs(v)) <= 0.9)


def _triangle(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    return (v >= -0.9) & (v <= 0.8) & (np.abs(u) <= (v + 0.9) / 1.7)  # apex up


def _h_stripes(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    return (np.maximum(np.abs(u), np.abs(v)) <= 0.9) & (np.floor((v + 1.0) * 2.5) % 2 == 0)


def _v_stripes(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    return _h_stripes(v, u)


def _checkers(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    cells = np.floor((u + 1.0) * 2.0) + np.floor((v + 1.0) * 2.0)
    return (np.maximum(np.abs(u), np.abs(v)) <= 0.9) & (cells % 2 == 0)


def _diamond(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    return np.abs(u) + np.abs(v) <= 1.0


_SHAPES: tuple[Callable[[np.ndarray, np.ndarray], np.ndarray], ...] = (
    _disc, _square, _ring, _plus, _cross, _triangle, _h_stripes, _v_stripes, _checkers, _diamond,
)


# --------------------------------------------------------------------------- load / status


def load(root: Path) -> Dataset:
    """Load a real or synthetic data set of any size from ``root/cifar-10-batches-py/``.

    ``root`` may also name the ``cifar-10-batches-py`` directory itself. Pixels stay uint8;
    each split is converted to NHWC and made contiguous in one copy.

    Raises:
        UserError: a file is missing, damaged or has wrong shapes, types or labels; the
            message names the file and the command that repairs it.
    """
    root = _data_root(Path(root))
    batches = root / BATCHES_DIRNAME
    kind, generator = _read_meta(root)
    fix = _repair_hint(root, kind)
    train = [_read_batch(batches / name, fix) for name in TRAIN_FILES]
    test = [_read_batch(batches / TEST_FILE, fix)]
    x_train, y_train = _join(train)
    del train  # let the raw training arrays go before the test split is joined
    x_test, y_test = _join(test)
    return Dataset(x_train, y_train, x_test, y_test, kind, root, generator)


def status(data_dir: Path) -> list[dict[str, Any]]:
    """Describe every data set under ``data_dir``: the cifar10 root and each synthetic-* one.

    Each entry has ``kind``, ``root``, ``train_size``, ``test_size``, ``generator``, ``ok``,
    and, when not ok, ``problem`` and ``fix``. Reads every batch file (one at a time) so a
    damaged file is reported here rather than at training time.
    """
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        return []
    roots = [cifar10_root(data_dir)]
    roots += sorted(p for p in data_dir.glob("synthetic-*") if p.is_dir())
    return [_status_entry(root) for root in roots if root.exists()]


def _status_entry(root: Path) -> dict[str, Any]:
    """One status() entry; problems are reported, not raised."""
    try:
        return {**_inspect(root), "ok": True, "problem": None, "fix": None}
    except UserError as exc:
        return {
            "kind": _guess_kind(root), "root": str(root), "train_size": None,
            "test_size": None, "generator": None, "ok": False,
            "problem": exc.render().split("\n", 1)[0], "fix": exc.fix,
        }


def _is_complete(root: Path, *, kind: Kind) -> bool:
    """Whether ``root`` holds a complete, readable data set of this kind."""
    try:
        return _inspect(root)["kind"] == kind
    except UserError:
        return False


def _inspect(root: Path) -> dict[str, Any]:
    """Validate every file of the data set at ``root``; return kind, root, sizes, generator.

    Reads the batches one at a time, so memory stays at one batch.
    """
    root = _data_root(root)
    kind, generator = _read_meta(root)
    fix = _repair_hint(root, kind)
    batches = root / BATCHES_DIRNAME
    train_size = sum(_read_batch(batches / name, fix)[1].shape[0] for name in TRAIN_FILES)
    test_size = _read_batch(batches / TEST_FILE, fix)[1].shape[0]
    return {"kind": kind, "root": str(root), "train_size": train_size,
            "test_size": test_size, "generator": generator}


def _data_root(root: Path) -> Path:
    """Accept the batches directory itself as well as the directory that contains it."""
    if root.name == BATCHES_DIRNAME and not (root / BATCHES_DIRNAME).is_dir():
        return root.parent
    return root


def _read_meta(root: Path) -> tuple[Kind, dict[str, Any] | None]:
    """Read batches.meta: the data set's kind and, if synthetic, its generator parameters."""
    path = root / BATCHES_DIRNAME / META_FILE
    fix = _repair_hint(root, None)
    if not path.exists():
        problem = "no data set here" if not root.exists() else "incomplete data set"
        raise UserError(f"{problem}: {META_FILE} is missing", source=path, fix=fix)
    meta = _unpickle(path, fix)
    if not isinstance(meta, dict):
        raise UserError("not a CIFAR-10 batches.meta (not a dict)", source=path, fix=fix)
    names = _get(meta, "label_names")
    if names is not None and (not isinstance(names, list | tuple) or len(names) != NUM_CLASSES):
        raise UserError(f"expected a list of {NUM_CLASSES} label names, found {names!r:.80}",
                        source=path, key="label_names", fix=fix)
    generator = _get(meta, SYNTHETIC_KEY)
    if generator is None:
        return "cifar10", None
    return "synthetic", _normalise(generator)


def _read_batch(path: Path, fix: str) -> tuple[np.ndarray, np.ndarray]:
    """Read and validate one batch file: pixels uint8 (n, 3072) and labels uint8 (n,)."""
    batch = _unpickle(path, fix)
    if not isinstance(batch, dict):
        raise UserError("not a CIFAR-10 batch (not a dict)", source=path, fix=fix)
    data, labels = _get(batch, "data"), _get(batch, "labels")
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


def _join(parts: list[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    """Concatenate batches, converting channel-planar rows to NHWC in the same single copy."""
    # (n, 3072) rows are 1024 R, 1024 G, 1024 B, each row-major: (n, 3, 32, 32) -> NHWC view.
    views = [
        data.reshape(-1, CHANNELS, IMAGE_SIZE, IMAGE_SIZE).transpose(0, 2, 3, 1)
        for data, _ in parts
    ]
    # concatenate would follow the views' transposed memory order; out= forces C order.
    images = np.empty((sum(v.shape[0] for v in views), *views[0].shape[1:]), dtype=np.uint8)
    np.concatenate(views, out=images)
    labels = np.concatenate([labels for _, labels in parts])
    return images, labels


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """An unpickler that can build numpy arrays and nothing else.

    Batch files may come from an imported archive; a pickle can otherwise run arbitrary
    code. These globals are all that CIFAR-10's files (Python 2, numpy 1) and ours
    (protocol 2 from Python 3, numpy 2) need.
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


def _unpickle(path: Path, fix: str) -> Any:
    """Load one CIFAR-10 pickle as Python 3 must: ``encoding="bytes"``, numpy-only globals."""
    try:
        with path.open("rb") as fh:
            return _NumpyOnlyUnpickler(fh, encoding="bytes").load()
    except FileNotFoundError:
        raise UserError("incomplete data set: file is missing", source=path, fix=fix) from None
    except OSError as exc:
        raise UserError(f"cannot read ({exc.strerror or exc})", source=path, fix=fix) from None
    # A damaged pickle can fail in almost any way (EOFError, UnpicklingError, ValueError,
    # KeyError, MemoryError...): all of them mean the same thing to the user.
    except Exception as exc:
        raise UserError(
            f"damaged or not a CIFAR-10 file ({type(exc).__name__}: {exc})",
            source=path, fix=fix,
        ) from None


def _get(mapping: dict[Any, Any], key: str) -> Any:
    """``mapping[key]`` whether the file used bytes keys (CIFAR-10's) or str keys."""
    if key.encode() in mapping:
        return mapping[key.encode()]
    return mapping.get(key)


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


def _guess_kind(root: Path) -> Kind | None:
    """The kind a root is meant to hold, from its name (for messages about broken ones)."""
    if root.name.startswith("synthetic-"):
        return "synthetic"
    if root.name == cifar10_root(root.parent).name:
        return "cifar10"
    return None


def _repair_hint(root: Path, kind: Kind | None) -> str:
    """The command that repairs the data set at ``root``."""
    kind = kind or _guess_kind(root)
    if kind == "synthetic":
        return f"(re)create it with `{SYNTH_CMD}` (it rewrites every file)"
    if kind == "cifar10":
        return (f"run `{FETCH_CMD}`, or without network `{IMPORT_CMD} "
                "PATH/cifar-10-python.tar.gz`")
    return (f"run `{FETCH_CMD}` (or `{IMPORT_CMD}`) for CIFAR-10, "
            f"or `{SYNTH_CMD}` for synthetic data")


# --------------------------------------------------------------------------- file helpers


def _write_pickle(path: Path, obj: Any) -> None:
    """Pickle with protocol 2, the newest protocol the Python 2 era tools can read."""
    try:
        write_atomic(path, pickle.dumps(obj, protocol=2))
    except OSError as exc:
        raise UserError(
            f"cannot write ({exc.strerror or exc})", source=path,
            fix=f"free disk space or point {DATA_DIR_ENV} at a writable directory",
        ) from None


def _make_dir(path: Path) -> None:
    """Create a data directory, as a UserError when it cannot be."""
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(
            f"cannot create the data directory ({exc.strerror or exc})", source=path,
            fix=f"point {DATA_DIR_ENV} at a writable directory",
        ) from None


@contextmanager
def _temp_path(directory: Path, prefix: str, suffix: str) -> Iterator[Path]:
    """A temporary file name inside ``directory``, removed on exit whatever happens."""
    fd, name = tempfile.mkstemp(dir=directory, prefix=prefix, suffix=suffix)
    os.close(fd)
    path = Path(name)
    try:
        yield path
    finally:
        path.unlink(missing_ok=True)
