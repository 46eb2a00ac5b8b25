"""Tests for harness.dataset: real files in tmp_path, a real HTTP server, a real Keras model.

Nothing is mocked. The "real" CIFAR-10 in these tests is a small synthetic data set packed
into a tar.gz the way cifar-10-python.tar.gz is packed, since the real archive is 163 MB.
"""

from __future__ import annotations

import functools
import hashlib
import http.server
import io
import os
import pickle
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
    Dataset,
    cifar10_root,
    ensure_synthetic,
    fetch,
    import_archive,
    load,
    status,
    synthesize,
    synthetic_root,
)
from harness.errors import UserError

TRAIN, TEST = 500, 100  # small: the machine running the tests has two shared cores
BATCH_FILES = {"data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4",
               "data_batch_5", "test_batch", "batches.meta"}


def _raw(path: Path) -> dict:
    """A batch file read the way every CIFAR-10 tutorial reads it."""
    with path.open("rb") as fh:
        return pickle.load(fh, encoding="bytes")


def _md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes(), usedforsecurity=False).hexdigest()


def _make_archive(source_root: Path, archive: Path) -> Path:
    """Pack ``source_root/cifar-10-batches-py`` like cifar-10-python.tar.gz is packed."""
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(source_root / BATCHES_DIRNAME, arcname=BATCHES_DIRNAME)
    return archive


def _entries(directory: Path) -> set[str]:
    """Every name in ``directory``, hidden ones included (to catch leftovers)."""
    return {p.name for p in directory.iterdir()} if directory.exists() else set()


@pytest.fixture(scope="module")
def synth_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return synthesize(tmp_path_factory.mktemp("synth") / "s0", train_size=TRAIN,
                      test_size=TEST, seed=0)


