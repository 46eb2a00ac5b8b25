"""Tests for harness.dataset: real files in tmp_path, a real HTTP server, a real Keras model.

Nothing is mocked. The "real" CIFAR-10 in these tests is a small generated data set, its
synthetic marker removed, packed into a tar.gz the way cifar-10-python.tar.gz is packed,
since the real archive is 163 MB; its MD5 is passed as the expected one.
"""

from __future__ import annotations

import functools
import hashlib
import http.server
import io
import json
import os
import pickle
import pickletools
import shutil
import socket
import struct
import subprocess
import sys
import tarfile
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from harness import dataset
from harness.dataset import (
    BATCHES_DIRNAME,
    CIFAR10_MD5,
    CLASS_NAMES,
    MANIFEST_FILE,
    Dataset,
    arrays_sha256,
    cifar10_root,
    custom_root,
    ensure_synthetic,
    fetch,
    import_archive,
    load,
    pickle2,
    status,
    synthesize,
    synthetic_root,
)
from harness.dataset.synthesis import forget_other_generator, generator_params
from harness.errors import UserError

TRAIN, TEST = 500, 100  # small: the machine running the tests has two shared cores
BATCH_FILES = {"data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4",
               "data_batch_5", "test_batch", "batches.meta"}
DESCRIBE_KEYS = {"kind", "label", "verified", "verification", "name", "train_size",
                 "test_size", "arrays_sha256", "files_sha256", "root", "generator"}
# The original CIFAR-10 files' sizes (ls -l of cifar-10-batches-py/, 10,000 images each).
ORIGINAL_DATA_BATCH_1_BYTES = 31_035_704
ORIGINAL_TEST_BATCH_BYTES = 31_035_623
ORIGINAL_META_BYTES = 158
# arrays_sha256 of the easy set (500 / 100 images, seed 0) as generator version 1 made it
# before difficulties existed: easy images must never change.
EASY_500_100_S0_ARRAYS = "18da9f45c6ac40cb43fc8cd70f5d6d5b9ea3260b7e849cfcb0435580e6d93f2b"
# What Python 2's cPickle at protocol 2 used for CIFAR-10's constructs; nothing else.
PY2_OPCODES = {"PROTO", "EMPTY_DICT", "EMPTY_LIST", "EMPTY_TUPLE", "MARK", "BINPUT",
               "LONG_BINPUT", "SHORT_BINSTRING", "BINSTRING", "BININT1", "BININT2", "BININT",
               "NONE", "NEWFALSE", "NEWTRUE", "TUPLE1", "TUPLE2", "TUPLE3", "TUPLE",
               "GLOBAL", "REDUCE", "BUILD", "APPEND", "APPENDS", "SETITEM", "SETITEMS",
               "STOP"}
NUMPY_GLOBALS = {"numpy.core.multiarray _reconstruct", "numpy ndarray", "numpy dtype"}


def _raw(path: Path) -> dict:
    """A batch file read the way every CIFAR-10 tutorial reads it."""
    with path.open("rb") as fh:
        return pickle.load(fh, encoding="bytes")


def _md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes(), usedforsecurity=False).hexdigest()


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _make_archive(source_root: Path, archive: Path) -> Path:
    """Pack ``source_root/cifar-10-batches-py`` like cifar-10-python.tar.gz is packed."""
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(source_root / BATCHES_DIRNAME, arcname=BATCHES_DIRNAME)
    return archive


def _entries(directory: Path) -> set[str]:
    """Every name in ``directory``, hidden ones included (to catch leftovers)."""
    return {p.name for p in directory.iterdir()} if directory.exists() else set()


def _unmark(root: Path) -> Path:
    """Make a generated set look like the official one: no marker, no manifest."""
    meta_path = root / BATCHES_DIRNAME / "batches.meta"
    meta = _raw(meta_path)
    del meta[b"harness_synthetic"]
    meta_path.write_bytes(pickle2.dumps(meta))
    (root / MANIFEST_FILE).unlink(missing_ok=True)
    return root


def _change_one_pixel(path: Path) -> None:
    """Rewrite a batch, still valid and in the originals' dialect, with one pixel changed."""
    batch = _raw(path)
    batch[b"data"][0, 0] ^= 0xFF
    path.write_bytes(pickle2.dumps(batch))


@pytest.fixture(scope="module")
def synth_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return synthesize(tmp_path_factory.mktemp("synth") / "s0", train_size=TRAIN,
                      test_size=TEST, seed=0)


@pytest.fixture(scope="module")
def hard_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return synthesize(tmp_path_factory.mktemp("hard") / "s0", train_size=TRAIN,
                      test_size=TEST, seed=0, difficulty="cifar-like")


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The directory the test HTTP server serves: the archives below."""
    return tmp_path_factory.mktemp("dl")


@pytest.fixture(scope="module")
def archive(synth_root: Path, served: Path) -> Path:
    """A generated set (synthetic marker kept) packed as an archive."""
    return _make_archive(synth_root, served / "cifar-10-python.tar.gz")


@pytest.fixture(scope="module")
def official_archive(synth_root: Path, served: Path,
                     tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A stand-in for cifar-10-python.tar.gz: CIFAR-10's format, no synthetic marker."""
    copy = tmp_path_factory.mktemp("official") / "src"
    shutil.copytree(synth_root, copy)
    return _make_archive(_unmark(copy), served / "official.tar.gz")


