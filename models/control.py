"""Control messages on compacted topics: rings, submissions, credential revocations."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from .base import WireModel
from .fields import MAX_RING_MEMBERS, CredentialHash, Epoch, HexPoint, Identifier

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


class CredentialRevoked(WireModel):
    """A credential withdrawn; its unspent tokens are revoked (key: credential_hash)."""

    type: Literal["credential_revoked"] = "credential_revoked"
    credential_hash: CredentialHash
    reason: str = Field(max_length=500)
