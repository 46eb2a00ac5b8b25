"""The one error type that reaches the user.

Every mistake a user can make (a bad scenario file, missing data, an unreachable
Docker daemon) is raised as :class:`UserError`; only the CLI catches it, prints
its message without a traceback and exits with status 2.
"""

from __future__ import annotations

from pathlib import Path


class UserError(Exception):
    """A problem the user can fix; the message says where and how.

    Args:
        message: what is wrong.
        source: the file (or other input) the problem is in, if any.
        key: the key or field inside ``source``, if any (dotted path).
        fix: one sentence telling the user what to do.
        also: further problems found in the same pass, printed after this one.
    """

    def __init__(
        self,
        message: str,
        *,
        source: str | Path | None = None,
        key: str | None = None,
        fix: str | None = None,
        also: list[UserError] | None = None,
    ) -> None:
        self.message = message
        self.source = str(source) if source is not None else None
        self.key = key
        self.fix = fix
        self.also = also or []
        super().__init__(self.render())

    def render(self) -> str:
        """The message as printed: ``FILE: KEY: message`` then ``  fix: ...``."""
        where = ": ".join(part for part in (self.source, self.key) if part)
        text = f"{where}: {self.message}" if where else self.message
        if self.fix:
            text += f"\n  fix: {self.fix}"
        return "\n".join([text, *(problem.render() for problem in self.also)])
