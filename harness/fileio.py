"""Atomic writes and checked reads of the harness's files.

Every file the harness writes goes through :func:`write_atomic`: a crash leaves either
the old file or the new one, never half of one. Every file it reads back goes through
:func:`read_model` (JSON formats of :mod:`harness.schema`) or :func:`read_bounded`:
a missing file, a directory in its place, a file too large, bytes that are not UTF-8,
JSON that is not JSON (or nested too deep), a foreign format, an old version, a wrong
type or a number out of range all become one :class:`FileProblem` naming the file, the
field and the reason; nothing half-read is ever returned.
"""

from __future__ import annotations

import errno
import json
import os
import stat
import tempfile
from pathlib import Path
from typing import TypeVar

from pydantic import BaseModel, ValidationError

from harness.errors import UserError

#: Largest JSON result file read back (a history of thousands of epochs is ~1 MB).
MAX_JSON_BYTES = 16 * 2**20
M = TypeVar("M", bound=BaseModel)


class FileProblem(Exception):
    """A result file that cannot be believed: which file, which field, why."""

    def __init__(self, path: Path, reason: str, field: str | None = None) -> None:
        self.path = Path(path)
        self.reason = reason
        self.field = field
        super().__init__(self.render())

    def render(self) -> str:
        where = f"{self.path.name}: {self.field}" if self.field else self.path.name
        return f"{where}: {self.reason}"


def write_atomic(path: Path, data: str | bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file and ``os.replace``.

    Raises:
        UserError: the disk is full or the directory is not writable (the old file,
            if any, is left as it was and no temporary file remains).
    """
    mode = "wb" if isinstance(data, bytes) else "w"
    tmp: str | None = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        with os.fdopen(fd, mode) as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
        tmp = None
    except OSError as exc:
        raise disk_error(exc, path) from None
    finally:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)


def disk_error(exc: OSError, path: Path) -> UserError:
    """A UserError for a failed write, saying what to do about it."""
    if exc.errno == errno.ENOSPC or exc.errno == errno.EDQUOT:
        return UserError("the disk is full", source=path,
                         fix="free space on that filesystem (or pass --results-dir on "
                             "another one); finished runs keep their files")
    if exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        return UserError(f"cannot write here ({exc.strerror})", source=path,
                         fix="choose a writable directory (--results-dir / --out)")
    if exc.errno == errno.ENAMETOOLONG:
        return UserError("the file name is too long for this filesystem", source=path,
                         fix="use a shorter --session name or directory")
    return UserError(f"cannot write ({exc.strerror or exc})", source=path,
                     fix="check the directory exists and is writable")


def ensure_writable_dir(path: Path, key: str) -> None:
    """``path`` is (or is made) a directory this process can write into, before any work.

    Raises:
        UserError: it is a file, or cannot be created or written (naming ``key``, the
            option that chose it).
    """
    if path.exists() and not path.is_dir():
        raise UserError("is a file, not a directory", source=path, key=key,
                        fix=f"pass a directory with {key} (it is created if missing)")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise disk_error(exc, path) from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise UserError("is not writable", source=path, key=key,
                        fix=f"pass a directory you can write to with {key}")


def write_model(path: Path, model: BaseModel) -> None:
    """Write a :mod:`harness.schema` model as indented JSON, atomically."""
    write_atomic(path, model.model_dump_json(indent=2) + "\n")


def read_bounded(path: Path, limit: int = MAX_JSON_BYTES) -> str:
    """The UTF-8 text of a regular file of at most ``limit`` bytes.

    Raises:
        FileProblem: missing, not a regular file, too large, unreadable or not UTF-8.
    """
    try:
        info = path.stat()  # follows symlinks: a link to a good file is fine
    except FileNotFoundError:
        raise FileProblem(path, "missing") from None
    except OSError as exc:  # a symlink loop, a name too long, no permission
        raise FileProblem(path, f"cannot be read ({exc.strerror or exc})") from None
    if not stat.S_ISREG(info.st_mode):
        kind = "a directory" if stat.S_ISDIR(info.st_mode) else "not a regular file"
        raise FileProblem(path, f"is {kind}, not a file")
    if info.st_size > limit:
        raise FileProblem(path, f"is {info.st_size} bytes, more than the {limit} a result "
                                "file may have")
    try:
        with path.open("rb") as fh:
            data = fh.read(limit + 1)
    except OSError as exc:
        raise FileProblem(path, f"cannot be read ({exc.strerror or exc})") from None
    if len(data) > limit:
        raise FileProblem(path, f"is larger than the {limit} bytes a result file may have")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise FileProblem(path, f"is not UTF-8 text (byte {exc.start})") from None


def _refuse_constant(name: str) -> float:
    raise ValueError(f"{name} is not a number a result may hold")


def read_model(path: Path, model: type[M], *, upgrade_hint: str = "") -> M:
    """Read and check one JSON file of :mod:`harness.schema`.

    Raises:
        FileProblem: naming the field and the reason for the first thing wrong.
    """
    text = read_bounded(path)
    if not text.strip():
        raise FileProblem(path, "is empty")
    try:
        document = json.loads(text, parse_constant=_refuse_constant)
    except RecursionError:
        raise FileProblem(path, "is nested too deeply to be a result file") from None
    except ValueError as exc:  # JSONDecodeError, NaN/Infinity
        raise FileProblem(path, f"is not valid JSON ({exc})") from None
    if not isinstance(document, dict):
        raise FileProblem(path, f"holds a JSON {type(document).__name__}, not an object")
    expected = model.model_fields["format"].default
    if document.get("format") != expected:
        raise FileProblem(path, f"is not a {expected} file (format "
                                f"{str(document.get('format'))[:40]!r})", "format")
    version = document.get("version")
    wanted = model.model_fields["version"].default
    if version != wanted:
        if version == 1 and upgrade_hint:
            raise FileProblem(path, f"format version 1 is not read: {upgrade_hint}", "version")
        raise FileProblem(path, f"version {str(version)[:20]!r} is not one this harness reads "
                                f"(it reads {wanted})", "version")
    try:
        # From the text, not the parsed dict: JSON mode reads enums from their strings
        # and ints as floats, and is still strict about everything else.
        return model.model_validate_json(text, strict=True)
    except RecursionError:
        raise FileProblem(path, "is nested too deeply to be a result file") from None
    except ValidationError as exc:
        error = exc.errors(include_url=False)[0]
        field = ".".join(str(part) for part in error["loc"]) or None
        shown = repr(error.get("input"))
        detail = error["msg"].removeprefix("Value error, ")
        if error["type"] not in ("missing", "extra_forbidden", "value_error"):
            detail += f" (got {shown[:60]})"
        more = len(exc.errors()) - 1
        if more:
            detail += f"; and {more} more problem(s)"
        raise FileProblem(path, detail, field) from None
