"""What the gateway talks to: one shared Kafka producer (with the SDK's outcome tracker),
Redis (the read model), Postgres (the sink's tables), and a cache of the control topics.

Nothing here writes anything but votes: the gateway stores nothing. Connections
are opened lazily and reopened after an outage, so the gateway starts (and
``/health`` says what is missing) while a service is down.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import asyncpg
from aiokafka import AIOKafkaConsumer, TopicPartition
from pydantic import ValidationError
from redis.asyncio import Redis

import ringcrypto
from connectors.postgres.db import quote_ident
from connectors.readmodel.store import ReadModelStore
from connectors.sdk import AsyncVoteClient
from connectors.sdk.errors import NoTrustedRegistrar, OutcomeTimeout
from connectors.sdk.outcome import Outcome
from connectors.sdk.reader import RingVersion, check_kafka, trusted_registrar_keys
from models import Ballot
from models.control import Ring, Submission
from models.encoding import REGISTRAR_CONTEXT
from models.outputs import Rejection
from models.reasons import ReasonCode
from models.votes import VoteCast
from streams.errors import ServiceUnavailable
from streams.kafka_client import aiokafka_kwargs
from streams.settings import Settings
from streams.topics import refresh_metadata

from .settings import GatewaySettings

__all__ = ["Backends", "ControlCache"]

log = logging.getLogger("ringtally.gateway")

#: What a worker answers to a byte-identical copy of a vote at a later position.
_COPY = ReasonCode.DUPLICATE_RECORD


@dataclass
class _Control:
    rings: dict[str, list[RingVersion]] = field(default_factory=dict)
    submissions: dict[str, Submission] = field(default_factory=dict)


class ControlCache:
    """The rings and submissions topics as the workers count them, kept current by tailing
    both topics (one aiokafka consumer, no group, ``read_committed``).

    Rules as :func:`connectors.sdk.reader.ring_history` and ``list_submissions``:
    a ring version counts when a trusted registrar key signed it and it is the
    next version of its ring (1, 2, … without gaps); a submission is its first
    signed record. Public data (genres, epochs, ring members), used to answer
    ``/rings`` and ``/submissions`` and to label tallies by genre and epoch.
    Tailing (instead of re-reading the topics per request) keeps those labels
    ready by the time a new submission's first tally arrives.
    """

    def __init__(self, settings: Settings, refresh: float) -> None:
        self.settings = settings
        self.refresh = refresh
        self._data = _Control()
        self._consumer: AIOKafkaConsumer | None = None
        self._tps: list[TopicPartition] = []
        self._task: asyncio.Task[None] | None = None
        self._changed = asyncio.Event()
        keys = trusted_registrar_keys(settings)
        if not keys:  # fail closed: an unchecked ring lets its author pick the anonymity set
            raise NoTrustedRegistrar(
                "the gateway knows no registrar public key: it cannot tell genuine rings",
                fix="set RINGTALLY_REGISTRAR_PUBLIC_KEYS to the registrar's public key(s)",
            )
        self._trusted = [ringcrypto.Ring([pk]) for pk in keys]

    # --- the tail ------------------------------------------------------------------------

    async def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="gateway-control-tail")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
            self._task = None

    async def _run(self) -> None:
        topics = {self.settings.topic("rings"): "rings", self.settings.topic("submissions"): "subs"}
        while True:
            consumer = AIOKafkaConsumer(
                **aiokafka_kwargs(
                    self.settings,
                    group_id=None,
                    enable_auto_commit=False,
                    isolation_level="read_committed",
                    auto_offset_reset="earliest",
                    client_id="ringtally-gateway-control",
                )
            )
            try:
                await consumer.start()
                tps = []
                while len(tps) < len(topics):  # the topics may not exist yet
                    await refresh_metadata(consumer)
                    tps = [
                        TopicPartition(t, p)
                        for t in topics
                        for p in sorted(consumer.partitions_for_topic(t) or ())
                    ]
                    if {tp.topic for tp in tps} != set(topics):
                        tps = []
                        await asyncio.sleep(self.refresh)
                consumer.assign(tps)
                await consumer.seek_to_beginning(*tps)
                self._data, self._consumer, self._tps = _Control(), consumer, tps
                while True:
                    batches = await consumer.getmany(timeout_ms=500, max_records=1000)
                    for tp, records in sorted(batches.items(), key=lambda i: i[0].topic):
                        for r in records:
                            self._apply(topics[tp.topic], r.value, r.timestamp)
                    self._changed.set()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - Kafka went away: start over, keep serving
                log.warning("control topics tail lost (%s); retrying", type(exc).__name__)
                await asyncio.sleep(self.refresh)
            finally:
                self._consumer = None
                with contextlib.suppress(Exception):
                    await consumer.stop()

    def _signed(self, record: Ring | Submission) -> bool:
        signature = record.registrar_signature_bytes()
        if signature is None:
            return False
        message = record.signing_bytes()
        for ring in self._trusted:
            try:
                ringcrypto.verify(ring, REGISTRAR_CONTEXT, message, signature)
                return True
            except (ringcrypto.MalformedInput, ringcrypto.InvalidSignature):
                continue
        return False

    def _apply(self, kind: str, value: bytes | None, timestamp_ms: int) -> None:
        if value is None:
            return
        try:
            record = (
                Ring.model_validate_json(value)
                if kind == "rings"
                else (Submission.model_validate_json(value))
            )
        except ValidationError:
            return
        if isinstance(record, Ring):
            versions = self._data.rings.get(record.ring_id, [])
            if record.version == len(versions) + 1 and self._signed(record):
                effective = max(record.valid_from_ms(), timestamp_ms)
                self._data.rings[record.ring_id] = [*versions, RingVersion(record, effective)]
        elif record.submission_id not in self._data.submissions and self._signed(record):
            self._data.submissions[record.submission_id] = record

    # --- reads -----------------------------------------------------------------------------

    async def get(self, *, fresh: bool = False) -> _Control:
        """What the tail has read; ``fresh``: first wait (at most ``refresh`` seconds) until it
        has read everything appended before this call."""
        consumer = self._consumer
        if fresh and consumer is not None:
            with contextlib.suppress(Exception):
                ends = await consumer.end_offsets(self._tps)
                deadline = asyncio.get_running_loop().time() + self.refresh
                while asyncio.get_running_loop().time() < deadline:
                    if all(await consumer.position(tp) >= end for tp, end in ends.items()):
                        break
                    self._changed.clear()
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._changed.wait(), 0.2)
        return self._data

    def cached(self) -> _Control:
        """Whatever was read so far, without any I/O (the SSE path)."""
        return self._data

    async def submission(self, submission_id: str) -> Submission | None:
        found = self._data.submissions.get(submission_id)
        if found is None:
            found = (await self.get(fresh=True)).submissions.get(submission_id)
        return found

    async def ring(self, ring_id: str) -> list[RingVersion] | None:
        found = self._data.rings.get(ring_id)
        if found is None:
            found = (await self.get(fresh=True)).rings.get(ring_id)
        return found

    def genre_of_ring(self, ring_id: str) -> str | None:
        versions = self._data.rings.get(ring_id)
        return versions[-1].ring.genre if versions else None


class Backends:
    """The shared producer and readers of one gateway process."""

    def __init__(self, settings: Settings, gateway: GatewaySettings) -> None:
        self.settings = settings
        self.gateway = gateway
        self.control = ControlCache(settings, gateway.control_refresh)
        self.redis = Redis.from_url(
            settings.redis_url, decode_responses=True, socket_timeout=5, socket_connect_timeout=3
        )
        self.store = ReadModelStore(self.redis, settings.topic_prefix)
        self._client: AsyncVoteClient | None = None
        self._client_lock = asyncio.Lock()
        self._pool: asyncpg.Pool | None = None
        self._pool_lock = asyncio.Lock()
        #: vote id -> (payload digest, the in-flight wait): a second identical POST joins it.
        self._waits: dict[str, tuple[bytes, asyncio.Task[Outcome]]] = {}

    # --- Kafka -----------------------------------------------------------------------

    async def client(self) -> AsyncVoteClient:
        """The one shared, idempotent producer and outcome reader (started on first use).

        ``AsyncVoteClient`` without a key only publishes votes signed elsewhere;
        aiokafka's default partitioner is murmur2, as the workers require.
        """
        if self._client is None:
            async with self._client_lock:
                if self._client is None:
                    self._client = await AsyncVoteClient(self.settings, None).start()
        return self._client

    async def publish(self, vote: VoteCast) -> None:
        """Publish without tracking: returns once the broker acknowledged it (acks=all)."""
        client = await self.client()
        await client.publish_raw(vote.token_id.encode(), vote.to_json())

    async def publish_and_wait(self, vote: VoteCast, timeout: float) -> Outcome:
        """Publish and wait for the ballot or rejection (``OutcomeTimeout`` after ``timeout``).

        The SDK's tracker matches an outcome to this publish by position, and the
        ``duplicate_record`` of a byte-identical copy of a vote it saw counted to that
        ballot (a copy another instance published first: the stored ballot). Two
        concurrent waits for the same bytes share one tracked wait (the second
        publish is a plain copy); a different message with the same vote id
        (the same tag) waits for the first to finish, then is tracked itself.
        """
        client = await self.client()
        key = str(vote.vote_id)
        payload = vote.to_json()
        digest = hashlib.sha256(payload).digest()
        while key in self._waits:
            other_digest, task = self._waits[key]
            if other_digest == digest:
                await client.publish_raw(vote.token_id.encode(), payload)
                return await asyncio.wait_for(asyncio.shield(task), timeout)
            with contextlib.suppress(Exception):
                await asyncio.wait_for(asyncio.shield(task), timeout)

        async def run() -> Outcome:
            await client.publish(vote)
            return await client.wait_outcome(vote.vote_id, timeout=timeout)

        task = asyncio.ensure_future(run())
        # a client that hung up leaves the wait running; its result is nobody's to raise
        task.add_done_callback(lambda t: t.cancelled() or t.exception())
        self._waits[key] = (digest, task)
        watcher = asyncio.ensure_future(self._counted_before(vote))
        deadline = asyncio.get_running_loop().time() + timeout
        try:
            done, _ = await asyncio.wait(
                {task, watcher}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
            )
            if watcher in done:
                return watcher.result()
            if task in done:
                outcome = task.result()
                if isinstance(outcome, Rejection) and outcome.reason == _COPY:
                    # a re-post this process did not see counted (another instance took the
                    # first post): the vote's stored ballot is the answer, if it counted
                    left = max(0.0, deadline - asyncio.get_running_loop().time())
                    done, _ = await asyncio.wait({watcher}, timeout=left)
                    if watcher in done:
                        return watcher.result()
                return outcome
            raise OutcomeTimeout(f"vote {key} has no outcome after {timeout:g}s")
        finally:
            watcher.cancel()
            if self._waits.get(key, (None, None))[1] is task:
                del self._waits[key]

    async def _counted_before(self, vote: VoteCast) -> Ballot:
        """The ballot of this very vote, already stored by the sink: the answer to a re-post
        that reached another gateway instance than the first post.

        The tracker recognises the worker's re-emitted ballot only for a copy this
        process published before (by position); a copy posted to another instance
        would wait in vain. A stored ballot with this vote id (= this tag), this
        submission, vote type, ring, epoch and key image (``signature[1:33]``: the
        same key) is the same vote, counted: polled once a second until found.
        """
        key_image = vote.signature_bytes()[1:33].hex()
        while True:
            await asyncio.sleep(1.0)
            try:
                rows = await self.fetch(
                    "SELECT submission_id, key_image, vote_type, ring_id, epoch, "
                    "source_partition, source_offset FROM ballots WHERE vote_id = $1",
                    vote.vote_id,
                )
            except Exception:  # noqa: BLE001 - Postgres down: the tracker may still answer
                continue
            for row in rows:
                if (
                    row["submission_id"] == vote.submission_id
                    and row["key_image"] == key_image
                    and row["vote_type"] == vote.vote_type.value
                    and row["ring_id"] == vote.ring_id
                    and row["epoch"] == vote.epoch
                ):
                    return Ballot(
                        vote_id=vote.vote_id,
                        submission_id=vote.submission_id,
                        key_image=key_image,
                        vote_type=vote.vote_type,
                        ring_id=vote.ring_id,
                        epoch=vote.epoch,
                        source_partition=row["source_partition"],
                        source_offset=row["source_offset"],
                    )

    async def warm_up(self) -> None:
        """Start the producer and the control topics' tail now, not on the first request
        (a service that is down is simply retried on first use)."""
        await self.control.start()
        with contextlib.suppress(Exception):
            await self.client()

    # --- Postgres ----------------------------------------------------------------------

    async def pool(self) -> asyncpg.Pool:
        if self._pool is None:
            async with self._pool_lock:
                if self._pool is None:
                    try:
                        self._pool = await asyncpg.create_pool(
                            self.settings.postgres_dsn,
                            min_size=1,
                            max_size=4,
                            timeout=5,
                            command_timeout=self.gateway.read_timeout,
                            server_settings={
                                "search_path": quote_ident(self.settings.postgres_schema),
                                "application_name": "ringtally-gateway",
                                "default_transaction_read_only": "on",
                            },
                        )
                    except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
                        raise ServiceUnavailable(
                            f"postgres unavailable ({type(exc).__name__})"
                        ) from None
        return self._pool

    async def fetch(self, query: str, *args: Any) -> list[asyncpg.Record]:
        pool = await self.pool()
        try:
            return await pool.fetch(query, *args)
        except asyncpg.UndefinedTableError:
            return []  # the sink has not migrated this schema yet: nothing stored
        except (OSError, asyncpg.PostgresConnectionError, asyncpg.InterfaceError) as exc:
            raise ServiceUnavailable(f"postgres unavailable ({type(exc).__name__})") from None

    # --- health ----------------------------------------------------------------------------

    async def health(self) -> dict[str, str]:
        """Each service: "ok" or why not (no addresses, no secrets)."""

        async def kafka() -> None:
            await asyncio.to_thread(check_kafka, self.settings, timeout=3.0)

        async def redis() -> None:
            await self.redis.ping()

        async def postgres() -> None:
            pool = await self.pool()
            await pool.fetchval("SELECT 1")

        checks: dict[str, Callable[[], Awaitable[None]]] = {
            "kafka": kafka,
            "redis": redis,
            "postgres": postgres,
        }

        async def one(check: Callable[[], Awaitable[None]]) -> str:
            try:
                await asyncio.wait_for(check(), 4.0)
                return "ok"
            except Exception as exc:  # noqa: BLE001 - any failure is "not ready", said in one word
                return f"unavailable ({type(exc).__name__})"

        results = await asyncio.gather(*(one(c) for c in checks.values()))
        return dict(zip(checks, results, strict=True))

    async def close(self) -> None:
        await self.control.stop()
        if self._client is not None:
            await self._client.stop()
            self._client = None
        if self._pool is not None:
            await self._pool.close()
            self._pool = None
        await self.redis.aclose()
