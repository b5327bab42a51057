"""Issuer and admin helpers: tokens, credential revocations, rings, submissions.

Every method validates with the wire models (and ringcrypto for ring
members) before anything is sent, and flushes before it returns: when it
returns, the broker has the record (idempotent producer, acks=all).

Token events and credential revocations are signed with the issuer key
(finding F5; :mod:`.issuer`): ``Admin(settings)`` loads it from
``settings.issuer_key_path`` on first use (creating the development key
there if it is the default path), or takes an :class:`~.issuer.Issuer`.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from datetime import UTC, datetime

from models.control import CredentialRevoked, Ring, Submission
from models.votes import TokenRevoked
from streams.settings import Settings

from .issuer import Issuer, load_issuer
from .producer import SdkProducer, ensure_topics
from .reader import get_ring, list_rings, list_submissions

__all__ = ["Admin"]


class Admin:
    """Publishes control messages (rings, submissions) and token lifecycle events."""

    def __init__(
        self,
        settings: Settings,
        *,
        producer: SdkProducer | None = None,
        issuer: Issuer | None = None,
        timeout: float = 30.0,
    ) -> None:
        self.settings = settings
        ensure_topics(settings, timeout=timeout)
        self._producer = producer or SdkProducer(settings)
        self._issuer = issuer

    @property
    def issuer(self) -> Issuer:
        """The issuer key that signs token events (loaded on first use)."""
        if self._issuer is None:
            self._issuer = load_issuer(self.settings)
        return self._issuer

    # --- rings and submissions ---------------------------------------------------------

    def register_ring(
        self,
        ring_id: str,
        *,
        genre: str,
        epoch: int,
        public_keys: Sequence[bytes],
        active: bool = True,
    ) -> Ring:
        """Validate the members with ringcrypto (strict decoding, no duplicates) and publish.

        Raises ``ringcrypto.MalformedInput`` for a bad or duplicate key, and
        ``pydantic.ValidationError`` for a bad id, genre or epoch.
        """
        import ringcrypto

        ringcrypto.Ring(list(public_keys), max_size=self.settings.max_ring_size)
        ring = Ring(
            ring_id=ring_id,
            genre=genre,
            epoch=epoch,
            public_keys=[pk.hex() for pk in public_keys],
            active=active,
        )
        self._publish("rings", ring_id, ring.to_json())
        return ring

    def deactivate_ring(self, ring_id: str) -> Ring:
        """Republish ring ``ring_id`` with ``active=False``: later votes naming it are rejected
        ``inactive_ring``. Ballots already counted stay counted. Raises NotFound."""
        current = get_ring(self.settings, ring_id)
        ring = current.model_copy(update={"active": False})
        self._publish("rings", ring_id, ring.to_json())
        return ring

    def list_rings(self) -> dict[str, Ring]:
        """Every registered ring by id, as currently defined (see :mod:`.reader`)."""
        return list_rings(self.settings)

    def register_submission(self, submission_id: str, *, genre: str, epoch: int) -> Submission:
        submission = Submission(submission_id=submission_id, genre=genre, epoch=epoch)
        self._publish("submissions", submission_id, submission.to_json())
        return submission

    def list_submissions(self) -> dict[str, Submission]:
        return list_submissions(self.settings)

    # --- issuer: tokens and credentials --------------------------------------------------

    def issue_tokens(self, credential_hash: str, *, epoch: int, count: int) -> list[str]:
        """Issue ``count`` fresh random tokens to a credential for an epoch; returns their ids.

        A token id is 128 random bits (hex); it is the vote's Kafka key, and
        its vote id is derived from it.
        """
        if count < 1:
            raise ValueError(f"count must be at least 1, got {count}")
        now = datetime.now(UTC)
        issued = [
            self.issuer.token_issued(
                secrets.token_hex(16), credential_hash=credential_hash, epoch=epoch, issued_at=now
            )
            for _ in range(count)
        ]  # all validated and signed before the first send
        for token in issued:
            self._producer.send(
                self.settings.topic("votes"), token.token_id.encode(), token.to_json()
            )
        self._producer.flush()
        return [t.token_id for t in issued]

    def revoke_credential(self, credential_hash: str, reason: str) -> CredentialRevoked:
        """Revoke a credential: the workers revoke each of its unspent tokens."""
        revoked = self.issuer.credential_revoked(credential_hash, reason)
        self._publish("revocations", credential_hash, revoked.to_json())
        return revoked

    def revoke_token(self, token_id: str, reason: str) -> TokenRevoked:
        """Revoke one token directly (its later vote is rejected ``token_revoked``)."""
        revoked = self.issuer.token_revoked(token_id, reason)
        self._publish("votes", token_id, revoked.to_json())
        return revoked

    def _publish(self, short: str, key: str, value: bytes) -> None:
        self._producer.send(self.settings.topic(short), key.encode(), value)
        self._producer.flush()
