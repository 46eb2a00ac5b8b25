"""The harness's own state on this machine: which sessions are running, and the idle cache.

A session registers itself (``sessions/<session_id>.json``: its directory, the pid and
start time of its harness process, the host) when it starts and removes the entry when it
ends. So a later harness can tell which sessions are still alive (two sessions measuring
on one machine disturb each other: both record it) and which died without ending (killed,
terminal closed, machine rebooted): their runs are then marked and their containers
removed (:mod:`harness.runner`, :mod:`harness.backends.docker_backend`).

Location: ``$HARNESS_STATE_DIR``, else ``~/.local/state/harness``.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
from dataclasses import asdict, dataclass
from pathlib import Path

from harness.fileio import write_atomic

STATE_DIR_ENV = "HARNESS_STATE_DIR"


def state_dir() -> Path:
    """Where the registry and caches live (created on first use)."""
    configured = os.environ.get(STATE_DIR_ENV, "").strip()
    base = Path(configured).expanduser() if configured else Path.home() / ".local/state/harness"
    return base


def process_start_ticks(pid: int) -> int:
    """A process's start time in clock ticks after boot (0 if unknown): with the pid, it
    names one process even after the pid is reused."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return int(stat.rsplit(")", 1)[1].split()[19])
    except (OSError, ValueError, IndexError):
        return 0


def process_alive(pid: int, start_ticks: int) -> bool:
    """Whether process ``pid`` is the one that started at ``start_ticks`` and still runs."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    fields = stat.rsplit(")", 1)[1].split()
    if fields[0] == "Z":  # a zombie has ended; only its parent has not collected it
        return False
    return start_ticks == 0 or int(fields[19]) == start_ticks


@dataclass(frozen=True)
class SessionEntry:
    """One running (or dead but unended) session, as registered."""

    session_id: str
    session: str
    session_dir: str
    pid: int
    start_ticks: int
    host: str

    @property
    def alive(self) -> bool:
        """Alive, as far as this host can tell (another host's session counts as alive)."""
        if self.host != platform.node():
            return True
        return process_alive(self.pid, self.start_ticks)

    @property
    def label(self) -> str:
        return f"{self.session} ({self.session_dir}, pid {self.pid})"


def _registry() -> Path:
    return state_dir() / "sessions"


def register(session_id: str, session_dir: Path) -> SessionEntry:
    """Record this process as the owner of a running session."""
    pid = os.getpid()
    entry = SessionEntry(session_id=session_id, session=session_dir.name,
                         session_dir=str(session_dir.resolve()), pid=pid,
                         start_ticks=process_start_ticks(pid), host=platform.node())
    write_atomic(_registry() / f"{session_id}.json", json.dumps(asdict(entry)) + "\n")
    return entry


def unregister(session_id: str) -> None:
    """The session ended (whatever its runs did)."""
    with contextlib.suppress(OSError):
        (_registry() / f"{session_id}.json").unlink()


def entries() -> list[SessionEntry]:
    """Every registered session; unreadable entries are dropped (they name nothing)."""
    found = []
    directory = _registry()
    if not directory.is_dir():
        return []
    for path in sorted(directory.glob("*.json")):
        try:
            data = json.loads(path.read_text())
            found.append(SessionEntry(**data))
        except (OSError, ValueError, TypeError):
            with contextlib.suppress(OSError):
                path.unlink()
    return found


def live_sessions(exclude: str | None = None) -> list[SessionEntry]:
    """Sessions still running on this machine (or registered from another host)."""
    return [e for e in entries() if e.alive and e.session_id != exclude]


def dead_sessions() -> list[SessionEntry]:
    """Sessions of this host whose harness died without ending them."""
    return [e for e in entries() if not e.alive]