@pytest.fixture
def http_url(served: Path, archive: Path, official_archive: Path) -> Iterator[str]:
    """A real HTTP server on 127.0.0.1 serving both archives."""

    class QuietHandler(http.server.SimpleHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            pass

    handler = functools.partial(QuietHandler, directory=str(served))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def _closed_port() -> int:
    """A local port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# --------------------------------------------------------------------------- on-disk format


@pytest.mark.parametrize("difficulty", ["easy", "cifar-like"])
def test_generated_files_have_the_originals_types(synth_root: Path, hard_root: Path,
                                                  difficulty: str) -> None:
    root = synth_root if difficulty == "easy" else hard_root
    batches = root / BATCHES_DIRNAME
    assert _entries(batches) == BATCH_FILES
    assert _entries(root) == {BATCHES_DIRNAME, MANIFEST_FILE}
    for name in BATCH_FILES - {"batches.meta"}:
        assert (batches / name).read_bytes()[:2] == b"\x80\x02", "pickle protocol 2"
        batch = _raw(batches / name)
        assert set(batch) == {b"batch_label", b"labels", b"data", b"filenames"}
        n = TEST if name == "test_batch" else TRAIN // 5
        assert type(batch[b"batch_label"]) is bytes
        assert type(batch[b"data"]) is np.ndarray
        assert batch[b"data"].dtype == np.uint8 and batch[b"data"].shape == (n, 3072)
        assert batch[b"data"].flags.c_contiguous
        assert type(batch[b"labels"]) is list and len(batch[b"labels"]) == n
        assert all(type(label) is int and 0 <= label <= 9 for label in batch[b"labels"])
        assert type(batch[b"filenames"]) is list and len(batch[b"filenames"]) == n
        assert all(type(f) is bytes and f.endswith(b".png") for f in batch[b"filenames"])
    assert _raw(batches / "data_batch_2")[b"batch_label"] == b"training batch 2 of 5"
    assert _raw(batches / "test_batch")[b"batch_label"] == b"testing batch 1 of 1"
    meta = _raw(batches / "batches.meta")
    assert set(meta) == {b"label_names", b"num_cases_per_batch", b"num_vis",
                         b"harness_synthetic"}
    assert meta[b"label_names"] == [name.encode() for name in CLASS_NAMES]
    assert type(meta[b"num_vis"]) is int and meta[b"num_vis"] == 3072
    assert meta[b"num_cases_per_batch"] == TRAIN // 5
    assert meta[b"harness_synthetic"] == {
        b"name": b"harness-shapes", b"version": 1, b"difficulty": difficulty.encode(),
        b"seed": 0, b"train_size": TRAIN, b"test_size": TEST,
    }


@pytest.mark.parametrize("difficulty", ["easy", "cifar-like"])
def test_pickles_use_only_python2_constructs(synth_root: Path, hard_root: Path,
                                             difficulty: str) -> None:
    root = synth_root if difficulty == "easy" else hard_root
    for name in BATCH_FILES:
        ops = list(pickletools.genops((root / BATCHES_DIRNAME / name).read_bytes()))
        names = {op.name for op, _, _ in ops}
        assert names <= PY2_OPCODES, f"{name}: {names - PY2_OPCODES}"
        globals_ = {arg for op, arg, _ in ops if op.name == "GLOBAL"}
        assert globals_ <= NUMPY_GLOBALS, name
        assert not any("_codecs" in str(arg) for op, arg, _ in ops if op.name == "GLOBAL")
        if name != "batches.meta":
            assert globals_ == NUMPY_GLOBALS
            pixels = [arg for op, arg, _ in ops if op.name == "BINSTRING"]
            n = TEST if name == "test_batch" else TRAIN // 5
            assert [len(p) for p in pixels] == [n * 3072], "raw pixels as one Python 2 str"


def test_keras_reads_every_generated_file(synth_root: Path, hard_root: Path) -> None:
    """Keras' own CIFAR-10 reader (what keras.datasets.cifar10.load_data calls) reads our
    files and gets the arrays our loader gets; batches.meta through its unpickler too."""
    from keras.src.datasets.cifar import load_batch
    from keras.src.datasets.npz_utils import RestrictedUnpickler

    for root in (synth_root, hard_root):
        ds = load(root)
        batches = root / BATCHES_DIRNAME
        parts = [load_batch(str(batches / f"data_batch_{i}")) for i in range(1, 6)]
        x_train = np.concatenate([x for x, _ in parts]).transpose(0, 2, 3, 1)
        y_train = np.concatenate([np.asarray(y) for _, y in parts])
        x_test, y_test = load_batch(str(batches / "test_batch"))
        np.testing.assert_array_equal(x_train, ds.x_train)
        np.testing.assert_array_equal(y_train, ds.y_train)
        np.testing.assert_array_equal(x_test.transpose(0, 2, 3, 1), ds.x_test)
        np.testing.assert_array_equal(np.asarray(y_test), ds.y_test)
        with (batches / "batches.meta").open("rb") as fh:
            meta = RestrictedUnpickler(fh, encoding="bytes").load()
        assert meta[b"num_vis"] == 3072


def test_file_sizes_match_the_originals(tmp_path: Path) -> None:
    """A 10,000-image batch is within 0.1% of the original's size, and the writer gives
    CIFAR-10's own batches.meta (without our marker) its original 158 bytes."""
    root = synthesize(tmp_path / "s", train_size=5, test_size=10_000)
    size = (root / BATCHES_DIRNAME / "test_batch").stat().st_size
    for original in (ORIGINAL_TEST_BATCH_BYTES, ORIGINAL_DATA_BATCH_1_BYTES):
        assert abs(size - original) / original < 0.001, (size, original)
    meta = {b"num_cases_per_batch": 10000, b"label_names": [n.encode() for n in CLASS_NAMES],
            b"num_vis": 3072}
    assert len(pickle2.dumps(meta)) == ORIGINAL_META_BYTES
    # What Python 3's pickler writes instead (the _codecs form) is ~10% larger.
    batch = _raw(root / BATCHES_DIRNAME / "test_batch")
    assert len(pickle.dumps(batch, protocol=2)) > 1.08 * size


def test_pickle2_refuses_what_the_originals_never_held() -> None:
    for value in (1.5, np.zeros(3, np.float32), np.zeros((2, 2), np.uint8).T, 2**40, {1, 2}):
        with pytest.raises(TypeError):
            pickle2.dumps({b"x": value})
    many = {b"labels": list(range(2500)), b"one": [7], b"names": [b"a" * 300] * 3}
    assert pickle.loads(pickle2.dumps(many), encoding="bytes") == many


def test_reads_files_older_harness_versions_wrote(tmp_path: Path) -> None:
    """Before this writer, files were Python 3 pickles (bytes as _codecs.encode) and the
    marker had str keys and no difficulty: they still load, as the same easy data."""
    root = synthesize(tmp_path / "s", train_size=50, test_size=10)
    expected = load(root)
    for name in BATCH_FILES:
        path = root / BATCHES_DIRNAME / name
        content = _raw(path)
        if name == "batches.meta":
            content[b"harness_synthetic"] = {
                "name": "harness-shapes", "version": 1, "seed": 0, "train_size": 50,
                "test_size": 10}
        path.write_bytes(pickle.dumps(content, protocol=2))
        assert name == "batches.meta" or b"c_codecs\nencode\n" in path.read_bytes()
    (root / MANIFEST_FILE).unlink()
    ds = load(root)
    np.testing.assert_array_equal(ds.x_train, expected.x_train)
    np.testing.assert_array_equal(ds.y_test, expected.y_test)
    assert ds.arrays_sha256 == expected.arrays_sha256
    assert ds.generator == expected.generator
    assert ds.verified and ds.label == "synthetic (easy)"
    assert "no manifest.json" in ds.verification


class _Python2StylePickler(pickle._Pickler):
    """An independent Python-2-style writer: every str and bytes as a Python 2 ``str``
    (BINSTRING), numpy 1's module name; ``pickle.load(encoding="bytes")`` turns those
    into bytes, so keys, label names and numpy's dtype strings all arrive as bytes."""

    dispatch = pickle._Pickler.dispatch.copy()

    def _save_py2_str(self, obj: str | bytes) -> None:
        data = obj.encode("latin-1") if isinstance(obj, str) else obj
        if len(data) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(data)]) + data)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(data)) + data)
        self.memoize(obj)

    dispatch[str] = _save_py2_str
    dispatch[bytes] = _save_py2_str