@pytest.fixture(scope="module")
def archive(synth_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _make_archive(synth_root, tmp_path_factory.mktemp("dl") / "cifar-10-python.tar.gz")


@pytest.fixture
def http_url(archive: Path) -> Iterator[str]:
    """A real HTTP server on 127.0.0.1 serving the archive's directory."""

    class QuietHandler(http.server.SimpleHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            pass

    handler = functools.partial(QuietHandler, directory=str(archive.parent))
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


# --------------------------------------------------------------------------- synthesize


def test_synthetic_files_are_cifar10_format(synth_root: Path) -> None:
    batches = synth_root / BATCHES_DIRNAME
    assert _entries(batches) == BATCH_FILES
    for name in BATCH_FILES - {"batches.meta"}:
        assert (batches / name).read_bytes()[:2] == b"\x80\x02", "pickle protocol 2"
        batch = _raw(batches / name)
        assert set(batch) == {b"batch_label", b"labels", b"data", b"filenames"}
        n = TEST if name == "test_batch" else TRAIN // 5
        assert isinstance(batch[b"batch_label"], bytes)
        assert batch[b"data"].dtype == np.uint8 and batch[b"data"].shape == (n, 3072)
        assert isinstance(batch[b"labels"], list) and len(batch[b"labels"]) == n
        assert all(type(label) is int and 0 <= label <= 9 for label in batch[b"labels"])
        assert len(batch[b"filenames"]) == n
        assert all(isinstance(f, bytes) and f.endswith(b".png") for f in batch[b"filenames"])
    assert _raw(batches / "data_batch_2")[b"batch_label"] == b"training batch 2 of 5"
    assert _raw(batches / "test_batch")[b"batch_label"] == b"testing batch 1 of 1"
    meta = _raw(batches / "batches.meta")
    assert set(meta) == {b"label_names", b"num_cases_per_batch", b"num_vis",
                         b"harness_synthetic"}
    assert meta[b"label_names"] == [name.encode() for name in CLASS_NAMES]
    assert meta[b"num_vis"] == 3072 and meta[b"num_cases_per_batch"] == TRAIN // 5
    assert meta[b"harness_synthetic"] == {
        "name": "harness-shapes", "version": dataset.GENERATOR_VERSION, "seed": 0,
        "train_size": TRAIN, "test_size": TEST,
    }


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
    assert ds.describe() == {
        "kind": "synthetic", "train_size": TRAIN, "test_size": TEST, "root": str(synth_root),
        "generator": {"name": "harness-shapes", "version": dataset.GENERATOR_VERSION,
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


def test_synthesize_is_deterministic_per_seed(synth_root: Path, tmp_path: Path) -> None:
    again = synthesize(tmp_path / "again", train_size=TRAIN, test_size=TEST, seed=0)
    for name in BATCH_FILES:
        assert (again / BATCHES_DIRNAME / name).read_bytes() == \
            (synth_root / BATCHES_DIRNAME / name).read_bytes(), name
    other = load(synthesize(tmp_path / "other", train_size=TRAIN, test_size=TEST, seed=1))
    base = load(synth_root)
    assert not np.array_equal(other.x_train, base.x_train)
    assert not np.array_equal(other.x_test, base.x_test)
    assert other.generator is not None and other.generator["seed"] == 1


def test_images_have_noise_and_variety(synth_root: Path) -> None:
    ds = load(synth_root)
    # Not a constant template per class: images of one class differ, pixels use the range.
    same_class = ds.x_train[ds.y_train == 3][:20].astype(np.int16)
    assert np.abs(same_class - same_class.mean(axis=0)).mean() > 10
    assert ds.x_train.min() < 20 and ds.x_train.max() > 235
    assert not np.array_equal(ds.x_train[:TEST], ds.x_test)  # test images are new images


def test_uneven_train_size_is_split_evenly(tmp_path: Path) -> None:
    root = synthesize(tmp_path / "odd", train_size=13, test_size=3, seed=2)
    sizes = [len(_raw(root / BATCHES_DIRNAME / f"data_batch_{i}")[b"labels"])
             for i in range(1, 6)]
    assert sizes == [3, 3, 3, 2, 2]
    ds = load(root)
    assert (ds.train_size, ds.test_size) == (13, 3)


@pytest.mark.parametrize(("train", "test", "seed", "key"),
                         [(4, 10, 0, "train_size"), (10, 0, 0, "test_size"),
                          (10, 10, -1, "seed"), (10.0, 10, 0, "train_size")])
def test_synthesize_refuses_bad_parameters(tmp_path: Path, train, test, seed, key) -> None:
    with pytest.raises(UserError) as caught:
        synthesize(tmp_path / "bad", train_size=train, test_size=test, seed=seed)
    assert caught.value.key == key
    assert not (tmp_path / "bad").exists()


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
    dataset._forget_other_generator(meta, dataset._generator_params(50, 10, 0))
    assert meta.exists(), "same parameters: the batches will be identical, keep it"
    dataset._forget_other_generator(meta, dataset._generator_params(50, 10, 1))
    assert not meta.exists()


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


class _Python2StylePickler(pickle._Pickler):
    """Writes every str and bytes as a Python 2 ``str`` (BINSTRING), as the real CIFAR-10
    files were written by Python 2 with numpy 1; ``pickle.load(encoding="bytes")`` turns
    those into bytes, so keys, label names and numpy's dtype strings all arrive as bytes."""

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
    # numpy 1 (which wrote CIFAR-10) named the module numpy.core, numpy 2 numpy._core.
    return buffer.getvalue().replace(b"cnumpy._core.multiarray\n", b"cnumpy.core.multiarray\n")


def test_loads_python2_numpy1_style_pickles(tmp_path: Path) -> None:
    root = synthesize(tmp_path / "s", train_size=50, test_size=10)
    expected = load(root)
    for name in BATCH_FILES:
        path = root / BATCHES_DIRNAME / name
        rewritten = _python2_style_dumps(_raw(path))
        assert b"_codecs" not in rewritten
        assert name == "batches.meta" or b"cnumpy.core.multiarray\n" in rewritten
        path.write_bytes(rewritten)
    ds = load(root)
    np.testing.assert_array_equal(ds.x_train, expected.x_train)
    np.testing.assert_array_equal(ds.y_test, expected.y_test)
    assert ds.generator == expected.generator  # bytes keys and values decoded again


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
    assert _entries(tmp_path / "data") == {"cifar10"}, "no staging directory left"
    assert oct(root.stat().st_mode & 0o777) == oct(0o755)


def test_import_replaces_a_broken_data_set(archive: Path, tmp_path: Path) -> None:
    broken = cifar10_root(tmp_path) / BATCHES_DIRNAME
    broken.mkdir(parents=True)
    (broken / "data_batch_1").write_bytes(b"half a file")
    import_archive(archive, tmp_path, md5=_md5(archive))
    assert load(cifar10_root(tmp_path)).test_size == TEST
    assert _entries(tmp_path) == {"cifar10"}


def test_import_refuses_wrong_md5(archive: Path, tmp_path: Path) -> None:
    with pytest.raises(UserError) as caught:
        import_archive(archive, tmp_path / "data")
    message = str(caught.value)
    assert CIFAR10_MD5 in message and _md5(archive) in message
    assert _entries(tmp_path / "data") == set()


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


@pytest.mark.parametrize(("member", "match"), [
    (_member(f"{BATCHES_DIRNAME}/../../evil"), "unsafe"),
    (_member("../evil"), "unsafe"),
    (_member("/tmp/evil"), "unsafe"),
    (_member(f"{BATCHES_DIRNAME}/link", tarfile.SYMTYPE, "/etc/passwd"), "no links"),
    (_member("elsewhere/data_batch_1"), "outside"),
])
def test_unsafe_archive_is_refused(tmp_path: Path, member: tarfile.TarInfo, match: str) -> None:
    evil = _tar_with(tmp_path / "evil.tar.gz", member)
    data_dir = tmp_path / "a" / "data"
    with pytest.raises(UserError, match=match):
        import_archive(evil, data_dir, md5=_md5(evil))
    assert _entries(data_dir) == set(), "nothing extracted, no staging directory left"
    assert _entries(tmp_path) == {"evil.tar.gz", "a"}


def test_archive_that_is_not_a_complete_data_set_is_refused(tmp_path: Path) -> None:
    partial = _tar_with(tmp_path / "p.tar.gz", _member(f"{BATCHES_DIRNAME}/data_batch_1"))
    with pytest.raises(UserError, match=r"batches\.meta"):
        import_archive(partial, tmp_path / "data", md5=_md5(partial))
    assert _entries(tmp_path / "data") == set()


# --------------------------------------------------------------------------- fetch


def test_fetch_over_http(archive: Path, http_url: str, tmp_path: Path) -> None:
    seen: list[tuple[int, int | None]] = []
    root = fetch(tmp_path, url=f"{http_url}/{archive.name}", md5=_md5(archive),
                 progress=lambda done, total: seen.append((done, total)))
    assert root == cifar10_root(tmp_path)
    assert load(root).train_size == TRAIN
    assert _entries(tmp_path) == {"cifar10"}, "the downloaded archive is deleted"
    assert seen and seen[-1] == (archive.stat().st_size, archive.stat().st_size)


def test_fetch_does_not_use_the_network_when_data_is_present(tmp_path: Path) -> None:
    # A "real" (no harness_synthetic key) data set already in place.
    root = synthesize(cifar10_root(tmp_path), train_size=50, test_size=10)
    meta_path = root / BATCHES_DIRNAME / "batches.meta"
    meta = _raw(meta_path)
    del meta[b"harness_synthetic"]
    meta_path.write_bytes(pickle.dumps(meta, protocol=2))
    assert fetch(tmp_path, url=f"http://127.0.0.1:{_closed_port()}/x.tar.gz") == root


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


def test_status_lists_every_data_set(archive: Path, tmp_path: Path) -> None:
    assert status(tmp_path / "absent") == []
    import_archive(archive, tmp_path, md5=_md5(archive))
    ensure_synthetic(tmp_path, 50, 10, 0)
    broken = synthesize(synthetic_root(tmp_path, 20, 5, 1), train_size=20, test_size=5, seed=1)
    (broken / BATCHES_DIRNAME / "batches.meta").unlink()
    entries = {Path(e["root"]).name: e for e in status(tmp_path)}
    assert set(entries) == {"cifar10", "synthetic-50-10-s0", "synthetic-20-5-s1"}
    assert entries["cifar10"]["ok"] and entries["cifar10"]["train_size"] == TRAIN
    good = entries["synthetic-50-10-s0"]
    assert good["ok"] and good["kind"] == "synthetic"
    assert (good["train_size"], good["test_size"]) == (50, 10)
    assert good["generator"]["seed"] == 0
    bad = entries["synthetic-20-5-s1"]
    assert not bad["ok"] and bad["kind"] == "synthetic" and bad["train_size"] is None
    assert "batches.meta" in bad["problem"] and "data synth" in bad["fix"]


def test_default_data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("HARNESS_DATA_DIR", raising=False)
    assert dataset.default_data_dir() == tmp_path / "data"
    monkeypatch.setenv("HARNESS_DATA_DIR", str(tmp_path / "elsewhere"))
    assert dataset.default_data_dir() == tmp_path / "elsewhere"


def test_module_does_not_import_tensorflow() -> None:
    code = "import sys, harness.dataset; sys.exit('tensorflow' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], cwd=Path(__file__).parents[1],
                            capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr


# --------------------------------------------------------------------------- learnability


@pytest.mark.slow
def test_research_cnn_learns_synthetic_data_in_two_epochs(tmp_path: Path) -> None:
    """The synthetic data must be learnable by the research model, as CIFAR-10 is."""
    import keras  # the worker extra: a missing TensorFlow must fail here, not skip
    ds = load(synthesize(tmp_path / "s", train_size=3000, test_size=600, seed=0))
    keras.utils.set_random_seed(0)
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
    x_test = ds.x_test / 255.0
    untrained = model.evaluate(x_test, ds.y_test, verbose=0)[1]
    model.fit(ds.x_train / 255.0, ds.y_train, batch_size=64, epochs=2, verbose=0)
    accuracy = model.evaluate(x_test, ds.y_test, verbose=0)[1]
    assert untrained < 0.3
    assert accuracy >= 0.90, f"test accuracy after 2 epochs: {accuracy:.3f}"
