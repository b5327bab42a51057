"""The vote client: build a VoteCast, sign its canonical bytes, publish it keyed by token,
and wait for its outcome.

Signatures are *batchable* by default: slightly larger (65+96n bytes instead of
65+32n), but the workers verify batchable signatures in one combined check per
batch, which is much faster than one check per vote. Pass ``batchable=False``
(``ringtally vote --compact``) for the smallest messages.
"""

from __future__ import annotations

import base64
import time
import uuid
from typing import Any
from uuid import UUID

from confluent_kafka import Consumer, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient

from models.control import Ring as RingRecord
from models.fields import VoteType
from models.internal import vote_id_for_token
from models.votes import VoteCast
from streams.settings import Settings

from .errors import OutcomeTimeout
from .outcome import Outcome, Tracker
from .producer import SdkProducer, ensure_topics, kafka_config
from .reader import _unavailable, end_offsets, get_ring

__all__ = ["VoteClient", "build_vote", "resolve_ring"]

#: A start mark younger than this is reused for the next publish (any earlier mark is
#: still a valid lower bound; see connectors.sdk.outcome), so bulk publishing costs
#: one offsets request per second, not one per vote.
_MARK_REUSE_SECONDS = 1.0


def build_vote(
    key: Any,
    ring: Any,
    *,
    submission_id: str,
    ring_id: str,
    vote_type: VoteType | str,
    token_id: str,
    epoch: int,
    batchable: bool = True,
) -> VoteCast:
    """A signed vote. ``key`` is a ``ringcrypto.SecretKey``, ``ring`` a ``ringcrypto.Ring``.

    The vote id is derived from the token (see ``models.internal.vote_id_for_token``);
    the signature covers ``VoteCast.signing_bytes()`` (every field but itself) with
    the submission id as key-image context.
    """
    import ringcrypto

    fields = dict(
        vote_id=vote_id_for_token(token_id),
        submission_id=submission_id,
        ring_id=ring_id,
        vote_type=VoteType(vote_type),
        token_id=token_id,
        epoch=epoch,
    )
    unsigned = VoteCast.model_construct(**fields)  # type: ignore[arg-type]
    signature = ringcrypto.sign(
        key, ring, submission_id.encode("utf-8"), unsigned.signing_bytes(), batchable=batchable
    )
    return VoteCast(**fields, signature=base64.b64encode(signature).decode("ascii"))  # type: ignore[arg-type]


def resolve_ring(ring: Any, max_size: int = 1024) -> tuple[Any, str | None, int | None]:
    """``(ringcrypto.Ring, ring_id | None, epoch | None)`` from a ringcrypto.Ring or models.Ring."""
    import ringcrypto

    if isinstance(ring, RingRecord):
        return ringcrypto.Ring(ring.public_key_bytes(), max_size=max_size), ring.ring_id, ring.epoch
    if isinstance(ring, ringcrypto.Ring):
        return ring, None, None
    raise TypeError(
        f"ring must be a ringcrypto.Ring, a models.Ring or a ring id, not {type(ring).__name__}"
    )


class _Signer:
    """What the sync and async clients share: the key, ring lookups, vote building."""

    def __init__(self, settings: Settings, key: Any, batchable: bool) -> None:
        self.settings = settings
        self.key = key
        self.batchable = batchable
        self._rings: dict[tuple[str, tuple[str, ...]], Any] = {}

    def _ring(self, ring: Any) -> tuple[Any, str | None, int | None]:
        if isinstance(ring, RingRecord):
            cache_key = (ring.ring_id, tuple(ring.public_keys))
            if cache_key not in self._rings:
                if len(self._rings) >= 64:
                    self._rings.clear()
                self._rings[cache_key] = resolve_ring(ring, self.settings.max_ring_size)[0]
            return self._rings[cache_key], ring.ring_id, ring.epoch
        return resolve_ring(ring, self.settings.max_ring_size)

    def _build(
        self,
        ring: Any,
        *,
        submission_id: str,
        vote_type: VoteType | str,
        token_id: str,
        ring_id: str | None,
        epoch: int | None,
        batchable: bool | None,
    ) -> VoteCast:
        crypto_ring, known_id, known_epoch = self._ring(ring)
        ring_id = ring_id or known_id
        epoch = known_epoch if epoch is None else epoch
        if ring_id is None or epoch is None:
            raise TypeError("ring_id and epoch are required with a ringcrypto.Ring")
        return build_vote(
            self.key,
            crypto_ring,
            submission_id=submission_id,
            ring_id=ring_id,
            vote_type=vote_type,
            token_id=token_id,
            epoch=epoch,
            batchable=self.batchable if batchable is None else batchable,
        )


