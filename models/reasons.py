"""Why a message was rejected: one machine-readable code per cause.

Rejections carry a :class:`ReasonCode`; dashboards and ``ringtally rejections
list --reason`` filter on it, so a code's meaning never changes once released
(add a new code instead). ``ReasonCode.X.meaning`` is the one-line text.
"""

from __future__ import annotations

from enum import StrEnum

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
    UNKNOWN_TOKEN = "unknown_token", "no TokenIssued was seen for this token id"
    TOKEN_REVOKED = "token_revoked", "the token (or its credential) was revoked before this vote"
    TOKEN_SPENT = "token_spent", "the token was already spent by another valid vote"
    TOKEN_CONFLICT = "token_conflict", "a TokenIssued contradicts what is known of this token"
    EPOCH_MISMATCH = "epoch_mismatch", "vote, token, ring and submission epochs disagree"
    UNKNOWN_RING = "unknown_ring", "no ring with this ring id is registered"
    INACTIVE_RING = "inactive_ring", "the ring exists but is not active"
    RING_GENRE_MISMATCH = "ring_genre_mismatch", "the ring's genre is not the submission's genre"
    UNKNOWN_SUBMISSION = "unknown_submission", "no submission with this id is registered"
    BAD_SIGNATURE = "bad_signature", "the ring signature does not verify over the rebuilt message"
    UNAUTHORIZED_TOKEN_EVENT = (
        "unauthorized_token_event",
        "a token or credential event no trusted issuer key signed, or revoking another's token",
    )
    DUPLICATE_KEY_IMAGE = (
        "duplicate_key_image",
        "this ring member already voted on this submission (same key image)",
    )
