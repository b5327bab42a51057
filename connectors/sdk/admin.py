"""The registrar's desk: ring versions and submissions, signed and published.

A ring is a sequence of immutable versions on the rings topic (version 1,
2, ... without gaps); registering, rotating (new members) and deactivating a
ring each publish its next version. A submission is published once. Every
record is signed by the registrar key (:mod:`.registrar`): ``Admin(settings)``
loads it from ``settings.registrar_key_path`` on first use (creating the
development key there if it is the default path), or takes a
:class:`~.registrar.Registrar`.

Every method validates with the wire models (and ringcrypto for ring
members) before anything is sent, and flushes before it returns: when it
returns, the broker has the record (idempotent producer, acks=all).

Two admins publishing the next version of one ring at the same moment would
both name the same version number: the workers keep the first and reject the
second ``control_conflict``. Run one registrar.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from models.control import Ring, Submission, SubmissionClosed
from streams.errors import UsageProblem
from streams.settings import Settings

from .errors import NotFound
from .producer import SdkProducer, ensure_topics
from .reader import get_ring, list_rings, list_submissions, ring_history
from .registrar import Registrar, load_registrar

__all__ = ["Admin"]


class Admin:
    """Publishes registrar-signed control records: ring versions and submissions."""

    def __init__(
        self,
        settings: Settings,
        registrar: Registrar | None = None,
        *,
        producer: SdkProducer | None = None,
        timeout: float = 30.0,
    ) -> None:
        self.settings = settings
        ensure_topics(settings, timeout=timeout)
        self._producer = producer or SdkProducer(settings)
        self._registrar = registrar

    @property
    def registrar(self) -> Registrar:
        """The registrar key that signs control records (loaded on first use)."""
        if self._registrar is None:
            self._registrar = load_registrar(self.settings)
        return self._registrar

    # --- rings ---------------------------------------------------------------------------

    def register_ring(
        self,
        ring_id: str,
        *,
        genre: str,
        epoch: int,
        public_keys: Sequence[bytes],
        votes_per_epoch: int = 10,
        valid_from: datetime | None = None,
    ) -> Ring:
        """Publish version 1 of ring ``ring_id`` (or, if it exists, its next version) and
        return it; nothing is published when the latest version already has this content.

        Raises ``ringcrypto.MalformedInput`` for a bad or duplicate key, and
        ``pydantic.ValidationError`` for a bad id, genre, epoch or k.
        """
        latest = self._latest(ring_id)
        candidate = self._ring(
            ring_id,
            version=1 if latest is None else latest.version + 1,
            genre=genre,
            epoch=epoch,
            public_keys=public_keys,
            votes_per_epoch=votes_per_epoch,
            active=True,
            valid_from=valid_from,
        )
        if latest is not None and _same_content(latest, candidate):
            return latest
        return self._publish_ring(candidate)

    def rotate_ring(
        self,
        ring_id: str,
        *,
        public_keys: Sequence[bytes],
        valid_from: datetime | None = None,
    ) -> Ring:
        """Publish the next version of ring ``ring_id`` with these members (same genre, epoch
        and votes per epoch). Revoking a reviewer is a rotation without their key: a vote
        appended after the new version takes effect cannot name the old one. Raises NotFound.
        """
        latest = self._require(ring_id)
        return self._publish_ring(
            self._ring(
                ring_id,
                version=latest.version + 1,
                genre=latest.genre,
                epoch=latest.epoch,
                public_keys=public_keys,
                votes_per_epoch=latest.votes_per_epoch,
                active=latest.active,
                valid_from=valid_from,
            )
        )

    def deactivate_ring(self, ring_id: str, valid_from: datetime | None = None) -> Ring:
        """Publish the next version of ring ``ring_id`` with ``active=False``: votes appended
        after it takes effect are rejected. Ballots already counted stay counted. Raises
        NotFound, or UsageProblem when the ring is already inactive."""
        latest = self._require(ring_id)
        if not latest.active:
            raise UsageProblem(
                f"ring {ring_id!r} is already inactive (version {latest.version})",
                fix="nothing to do",
            )
        return self._publish_ring(
            latest.model_copy(
                update={
                    "version": latest.version + 1,
                    "active": False,
                    "valid_from": valid_from or datetime.now(UTC),
                    "registrar_signature": None,
                }
            )
        )

    def ring_versions(self, ring_id: str) -> list[Ring]:
        """Every version of ring ``ring_id``, oldest first (empty: not registered)."""
        return [v.ring for v in ring_history(self.settings).get(ring_id, [])]

    def list_rings(self) -> dict[str, Ring]:
        """Every registered ring by id: its latest version (see :mod:`.reader`)."""
        return list_rings(self.settings)

    # --- submissions ---------------------------------------------------------------------

    def register_submission(self, submission_id: str, *, genre: str, epoch: int) -> Submission:
        """Publish a signed submission (nothing is published when it is already registered
        alike; UsageProblem when it is registered with another genre or epoch: a submission
        is immutable)."""
        unsigned = Submission(submission_id=submission_id, genre=genre, epoch=epoch)
        existing = list_submissions(self.settings).get(submission_id)
        if existing is not None:
            if (existing.genre, existing.epoch) == (genre, epoch):
                return existing
            raise UsageProblem(
                f"submission {submission_id!r} is already registered with genre "
                f"{existing.genre!r}, epoch {existing.epoch}: a submission cannot change",
                fix="register it under a new id",
            )
        submission = self.registrar.sign_submission(unsigned)
        self._publish("submissions", submission_id, submission.to_json())
        return submission

    def close_submission(self, submission_id: str) -> SubmissionClosed:
        """Publish the registrar-signed closing of a registered submission: votes appended
        from now on are rejected ``submission_closed``, so its log takes no more ballots
        (NotFound when it is not registered; closing again is harmless)."""
        if submission_id not in list_submissions(self.settings):
            raise NotFound(
                f"no submission {submission_id!r} is registered",
                fix="ringtally submissions list",
            )
        closing = self.registrar.sign_closing(SubmissionClosed(submission_id=submission_id))
        self._publish("submissions", submission_id, closing.to_json())
        return closing

    def list_submissions(self) -> dict[str, Submission]:
        return list_submissions(self.settings)

    # --- helpers -------------------------------------------------------------------------

    def _latest(self, ring_id: str) -> Ring | None:
        try:
            return get_ring(self.settings, ring_id)
        except NotFound:
            return None

    def _require(self, ring_id: str) -> Ring:
        return get_ring(self.settings, ring_id)

    def _ring(
        self,
        ring_id: str,
        *,
        version: int,
        genre: str,
        epoch: int,
        public_keys: Sequence[bytes],
        votes_per_epoch: int,
        active: bool,
        valid_from: datetime | None,
    ) -> Ring:
        import ringcrypto

        ringcrypto.Ring(list(public_keys), max_size=self.settings.max_ring_size)
        return Ring(
            ring_id=ring_id,
            version=version,
            genre=genre,
            epoch=epoch,
            public_keys=[pk.hex() for pk in public_keys],
            votes_per_epoch=votes_per_epoch,
            active=active,
            valid_from=valid_from or datetime.now(UTC),
        )

    def _publish_ring(self, ring: Ring) -> Ring:
        signed = self.registrar.sign_ring(ring)
        self._publish("rings", ring.ring_id, signed.to_json())
        return signed

    def _publish(self, short: str, key: str, value: bytes) -> None:
        self._producer.send(self.settings.topic(short), key.encode(), value)
        self._producer.flush()


def _same_content(a: Ring, b: Ring) -> bool:
    """The same members (in any order), genre, epoch, k and activity: re-registering it is a
    no-op, so ``register_ring`` can be run again safely."""
    return (
        a.genre == b.genre
        and a.epoch == b.epoch
        and sorted(a.public_keys) == sorted(b.public_keys)
        and a.votes_per_epoch == b.votes_per_epoch
        and a.active == b.active
    )
