"""Issuer and admin helpers: tokens, credential revocations, rings, submissions."""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from datetime import UTC, datetime

from models.control import CredentialRevoked, Ring, Submission
from models.votes import TokenIssued
from streams.settings import Settings

from .producer import SdkProducer, ensure_topics

__all__ = ["Admin"]


class Admin:
    """Publishes control messages; every method flushes before it returns."""

    def __init__(self, settings: Settings, *, producer: SdkProducer | None = None) -> None:
        self.settings = settings
        ensure_topics(settings)
        self._producer = producer or SdkProducer(settings)

    def register_ring(
        self, ring_id: str, *, genre: str, epoch: int, public_keys: Sequence[bytes], active: bool = True
    ) -> Ring:
        """Validate the members with ringcrypto (strict decoding, no duplicates) and publish."""
        import ringcrypto

        ringcrypto.Ring(list(public_keys), max_size=self.settings.max_ring_size)
        ring = Ring(
            ring_id=ring_id, genre=genre, epoch=epoch, public_keys=[pk.hex() for pk in public_keys], active=active
        )
        self._publish("rings", ring_id, ring.to_json())
        return ring

    def register_submission(self, submission_id: str, *, genre: str, epoch: int) -> Submission:
        submission = Submission(submission_id=submission_id, genre=genre, epoch=epoch)
        self._publish("submissions", submission_id, submission.to_json())
        return submission

    def issue_tokens(self, credential_hash: str, *, epoch: int, count: int) -> list[str]:
        """Issue ``count`` fresh random tokens to a credential; returns their ids."""
        if count < 1:
            raise ValueError(f"count must be at least 1, got {count}")
        now = datetime.now(UTC)
        tokens = [secrets.token_hex(16) for _ in range(count)]
        for token_id in tokens:
            issued = TokenIssued(token_id=token_id, credential_hash=credential_hash, epoch=epoch, issued_at=now)
            self._producer.send(self.settings.topic("votes"), token_id.encode(), issued.to_json())
        self._producer.flush()
        return tokens

    def revoke_credential(self, credential_hash: str, reason: str) -> None:
        revoked = CredentialRevoked(credential_hash=credential_hash, reason=reason)
        self._publish("revocations", credential_hash, revoked.to_json())

    def _publish(self, short: str, key: str, value: bytes) -> None:
        self._producer.send(self.settings.topic(short), key.encode(), value)
        self._producer.flush()