class VoteClient(_Signer):
    """Holds a reviewer's key; signs and publishes votes, and waits for their outcomes (sync).

    >>> client = VoteClient(settings, load_key_file("alice.key"))
    >>> vote_id = client.cast("ring-1", submission_id="sub-1", vote_type="approve", token_id=t)
    >>> client.wait_outcome(vote_id, timeout=30)   # Ballot(...) or Rejection(reason=...)

    ``ring`` is a ring id (looked up on the rings topic), a ``models.Ring`` or a
    ``ringcrypto.Ring`` (then pass ``ring_id`` and ``epoch``). Publishing uses the
    idempotent producer (acks=all, murmur2 partitioner). Not thread-safe; use one
    client per thread, or :class:`~connectors.sdk.aio.AsyncVoteClient`.
    """

    def __init__(
        self,
        settings: Settings,
        key: Any,
        *,
        producer: SdkProducer | None = None,
        batchable: bool = True,
        ensure: bool = True,
        timeout: float = 30.0,
    ) -> None:
        super().__init__(settings, key, batchable)
        self.timeout = timeout
        if ensure:
            ensure_topics(settings, ["votes", "ballots", "rejections"], timeout=timeout)
        self._producer = producer or SdkProducer(settings)
        self._tracker = Tracker(
            settings.topic("votes"), settings.topic("ballots"), settings.topic("rejections")
        )
        self._admin: AdminClient | None = None
        self._consumer: Consumer | None = None
        self._mark: tuple[float, dict[tuple[str, int], int]] | None = None
        self._named_rings: dict[str, RingRecord] = {}

    # --- publishing -----------------------------------------------------------------

    def sign(
        self,
        ring: Any,
        *,
        submission_id: str,
        vote_type: VoteType | str,
        token_id: str,
        ring_id: str | None = None,
        epoch: int | None = None,
        batchable: bool | None = None,
    ) -> VoteCast:
        """A signed vote, not published."""
        if isinstance(ring, str):
            ring = self.lookup_ring(ring)
        return self._build(
            ring,
            submission_id=submission_id,
            vote_type=vote_type,
            token_id=token_id,
            ring_id=ring_id,
            epoch=epoch,
            batchable=batchable,
        )

    def cast(
        self,
        ring: Any,
        *,
        submission_id: str,
        vote_type: VoteType | str,
        token_id: str,
        ring_id: str | None = None,
        epoch: int | None = None,
        batchable: bool | None = None,
        flush: bool = True,
    ) -> UUID:
        """Sign and publish one vote; returns its vote id (for :meth:`wait_outcome`)."""
        vote = self.sign(
            ring,
            submission_id=submission_id,
            vote_type=vote_type,
            token_id=token_id,
            ring_id=ring_id,
            epoch=epoch,
            batchable=batchable,
        )
        return self.publish(vote, flush=flush)

    def cast_and_wait(self, ring: Any, *, timeout: float = 30.0, **kwargs: Any) -> Outcome:
        """:meth:`cast`, then :meth:`wait_outcome`."""
        return self.wait_outcome(self.cast(ring, **kwargs), timeout=timeout)

    def publish(self, vote: VoteCast, *, flush: bool = True, track: bool = True) -> UUID:
        """Publish a signed vote keyed by its token; returns its vote id.

        With ``track`` (the default) the vote can be waited for with :meth:`wait_outcome`.
        """
        if not track:
            self.publish_raw(vote.token_id.encode(), vote.to_json(), flush=flush)
            return vote.vote_id
        payload = vote.to_json()
        pending = self._tracker.register(vote.vote_id, vote.token_id, payload)
        pending.start = self._start_mark()

        def delivered(partition: int, offset: int) -> None:
            self._tracker.delivered(pending, partition, offset)

        self._producer.send(
            self.settings.topic("votes"), vote.token_id.encode(), payload, on_delivered=delivered
        )
        if flush:
            self._producer.flush()
        return vote.vote_id

    def publish_raw(self, key: bytes, value: bytes, *, flush: bool = True) -> None:
        """Publish bytes as they are, untracked (tests and the hostile-input generator use this)."""
        self._producer.send(self.settings.topic("votes"), key, value)
        if flush:
            self._producer.flush()

    def flush(self) -> None:
        self._producer.flush()

    def lookup_ring(self, ring_id: str, *, refresh: bool = False) -> RingRecord:
        """The registered ring ``ring_id`` (read from the rings topic once, then cached)."""
        if refresh or ring_id not in self._named_rings:
            self._named_rings[ring_id] = get_ring(self.settings, ring_id)
        return self._named_rings[ring_id]

    # --- outcomes --------------------------------------------------------------------

    def wait_outcome(self, vote_id: UUID | str, timeout: float = 30.0) -> Outcome:
        """The Ballot or Rejection of a vote this client published.

        Reads the ballots and rejections topics from the end offsets captured
        just before the publish (see :mod:`connectors.sdk.outcome` for how
        records are matched). Raises :class:`OutcomeTimeout` after ``timeout``
        seconds (the vote stays published), ``KeyError`` for a vote id this
        client did not publish (or already returned).
        """
        found = self._tracker.take(vote_id)
        if found is not None:
            return found
        if not self._tracker.knows(vote_id):
            raise KeyError(f"vote {vote_id} was not published (tracked) by this client")
        self._producer.flush()
        deadline = time.monotonic() + timeout
        consumer = self._outcome_consumer()
        try:
            while True:
                targets = self._tracker.seek_targets()
                if targets:
                    self._tracker.advance(targets)
                    consumer.assign(
                        [
                            TopicPartition(topic, partition, offset)
                            for (topic, partition), offset in self._tracker.cursor.items()
                        ]
                    )
                remaining = deadline - time.monotonic()
                for msg in consumer.consume(1000, timeout=max(0.0, min(0.5, remaining))):
                    if msg.error() is None:
                        self._tracker.offer(msg.topic(), msg.partition(), msg.offset(), msg.value())
                found = self._tracker.take(vote_id)
                if found is not None:
                    return found
                if time.monotonic() >= deadline:
                    raise OutcomeTimeout(
                        f"vote {vote_id} was published but has no ballot or rejection after "
                        f"{timeout:g}s",
                        fix="is a worker running and caught up? (ringtally worker)",
                    )
        except KafkaException as exc:
            raise _unavailable(self.settings, exc) from None

    def _start_mark(self) -> dict[tuple[str, int], int]:
        now = time.monotonic()
        if self._mark is None or now - self._mark[0] > _MARK_REUSE_SECONDS:
            if self._admin is None:
                self._admin = AdminClient(kafka_config(self.settings))
            self._mark = (now, end_offsets(self.settings, self._tracker.topics, admin=self._admin))
        return self._mark[1]

    def _outcome_consumer(self) -> Consumer:
        if self._consumer is None:
            self._consumer = Consumer(
                {
                    **kafka_config(self.settings),
                    "group.id": f"ringtally-sdk-outcomes-{uuid.uuid4().hex[:12]}",
                    "enable.auto.commit": False,
                    "isolation.level": "read_committed",
                    "client.id": "ringtally-sdk-outcomes",
                }
            )
        return self._consumer

    def close(self) -> None:
        """Flush, and close the outcome reader."""
        try:
            self._producer.flush()
        finally:
            if self._consumer is not None:
                self._consumer.close()
                self._consumer = None

    def __enter__(self) -> VoteClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
