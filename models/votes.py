"""Messages on the votes topic (key: token_id).

Votes and token lifecycle events share one topic so that everything deciding
whether a vote's token is good lies in one totally ordered log per token: live
processing and a replay from offset 0 reach the same decisions.
"""

from __future__ import annotations

import base64
from typing import Annotated, Literal, Self
from uuid import UUID

from pydantic import AwareDatetime, Field, TypeAdapter, model_validator

from .base import IssuerSigned, WireModel
from .control import CredentialRevoked
from .encoding import token_issued_signing_bytes, token_revoked_signing_bytes, vote_signing_bytes
from .fields import (
    Base64Signature,
    CredentialHash,
    Epoch,
    Identifier,
    IssuerSignature,
    VoteType,
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
        """The decoded signature. Parsing checked it is canonical base64 (the model is
        frozen), so it is decoded here without checking again: half the cost."""
        return base64.b64decode(self.signature)


class TokenIssued(IssuerSigned, WireModel):
    """A one-time voting token issued to a credential for an epoch, signed by the issuer.

    The verify stage applies it only when ``issuer_signature`` verifies
    against a trusted issuer key (finding F5); a missing signature parses (so
    the record becomes an ``unauthorized_token_event`` rejection, not a
    ``malformed`` one) and changes nothing.
    """

    type: Literal["token_issued"] = "token_issued"
    token_id: Identifier
    credential_hash: CredentialHash
    epoch: Epoch
    issued_at: AwareDatetime
    issuer_signature: IssuerSignature | None = None

    def signing_bytes(self) -> bytes:
        """What the issuer signs: every field but the signature."""
        return token_issued_signing_bytes(
            token_id=self.token_id,
            credential_hash=self.credential_hash,
            epoch=self.epoch,
            issued_at=self.issued_at,
        )


class TokenRevoked(IssuerSigned, WireModel):
    """A token withdrawn before it was spent.

    Authorised in exactly one of two ways (finding F5):

    * ``issuer_signature``: the issuer revokes this one token itself;
    * ``credential_revocation``: the issuer-signed CredentialRevoked that
      caused it, embedded by the revocation fan-out (which runs in the
      workers and so cannot sign). It revokes the token only if the token was
      issued to that very credential; ``reason`` is then not signed, and the
      verify stage records the embedded revocation's reason instead.
    """

    type: Literal["token_revoked"] = "token_revoked"
    token_id: Identifier
    reason: str = Field(max_length=500)
    issuer_signature: IssuerSignature | None = None
    credential_revocation: CredentialRevoked | None = None

    @model_validator(mode="after")
    def _one_authorisation(self) -> Self:
        if (self.issuer_signature is None) == (self.credential_revocation is None):
            raise ValueError(
                "a token revocation carries exactly one of issuer_signature and "
                "credential_revocation"
            )
        return self

    def signing_bytes(self) -> bytes:
        """What the issuer signs for a direct revocation: every field but the signature."""
        return token_revoked_signing_bytes(token_id=self.token_id, reason=self.reason)


VotesMessage = Annotated[VoteCast | TokenIssued | TokenRevoked, Field(discriminator="type")]
_votes_adapter: TypeAdapter[VoteCast | TokenIssued | TokenRevoked] = TypeAdapter(VotesMessage)


def parse_votes_message(raw: bytes) -> VoteCast | TokenIssued | TokenRevoked:
    """Parse one votes-topic value; raises ``pydantic.ValidationError`` when malformed."""
    return _votes_adapter.validate_json(raw)
