"""A reviewer's slots: which of the epoch's ``votes_per_epoch`` slots this key has used.

In protocol v2 a key may cast ``k`` votes per epoch, one per slot ``j < k``;
each slot has one tag (``token_id``), spendable once. The workers enforce that
(a second vote on a slot is rejected ``token_spent``), but only the reviewer
knows which slots are still free: nothing public links a tag to a key. So the
:class:`Voter` remembers the slots its key used, and picks a *random* unused
one (a fixed order, 0, 1, 2, ..., would tell a reader which vote of the epoch
this is). A slot is taken before the vote is signed, so a second attempt on
it fails here, with :class:`SlotUsed` or :class:`SlotsExhausted`, before
anything is published.

Where the used slots are kept: in memory (``Voter(key)``), or in a JSON file
(``Voter(key, slots_file=...)``; :meth:`Voter.from_key_file` puts it beside
the key file: ``alice.key`` -> ``alice.slots.json``), mode 0600, replaced
atomically under a lock file, so two processes voting with one key never pick
the same slot. The file names the key's public key (it refuses another key's
file) and lists used slot numbers per epoch, nothing about submissions or
votes. Losing it never lets a vote count twice (a reused slot is rejected
``token_spent``), but it costs privacy: the reused tag then appears on two
votes of one reviewer, on different submissions, and the rejection links
them. Keep the file for as long as the epoch lasts; an in-memory ``Voter``
suits one process that casts the whole epoch's votes.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import secrets
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from streams.errors import UsageProblem

from .errors import SlotsExhausted, SlotUsed
from .keyfile import load_key_file

__all__ = ["SLOTS_FILE_TYPE", "Voter", "slots_file_for"]

SLOTS_FILE_TYPE = "ringtally-used-slots"
_MAX_BYTES = 4 * 1024 * 1024


def slots_file_for(key_file: str | os.PathLike[str]) -> Path:
    """Where :meth:`Voter.from_key_file` keeps a key file's used slots: ``<stem>.slots.json``."""
    path = Path(key_file)
    return path.with_name(f"{path.stem}.slots.json")


class Voter:
    """A reviewer key and the slots it has used, per epoch.

    >>> voter = Voter.from_key_file("alice.key")
    >>> slot = voter.take_slot(epoch=7, votes_per_epoch=10)   # random, now used

    Thread-safe; with a slots file also safe across processes.
    """

    def __init__(self, key: Any, *, slots_file: str | os.PathLike[str] | None = None) -> None:
        """``key``: a ``ringcrypto.SecretKey``; ``slots_file``: None keeps used slots in memory."""
        self.key = key
        self.public_key: bytes = key.public_key
        self.slots_file = None if slots_file is None else Path(slots_file)
        self._memory: dict[int, set[int]] = {}
        self._lock = threading.Lock()

    @classmethod
    def from_key_file(cls, path: str | os.PathLike[str]) -> Voter:
        """The key of a key file, its used slots kept beside it (:func:`slots_file_for`)."""
        return cls(load_key_file(path), slots_file=slots_file_for(path))

    def __repr__(self) -> str:
        where = self.slots_file or "memory"
        return f"Voter(public_key={self.public_key.hex()}, slots={where})"

    # --- what callers use ----------------------------------------------------------------

    def used_slots(self, epoch: int) -> set[int]:
        """The slots of ``epoch`` this key has used."""
        with self._state() as used:
            return set(used.get(epoch, ()))

    def take_slot(self, epoch: int, votes_per_epoch: int, slot: int | None = None) -> int:
        """Mark a slot of ``epoch`` used and return it: ``slot``, or a random unused one.

        Raises :class:`SlotUsed` when ``slot`` is already used,
        :class:`SlotsExhausted` when every slot ``< votes_per_epoch`` is, and
        ``UsageProblem`` for a slot out of range.
        """
        if slot is not None and not 0 <= slot < votes_per_epoch:
            raise UsageProblem(
                f"slot {slot} is out of range: the ring allows slots 0..{votes_per_epoch - 1} "
                f"in epoch {epoch}",
                fix="omit the slot to have a free one picked",
            )
        with self._state(write=True) as used:
            taken = used.setdefault(epoch, set())
            if slot is not None:
                if slot in taken:
                    raise SlotUsed(
                        f"slot {slot} of epoch {epoch} is already used by this key: a second "
                        "vote on it would be rejected token_spent, so it was not published",
                        fix="omit the slot to have a free one picked",
                    )
            else:
                free = [j for j in range(votes_per_epoch) if j not in taken]
                if not free:
                    raise SlotsExhausted(
                        f"all {votes_per_epoch} slots of epoch {epoch} are used by this key: "
                        "the ring allows no more votes from it in this epoch, so nothing was "
                        "published",
                        fix="wait for the next epoch",
                    )
                slot = secrets.choice(free)
            taken.add(slot)
            return slot

    def release_slot(self, epoch: int, slot: int) -> None:
        """Mark a slot unused again: only for a vote known never to have been published."""
        with self._state(write=True) as used:
            used.get(epoch, set()).discard(slot)

    # --- storage ---------------------------------------------------------------------------

    @contextlib.contextmanager
    def _state(self, *, write: bool = False) -> Iterator[dict[int, set[int]]]:
        with self._lock:
            if self.slots_file is None:
                yield self._memory
                return
            with self._file_lock():
                used = self._read()
                yield used
                if write:
                    self._write(used)

    @contextlib.contextmanager
    def _file_lock(self) -> Iterator[None]:
        assert self.slots_file is not None
        lock_path = self.slots_file.with_name(self.slots_file.name + ".lock")
        try:
            fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise UsageProblem(
                f"cannot open {lock_path}: {exc.strerror}",
                fix="check the directory of the slots file is writable",
            ) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # releases the lock

    def _read(self) -> dict[int, set[int]]:
        path = self.slots_file
        assert path is not None
        fix = f"move {path} away if it is not this key's (its slots are then forgotten)"
        try:
            with path.open("rb") as f:
                raw = f.read(_MAX_BYTES + 1)
        except FileNotFoundError:
            return {}
        except OSError as exc:
            raise UsageProblem(f"cannot read {path}: {exc.strerror}", fix=fix) from None
        try:
            data = json.loads(raw)
            if len(raw) > _MAX_BYTES or data.get("type") != SLOTS_FILE_TYPE:
                raise ValueError
            owner = data["public_key"]
            used = {int(epoch): {int(s) for s in slots} for epoch, slots in data["used"].items()}
        except (ValueError, TypeError, KeyError, AttributeError):
            raise UsageProblem(f"{path} is not a ringtally used-slots file", fix=fix) from None
        if owner != self.public_key.hex():
            raise UsageProblem(f"{path} holds the used slots of another key", fix=fix)
        return used

    def _write(self, used: dict[int, set[int]]) -> None:
        path = self.slots_file
        assert path is not None
        data = {
            "version": 1,
            "type": SLOTS_FILE_TYPE,
            "public_key": self.public_key.hex(),
            "used": {str(epoch): sorted(slots) for epoch, slots in sorted(used.items()) if slots},
        }
        temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        try:
            fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w", encoding="ascii") as f:
                os.fchmod(f.fileno(), 0o600)
                json.dump(data, f, indent=1)
                f.write("\n")
                f.flush()
                os.fsync(f.fileno())
            os.replace(temporary, path)
        except OSError as exc:
            with contextlib.suppress(OSError):
                temporary.unlink()
            raise UsageProblem(
                f"cannot write {path}: {exc.strerror}",
                fix="check the directory of the slots file is writable",
            ) from None
