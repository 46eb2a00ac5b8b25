"""Atomic, versioned JSON files shared by the host and the worker.

Every file the harness writes goes through :func:`write_atomic`: a crash leaves
either the old file or the new one, never half of one. JSON files carry
``format`` and ``version`` keys so a reader can refuse what it does not know.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from harness.errors import UserError


def write_atomic(path: Path, data: str | bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file and ``os.replace``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    mode = "wb" if isinstance(data, bytes) else "w"
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, mode) as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json(path: Path, fmt: str, version: int, payload: dict[str, Any]) -> None:
    """Write ``payload`` as JSON tagged with its ``format`` name and ``version``."""
    document = {"format": fmt, "version": version, **payload}
    write_atomic(path, json.dumps(document, indent=2, sort_keys=False, default=str) + "\n")


def read_json(path: Path, fmt: str, versions: tuple[int, ...]) -> dict[str, Any]:
    """Read a versioned JSON file, refusing a foreign format or an unknown version.

    Raises:
        UserError: the file is missing, not JSON, of another format or of a
            version this harness cannot read.
    """
    try:
        document = json.loads(path.read_text())
    except FileNotFoundError:
        raise UserError("file is missing", source=path) from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise UserError(f"not valid JSON ({exc})", source=path,
                        fix="the file is damaged or truncated; re-run to regenerate it") from None
    if not isinstance(document, dict) or document.get("format") != fmt:
        raise UserError(f"not a {fmt} file", source=path, key="format")
    if document.get("version") not in versions:
        raise UserError(
            f"version {document.get('version')!r} is not supported (this harness reads "
            f"{', '.join(map(str, versions))})",
            source=path, key="version",
            fix="use the harness version that wrote it, or re-run the benchmark",
        )
    return document
