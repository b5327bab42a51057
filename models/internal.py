"""Messages on ringtally's internal topics (between its own agents).

``AcceptedVote`` carries a verified vote from the verify agent (keyed by
token) to the tally agent (keyed by submission). It keeps the ORIGINAL
votes-topic position, so a rejection at the tally stage points at the message
the producer sent, and a replay into fresh state (whose internal topics have
other offsets) produces the same outputs. It does not carry the raw payload:
the rare rejection at the tally stage (a double vote) reads it back from the
votes topic at that position (:mod:`agents.record_reader`). Carried, it
tripled the size of every accepted vote, the worker's busiest record.
"""

from __future__ import annotations

from typing import Literal
from uuid import UUID, uuid5

from pydantic import Field

from .base import WireModel
from .fields import Epoch, HexDigest, HexPoint, Identifier, Offset, Partition, VoteType
from .outputs import Rejection

__all__ = [
    "VOTE_ID_NAMESPACE",
    "AcceptedVote",
    "ClosingPassed",
    "RefusedVote",
    "parse_accepted_record",
    "vote_id_for_token",
]

#: Namespace of :func:`vote_id_for_token` (uuid5 of the DNS name ringtally.vote-id).
VOTE_ID_NAMESPACE = UUID("d24b4bfc-31aa-5c5e-827f-955cf2a17a90")


def vote_id_for_token(token_id: str) -> UUID:
    """The one vote id a token may carry.

    Binding the vote id to the token (the slot tag) makes ballots unique by
    vote id with no cross-partition state: a tag is spent at most once, so no
    two counted votes can share an id, whichever submissions they are for.
    The tag is fresh for every vote, so the id links nothing either.
    """
    return uuid5(VOTE_ID_NAMESPACE, token_id)


class AcceptedVote(WireModel):
    """A vote whose tag, ring version and signature checked out (key: submission_id)."""

    vote_id: UUID
    submission_id: Identifier
    key_image: HexPoint
    vote_type: VoteType
    ring_id: Identifier
    ring_version: int = Field(ge=1, le=2**32 - 1)
    epoch: Epoch
    token_id: HexPoint
    #: SHA-256 of the vote's signed message and signature (native/SPEC.md §14): what its
    #: log leaves commit to.
    vote_digest: HexDigest
    source_partition: Partition
    source_offset: Offset
    #: The votes-topic record's broker timestamp (ms, LogAppendTime): with the position,
    #: it decides which of two votes sharing a key image counts (see agents/tally.py).
    #: None: the record had none (older workers also sent None for a copy of a spent vote).
    source_timestamp_ms: int | None = None


class RefusedVote(WireModel):
    """A well-formed vote the verify stage refused, on its way to the tally stage (key:
    submission_id, the accepted topic): only that stage orders a submission's log, so it
    appends the refusal's ``rejection`` leaf (native/SPEC.md §14.1) and emits
    ``rejection`` with the leaf's index. The rejection keeps the raw payload (a
    refusal, unlike an accepted vote, needs it, and is not the busy path)."""

    type: Literal["refused"] = "refused"
    submission_id: Identifier
    vote_digest: HexDigest
    rejection: Rejection


class ClosingPassed(WireModel):
    """Votes partition ``votes_partition`` has no more votes for the closed submission (key:
    submission_id, the accepted topic): the verify stage decided a vote appended at or
    after the closing's broker time there, and sent everything before it first. When
    every votes partition has passed, the tally stage signs the final head."""

    type: Literal["closing_passed"] = "closing_passed"
    submission_id: Identifier
    closed_ms: int = Field(ge=0, lt=2**63)
    votes_partition: Partition


def parse_accepted_record(raw: bytes) -> AcceptedVote | RefusedVote | ClosingPassed:
    """A record of the accepted topic: an :class:`AcceptedVote` (tried first, the busy
    case), a :class:`RefusedVote` or a :class:`ClosingPassed`. Raises pydantic's
    ``ValidationError``."""
    try:
        return AcceptedVote.model_validate_json(raw)
    except ValueError:
        if b'"closing_passed"' in raw:
            return ClosingPassed.model_validate_json(raw)
        if b'"refused"' not in raw:
            raise
        return RefusedVote.model_validate_json(raw)
