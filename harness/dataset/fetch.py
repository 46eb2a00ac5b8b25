"""Getting data onto disk: download, MD5 check, archive safety, atomic install, manifest.

``fetch`` downloads the official archive; ``import_archive`` takes a local copy of it
(machines without network) or, with ``name=``, a deliberately non-official CIFAR-format
archive, installed under its own root and labelled with its own name everywhere. Either
way the archive is extracted into a staging directory, every batch file is checked and
hashed, ``manifest.json`` is written, and only then does the data set replace what was
there, so readers see the old complete data set or the new one, never half of one.
"""

from __future__ import annotations

import gzip
import hashlib
import http.client
import os
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
from pathlib import Path, PurePosixPath
from typing import Any, BinaryIO

from harness.dataset.loading import inspect
from harness.dataset.manifest import write_manifest
from harness.dataset.paths import (
    BATCHES_DIRNAME,
    CIFAR10_MD5,
    CIFAR10_URL,
    DATA_DIR_ENV,
    FETCH_CMD,
    IMPORT_CMD,
    check_name,
    cifar10_root,
    custom_root,
)
from harness.errors import UserError

ProgressFn = Callable[[int, int | None], None]

_OFFICIAL_FIX = f"use the unmodified {CIFAR10_URL}"
_CUSTOM_FIX = (f"pack a {BATCHES_DIRNAME}/ folder holding data_batch_1..5, test_batch and "
               "batches.meta in CIFAR-10's python format as a tar.gz")


