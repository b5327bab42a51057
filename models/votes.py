"""Messages on the votes topic (key: token_id).

Votes and token lifecycle events share one topic so that everything deciding
whether a vote's token is good lies in one totally ordered log per token: live
processing and a replay from offset 0 reach the same decisions.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal
from uuid import UUID

from pydantic import Field, TypeAdapter

from .base import WireModel
from .encoding import vote_signing_bytes
from .fields import (
    Base64Signature,
    CredentialHash,
    Epoch,
    Identifier,
    VoteType,
    decode_signature,
)

__all__ = ["TokenIssued", "TokenRevoked", "VoteCast", "VotesMessage", "parse_votes_message"]


class VoteCast(WireModel):
    """A reviewer's anonymous vote, signed for the ring of its submission's genre."""

    type: Literal["vote_cast"] = "vote_cast"
    vote_id: UUID
    submission_id: Identifier
    ring_id: Identifier
    vote_type: VoteType
    token_id: Identifier
    epoch: Epoch
    signature: Base64Signature = Field(description="base64 of a ringcrypto signature")

    def signing_bytes(self) -> bytes:
        """The canonical message the signature covers (every field but the signature)."""
        return vote_signing_bytes(
            vote_id=self.vote_id,
            submission_id=self.submission_id,
            ring_id=self.ring_id,
            vote_type=self.vote_type.value,
            token_id=self.token_id,
            epoch=self.epoch,
        )

    def context(self) -> bytes:
        """The key-image context: the submission id, so one key image per (reviewer, submission)."""
        return self.submission_id.encode("utf-8")

    def signature_bytes(self) -> bytes:
        """The decoded signature (already checked to be canonical base64)."""
        return decode_signature(self.signature)


class TokenIssued(WireModel):
    """A one-time voting token issued to a credential for an epoch."""

    type: Literal["token_issued"] = "token_issued"
    token_id: Identifier
    credential_hash: CredentialHash
    epoch: Epoch
    issued_at: datetime


class TokenRevoked(WireModel):
    """A token withdrawn before it was spent (usually fanned out from CredentialRevoked)."""

    type: Literal["token_revoked"] = "token_revoked"
    token_id: Identifier
    reason: str = Field(max_length=500)


VotesMessage = Annotated[VoteCast | TokenIssued | TokenRevoked, Field(discriminator="type")]
_votes_adapter: TypeAdapter[VoteCast | TokenIssued | TokenRevoked] = TypeAdapter(VotesMessage)


def parse_votes_message(raw: bytes) -> VoteCast | TokenIssued | TokenRevoked:
    """Parse one votes-topic value; raises ``pydantic.ValidationError`` when malformed."""
    return _votes_adapter.validate_json(raw)
