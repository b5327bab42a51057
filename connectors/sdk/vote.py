"""The vote client: pick a slot, build a VoteCast, sign its canonical bytes, publish it
keyed by its slot tag (token_id), and wait for its outcome.

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
from models.encoding import epoch_bytes
from models.fields import VoteType
from models.internal import vote_id_for_token
from models.log import Receipt
from models.outputs import Ballot
from models.votes import VoteCast
from streams.kafka_client import kafka_config
from streams.settings import Settings

from .errors import OutcomeTimeout
from .outcome import Outcome, Tracker
from .producer import KAFKA_LOGGER, SdkProducer, ensure_topics
from .reader import _unavailable, consume_ready, end_offsets, get_ring, ring_in_force
from .receipt import fetch_receipt
from .voter import Voter

__all__ = ["VoteClient", "build_vote", "resolve_ring"]

#: A start mark younger than this is reused for the next publish (any earlier mark is
#: still a valid lower bound; see connectors.sdk.outcome), so bulk publishing costs
#: one offsets request per second, not one per vote.
_MARK_REUSE_SECONDS = 1.0
#: How many published votes a VoteClient keeps for wait_receipt (it proves the vote sent).
_SENT_KEPT = 4096
#: How long a looked-up "ring in force now" is reused before the rings topic is read again.
_LATEST_RING_SECONDS = 5.0


def build_vote(
    key: Any,
    ring: Any,
    *,
    submission_id: str,
    ring_id: str,
    ring_version: int,
    vote_type: VoteType | str,
    epoch: int,
    slot: int,
    batchable: bool = True,
) -> VoteCast:
    """A signed vote. ``key`` is a ``ringcrypto.SecretKey``, ``ring`` a ``ringcrypto.Ring``
    or a ``models.Ring`` (the version named by ``ring_id``/``ring_version``).

    ``token_id`` is the key's slot tag ``key.slot_tag(epoch_bytes(epoch), slot)``
    in hex, the vote id is derived from it (``models.internal.vote_id_for_token``),
    and the signature (``ringcrypto.sign_vote``) covers ``VoteCast.signing_bytes()``
    (every field but itself) with the submission id as key-image context. This
    does not check or record that the slot is unused: a :class:`~.voter.Voter` does.
    """
    import ringcrypto

    if isinstance(ring, RingRecord):
        ring = ringcrypto.Ring(ring.public_key_bytes(), max_size=max(len(ring.public_keys), 1))
    token_id = key.slot_tag(epoch_bytes(epoch), slot).hex()
    fields = dict(
        vote_id=vote_id_for_token(token_id),
        submission_id=submission_id,
        ring_id=ring_id,
        ring_version=ring_version,
        vote_type=VoteType(vote_type),
        epoch=epoch,
        slot=slot,
        token_id=token_id,
    )
    unsigned = VoteCast.model_construct(**fields)  # type: ignore[arg-type]
    signature = ringcrypto.sign_vote(
        key,
        ring,
        submission_id.encode("utf-8"),
        epoch_bytes(epoch),
        slot,
        unsigned.signing_bytes(),
        batchable=batchable,
    )
    return VoteCast(**fields, signature=base64.b64encode(signature).decode("ascii"))  # type: ignore[arg-type]


def resolve_ring(ring: Any, max_size: int = 1024) -> tuple[Any, RingRecord | None]:
    """``(ringcrypto.Ring, models.Ring | None)`` from a ringcrypto.Ring or a models.Ring."""
    import ringcrypto

    if isinstance(ring, RingRecord):
        return ringcrypto.Ring(ring.public_key_bytes(), max_size=max_size), ring
    if isinstance(ring, ringcrypto.Ring):
        return ring, None
    raise TypeError(
        f"ring must be a ringcrypto.Ring, a models.Ring or a ring id, not {type(ring).__name__}"
    )


class _Signer:
    """What the sync and async clients share: the key and its slots, ring lookups, building.

    ``key`` is a ``ringcrypto.SecretKey`` or a :class:`~.voter.Voter`; the
    client's :attr:`voter` (a given one, or one keeping used slots in memory)
    picks and records the slot of every vote it signs.
    """

    def __init__(self, settings: Settings, key: Any, batchable: bool, voter: Voter | None) -> None:
        if isinstance(key, Voter):
            voter = voter or key
            key = key.key
        self.settings = settings
        self.key = key
        # key None: a client that only publishes votes signed elsewhere
        self.voter: Voter | None = voter or (None if key is None else Voter(key))
        if self.voter is not None and self.voter.public_key != key.public_key:
            raise ValueError("the voter holds another key than the client")
        self.batchable = batchable
        self._rings: dict[tuple[str, int], Any] = {}
        self._named_rings: dict[tuple[str, int | None], tuple[float, RingRecord]] = {}

    def _cached_ring(self, ring_id: str, version: int | None) -> RingRecord | None:
        cached = self._named_rings.get((ring_id, version))
        if cached is None:
            return None
        fetched, ring = cached
        if version is None and time.monotonic() - fetched > _LATEST_RING_SECONDS:
            return None  # a rotation may have published a newer version since
        return ring

    def _remember_ring(self, ring_id: str, version: int | None, ring: RingRecord) -> RingRecord:
        if len(self._named_rings) >= 256:
            self._named_rings.clear()
        self._named_rings[(ring_id, version)] = (time.monotonic(), ring)
        return ring

    def _crypto_ring(self, ring: RingRecord) -> Any:
        cache_key = (ring.ring_id, ring.version)
        if cache_key not in self._rings:
            if len(self._rings) >= 64:
                self._rings.clear()
            self._rings[cache_key] = resolve_ring(ring, self.settings.max_ring_size)[0]
        return self._rings[cache_key]

    def _build(
        self,
        ring: Any,
        *,
        submission_id: str,
        vote_type: VoteType | str,
        slot: int | None,
        ring_id: str | None,
        ring_version: int | None,
        epoch: int | None,
        batchable: bool | None,
    ) -> VoteCast:
        if isinstance(ring, RingRecord):
            crypto_ring, record = self._crypto_ring(ring), ring
        else:
            crypto_ring, record = resolve_ring(ring, self.settings.max_ring_size)
        if record is not None:
            ring_id = ring_id or record.ring_id
            ring_version = record.version if ring_version is None else ring_version
            epoch = record.epoch if epoch is None else epoch
        if ring_id is None or ring_version is None or epoch is None:
            raise TypeError("ring_id, ring_version and epoch are required with a ringcrypto.Ring")
        if self.voter is None:
            raise TypeError("this client has no key: it only publishes votes signed elsewhere")
        if record is not None:
            slot = self.voter.take_slot(epoch, record.votes_per_epoch, slot)
        elif slot is None:
            raise TypeError("slot is required with a ringcrypto.Ring (no votes_per_epoch known)")
        else:
            slot = self.voter.take_slot(epoch, slot + 1, slot)  # recorded, range unknown
        return build_vote(
            self.key,
            crypto_ring,
            submission_id=submission_id,
            ring_id=ring_id,
            ring_version=ring_version,
            vote_type=vote_type,
            epoch=epoch,
            slot=slot,
            batchable=self.batchable if batchable is None else batchable,
        )


class VoteClient(_Signer):
    """Holds a reviewer's key; signs and publishes votes, and waits for their outcomes (sync).

    >>> client = VoteClient(settings, Voter.from_key_file("alice.key"))
    >>> vote_id = client.vote("ring-1", submission_id="sub-1", vote_type="approve")
    >>> client.wait_outcome(vote_id, timeout=30)   # Ballot(...) or Rejection(reason=...)

    ``ring`` is a ring id (the version in force now is looked up on the rings
    topic, or ``ring_version``), a ``models.Ring`` or a ``ringcrypto.Ring``
    (then pass ``ring_id``, ``ring_version``, ``epoch`` and ``slot``). The slot
    is ``slot`` or a random unused one; either way the client's
    :class:`~.voter.Voter` records it first, and a used slot raises
    :class:`~.errors.SlotUsed` (all used: :class:`~.errors.SlotsExhausted`)
    before anything is published. Publishing uses the idempotent producer
    (acks=all, murmur2 partitioner). Not thread-safe; use one client per
    thread, or :class:`~connectors.sdk.aio.AsyncVoteClient`.
    """

    def __init__(
        self,
        settings: Settings,
        key: Any,
        *,
        voter: Voter | None = None,
        producer: SdkProducer | None = None,
        batchable: bool = True,
        ensure: bool = True,
        timeout: float = 30.0,
    ) -> None:
        super().__init__(settings, key, batchable, voter)
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
        self._sent: dict[UUID, VoteCast] = {}

    # --- publishing -----------------------------------------------------------------

    def sign(
        self,
        ring: Any,
        *,
        submission_id: str,
        vote_type: VoteType | str,
        slot: int | None = None,
        ring_id: str | None = None,
        ring_version: int | None = None,
        epoch: int | None = None,
        batchable: bool | None = None,
    ) -> VoteCast:
        """A signed vote, not published (its slot is recorded as used all the same)."""
        if isinstance(ring, str):
            ring = self.lookup_ring(ring, version=ring_version)
        return self._build(
            ring,
            submission_id=submission_id,
            vote_type=vote_type,
            slot=slot,
            ring_id=ring_id,
            ring_version=ring_version,
            epoch=epoch,
            batchable=batchable,
        )

    def vote(
        self,
        ring: Any,
        *,
        submission_id: str,
        vote_type: VoteType | str,
        slot: int | None = None,
        ring_id: str | None = None,
        ring_version: int | None = None,
        epoch: int | None = None,
        batchable: bool | None = None,
        flush: bool = True,
    ) -> UUID:
        """Sign and publish one vote; returns its vote id (for :meth:`wait_outcome`)."""
        signed = self.sign(
            ring,
            submission_id=submission_id,
            vote_type=vote_type,
            slot=slot,
            ring_id=ring_id,
            ring_version=ring_version,
            epoch=epoch,
            batchable=batchable,
        )
        return self.publish(signed, flush=flush)

    def vote_and_wait(self, ring: Any, *, timeout: float = 30.0, **kwargs: Any) -> Outcome:
        """:meth:`vote`, then :meth:`wait_outcome`."""
        return self.wait_outcome(self.vote(ring, **kwargs), timeout=timeout)

    cast = vote
    cast_and_wait = vote_and_wait

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
        self._sent[vote.vote_id] = vote  # what wait_receipt proves (the last _SENT_KEPT)
        while len(self._sent) > _SENT_KEPT:
            self._sent.pop(next(iter(self._sent)))

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

    def lookup_ring(
        self, ring_id: str, *, version: int | None = None, refresh: bool = False
    ) -> RingRecord:
        """Ring ``ring_id`` from the rings topic: version ``version``, or the one in force now
        (cached: a given version for good, the one in force for a few seconds)."""
        ring = None if refresh else self._cached_ring(ring_id, version)
        if ring is None:
            if version is None:
                ring = ring_in_force(self.settings, ring_id)
            else:
                ring = get_ring(self.settings, ring_id, version)
            self._remember_ring(ring_id, version, ring)
        return ring

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
                for msg in consume_ready(consumer, max(0.0, min(0.5, remaining))):
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

    def wait_receipt(
        self, outcome: Outcome, timeout: float = 30.0, *, vote: VoteCast | None = None
    ) -> Receipt:
        """The receipt of a vote's outcome (what ``wait_outcome`` returned): the vote this
        client SENT (``vote``, else the one it remembers publishing), its leaf in the
        submission's log (its ballot, or, refused, its rejection leaf with the reason),
        the inclusion proof and the signed head, read from the output topics once a
        head covers it and verified with the trusted log key
        (:func:`~connectors.sdk.receipt.fetch_receipt`); ``ReceiptInvalid`` when the
        outcome's digest is not the sent vote's. Keep it: ``ringtally receipt verify``
        checks it offline, and against later heads. A Rejection that names no leaf (the
        vote never reached a log: malformed, unknown or closed submission) has no
        receipt (``ValueError``); ``ReceiptTimeout`` after ``timeout`` seconds."""
        if not isinstance(outcome, Ballot) and outcome.leaf_index is None:
            raise ValueError(
                f"vote {outcome.vote_id} was refused ({outcome.reason}) before reaching its "
                "submission's log: no receipt"
            )
        sent = vote if vote is not None else self._sent.get(outcome.vote_id)
        if sent is None:
            raise ValueError(
                f"vote {outcome.vote_id} was not published by this client: pass vote= (the "
                "VoteCast you sent)"
            )
        return fetch_receipt(self.settings, outcome, timeout=timeout, vote=sent)

    def _start_mark(self) -> dict[tuple[str, int], int]:
        now = time.monotonic()
        if self._mark is None or now - self._mark[0] > _MARK_REUSE_SECONDS:
            if self._admin is None:
                self._admin = AdminClient(kafka_config(self.settings, logger=KAFKA_LOGGER))
            self._mark = (now, end_offsets(self.settings, self._tracker.topics, admin=self._admin))
        return self._mark[1]

    def _outcome_consumer(self) -> Consumer:
        if self._consumer is None:
            self._consumer = Consumer(
                {
                    **kafka_config(self.settings, logger=KAFKA_LOGGER),
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
