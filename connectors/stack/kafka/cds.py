"""A class-data-sharing archive for the broker JVM: warm starts ~1.5-2 s faster.

Most of a warm Kafka start is the JVM loading and verifying ~10k classes.
JDK 17 can map them from an archive instead (AppCDS). The archive is made
by the broker itself: the first broker started for a jar cache runs with
``-XX:ArchiveClassesAtExit``, which dumps the loaded classes when it exits
(``stack down`` takes ~5 s longer, once); every later start maps it with
``-XX:SharedArchiveFile``. ``-Xshare:auto`` means a stale or unreadable
archive only costs the speed-up, never a start.

The archive is dumped to a unique ``.partial`` name and renamed when the
broker has exited, so a half-written one is never used. A ``.claim`` file
makes sure one broker at a time dumps (stacks share the jar cache). It sits in
the jar cache beside the jars it describes, keyed by the Java build.
Set ``RINGTALLY_STACK_KAFKA_CDS=0`` to turn it off.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import uuid
from pathlib import Path

from ..process import read_record

__all__ = ["ClassArchive"]

_QUIET = ["-Xlog:cds=error", "-Xlog:cds+dynamic=error"]  # dumping warns per skipped class


class ClassArchive:
    """The broker's CDS archive in one jar-cache version dir, for one ``java``."""

    def __init__(self, version_dir: Path, java: Path, java_version: str) -> None:
        key = hashlib.sha256(f"{java.resolve()}\0{java_version}".encode()).hexdigest()[:12]
        self.final = version_dir / f"broker-{key}.jsa"
        self.claim = version_dir / f"broker-{key}.jsa.claim"

    @staticmethod
    def enabled() -> bool:
        return os.environ.get("RINGTALLY_STACK_KAFKA_CDS", "1") not in ("0", "false", "no")

    def jvm_flags(self, piece_dir: Path, pid_file: Path, marker: str) -> list[str]:
        """Flags for the next broker start of the stack in ``piece_dir``."""
        self._forget(piece_dir)  # a previous start that crashed or was killed
        note = piece_dir / "cds.partial"
        if not self.enabled():
            return []
        if self.final.is_file():
            return [f"-XX:SharedArchiveFile={self.final}", "-Xshare:auto", *_QUIET]
        if not self._take_claim(piece_dir):
            return []  # another broker is making it; start without
        partial = self.final.with_name(f"{self.final.name}.{uuid.uuid4().hex[:8]}.partial")
        note.write_text(f"{partial}\n{pid_file}\n{marker}\n")
        return [f"-XX:ArchiveClassesAtExit={partial}", *_QUIET]

    def _take_claim(self, piece_dir: Path) -> bool:
        for _ in range(2):
            try:
                fd = os.open(self.claim, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                if not self._claim_is_stale():
                    return False
                self.claim.unlink(missing_ok=True)
                continue
            with os.fdopen(fd, "w") as fh:
                fh.write(f"{piece_dir}\n")
            return True
        return False

    def _claim_is_stale(self) -> bool:
        """The claiming broker no longer runs (crashed, or stopped by hand)."""
        try:
            owner = Path(self.claim.read_text().strip())
            partial, pid_file, marker = (owner / "cds.partial").read_text().splitlines()[:3]
        except (OSError, ValueError):
            return True
        rec = read_record(Path(pid_file))
        return rec is None or not rec.matches(marker)

    def after_stop(self, piece_dir: Path, *, clean_exit: bool) -> None:
        """The broker has exited: keep its dump if it exited cleanly, release the claim."""
        note = piece_dir / "cds.partial"
        try:
            partial = Path(note.read_text().splitlines()[0])
        except (OSError, IndexError):
            return
        with contextlib.suppress(OSError):
            if clean_exit and partial.stat().st_size > 0 and not self.final.exists():
                partial.replace(self.final)
        self._forget(piece_dir)

    def _forget(self, piece_dir: Path) -> None:
        """Drop this stack's dump in progress (file, note, and the claim if it is ours)."""
        note = piece_dir / "cds.partial"
        try:
            partial = Path(note.read_text().splitlines()[0])
        except (OSError, IndexError):
            return
        with contextlib.suppress(OSError):
            partial.unlink(missing_ok=True)
        with contextlib.suppress(OSError):
            if self.claim.read_text().strip() == str(piece_dir):
                self.claim.unlink()
        note.unlink(missing_ok=True)
