"""The asyncio vote client: aiokafka's idempotent producer, no threads.

Why aiokafka rather than the sync producer driven through ``asyncio.to_thread``:
a publish is then one awaited ``send_and_wait`` on the caller's event loop,
so thousands of concurrent casts cost coroutines, not threads, and
cancellation works (a cancelled ``to_thread`` call keeps running in its
thread). The wire behaviour is the same as :class:`~connectors.sdk.SdkProducer`:
``enable_idempotence=True`` (a retried send is never written twice),
``acks="all"``, and aiokafka's default partitioner, which is murmur2 like
Java's and like the sync producer's ``murmur2_random`` for keyed records, so
a token id (slot tag) lands on its murmur2 partition, the one the workers require
(``tests/test_sdk_clients.py`` checks the two clients agree).

Two things still run in a thread: creating missing topics (a one-off
confluent-kafka admin call at :meth:`AsyncVoteClient.start`) and signing,
which is CPU-bound Rust (milliseconds for a large ring) and would otherwise
stall the loop.
"""

from __future__ import annotations

import asyncio
from typing import Any
from uuid import UUID

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import KafkaConnectionError, KafkaError

from models.control import Ring as RingRecord
from models.fields import VoteType
from models.votes import VoteCast
from streams.errors import ServiceUnavailable
from streams.kafka_client import aiokafka_kwargs
from streams.settings import Settings

from .errors import OutcomeTimeout
from .outcome import Outcome, Tracker
from .reader import get_ring, ring_in_force
from .vote import _MARK_REUSE_SECONDS, _Signer
from .voter import Voter

__all__ = ["AsyncVoteClient"]


def _unavailable(settings: Settings, exc: BaseException) -> ServiceUnavailable:
    return ServiceUnavailable(
        f"kafka at {settings.kafka_bootstrap} unreachable: {type(exc).__name__}: {exc}",
        fix="start it with 'ringtally stack up' or set RINGTALLY_KAFKA_BOOTSTRAP",
    )


