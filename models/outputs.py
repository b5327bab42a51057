"""Messages ringtally emits: ballots, rejections and tallies.

Every output names the votes-topic position it came from (``source_partition``,
``source_offset``). That position, not the position on an internal repartition
topic, is what stays the same when a topic is replayed into fresh state, so it
is the key downstream stores de-duplicate on.
"""

from __future__ import annotations

from typing import Annotated, Literal
from uuid import UUID

from pydantic import Field

from .base import OutputModel
from .decision import Decision
from .fields import Epoch, HexDigest, HexPoint, Identifier, Offset, OpenEnum, Partition, VoteType
from .reasons import ReasonCode

__all__ = ["Ballot", "OpenDecision", "OpenReasonCode", "Rejection", "Tally", "VoteCounts"]

#: A reason or decision as consumers read it: the known codes, or a later release's
#: (an :class:`~models.fields.UnknownCode`) instead of a refused record.
OpenReasonCode = Annotated[ReasonCode, OpenEnum(ReasonCode)]
OpenDecision = Annotated[Decision, OpenEnum(Decision)]


class Ballot(OutputModel):
    """A counted vote (key: submission_id). Unique by vote_id and by (submission_id, key_image)."""

    vote_id: UUID
    submission_id: Identifier
    key_image: HexPoint
    vote_type: VoteType
    ring_id: Identifier
    epoch: Epoch
    source_partition: Partition
    source_offset: Offset
    supersedes: UUID | None = Field(
        None,
        description="the vote_id of the ballot this one replaces: same submission and key "
        "image, but this vote was cast first (that ballot's vote gets a duplicate_key_image "
        "rejection)",
    )
    vote_digest: HexDigest | None = Field(
        None,
        description="SHA-256 of the vote's signed message and signature (native/SPEC.md §14): "
        "what its log leaf commits to; None on ballots from before the log",
    )
    leaf_index: int | None = Field(
        None,
        ge=0,
        description="the index of this ballot's leaf in its submission's log; None on ballots "
        "from before the log",
    )
    supersedes_digest: HexDigest | None = Field(
        None,
        description="with supersedes: the vote_digest of the vote retracted, whose retraction "
        "leaf is at leaf_index - 1",
    )


class Rejection(OutputModel):
    """A message that was not counted, and why (key: the source message's key)."""

    vote_id: UUID | None = Field(None, description="when the message could be read that far")
    token_id: str | None = Field(
        None,
        max_length=1024,
        description="the vote's slot tag (hex), or the record key when the record could not "
        "be read that far",
    )
    reason: OpenReasonCode
    detail: str = Field(max_length=2000)
    payload_b64: str = Field(description="the raw message value, base64")
    source_topic: str = Field(max_length=255)
    source_partition: Partition
    source_offset: Offset
    submission_id: Identifier | None = Field(
        None,
        description="with leaf_index: the submission whose log records this refusal",
    )
    vote_digest: HexDigest | None = Field(
        None,
        description="with leaf_index: SHA-256 of the vote's signed message and signature "
        "(native/SPEC.md §14.1), what its leaf commits to",
    )
    leaf_index: int | None = Field(
        None,
        ge=0,
        description="a well-formed vote refused (native/SPEC.md §14.1): the index of its leaf "
        "in its submission's log; None for a message that never reached a log (malformed, "
        "wrong partition, unknown or closed submission) and on rejections from before",
    )
    leaf_kind: str | None = Field(
        None,
        max_length=32,
        description="with leaf_index: 'rejection' (a leaf of this refusal, carrying the "
        "reason) or 'retraction' (the vote was counted, then withdrawn: that leaf)",
    )


class VoteCounts(OutputModel):
    approve: int = Field(0, ge=0)
    reject: int = Field(0, ge=0)
    flag: int = Field(0, ge=0)
    escalate: int = Field(0, ge=0)

    @property
    def total(self) -> int:
        return self.approve + self.reject + self.flag + self.escalate

    def plus(self, vote_type: VoteType) -> VoteCounts:
        """These counts with one more vote of ``vote_type``."""
        return self.model_copy(update={vote_type.value: getattr(self, vote_type.value) + 1})

    def minus(self, vote_type: VoteType) -> VoteCounts:
        """These counts with one vote of ``vote_type`` withdrawn."""
        return self.model_copy(update={vote_type.value: getattr(self, vote_type.value) - 1})


class Tally(OutputModel):
    """The current count and decision for a submission (key: submission_id; compacted topic).

    ``version`` grows by one with every ballot counted, so "newer" is a plain
    integer comparison and a replay reproduces the same versions. ``log_size``
    and ``log_root`` are the submission's log (native/SPEC.md §14) after this
    version: the RFC 9162 tree of its ballot, retraction and rejection leaves. A
    refused vote adds a leaf and no version: of two Tallies of one version, the
    one with the larger ``log_size`` is newer.
    """

    type: Literal["tally"] = "tally"
    submission_id: Identifier
    counts: VoteCounts
    total: int = Field(ge=0)
    decision: OpenDecision
    rules_version: str = Field(max_length=200)
    version: int = Field(ge=0)
    log_size: int | None = Field(None, ge=0, description="leaves in the submission's log")
    log_root: HexDigest | None = Field(
        None, description="the RFC 9162 root of the submission's log (SHA-256, hex)"
    )
