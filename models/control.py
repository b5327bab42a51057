"""Control messages on compacted topics: rings, submissions, credential revocations."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from .base import IssuerSigned, WireModel
from .encoding import credential_revoked_signing_bytes
from .fields import (
    MAX_RING_MEMBERS,
    CredentialHash,
    Epoch,
    HexPoint,
    Identifier,
    IssuerSignature,
)

__all__ = ["CredentialRevoked", "Ring", "Submission"]


class Ring(WireModel):
    """An anonymity set: the reviewers' public keys for one genre and epoch (key: ring_id)."""

    type: Literal["ring"] = "ring"
    ring_id: Identifier
    genre: Identifier
    epoch: Epoch
    public_keys: list[HexPoint] = Field(min_length=1, max_length=MAX_RING_MEMBERS)
    active: bool = True

    def public_key_bytes(self) -> list[bytes]:
        """Members as 32-byte encodings, in message order (ringcrypto.Ring sorts them)."""
        return [bytes.fromhex(pk) for pk in self.public_keys]


class Submission(WireModel):
    """Something reviewers vote on (key: submission_id)."""

    type: Literal["submission"] = "submission"
    submission_id: Identifier
    genre: Identifier
    epoch: Epoch


class CredentialRevoked(IssuerSigned, WireModel):
    """A credential withdrawn; its unspent tokens are revoked (key: credential_hash).

    Signed by the issuer (finding F5): the revocation fan-out acts only on a
    revocation whose ``issuer_signature`` verifies, and embeds it in every
    TokenRevoked it writes, so the verify stage can check the issuer's word
    without the workers holding the issuer key. An unsigned one is parsed
    (``None``) so that it becomes an ``unauthorized_token_event`` rejection,
    not a ``malformed`` one.
    """

    type: Literal["credential_revoked"] = "credential_revoked"
    credential_hash: CredentialHash
    reason: str = Field(max_length=500)
    issuer_signature: IssuerSignature | None = None

    def signing_bytes(self) -> bytes:
        """What the issuer signs: every field but the signature."""
        return credential_revoked_signing_bytes(
            credential_hash=self.credential_hash, reason=self.reason
        )

    def token_reason(self) -> str:
        """The reason each token it revokes records (the fan-out's TokenRevoked says it too)."""
        return f"credential revoked: {self.reason}"