class AsyncVoteClient(_Signer):
    """Holds a reviewer's key; signs, publishes and waits for outcomes on an asyncio loop.

    >>> async with AsyncVoteClient(settings, Voter.from_key_file("alice.key")) as client:
    ...     vote_id = await client.vote("ring-1", submission_id="sub-1", vote_type="approve")
    ...     outcome = await client.wait_outcome(vote_id, timeout=30)

    Slots and rings as in :class:`~connectors.sdk.vote.VoteClient`: a used slot
    raises ``SlotUsed`` (all used: ``SlotsExhausted``) before publishing.

    Any number of coroutines may vote and wait concurrently on one client: one
    reader serves every wait (see :mod:`connectors.sdk.outcome`).
    """

    def __init__(
        self,
        settings: Settings,
        key: Any,
        *,
        voter: Voter | None = None,
        batchable: bool = True,
        ensure: bool = True,
        timeout: float = 30.0,
    ) -> None:
        super().__init__(settings, key, batchable, voter)
        self.timeout = timeout
        self._ensure = ensure
        self._tracker = Tracker(
            settings.topic("votes"), settings.topic("ballots"), settings.topic("rejections")
        )
        self._producer: AIOKafkaProducer | None = None
        self._consumer: AIOKafkaConsumer | None = None
        self._partitions: list[TopicPartition] = []
        self._scan = asyncio.Lock()
        self._mark: tuple[float, dict[tuple[str, int], int]] | None = None

    async def start(self) -> AsyncVoteClient:
        from .producer import ensure_topics

        if self._ensure:
            await asyncio.to_thread(
                ensure_topics,
                self.settings,
                ["votes", "ballots", "rejections"],
                timeout=self.timeout,
            )
        timeout_ms = int(self.timeout * 1000)
        self._producer = AIOKafkaProducer(
            **aiokafka_kwargs(
                self.settings,
                request_timeout_ms=timeout_ms,
                enable_idempotence=True,
                acks="all",
                client_id="ringtally-sdk-async",
                linger_ms=5,
            )
        )
        self._consumer = AIOKafkaConsumer(
            **aiokafka_kwargs(
                self.settings,
                request_timeout_ms=timeout_ms,
                group_id=None,
                enable_auto_commit=False,
                isolation_level="read_committed",
                auto_offset_reset="earliest",
                client_id="ringtally-sdk-outcomes",
            )
        )
        try:
            await self._producer.start()
            await self._consumer.start()
            self._partitions = [
                TopicPartition(topic, p)
                for topic in self._tracker.topics
                for p in sorted(await self._producer.partitions_for(topic))  # waits for metadata
            ]
            self._consumer.assign(self._partitions)
        except (KafkaConnectionError, KafkaError, OSError) as exc:
            await self.stop()
            raise _unavailable(self.settings, exc) from None
        return self

    async def stop(self) -> None:
        for client in (self._producer, self._consumer):
            if client is not None:
                await client.stop()
        self._producer = self._consumer = None

    async def __aenter__(self) -> AsyncVoteClient:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # --- publishing -----------------------------------------------------------------

    async def lookup_ring(
        self, ring_id: str, *, version: int | None = None, refresh: bool = False
    ) -> RingRecord:
        """Ring ``ring_id``: version ``version``, or the one in force now (see VoteClient)."""
        ring = None if refresh else self._cached_ring(ring_id, version)
        if ring is None:
            if version is None:
                ring = await asyncio.to_thread(ring_in_force, self.settings, ring_id)
            else:
                ring = await asyncio.to_thread(get_ring, self.settings, ring_id, version)
            self._remember_ring(ring_id, version, ring)
        return ring

    async def sign(
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
        """A signed vote, not published (signed in a worker thread; its slot is recorded)."""
        if isinstance(ring, str):
            ring = await self.lookup_ring(ring, version=ring_version)
        return await asyncio.to_thread(
            self._build,
            ring,
            submission_id=submission_id,
            vote_type=vote_type,
            slot=slot,
            ring_id=ring_id,
            ring_version=ring_version,
            epoch=epoch,
            batchable=batchable,
        )

    async def vote(
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
    ) -> UUID:
        """Sign and publish one vote (acknowledged by the broker on return); returns its vote id."""
        signed = await self.sign(
            ring,
            submission_id=submission_id,
            vote_type=vote_type,
            slot=slot,
            ring_id=ring_id,
            ring_version=ring_version,
            epoch=epoch,
            batchable=batchable,
        )
        return await self.publish(signed)

    async def vote_and_wait(self, ring: Any, *, timeout: float = 30.0, **kwargs: Any) -> Outcome:
        return await self.wait_outcome(await self.vote(ring, **kwargs), timeout=timeout)

    cast = vote
    cast_and_wait = vote_and_wait

    async def publish(self, vote: VoteCast) -> UUID:
        """Publish a signed vote keyed by its token (tracked for :meth:`wait_outcome`)."""
        producer = self._started(self._producer)
        payload = vote.to_json()
        pending = self._tracker.register(vote.vote_id, vote.token_id, payload)
        try:
            pending.start = await self._start_mark()
            meta = await producer.send_and_wait(
                self.settings.topic("votes"), payload, key=vote.token_id.encode()
            )
        except (KafkaConnectionError, KafkaError) as exc:
            self._tracker.forget(vote.vote_id)
            raise _unavailable(self.settings, exc) from None
        self._tracker.delivered(pending, meta.partition, meta.offset)
        return vote.vote_id

    async def publish_raw(self, key: bytes, value: bytes) -> tuple[int, int]:
        """Publish bytes as they are, untracked; returns (partition, offset)."""
        producer = self._started(self._producer)
        meta = await producer.send_and_wait(self.settings.topic("votes"), value, key=key)
        return meta.partition, meta.offset

    # --- outcomes --------------------------------------------------------------------

    async def wait_outcome(self, vote_id: UUID | str, timeout: float = 30.0) -> Outcome:
        """The Ballot or Rejection of a vote this client published (see VoteClient.wait_outcome)."""
        consumer = self._started(self._consumer)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            found = self._tracker.take(vote_id)
            if found is not None:
                return found
            if not self._tracker.knows(vote_id):
                raise KeyError(f"vote {vote_id} was not published (tracked) by this client")
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise OutcomeTimeout(
                    f"vote {vote_id} was published but has no ballot or rejection after "
                    f"{timeout:g}s",
                    fix="is a worker running and caught up? (ringtally worker)",
                )
            async with self._scan:  # one reader at a time; the others find their match cached
                if self._tracker.has_outcome(vote_id) or not self._tracker.knows(vote_id):
                    continue  # found by whoever held the lock before us
                await self._read(consumer, min(0.5, remaining))

    async def _read(self, consumer: AIOKafkaConsumer, seconds: float) -> None:
        targets = self._tracker.seek_targets()
        for (topic, partition), offset in targets.items():
            consumer.seek(TopicPartition(topic, partition), offset)
        self._tracker.advance(targets)
        try:
            batches = await consumer.getmany(timeout_ms=int(seconds * 1000), max_records=1000)
        except (KafkaConnectionError, KafkaError) as exc:
            raise _unavailable(self.settings, exc) from None
        for tp, records in batches.items():
            for record in records:
                self._tracker.offer(tp.topic, tp.partition, record.offset, record.value)

    async def _start_mark(self) -> dict[tuple[str, int], int]:
        loop = asyncio.get_running_loop()
        now = loop.time()
        if self._mark is None or now - self._mark[0] > _MARK_REUSE_SECONDS:
            consumer = self._started(self._consumer)
            ends = await consumer.end_offsets(self._partitions)
            self._mark = (now, {(tp.topic, tp.partition): off for tp, off in ends.items()})
        return self._mark[1]

    @staticmethod
    def _started(client: Any) -> Any:
        if client is None:
            raise RuntimeError("AsyncVoteClient is not started: use 'async with' or await start()")
        return client
