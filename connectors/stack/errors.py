"""The one error type the local stack raises.

Every failure a person can hit while running ``stack up/down/status`` (a
missing binary, a taken port, a corrupt data dir, a piece that never became
healthy) is a :class:`StackError` that names the piece, the reason, the fix and
the log file to read, so the CLI can print one line instead of a traceback.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

__all__ = ["StackError", "display_path"]


def display_path(path: Path | str) -> str:
    """A path as a person would type it: relative to the cwd when under it."""
    p = Path(path)
    try:
        rel = p.resolve().relative_to(Path.cwd().resolve())
    except (ValueError, OSError):
        return str(p)
    return str(rel) if str(rel) != "." else str(p)


class StackError(Exception):
    """A local-stack failure that can be shown as one line.

    ``piece`` is "kafka", "postgres", "redis" or "stack"; ``fix`` says what to
    do about it; ``log_file`` is where the details are. A failure of several
    pieces at once is one StackError whose ``errors`` holds one per piece.
    """

    def __init__(
        self,
        piece: str,
        reason: str,
        *,
        fix: str | None = None,
        log_file: Path | str | None = None,
        errors: Sequence[StackError] = (),
    ) -> None:
        self.piece = piece
        self.reason = reason
        self.fix = fix
        self.log_file = Path(log_file) if log_file is not None else None
        self.errors: tuple[StackError, ...] = tuple(errors)
        super().__init__(str(self))

    def line(self) -> str:
        """This error alone, as one line (no newlines, whatever the reason held)."""
        text = f"{self.piece}: {self.reason}"
        if self.fix:
            text += f"; {self.fix}"
        if self.log_file is not None:
            text += f"; see {display_path(self.log_file)}"
        return " ".join(text.split())

    def lines(self) -> list[str]:
        """One line per failed piece (just this one when it is not a group)."""
        return [e.line() for e in self.errors] if self.errors else [self.line()]

    def __str__(self) -> str:
        return os.linesep.join(self.lines())

    def __reduce__(self):  # keep picklable (pytest-xdist, multiprocessing) despite kw-only args
        return (
            _rebuild,
            (self.piece, self.reason, self.fix, self.log_file, list(self.errors)),
        )

    @classmethod
    def group(cls, errors: Sequence[StackError]) -> StackError:
        """One error for several failed pieces (or the error itself when alone)."""
        if len(errors) == 1:
            return errors[0]
        names = ", ".join(e.piece for e in errors)
        return cls("stack", f"{len(errors)} pieces failed ({names})", errors=errors)


def _rebuild(piece, reason, fix, log_file, errors):  # noqa: ANN001, ANN202 - pickle helper
    return StackError(piece, reason, fix=fix, log_file=log_file, errors=errors)
