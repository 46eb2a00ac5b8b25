"""Data identity: ``manifest.json``, file and array checksums, verified or not.

``manifest.json`` sits beside ``cifar-10-batches-py/`` in a data set's root. ``data fetch``
and ``data import`` write it after the archive passed its MD5 check (the official one for
CIFAR-10; a custom import records its archive's MD5 without requiring a match), and
``data synth`` writes one for generated data. It records the SHA-256 of every batch file;
the loader hashes the bytes it reads anyway and compares, so a hand-filled folder or a
modified file is reported as unverified, never silently trained on as the real thing.

The arrays checksum identifies what a run trained and tested on, whatever the files looked
like: SHA-256 over, in order, ``x_train``, ``y_train``, ``x_test``, ``y_test``, each fed as
the line ``"<name> <dtype.str> <shape>\\n"`` (e.g. ``"x_train |u1 (50000, 32, 32, 3)\\n"``)
followed by its C-contiguous bytes.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from harness.dataset.paths import BATCH_FILES, MANIFEST_FILE, Kind
from harness.fileio import write_atomic

MANIFEST_FORMAT = "harness.dataset-manifest"
# Version history of manifest.json:
#   1: first version.
MANIFEST_VERSION = 1
_MAX_MANIFEST_BYTES = 1 << 20


def sha256_bytes(data: bytes | memoryview) -> str:
    """SHA-256 hex digest of a buffer (hashlib releases the GIL on large ones)."""
    return hashlib.sha256(data).hexdigest()


def arrays_sha256(x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray,
                  y_test: np.ndarray) -> str:
    """SHA-256 of the four arrays a run uses, shapes and dtypes included (module doc)."""
    hasher = hashlib.sha256()
    for name, array in (("x_train", x_train), ("y_train", y_train),
                        ("x_test", x_test), ("y_test", y_test)):
        array = np.ascontiguousarray(array)
        hasher.update(f"{name} {array.dtype.str} {tuple(array.shape)}\n".encode())
        hasher.update(memoryview(array).cast("B"))
    return hasher.hexdigest()


def write_manifest(
    root: Path,
    *,
    kind: Kind,
    files_sha256: dict[str, str],
    name: str | None = None,
    archive: dict[str, Any] | None = None,
    generator: dict[str, Any] | None = None,
) -> None:
    """Write ``root/manifest.json`` atomically.

    Args:
        root: the data set root (it contains ``cifar-10-batches-py/``).
        kind: "cifar10", "custom" or "synthetic".
        files_sha256: SHA-256 of each of the seven batch files, by file name.
        name: the custom data set's name.
        archive: where the files came from: ``file`` (its name), ``url`` (fetch only),
            ``md5`` (what it hashed to), ``expected_md5`` (what it had to hash to; None for
            a custom import, which needs no match), ``sha256`` (recorded, not checked).
        generator: the generator parameters of generated data.
    """
    missing = sorted(set(BATCH_FILES) - set(files_sha256))
    if missing:
        raise ValueError(f"manifest without {', '.join(missing)}")
    payload: dict[str, Any] = {
        "format": MANIFEST_FORMAT,
        "version": MANIFEST_VERSION,
        "kind": kind,
        "name": name,
        "archive": archive,
        "generator": generator,
        "files_sha256": {file: files_sha256[file] for file in BATCH_FILES},
    }
    if archive is not None:
        payload["created"] = datetime.now(UTC).isoformat(timespec="seconds")
    write_atomic(Path(root) / MANIFEST_FILE, json.dumps(payload, indent=2) + "\n")


def read_manifest(root: Path) -> tuple[dict[str, Any] | None, str | None]:
    """``(manifest, None)``, or ``(None, why not)`` when it is missing or unreadable."""
    path = Path(root) / MANIFEST_FILE
    try:
        if path.stat().st_size > _MAX_MANIFEST_BYTES:
            return None, f"{MANIFEST_FILE} is too large to be a manifest"
        manifest = json.loads(path.read_bytes())
    except FileNotFoundError:
        return None, f"no {MANIFEST_FILE}"
    except OSError as exc:
        return None, f"{MANIFEST_FILE} unreadable ({exc.strerror or exc})"
    except ValueError:  # not JSON, not UTF-8
        return None, f"{MANIFEST_FILE} is damaged (not JSON)"
    if not isinstance(manifest, dict) or manifest.get("format") != MANIFEST_FORMAT:
        return None, f"{MANIFEST_FILE} is not a data set manifest"
    if manifest.get("version") != MANIFEST_VERSION:
        return None, f"{MANIFEST_FILE} has version {str(manifest.get('version'))[:20]}, " \
                     f"this harness reads {MANIFEST_VERSION}"
    files = manifest.get("files_sha256")
    if not isinstance(files, dict) or not all(isinstance(v, str) for v in files.values()):
        return None, f"{MANIFEST_FILE} is damaged (no files_sha256)"
    return manifest, None


def compare_files(manifest: dict[str, Any], files_sha256: dict[str, str]) -> str | None:
    """None when every batch file hashes as the manifest says, else which ones differ."""
    recorded = manifest["files_sha256"]
    differ = [name for name in BATCH_FILES if recorded.get(name) != files_sha256.get(name)]
    if not differ:
        return None
    return f"{', '.join(differ)} differ{'s' if len(differ) == 1 else ''} from {MANIFEST_FILE}"
