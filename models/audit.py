"""The audit trail: a hash chain per tally partition.

Each event's hash covers the previous event's hash and the event's own
content, so changing, dropping or reordering any stored event breaks every
later link; :class:`AuditEvent` states the rule (it is its schema's text).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from enum import StrEnum
from typing import Annotated, Any
from uuid import UUID

from pydantic import ConfigDict, Field

from .base import OutputModel, WireModel
from .fields import HexDigest, HexPoint, Identifier, Offset, OpenEnum, Partition
from .outputs import OpenDecision, OpenReasonCode

__all__ = ["AuditEvent", "AuditKind", "ChainBreak", "first_break", "genesis_hash"]


class AuditKind(StrEnum):
    BALLOT = "ballot"
    REJECTION = "rejection"
    #: A counted ballot withdrawn: another vote with its key image was cast first.
    RETRACTION = "retraction"


class AuditEvent(OutputModel):
    """One link of a hash chain of audit events (key: chain), one chain per tally partition.

    ``chain`` names the chain (``tally-<partition>``), ``sequence`` counts from 1
    within it. A reader checks each link: the first event's ``prev_hash`` is
    ``sha256("ringtally/audit/v1|" || utf8(chain))``, every other's the previous
    event's ``hash``; ``hash = sha256(bytes.fromhex(prev_hash) ||
    canonical_json(the event without "hash"))``, canonical JSON having sorted
    keys, no whitespace, every non-ASCII character escaped as ``\\u`` and four hex digits
    (lowercase hex, a surrogate pair beyond U+FFFF: Python's ``json.dumps``
    default), so the hashed bytes are ASCII even where the record itself carries
    the character unescaped. The hash covers every field of the record,
    including fields added after a reader was written: such a reader keeps
    them when it checks the hash.
    """

    #: Unknown (newer) fields are kept, not dropped: the hash covers them.
    model_config = ConfigDict(extra="allow")

    chain: str = Field(min_length=1, max_length=100)
    sequence: int = Field(ge=1)
    prev_hash: HexDigest
    hash: HexDigest
    kind: Annotated[AuditKind, OpenEnum(AuditKind)]
    vote_id: UUID | None = None
    submission_id: Identifier | None = None
    key_image: HexPoint | None = None
    reason: OpenReasonCode | None = None
    decision: OpenDecision | None = None
    source_partition: Partition
    source_offset: Offset

    @staticmethod
    def content_hash(prev_hash: str, content: dict[str, Any]) -> str:
        """The hash of an event whose fields (all but ``hash``) are ``content``."""
        body = json.dumps(content, sort_keys=True, separators=(",", ":"), default=str)
        return hashlib.sha256(bytes.fromhex(prev_hash) + body.encode("utf-8")).hexdigest()

    @classmethod
    def chained(cls, *, prev_hash: str, **fields: Any) -> AuditEvent:
        """Build the event that follows ``prev_hash``, computing its hash."""
        draft = cls.model_validate(
            {**fields, "prev_hash": prev_hash, "hash": "0" * 64}, strict=False
        )
        content = draft.model_dump(mode="json", exclude={"hash"})
        return draft.model_copy(update={"hash": cls.content_hash(prev_hash, content)})

    def expected_hash(self) -> str:
        return self.content_hash(self.prev_hash, self.model_dump(mode="json", exclude={"hash"}))


def genesis_hash(chain: str) -> str:
    return hashlib.sha256(b"ringtally/audit/v1|" + chain.encode("utf-8")).hexdigest()


class ChainBreak(WireModel):
    """The first place a chain fails to check, and why."""

    chain: str
    sequence: int
    problem: str


def first_break(events: Iterable[AuditEvent]) -> ChainBreak | None:
    """Check one chain's events (any order); None when every link holds."""
    ordered = sorted(events, key=lambda e: e.sequence)
    if not ordered:
        return None
    chain = ordered[0].chain
    prev, expected_seq = genesis_hash(chain), 1
    for event in ordered:
        if event.chain != chain:
            return ChainBreak(chain=chain, sequence=event.sequence, problem="mixed chains")
        if event.sequence != expected_seq:
            return ChainBreak(
                chain=chain, sequence=expected_seq, problem=f"missing; next is {event.sequence}"
            )
        if event.prev_hash != prev:
            return ChainBreak(chain=chain, sequence=event.sequence, problem="prev_hash mismatch")
        if event.expected_hash() != event.hash:
            return ChainBreak(chain=chain, sequence=event.sequence, problem="content altered")
        prev, expected_seq = event.hash, expected_seq + 1
    return None
