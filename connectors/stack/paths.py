"""Where the local stack keeps its files, all under the project's data dir.

<data_dir>/.gitignore              "*": the dir never shows up in git status
<data_dir>/cache/kafka-<v>/libs    Kafka jars copied by Maven (+ .complete marker)
<data_dir>/stack/.lock             serialises up/down across processes
<data_dir>/stack/<piece>/          config, data, <piece>.log, <piece>.pid
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

__all__ = ["ALL_PIECES", "PIECES", "SECURE", "StackPaths"]

#: Start order; ``down`` and ``status`` use it too.
PIECES: tuple[str, ...] = ("kafka", "postgres", "redis")
#: The secured broker (``stack up --secure``): started only when asked for; ``down`` and
#: ``status`` include it once it has a directory.
SECURE = "secure"
ALL_PIECES: tuple[str, ...] = (*PIECES, SECURE)


@dataclass(frozen=True)
class StackPaths:
    """The stack's directories for one data dir (and a jar cache, shareable)."""

    data_dir: Path
    cache_dir: Path

    @classmethod
    def for_data_dir(cls, data_dir: Path, cache_dir: Path | None = None) -> StackPaths:
        data_dir = Path(data_dir).expanduser().resolve()
        cache = Path(cache_dir).expanduser().resolve() if cache_dir else data_dir / "cache"
        return cls(data_dir=data_dir, cache_dir=cache)

    @property
    def stack_dir(self) -> Path:
        return self.data_dir / "stack"

    @property
    def lock_file(self) -> Path:
        return self.stack_dir / ".lock"

    def piece_dir(self, piece: str) -> Path:
        return self.stack_dir / piece

    def log_file(self, piece: str) -> Path:
        return self.piece_dir(piece) / f"{piece}.log"

    def pid_file(self, piece: str) -> Path:
        return self.piece_dir(piece) / f"{piece}.pid"

    def check(self) -> None:
        """Refuse a data dir that is a source tree (e.g. RINGTALLY_DATA_DIR set empty → cwd)."""
        from .errors import StackError

        for sign in (".git", "pyproject.toml", "Makefile"):
            if (self.data_dir / sign).exists():
                raise StackError(
                    "stack",
                    f"data dir {self.data_dir} holds {sign}: it looks like a source tree,"
                    " not a place for stack data",
                    fix="set RINGTALLY_DATA_DIR to a dedicated dir such as .ringtally",
                )

    def ensure(self) -> None:
        """Create the dirs; mark the data dir git-ignored the way venvs do."""
        self.check()
        for d in (self.data_dir, self.stack_dir, self.cache_dir):
            d.mkdir(parents=True, exist_ok=True)
        ignore = self.data_dir / ".gitignore"
        if not ignore.exists():
            ignore.write_text("# created by ringtally's local stack\n*\n")
