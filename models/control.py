"""Control records, signed by the registrar: ring versions, submissions and their closing.

They change what the workers accept, so each carries a registrar signature
(``registrar_signature``, checked against ``RINGTALLY_REGISTRAR_PUBLIC_KEYS``)
and is immutable once written: the first signed record of a ring version or a
submission wins, and a contradicting one becomes a rejection (docs/protocol.md).
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import AwareDatetime, Field

from .base import RegistrarSigned, WireModel
from .encoding import (
    ring_signing_bytes,
    submission_closed_signing_bytes,
    submission_signing_bytes,
)
from .fields import (
    MAX_RING_MEMBERS,
    MAX_VOTES_PER_EPOCH,
    Epoch,
    HexPoint,
    Identifier,
    RegistrarSignature,
)

__all__ = ["ControlRecord", "Ring", "Submission", "SubmissionClosed"]


class Ring(RegistrarSigned, WireModel):
    """One immutable version of an anonymity set: the reviewers' public keys for a genre
    and epoch (key: ring_id; every version of a ring on one partition, in order).

    A version is in force from ``max(valid_from, the broker timestamp of its
    record)`` until the next version's start. A vote names the version it
    signed against. Revoking a reviewer is publishing a version without their
    key; deactivating a ring is publishing one with ``active: false``.
    """

    type: Literal["ring"] = "ring"
    ring_id: Identifier
    version: int = Field(
        ge=1, le=2**32 - 1, description="1 for the first version, then +1 for each next one"
    )
    genre: Identifier
    epoch: Epoch
    public_keys: list[HexPoint] = Field(min_length=1, max_length=MAX_RING_MEMBERS)
    votes_per_epoch: int = Field(
        ge=1,
        le=MAX_VOTES_PER_EPOCH,
        description="k: how many votes each member may cast in the epoch (slots 0..k-1)",
    )
    active: bool = True
    valid_from: AwareDatetime = Field(
        description="when this version takes effect, if later than its record's broker timestamp"
    )
    registrar_signature: RegistrarSignature | None = None

    def public_key_bytes(self) -> list[bytes]:
        """Members as 32-byte encodings, in message order (ringcrypto.Ring sorts them)."""
        return [bytes.fromhex(pk) for pk in self.public_keys]

    def signing_bytes(self) -> bytes:
        """What the registrar signs: every field but the signature."""
        return ring_signing_bytes(
            ring_id=self.ring_id,
            version=self.version,
            genre=self.genre,
            epoch=self.epoch,
            public_keys=self.public_key_bytes(),
            votes_per_epoch=self.votes_per_epoch,
            active=self.active,
            valid_from=self.valid_from,
        )

    def valid_from_ms(self) -> int:
        """``valid_from`` in milliseconds since 1970 (the unit of Kafka timestamps)."""
        return _ms(self.valid_from)


class Submission(RegistrarSigned, WireModel):
    """Something reviewers vote on (key: submission_id), immutable once written."""

    type: Literal["submission"] = "submission"
    submission_id: Identifier
    genre: Identifier
    epoch: Epoch
    registrar_signature: RegistrarSignature | None = None

    def signing_bytes(self) -> bytes:
        """What the registrar signs: every field but the signature."""
        return submission_signing_bytes(
            submission_id=self.submission_id, genre=self.genre, epoch=self.epoch
        )


class SubmissionClosed(RegistrarSigned, WireModel):
    """The registrar closes a submission (key: submission_id; the submissions topic): a vote
    appended at or after this record's broker timestamp is rejected ``submission_closed``,
    so the submission's log (native/SPEC.md §14) takes no ballot after the votes appended
    before it. The first signed closing of a submission counts; closing again is a no-op."""

    type: Literal["submission_closed"] = "submission_closed"
    submission_id: Identifier
    registrar_signature: RegistrarSignature | None = None

    def signing_bytes(self) -> bytes:
        """What the registrar signs: every field but the signature."""
        return submission_closed_signing_bytes(submission_id=self.submission_id)


ControlRecord = Ring | Submission | SubmissionClosed


def _ms(instant: datetime) -> int:
    return int(instant.timestamp() * 1000)