def _python2_style_dumps(obj: object) -> bytes:
    buffer = io.BytesIO()
    _Python2StylePickler(buffer, protocol=2).dump(obj)
    return buffer.getvalue().replace(b"cnumpy._core.multiarray\n", b"cnumpy.core.multiarray\n")


def test_loads_python2_numpy1_style_pickles(tmp_path: Path) -> None:
    root = synthesize(tmp_path / "s", train_size=50, test_size=10)
    expected = load(root)
    for name in BATCH_FILES:
        path = root / BATCHES_DIRNAME / name
        rewritten = _python2_style_dumps(_raw(path))
        assert b"_codecs" not in rewritten
        path.write_bytes(rewritten)
    ds = load(root)
    np.testing.assert_array_equal(ds.x_train, expected.x_train)
    np.testing.assert_array_equal(ds.y_test, expected.y_test)
    assert ds.generator == expected.generator  # bytes keys and values decoded again


# --------------------------------------------------------------------------- generation


def test_load_synthetic(synth_root: Path) -> None:
    ds = load(synth_root)
    assert isinstance(ds, Dataset)
    assert ds.kind == "synthetic" and ds.root == synth_root
    assert ds.x_train.shape == (TRAIN, 32, 32, 3) and ds.x_test.shape == (TEST, 32, 32, 3)
    assert ds.y_train.shape == (TRAIN,) and ds.y_test.shape == (TEST,)
    for array in (ds.x_train, ds.y_train, ds.x_test, ds.y_test):
        assert array.dtype == np.uint8 and array.flags.c_contiguous
    assert np.bincount(ds.y_train, minlength=10).tolist() == [TRAIN // 10] * 10  # balanced
    assert np.bincount(ds.y_test, minlength=10).tolist() == [TEST // 10] * 10
    assert ds.train_size == TRAIN and ds.test_size == TEST
    described = ds.describe()
    assert set(described) == DESCRIBE_KEYS
    json.dumps(described)  # JSON-ready
    assert described == {
        "kind": "synthetic", "label": "synthetic (easy)", "verified": True,
        "verification": "generator parameters and manifest.json match the files",
        "name": None, "train_size": TRAIN, "test_size": TEST,
        "arrays_sha256": EASY_500_100_S0_ARRAYS,
        "files_sha256": {name: _sha256(synth_root / BATCHES_DIRNAME / name)
                         for name in BATCH_FILES},
        "root": str(synth_root),
        "generator": {"name": "harness-shapes", "version": 1, "difficulty": "easy",
                      "seed": 0, "train_size": TRAIN, "test_size": TEST},
    }
    assert load(synth_root / BATCHES_DIRNAME).root == synth_root  # the inner dir works too


def test_load_converts_channel_planar_rows_to_nhwc(synth_root: Path) -> None:
    ds = load(synth_root)
    first = _raw(synth_root / BATCHES_DIRNAME / "data_batch_1")[b"data"][0]
    last = _raw(synth_root / BATCHES_DIRNAME / "test_batch")[b"data"][-1]
    for row, image in ((first, ds.x_train[0]), (last, ds.x_test[-1])):
        for channel in range(3):  # 1024 R, then 1024 G, then 1024 B, each row-major
            plane = row[channel * 1024:(channel + 1) * 1024].reshape(32, 32)
            np.testing.assert_array_equal(image[:, :, channel], plane)


@pytest.mark.parametrize("difficulty", ["easy", "cifar-like"])
def test_synthesize_is_deterministic_per_seed(synth_root: Path, hard_root: Path,
                                              tmp_path: Path, difficulty: str) -> None:
    base_root = synth_root if difficulty == "easy" else hard_root
    again = synthesize(tmp_path / "again", train_size=TRAIN, test_size=TEST, seed=0,
                       difficulty=difficulty)
    for name in BATCH_FILES:
        assert (again / BATCHES_DIRNAME / name).read_bytes() == \
            (base_root / BATCHES_DIRNAME / name).read_bytes(), name
    other = load(synthesize(tmp_path / "other", train_size=TRAIN, test_size=TEST, seed=1,
                            difficulty=difficulty))
    base = load(base_root)
    assert not np.array_equal(other.x_train, base.x_train)
    assert not np.array_equal(other.x_test, base.x_test)
    assert other.generator is not None and other.generator["seed"] == 1


def test_easy_images_are_those_of_generator_version_1(synth_root: Path) -> None:
    assert load(synth_root).arrays_sha256 == EASY_500_100_S0_ARRAYS


@pytest.mark.parametrize("difficulty", ["easy", "cifar-like"])
def test_images_have_noise_and_variety(synth_root: Path, hard_root: Path,
                                       difficulty: str) -> None:
    ds = load(synth_root if difficulty == "easy" else hard_root)
    # Not a constant template per class: images of one class differ, pixels use the range.
    same_class = ds.x_train[ds.y_train == 3][:20].astype(np.int16)
    assert np.abs(same_class - same_class.mean(axis=0)).mean() > 10
    assert ds.x_train.min() < 20 and ds.x_train.max() > 235
    assert not np.array_equal(ds.x_train[:TEST], ds.x_test)  # test images are new images
    assert np.bincount(ds.y_train, minlength=10).tolist() == [TRAIN // 10] * 10


def test_difficulties_differ_and_are_labelled(synth_root: Path, hard_root: Path) -> None:
    easy, hard = load(synth_root), load(hard_root)
    assert not np.array_equal(easy.x_train, hard.x_train)
    assert hard.label == "synthetic (cifar-like)" and hard.verified
    assert hard.generator == generator_params(TRAIN, TEST, 0, "cifar-like")
    # Easy: one class shape on a dark background, so a class's mean image is a clear blob;
    # cifar-like: objects vary so much that class means are far closer to each other.
    def spread(ds: Dataset) -> float:
        means = np.stack([ds.x_train[ds.y_train == c].mean(axis=0) for c in range(10)])
        return float(np.abs(means - means.mean(axis=0)).mean())
    assert spread(hard) < 0.6 * spread(easy)


def test_uneven_train_size_is_split_evenly(tmp_path: Path) -> None:
    root = synthesize(tmp_path / "odd", train_size=13, test_size=3, seed=2,
                      difficulty="cifar-like")
    sizes = [len(_raw(root / BATCHES_DIRNAME / f"data_batch_{i}")[b"labels"])
             for i in range(1, 6)]
    assert sizes == [3, 3, 3, 2, 2]
    ds = load(root)
    assert (ds.train_size, ds.test_size) == (13, 3)


@pytest.mark.parametrize(("kwargs", "key"), [
    ({"train_size": 4}, "train_size"), ({"test_size": 0}, "test_size"), ({"seed": -1}, "seed"),
    ({"train_size": 10.0}, "train_size"), ({"difficulty": "hard"}, "difficulty"),
])
def test_synthesize_refuses_bad_parameters(tmp_path: Path, kwargs: dict, key: str) -> None:
    with pytest.raises(UserError) as caught:
        synthesize(tmp_path / "bad", **{"train_size": 10, "test_size": 10, **kwargs})
    assert caught.value.key == key
    assert not (tmp_path / "bad").exists()


def test_synthetic_roots_per_difficulty(tmp_path: Path) -> None:
    assert synthetic_root(tmp_path, 50000, 10000, 0) == tmp_path / "synthetic-50000-10000-s0"
    assert synthetic_root(tmp_path, 50000, 10000, 0, "easy") == \
        tmp_path / "synthetic-50000-10000-s0"
    assert synthetic_root(tmp_path, 50000, 10000, 0, "cifar-like") == \
        tmp_path / "synthetic-cifar-like-50000-10000-s0"


def test_ensure_synthetic_reuses_and_repairs(tmp_path: Path) -> None:
    root = ensure_synthetic(tmp_path, 50, 10, 7)
    assert root == synthetic_root(tmp_path, 50, 10, 7) == tmp_path / "synthetic-50-10-s7"
    meta = root / BATCHES_DIRNAME / "batches.meta"
    first_write = meta.stat().st_mtime_ns
    assert ensure_synthetic(tmp_path, 50, 10, 7) == root
    assert meta.stat().st_mtime_ns == first_write, "a complete data set is reused"
    (root / BATCHES_DIRNAME / "data_batch_4").write_bytes(b"garbage")
    ensure_synthetic(tmp_path, 50, 10, 7)
    assert load(root).train_size == 50
    _change_one_pixel(root / BATCHES_DIRNAME / "test_batch")  # valid, but not what it was
    assert not load(root).verified
    ensure_synthetic(tmp_path, 50, 10, 7)
    assert load(root).verified, "a modified file is generated again"


def test_ensure_synthetic_per_difficulty(tmp_path: Path) -> None:
    easy = ensure_synthetic(tmp_path, 50, 10, 0)
    hard = ensure_synthetic(tmp_path, 50, 10, 0, difficulty="cifar-like")
    assert hard == tmp_path / "synthetic-cifar-like-50-10-s0" != easy
    assert load(hard).generator["difficulty"] == "cifar-like"
    assert load(easy).generator["difficulty"] == "easy"


def test_interrupted_synthesis_is_incomplete(tmp_path: Path) -> None:
    root = synthesize(tmp_path / "synthetic-50-10-s0", train_size=50, test_size=10)
    (root / BATCHES_DIRNAME / "batches.meta").unlink()  # as if killed before the last write
    with pytest.raises(UserError) as caught:
        load(root)
    message = str(caught.value)
    assert "batches.meta" in message and "incomplete" in message
    assert "python -m harness data synth" in message


def test_resynthesis_with_other_parameters_drops_the_old_meta_first(tmp_path: Path) -> None:
    root = synthesize(tmp_path / "s", train_size=50, test_size=10, seed=0)
    meta = root / BATCHES_DIRNAME / "batches.meta"
    forget_other_generator(meta, generator_params(50, 10, 0))
    assert meta.exists(), "same parameters: the batches will be identical, keep it"
    forget_other_generator(meta, generator_params(50, 10, 0, "cifar-like"))
    assert not meta.exists()


# --------------------------------------------------------------------------- identity


def test_arrays_sha256_is_the_documented_recipe(synth_root: Path) -> None:
    ds = load(synth_root)
    hasher = hashlib.sha256()
    for name in ("x_train", "y_train", "x_test", "y_test"):
        array = getattr(ds, name)
        hasher.update(f"{name} |u1 {array.shape}\n".encode() + array.tobytes())
    assert ds.arrays_sha256 == hasher.hexdigest()
    y_test = ds.y_test.copy()
    y_test[0] = (y_test[0] + 1) % 10
    assert arrays_sha256(ds.x_train, ds.y_train, ds.x_test, y_test) != ds.arrays_sha256
    # Same bytes, other shapes: another checksum.
    assert arrays_sha256(ds.x_train.reshape(-1, 3072), ds.y_train, ds.x_test, ds.y_test) \
        != ds.arrays_sha256


def test_modified_synthetic_file_is_unverified(tmp_path: Path) -> None:
    root = synthesize(tmp_path / "s", train_size=50, test_size=10)
    _change_one_pixel(root / BATCHES_DIRNAME / "data_batch_3")
    ds = load(root)
    assert not ds.verified and ds.label == "synthetic (easy, unverified)"
    assert ds.verification == "data_batch_3 differs from manifest.json"


def test_synthetic_folder_must_match_its_parameters(tmp_path: Path) -> None:
    root = ensure_synthetic(tmp_path, 50, 10, 7)
    renamed = root.rename(tmp_path / "synthetic-50-10-s8")
    ds = load(renamed)
    assert not ds.verified and "folder name" in ds.verification
    assert ensure_synthetic(tmp_path, 50, 10, 8) == renamed
    assert load(renamed).verified and load(renamed).generator["seed"] == 8


def test_import_writes_a_manifest_and_loads_verified(official_archive: Path,
                                                     tmp_path: Path) -> None:
    root = import_archive(official_archive, tmp_path / "data", md5=_md5(official_archive))
    assert root == cifar10_root(tmp_path / "data")
    assert _entries(root) == {BATCHES_DIRNAME, MANIFEST_FILE}
    manifest = json.loads((root / MANIFEST_FILE).read_text())
    assert manifest["format"] == "harness.dataset-manifest" and manifest["version"] == 1
    assert manifest["kind"] == "cifar10" and manifest["name"] is None
    assert manifest["archive"]["md5"] == manifest["archive"]["expected_md5"] == \
        _md5(official_archive)
    assert manifest["archive"]["sha256"] == _sha256(official_archive)
    assert manifest["archive"]["file"] == official_archive.name
    assert manifest["files_sha256"] == {name: _sha256(root / BATCHES_DIRNAME / name)
                                        for name in BATCH_FILES}
    ds = load(root)
    assert ds.kind == "cifar10" and ds.label == "CIFAR-10" and ds.verified
    assert _md5(official_archive) in ds.verification
    assert ds.files_sha256 == manifest["files_sha256"]
    assert ds.describe()["generator"] is None and ds.describe()["name"] is None


def test_hand_filled_cifar10_folder_is_unverified(synth_root: Path, tmp_path: Path) -> None:
    root = cifar10_root(tmp_path)
    shutil.copytree(synth_root, root)
    _unmark(root)
    ds = load(root)
    assert ds.kind == "cifar10" and not ds.verified
    assert ds.label == "CIFAR-10 (unverified)"
    assert ds.verification.startswith("no manifest.json")


def test_modified_cifar10_file_is_unverified(official_archive: Path, tmp_path: Path) -> None:
    root = import_archive(official_archive, tmp_path, md5=_md5(official_archive))
    _change_one_pixel(root / BATCHES_DIRNAME / "test_batch")
    ds = load(root)
    assert ds.label == "CIFAR-10 (unverified)" and not ds.verified
    assert ds.verification == "test_batch differs from manifest.json"
    (root / MANIFEST_FILE).write_text("{not json")
    assert "manifest.json is damaged" in load(root).verification


def test_custom_archive_goes_in_under_its_own_name(official_archive: Path,
                                                   tmp_path: Path) -> None:
    root = import_archive(official_archive, tmp_path, name="my-set")  # no MD5 match needed
    assert root == custom_root(tmp_path, "my-set") == tmp_path / "custom-my-set"
    assert _entries(tmp_path) == {"custom-my-set"}, "the official root is not touched"
    manifest = json.loads((root / MANIFEST_FILE).read_text())
    assert manifest["kind"] == "custom" and manifest["name"] == "my-set"
    assert manifest["archive"]["md5"] == _md5(official_archive)
    assert manifest["archive"]["expected_md5"] is None
    ds = load(root)
    assert ds.kind == "custom" and ds.name == "my-set" and ds.verified
    assert ds.label == "my-set (CIFAR-format, unofficial)"
    assert ds.describe()["label"] == "my-set (CIFAR-format, unofficial)"
    _change_one_pixel(root / BATCHES_DIRNAME / "data_batch_1")
    assert load(root).label == "my-set (CIFAR-format, unofficial, unverified)"


def test_custom_import_checks_an_md5_only_when_given(official_archive: Path,
                                                     tmp_path: Path) -> None:
    with pytest.raises(UserError, match="MD5 checksum mismatch"):
        import_archive(official_archive, tmp_path, name="my-set", md5="0" * 32)
    assert _entries(tmp_path) == set()
    root = import_archive(official_archive, tmp_path, name="my-set", md5=_md5(official_archive))
    manifest = json.loads((root / MANIFEST_FILE).read_text())
    assert manifest["archive"]["expected_md5"] == _md5(official_archive)


def test_generated_set_imported_as_custom_is_custom(archive: Path, tmp_path: Path) -> None:
    ds = load(import_archive(archive, tmp_path, name="gen-0"))
    assert ds.kind == "custom" and ds.generator is None and ds.verified


@pytest.mark.parametrize("name", ["My-Set", "my_set", "-x", "x-", "a--b", "", "../x", "a/b"])
def test_custom_names_are_checked(official_archive: Path, tmp_path: Path, name: str) -> None:
    with pytest.raises(UserError) as caught:
        import_archive(official_archive, tmp_path, name=name)
    assert caught.value.key == "name"
    assert _entries(tmp_path) == set()
    with pytest.raises(UserError):
        custom_root(tmp_path, name)


def test_official_import_refuses_wrong_md5_and_names_the_other_way(
        official_archive: Path, tmp_path: Path) -> None:
    with pytest.raises(UserError) as caught:
        import_archive(official_archive, tmp_path / "data")
    message = str(caught.value)
    assert CIFAR10_MD5 in message and _md5(official_archive) in message
    assert "--name NAME" in message and "unofficial" in message
    assert _entries(tmp_path / "data") == set()


# --------------------------------------------------------------------------- load errors


@pytest.mark.parametrize("damage", ["truncate", "garbage", "empty"])
def test_damaged_batch_is_a_user_error_naming_the_file(tmp_path: Path, damage: str) -> None:
    root = synthesize(tmp_path / "synthetic-50-10-s0", train_size=50, test_size=10)
    path = root / BATCHES_DIRNAME / "data_batch_3"
    content = path.read_bytes()
    path.write_bytes({"truncate": content[: len(content) // 2],
                      "garbage": os.urandom(4096), "empty": b""}[damage])
    with pytest.raises(UserError) as caught:
        load(root)
    assert caught.value.source == str(path)
    assert "data_batch_3" in str(caught.value) and "data synth" in str(caught.value)


def _rewrite_batch(path: Path, **changes: object) -> None:
    batch = _raw(path)
    batch.update({key.encode(): value for key, value in changes.items()})
    path.write_bytes(pickle.dumps(batch, protocol=2))


@pytest.mark.parametrize(("changes", "key"), [
    ({"labels": [10] * 10}, "labels"),
    ({"labels": [1] * 9}, "labels"),
    ({"data": np.zeros((10, 3071), np.uint8)}, "data"),
    ({"data": np.zeros((10, 3072), np.float32)}, "data"),
])
def test_invalid_batch_contents_are_refused(tmp_path: Path, changes: dict, key: str) -> None:
    root = synthesize(tmp_path / "s", train_size=50, test_size=10)
    _rewrite_batch(root / BATCHES_DIRNAME / "test_batch", **changes)
    with pytest.raises(UserError) as caught:
        load(root)
    assert caught.value.key == key
    assert caught.value.source == str(root / BATCHES_DIRNAME / "test_batch")


def test_str_keys_are_accepted(tmp_path: Path) -> None:
    root = synthesize(tmp_path / "s", train_size=50, test_size=10)
    path = root / BATCHES_DIRNAME / "test_batch"
    path.write_bytes(pickle.dumps({k.decode(): v for k, v in _raw(path).items()}, protocol=4))
    assert load(root).test_size == 10


def test_pickles_that_import_code_are_refused(tmp_path: Path) -> None:
    root = synthesize(tmp_path / "s", train_size=50, test_size=10)
    path = root / BATCHES_DIRNAME / "test_batch"
    _rewrite_batch(path, labels=os.getcwd)  # any global outside numpy: could be os.system
    with pytest.raises(UserError, match="refusing to load global"):
        load(root)


def test_missing_data_set(tmp_path: Path) -> None:
    with pytest.raises(UserError) as caught:
        load(cifar10_root(tmp_path))
    assert "no data set here" in str(caught.value)
    assert "data fetch" in str(caught.value) and "data import" in str(caught.value)


def test_missing_test_batch(tmp_path: Path) -> None:
    root = synthesize(tmp_path / "s", train_size=50, test_size=10)
    (root / BATCHES_DIRNAME / "test_batch").unlink()
    with pytest.raises(UserError, match="test_batch"):
        load(root)


# --------------------------------------------------------------------------- import


def test_import_archive_with_its_md5(archive: Path, tmp_path: Path) -> None:
    root = import_archive(archive, tmp_path / "data", md5=_md5(archive))
    assert root == cifar10_root(tmp_path / "data")
    ds = load(root)
    assert ds.kind == "synthetic" and ds.train_size == TRAIN and ds.root == root
    assert ds.verified  # the generator's parameters and the manifest both match
    assert _entries(tmp_path / "data") == {"cifar10"}, "no staging directory left"
    assert oct(root.stat().st_mode & 0o777) == oct(0o755)


def test_import_replaces_a_broken_data_set(archive: Path, tmp_path: Path) -> None:
    broken = cifar10_root(tmp_path) / BATCHES_DIRNAME
    broken.mkdir(parents=True)
    (broken / "data_batch_1").write_bytes(b"half a file")
    import_archive(archive, tmp_path, md5=_md5(archive))
    assert load(cifar10_root(tmp_path)).test_size == TEST
    assert _entries(tmp_path) == {"cifar10"}


def test_import_missing_archive_names_the_path(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "cifar-10-python.tar.gz"
    with pytest.raises(UserError) as caught:
        import_archive(missing, tmp_path / "data")
    assert str(missing) in str(caught.value)


def _tar_with(path: Path, member: tarfile.TarInfo, content: bytes = b"x") -> Path:
    with tarfile.open(path, "w:gz") as tar:
        if member.isfile():
            member.size = len(content)
            tar.addfile(member, io.BytesIO(content))
        else:
            tar.addfile(member)
    return path


def _member(name: str, type_: bytes = tarfile.REGTYPE, link: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = type_, link
    return info


@pytest.mark.parametrize("custom", [False, True])
@pytest.mark.parametrize(("member", "match"), [
    (_member(f"{BATCHES_DIRNAME}/../../evil"), "unsafe"),
    (_member("../evil"), "unsafe"),
    (_member("/tmp/evil"), "unsafe"),
    (_member(f"{BATCHES_DIRNAME}/link", tarfile.SYMTYPE, "/etc/passwd"), "no links"),
    (_member("elsewhere/data_batch_1"), "outside"),
])
def test_unsafe_archive_is_refused(tmp_path: Path, member: tarfile.TarInfo, match: str,
                                   custom: bool) -> None:
    evil = _tar_with(tmp_path / "evil.tar.gz", member)
    data_dir = tmp_path / "a" / "data"
    with pytest.raises(UserError, match=match):
        if custom:
            import_archive(evil, data_dir, name="evil")
        else:
            import_archive(evil, data_dir, md5=_md5(evil))
    assert _entries(data_dir) == set(), "nothing extracted, no staging directory left"
    assert _entries(tmp_path) == {"evil.tar.gz", "a"}


def test_archive_that_is_not_a_complete_data_set_is_refused(tmp_path: Path) -> None:
    partial = _tar_with(tmp_path / "p.tar.gz", _member(f"{BATCHES_DIRNAME}/data_batch_1"))
    with pytest.raises(UserError, match=r"batches\.meta"):
        import_archive(partial, tmp_path / "data", md5=_md5(partial))
    with pytest.raises(UserError, match=r"batches\.meta"):
        import_archive(partial, tmp_path / "data", name="partial")
    assert _entries(tmp_path / "data") == set()


# --------------------------------------------------------------------------- fetch


def test_fetch_over_http(official_archive: Path, http_url: str, tmp_path: Path) -> None:
    seen: list[tuple[int, int | None]] = []
    url = f"{http_url}/{official_archive.name}"
    root = fetch(tmp_path, url=url, md5=_md5(official_archive),
                 progress=lambda done, total: seen.append((done, total)))
    assert root == cifar10_root(tmp_path)
    ds = load(root)
    assert ds.train_size == TRAIN and ds.label == "CIFAR-10" and ds.verified
    manifest = json.loads((root / MANIFEST_FILE).read_text())
    assert manifest["archive"]["url"] == url
    assert manifest["archive"]["md5"] == _md5(official_archive)
    assert manifest["archive"]["sha256"] == _sha256(official_archive)
    assert _entries(tmp_path) == {"cifar10"}, "the downloaded archive is deleted"
    size = official_archive.stat().st_size
    assert seen and seen[-1] == (size, size)
    # Verified and complete: no network needed any more.
    assert fetch(tmp_path, url=f"http://127.0.0.1:{_closed_port()}/x.tar.gz") == root


def test_fetch_replaces_an_unverified_folder(official_archive: Path, http_url: str,
                                             synth_root: Path, tmp_path: Path) -> None:
    root = cifar10_root(tmp_path)
    shutil.copytree(synth_root, root)
    _unmark(root)  # complete, readable, but no manifest: filled by hand
    with pytest.raises(UserError, match="cannot download"):
        fetch(tmp_path, url=f"http://127.0.0.1:{_closed_port()}/x.tar.gz", timeout_s=5)
    assert load(root).label == "CIFAR-10 (unverified)", "a failed fetch leaves it as it was"
    fetch(tmp_path, url=f"{http_url}/{official_archive.name}", md5=_md5(official_archive))
    assert load(root).label == "CIFAR-10"


def test_fetch_refused_connection_names_both_ways(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{_closed_port()}/cifar-10-python.tar.gz"
    with pytest.raises(UserError) as caught:
        fetch(tmp_path / "data", url=url, timeout_s=5)
    message = str(caught.value)
    assert "python -m harness data fetch" in message
    assert "python -m harness data import PATH/cifar-10-python.tar.gz" in message
    assert url in message
    assert _entries(tmp_path / "data") == set(), "no partial download left"


def test_fetch_timeout(tmp_path: Path) -> None:
    # A socket that listens but never answers: connect succeeds, the first read times out.
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        url = f"http://127.0.0.1:{silent.getsockname()[1]}/cifar-10-python.tar.gz"
        with pytest.raises(UserError, match=r"no answer within 0\.3 s") as caught:
            fetch(tmp_path, url=url, timeout_s=0.3)
    assert "data fetch" in str(caught.value) and "data import" in str(caught.value)
    assert _entries(tmp_path) == set()


def test_fetch_http_error(http_url: str, tmp_path: Path) -> None:
    with pytest.raises(UserError, match="HTTP 404") as caught:
        fetch(tmp_path, url=f"{http_url}/missing.tar.gz", timeout_s=5)
    assert "data import" in str(caught.value)
    assert _entries(tmp_path) == set()


def test_fetch_refuses_wrong_md5(archive: Path, http_url: str, tmp_path: Path) -> None:
    with pytest.raises(UserError) as caught:
        fetch(tmp_path, url=f"{http_url}/{archive.name}")
    assert CIFAR10_MD5 in str(caught.value) and _md5(archive) in str(caught.value)
    assert _entries(tmp_path) == set()


# --------------------------------------------------------------------------- status / paths


def test_status_lists_every_data_set(official_archive: Path, tmp_path: Path) -> None:
    assert status(tmp_path / "absent") == []
    import_archive(official_archive, tmp_path, md5=_md5(official_archive))
    import_archive(official_archive, tmp_path, name="my-set")
    ensure_synthetic(tmp_path, 50, 10, 0)
    ensure_synthetic(tmp_path, 50, 10, 0, difficulty="cifar-like")
    broken = synthesize(synthetic_root(tmp_path, 20, 5, 1), train_size=20, test_size=5, seed=1)
    (broken / BATCHES_DIRNAME / "batches.meta").unlink()
    entries = {Path(e["root"]).name: e for e in status(tmp_path)}
    assert set(entries) == {"cifar10", "custom-my-set", "synthetic-50-10-s0",
                            "synthetic-cifar-like-50-10-s0", "synthetic-20-5-s1"}
    official = entries["cifar10"]
    assert official["ok"] and official["train_size"] == TRAIN
    assert official["label"] == "CIFAR-10" and official["verified"] is True
    custom = entries["custom-my-set"]
    assert custom["ok"] and custom["kind"] == "custom" and custom["name"] == "my-set"
    assert custom["label"] == "my-set (CIFAR-format, unofficial)" and custom["verified"]
    good = entries["synthetic-50-10-s0"]
    assert good["ok"] and good["kind"] == "synthetic" and good["verified"]
    assert (good["train_size"], good["test_size"]) == (50, 10)
    assert good["generator"]["seed"] == 0 and good["label"] == "synthetic (easy)"
    assert entries["synthetic-cifar-like-50-10-s0"]["label"] == "synthetic (cifar-like)"
    bad = entries["synthetic-20-5-s1"]
    assert not bad["ok"] and bad["kind"] == "synthetic" and bad["train_size"] is None
    assert bad["verified"] is False
    assert "batches.meta" in bad["problem"] and "data synth" in bad["fix"]
    _change_one_pixel(cifar10_root(tmp_path) / BATCHES_DIRNAME / "data_batch_2")
    official = {Path(e["root"]).name: e for e in status(tmp_path)}["cifar10"]
    assert official["ok"] and not official["verified"]
    assert official["label"] == "CIFAR-10 (unverified)"
    assert official["verification"] == "data_batch_2 differs from manifest.json"


def test_default_data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("HARNESS_DATA_DIR", raising=False)
    assert dataset.default_data_dir() == tmp_path / "data"
    monkeypatch.setenv("HARNESS_DATA_DIR", str(tmp_path / "elsewhere"))
    assert dataset.default_data_dir() == tmp_path / "elsewhere"


def test_public_api_is_importable() -> None:
    for name in ("load", "Dataset", "default_data_dir", "cifar10_root", "synthetic_root",
                 "custom_root", "ensure_synthetic", "synthesize", "fetch", "import_archive",
                 "status", "BATCHES_DIRNAME", "TRAIN_FILES", "TEST_FILE", "META_FILE",
                 "CIFAR10_URL", "DATA_DIR_ENV"):
        assert hasattr(dataset, name), name


def test_module_does_not_import_tensorflow() -> None:
    code = "import sys, harness.dataset; sys.exit('tensorflow' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], cwd=Path(__file__).parents[1],
                            capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr


# --------------------------------------------------------------------------- learnability


def _research_cnn():
    import keras  # the worker extra: a missing TensorFlow must fail here, not skip
    layers = keras.layers
    model = keras.Sequential([
        keras.Input((32, 32, 3)),
        layers.Conv2D(32, 3, activation="relu"), layers.MaxPooling2D(2),
        layers.Conv2D(64, 3, activation="relu"), layers.MaxPooling2D(2),
        layers.Conv2D(128, 3, activation="relu"), layers.MaxPooling2D(2),
        layers.Flatten(), layers.Dense(256, activation="relu"),
        layers.Dense(10, activation="softmax"),
    ])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    return model


@pytest.mark.slow
def test_research_cnn_learns_easy_data_in_two_epochs(tmp_path: Path) -> None:
    """Easy data is a smoke test: the research model learns it almost at once."""
    import keras
    ds = load(synthesize(tmp_path / "s", train_size=3000, test_size=600, seed=0))
    keras.utils.set_random_seed(0)
    model = _research_cnn()
    x_test = ds.x_test / 255.0
    untrained = model.evaluate(x_test, ds.y_test, verbose=0)[1]
    model.fit(ds.x_train / 255.0, ds.y_train, batch_size=64, epochs=2, verbose=0)
    accuracy = model.evaluate(x_test, ds.y_test, verbose=0)[1]
    assert untrained < 0.3
    assert accuracy >= 0.90, f"test accuracy after 2 epochs: {accuracy:.3f}"


@pytest.mark.slow
def test_research_cnn_learns_cifar_like_data_gradually(tmp_path: Path) -> None:
    """cifar-like data is learnt, but not at once (the full-size curve, 50,000 images and
    10 epochs, is what tests/tools/difficulty_check.py checks; this is a small sample)."""
    import keras
    ds = load(synthesize(tmp_path / "s", train_size=8000, test_size=1000, seed=0,
                         difficulty="cifar-like"))
    keras.utils.set_random_seed(0)
    model = _research_cnn()
    history = model.fit(ds.x_train / 255.0, ds.y_train, batch_size=64, epochs=4, verbose=0,
                        validation_data=(ds.x_test / 255.0, ds.y_test)).history
    val = history["val_accuracy"]
    assert 0.15 < val[0] < 0.45, val  # above chance, far from learnt
    assert val[-1] >= val[0] + 0.05, val  # still learning
    assert val[-1] < 0.75, val
