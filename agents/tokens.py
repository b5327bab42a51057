"""The per-tag state machine: unspent -> spent.

A vote's token is its slot tag (docs/protocol.md): nothing is issued, so a
tag the table has never seen is simply unspent, and the first vote with a
valid signature spends it. Every record of one tag lies in one ordered log
(the tag's votes partition; a record elsewhere is rejected ``wrong_partition``
before it gets here), and this module is the only place that decides what a
record does to its tag. It is pure: the verify agent reads a
:class:`TokenState` from its changelog-backed table, asks it, and writes back
what it returns.

Idempotence: the very same vote bytes coming again are recognised and
answered "already applied" instead of ``token_spent``; the verify stage then
tells a redelivery (the spending offset itself, after a crash) from a copy at
another offset (``duplicate_record``), so at-least-once processing neither
double-spends nor earns a spurious rejection.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from models.log import vote_digest as log_vote_digest
from models.reasons import ReasonCode

__all__ = ["TokenState", "Verdict", "vote_digest"]


@dataclass(frozen=True, slots=True)
class Verdict:
    """What a vote may do to a tag: spend it, or a rejection reason, or nothing (a replay)."""

    reason: ReasonCode | None = None
    detail: str = ""
    #: This exact vote already spent the tag (a redelivery, or a copy at another offset).
    replay: bool = False


@dataclass(frozen=True, slots=True)
class TokenState:
    """A spent tag as the table stores it (``to_dict``/``from_dict`` for the JSON changelog)."""

    spent_by: str
    spent_digest: str
    key_image: str
    #: The votes-topic offset of the spending vote.
    changed_offset: int

    def to_dict(self) -> dict[str, Any]:
        # Not dataclasses.asdict: it deep-copies, and every field here is a scalar.
        return {name: getattr(self, name) for name in _FIELDS}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TokenState:
        return cls(**{name: data[name] for name in _FIELDS})

    def as_of(self, offset: int) -> TokenState | None:
        """The state that the tag's record at ``offset`` saw when it was first applied:
        unspent before the spend, spent from it on. So a record that comes again
        (a crash before the commit, a rebalance) is decided exactly as the first time."""
        return self if offset >= self.changed_offset else None

    def newer_than(self, offset: int) -> bool:
        """Did a record after ``offset`` already spend this tag? (then it comes again)"""
        return offset < self.changed_offset

    @staticmethod
    def check_spend(current: TokenState | None, *, digest: str) -> Verdict:
        """May a vote with these signed bytes spend the tag? (before the signature check)"""
        if current is None:
            return Verdict()
        if current.spent_digest == digest:
            return Verdict(replay=True)
        return Verdict(
            reason=ReasonCode.TOKEN_SPENT,
            detail=f"this slot tag was already spent by the vote at offset "
            f"{current.changed_offset}",
        )

    @staticmethod
    def spend(*, vote_id: str, digest: str, key_image: str, offset: int) -> TokenState:
        """The tag after a vote with a valid signature spent it."""
        return TokenState(
            spent_by=vote_id, spent_digest=digest, key_image=key_image, changed_offset=offset
        )


#: TokenState's field names, in order.
_FIELDS = tuple(f.name for f in fields(TokenState))


def vote_digest(signing_bytes: bytes, signature: bytes) -> str:
    """Identity of one exact vote message (a redelivery has the same digest), in hex: the
    digest its log leaf commits to (:func:`models.log.vote_digest`, native/SPEC.md §14)."""
    return log_vote_digest(signing_bytes, signature).hex()
