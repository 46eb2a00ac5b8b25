"""The identity of the code that produces a run: a hash of the sources, and git's view.

Runs of different code are never averaged together (the report refuses them, naming the
field), so each run records the SHA-256 of the harness package's Python sources, and,
when the host runs from a git checkout, the commit and whether tracked files were
modified. Documentation is not part of the hash: editing the README changes neither the
identity nor the worker image tag.

Both sides import this module: the host (run.json, session.json, image tags) and the
worker (metrics.json, computed over the sources it really imported).
"""

from __future__ import annotations

import functools
import hashlib
import shutil
import subprocess
from pathlib import Path

import harness
from harness.schema import CodeIdentity

PACKAGE_DIR = Path(harness.__file__).resolve().parent
REPO_ROOT = PACKAGE_DIR.parent


def source_files(package_dir: Path = PACKAGE_DIR) -> list[Path]:
    """The package's Python sources, in a stable order (caches excluded)."""
    return sorted(p for p in package_dir.rglob("*.py") if "__pycache__" not in p.parts)


def hash_files(files: list[Path], root: Path) -> str:
    """SHA-256 over each file's path relative to ``root`` and its bytes."""
    digest = hashlib.sha256()
    for path in files:
        digest.update(path.relative_to(root).as_posix().encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()


@functools.cache
def source_sha256(package_dir: Path = PACKAGE_DIR) -> str:
    """SHA-256 of the harness sources (relative paths under the package and contents)."""
    return hash_files(source_files(package_dir), package_dir)


def git_state(repo: Path = REPO_ROOT, timeout_s: float = 5.0) -> tuple[str | None, bool | None]:
    """(commit, dirty) of the checkout at ``repo``; (None, None) outside a checkout.

    ``dirty`` counts tracked files only: an untracked results directory is not a change
    to the code.
    """
    git = shutil.which("git")
    if git is None or not (repo / ".git").exists():
        return None, None
    try:
        head = subprocess.run([git, "-C", str(repo), "rev-parse", "HEAD"], capture_output=True,
                              text=True, timeout=timeout_s, check=True)
        status = subprocess.run([git, "-C", str(repo), "status", "--porcelain",
                                 "--untracked-files=no"], capture_output=True, text=True,
                                timeout=timeout_s, check=True)
    except (OSError, subprocess.SubprocessError):
        return None, None
    return head.stdout.strip() or None, bool(status.stdout.strip())


@functools.cache
def code_identity() -> CodeIdentity:
    """This process's code identity (cached: the sources do not change under it)."""
    commit, dirty = git_state()
    return CodeIdentity(harness_version=harness.__version__, source_sha256=source_sha256(),
                        commit=commit, dirty=dirty)