def fetch(
    data_dir: Path,
    *,
    url: str = CIFAR10_URL,
    md5: str = CIFAR10_MD5,
    timeout_s: float = 30,
    progress: ProgressFn | None = None,
) -> Path:
    """Download, verify and unpack CIFAR-10 into ``cifar10_root(data_dir)``; return that root.

    Does nothing (and needs no network) when a complete, verified CIFAR-10 is already
    there. A folder that is complete but unverified (filled by hand, modified, or fetched
    before manifests existed) is replaced by a fresh download. The archive is downloaded
    into ``data_dir`` and deleted afterwards; the data set appears atomically, so an
    interrupted or failed fetch leaves the old state behind.

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
    if _is_verified(root):
        return root
    _make_dir(data_dir)
    with _temp_path(data_dir, ".cifar-10-python-", ".tar.gz.part") as archive:
        actual, sha256 = _download(url, archive, timeout_s=timeout_s, progress=progress)
        _check_md5(actual, md5, source=url)
        filename = PurePosixPath(urllib.parse.urlparse(url).path).name or archive.name
        _install_archive(archive, root, fix=_OFFICIAL_FIX, kind="cifar10", name=None,
                         record={"file": filename, "url": url, "md5": actual,
                                 "expected_md5": md5.strip().lower(), "sha256": sha256})
    return root


def import_archive(archive: Path, data_dir: Path, *, md5: str | None = None,
                   name: str | None = None) -> Path:
    """Verify and unpack a local CIFAR-format archive; return the data set's new root.

    Without ``name``: a local copy of ``cifar-10-python.tar.gz`` (download ``CIFAR10_URL``
    elsewhere, copy it over, import it). Its MD5 must be ``md5`` (default: CIFAR-10's,
    ``CIFAR10_MD5``); it replaces, atomically, whatever ``cifar10_root(data_dir)`` held,
    and loads as "CIFAR-10", verified.

    With ``name`` (lower-case letters, digits, hyphens): a deliberately non-official
    archive in CIFAR-10's python format (same folder, files and pickles). No MD5 match is
    required unless ``md5`` is given; its MD5 and every file's SHA-256 are recorded all
    the same. It goes to ``custom_root(data_dir, name)`` (``data_dir/custom-NAME``), never
    to the official root, and is labelled "NAME (CIFAR-format, unofficial)" everywhere.

    Raises:
        UserError: the archive is missing or unreadable, the name is invalid, its MD5 is not
            the expected one, or it is not a safe, complete data set in CIFAR-10's python
            format.
    """
    archive = Path(archive)
    if name is not None:
        check_name(name)
    if not archive.is_file():
        raise UserError(
            "archive not found", source=archive,
            fix=(f"download {CIFAR10_URL} and pass the path of the downloaded file"
                 if name is None else "pass the path of the archive to import"),
        )
    try:
        actual, sha256 = _digests_of_file(archive)
    except OSError as exc:
        raise UserError(
            f"cannot read the archive ({exc.strerror or exc})", source=archive
        ) from None
    record: dict[str, Any] = {"file": archive.name, "url": None, "md5": actual,
                              "sha256": sha256}
    if name is None:
        expected = (md5 or CIFAR10_MD5).strip().lower()
        _check_md5(actual, expected, source=archive)
        root = cifar10_root(Path(data_dir))
        record["expected_md5"] = expected
        _make_dir(root.parent)
        _install_archive(archive, root, fix=_OFFICIAL_FIX, kind="cifar10", name=None,
                         record=record)
    else:
        if md5 is not None:
            _check_md5(actual, md5, source=archive, custom=True)
        root = custom_root(Path(data_dir), name)
        record["expected_md5"] = md5.strip().lower() if md5 else None
        _make_dir(root.parent)
        _install_archive(archive, root, fix=_CUSTOM_FIX, kind="custom", name=name,
                         record=record)
    return root


def _is_verified(root: Path) -> bool:
    """Whether ``root`` holds a complete, readable CIFAR-10 that matches its manifest."""
    try:
        info = inspect(root)
    except UserError:
        return False
    return info["kind"] == "cifar10" and info["verified"]


def _download(url: str, dest: Path, *, timeout_s: float,
              progress: ProgressFn | None) -> tuple[str, str]:
    """Stream ``url`` into ``dest``; return the MD5 and SHA-256 hex digests of what came."""
    hashers = _Hashers()
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response, dest.open("wb") as out:
            _copy_stream(response, out, hashers, response.length, progress)
    except urllib.error.HTTPError as exc:
        raise _download_error(url, f"HTTP {exc.code} {exc.reason}") from None
    except (urllib.error.URLError, http.client.HTTPException, ConnectionError, TimeoutError) as exc:
        raise _download_error(url, _network_reason(exc, timeout_s)) from None
    except OSError as exc:  # after the network errors: this one is about our disk
        raise UserError(
            f"cannot write the download ({exc.strerror or exc})", source=dest,
            fix=f"free disk space or point {DATA_DIR_ENV} at a writable directory",
        ) from None
    return hashers.digests()


class _Hashers:
    """MD5 (the official check) and SHA-256 (recorded) of one stream, in one pass."""

    def __init__(self) -> None:
        self.md5 = hashlib.md5(usedforsecurity=False)
        self.sha256 = hashlib.sha256()

    def update(self, chunk: bytes) -> None:
        self.md5.update(chunk)
        self.sha256.update(chunk)

    def digests(self) -> tuple[str, str]:
        return self.md5.hexdigest(), self.sha256.hexdigest()


def _copy_stream(
    src: BinaryIO, dst: BinaryIO, hasher: _Hashers, total: int | None,
    progress: ProgressFn | None,
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


def _digests_of_file(path: Path) -> tuple[str, str]:
    """MD5 and SHA-256 hex digests of a file, read once in 1 MiB chunks."""
    hashers = _Hashers()
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 20):
            hashers.update(chunk)
    return hashers.digests()


def _check_md5(actual: str, expected: str, *, source: str | Path, custom: bool = False) -> None:
    """Refuse an archive whose MD5 digest is not the expected (official) one."""
    if actual.lower() == expected.strip().lower():
        return
    fix = (f"the file is damaged, truncated or not {CIFAR10_URL}; download it again. "
           "A deliberately different CIFAR-format archive goes in under its own name, "
           f"labelled unofficial: `{IMPORT_CMD} ARCHIVE --name NAME`")
    raise UserError(
        f"MD5 checksum mismatch: expected {expected.strip().lower()}, got {actual}",
        source=source,
        fix="the file is damaged or not the archive you meant; get it again" if custom else fix,
    )


def _install_archive(archive: Path, root: Path, *, fix: str, kind: str, name: str | None,
                     record: dict[str, Any]) -> None:
    """Extract into a staging directory, check and hash it, write its manifest, swap it in.

    Readers therefore see either the previous data set or the new complete one, never a
    half-extracted one; on any failure the staging directory is removed.
    """
    staging = Path(tempfile.mkdtemp(dir=root.parent, prefix=f".{root.name}-extract-"))
    try:
        _extract_safely(archive, staging, fix)
        files_sha256 = _check_extracted(staging, archive, fix)
        write_manifest(staging, kind=kind, files_sha256=files_sha256,  # type: ignore[arg-type]
                       name=name, archive=record)
        staging.chmod(0o755)  # mkdtemp makes it 0700; containers may read as another user
        _replace_dir(staging, root)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def _check_extracted(staging: Path, archive: Path, fix: str) -> dict[str, str]:
    """Refuse an archive that does not hold a complete, valid data set, naming the member;
    return the SHA-256 of every batch file."""
    try:
        return inspect(staging)["files_sha256"]
    except UserError as exc:
        # The staging path is about to vanish: point at the archive and the member instead.
        member = Path(exc.source).relative_to(staging) if exc.source else None
        where = f"{member}: " if member else ""
        raise UserError(
            f"not a complete CIFAR-10 data set: {where}{exc.message}", source=archive, fix=fix,
        ) from None


def _extract_safely(archive: Path, dest: Path, fix: str) -> None:
    """Extract a CIFAR-10 python archive, refusing anything that could escape ``dest``."""
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
