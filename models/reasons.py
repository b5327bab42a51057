"""Why a message was rejected: one machine-readable code per cause.

Rejections carry a :class:`ReasonCode`; dashboards and ``ringtally rejections
list --reason`` filter on it, so a code's meaning never changes once released
(add a new code instead). ``ReasonCode.X.meaning`` is the one-line text.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

__all__ = ["ReasonCode"]


class ReasonCode(StrEnum):
    """Rejection reasons; the value is what goes on the wire."""

    meaning: str

    def __new__(cls, value: str, meaning: str) -> ReasonCode:
        member = str.__new__(cls, value)
        member._value_ = value
        member.meaning = meaning
        return member

    MALFORMED = "malformed", "not a valid message: bad JSON, wrong types, oversized or unknown type"
    WRONG_PARTITION = (
        "wrong_partition",
        "the record is not on the partition Kafka's default partitioner (murmur2) gives its key",
    )
    TOKEN_SPENT = "token_spent", "this slot tag was already spent by another valid vote"
    DUPLICATE_RECORD = (
        "duplicate_record",
        "a byte-identical copy, at a later votes-topic position, of the vote that spent this "
        "slot tag (a producer's retry or a replay): that earlier position's outcome is the vote's",
    )
    SLOT_OUT_OF_RANGE = (
        "slot_out_of_range",
        "the vote's slot is not below the ring version's votes_per_epoch",
    )
    EPOCH_MISMATCH = "epoch_mismatch", "vote, ring and submission epochs disagree"
    UNKNOWN_RING = "unknown_ring", "no ring version with this ring id and version is registered"
    INACTIVE_RING = "inactive_ring", "the ring version in force is not active"
    RING_NOT_IN_FORCE = (
        "ring_not_in_force",
        "the named ring version was not in force at the vote's broker time "
        "(superseded, or not yet valid)",
    )
    RING_GENRE_MISMATCH = "ring_genre_mismatch", "the ring's genre is not the submission's genre"
    UNKNOWN_SUBMISSION = "unknown_submission", "no submission with this id is registered"
    SUBMISSION_CLOSED = (
        "submission_closed",
        "the registrar closed the submission before the vote was appended: its log is final",
    )
    BAD_SIGNATURE = "bad_signature", "the ring signature does not verify over the rebuilt message"
    DUPLICATE_KEY_IMAGE = (
        "duplicate_key_image",
        "this ring member already voted on this submission (same key image)",
    )
    UNAUTHORIZED_CONTROL_EVENT = (
        "unauthorized_control_event",
        "a control record (ring version, submission) no trusted registrar key signed",
    )
    CONTROL_CONFLICT = (
        "control_conflict",
        "a control record contradicting an earlier one (a re-used ring version or "
        "submission id, a gap in ring versions)",
    )
    # Protocol v1 only; kept so that rejections written by v1 workers still parse.
    UNKNOWN_TOKEN = "unknown_token", "(v1) no TokenIssued was seen for this token id"
    TOKEN_REVOKED = "token_revoked", "(v1) the token (or its credential) was revoked"
    TOKEN_CONFLICT = "token_conflict", "(v1) a TokenIssued contradicts what is known of this token"
    UNAUTHORIZED_TOKEN_EVENT = (
        "unauthorized_token_event",
        "(v1) a token or credential event no trusted issuer key signed",
    )

    @classmethod
    def __get_pydantic_json_schema__(cls, core_schema: Any, handler: Any) -> dict[str, Any]:
        """The published schema lists what each code means (a consumer filters on them)."""
        schema = handler(core_schema)
        schema["description"] = "Why a message was not counted; a code's meaning never " + (
            "changes (new causes get new codes, so a reader must accept a code not listed "
            "here):\n" + "\n".join(f"- {reason.value}: {reason.meaning}" for reason in cls)
        )
        return dict(schema)
