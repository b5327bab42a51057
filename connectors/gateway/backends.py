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
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import asyncpg
from redis.asyncio import Redis

from connectors.postgres.db import quote_ident
from connectors.readmodel.store import ReadModelStore
from connectors.sdk import AsyncVoteClient, NotFound
from connectors.sdk.outcome import Outcome
from connectors.sdk.reader import RingVersion, check_kafka, list_submissions, ring_history
from models.control import Submission
from models.votes import VoteCast
from streams.errors import ServiceUnavailable
from streams.settings import Settings

from .settings import GatewaySettings

__all__ = ["Backends", "ControlCache"]

log = logging.getLogger("ringtally.gateway")
_T = TypeVar("_T")


@dataclass
class _Control:
    rings: dict[str, list[RingVersion]] = field(default_factory=dict)
    submissions: dict[str, Submission] = field(default_factory=dict)
    read_at: float = 0.0


class ControlCache:
    """The rings and submissions topics as the workers count them (registrar-signed only),
    re-read at most every ``refresh`` seconds, one read at a time, off the event loop.

    Public data (genres, epochs, ring members); used to answer ``/rings``,
    ``/submissions`` and to label tallies and statistics by genre and epoch.
    """

    def __init__(self, settings: Settings, refresh: float) -> None:
        self.settings = settings
        self.refresh = refresh
        self._data = _Control()
        self._lock = asyncio.Lock()

    def _read(self) -> _Control:
        try:
            return self._read_topics()
        except NotFound:  # no rings/submissions topic yet: nothing registered
            return _Control(read_at=time.monotonic())

    def _read_topics(self) -> _Control:
        return _Control(
            ring_history(self.settings), list_submissions(self.settings), time.monotonic()
        )

    async def get(self, *, fresh: bool = False) -> _Control:
        """The cached control state; re-read when older than ``refresh`` (or ``fresh``)."""
        age = time.monotonic() - self._data.read_at
        if not fresh and age < self.refresh:
            return self._data
        async with self._lock:
            if time.monotonic() - self._data.read_at >= (0.2 if fresh else self.refresh):
                try:
                    self._data = await asyncio.to_thread(self._read)
                except Exception:  # a topic not created yet: keep what we had
                    self._data.read_at = time.monotonic()
                    raise
        return self._data

    def cached(self) -> _Control:
        """Whatever was read last, without any I/O (the SSE path)."""
        return self._data

    async def submission(self, submission_id: str) -> Submission | None:
        data = await self.get()
        if submission_id not in data.submissions:
            data = await self.get(fresh=True)
        return data.submissions.get(submission_id)

    async def ring(self, ring_id: str) -> list[RingVersion] | None:
        data = await self.get()
        if ring_id not in data.rings:
            data = await self.get(fresh=True)
        return data.rings.get(ring_id)

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

        The SDK's tracker matches an outcome to this publish by position, and a
        byte-identical copy of a counted vote to the original ballot. Two
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
            with contextlib.suppress(BaseException):
                await asyncio.wait_for(asyncio.shield(task), timeout)

        async def run() -> Outcome:
            await client.publish(vote)
            return await client.wait_outcome(vote.vote_id, timeout=timeout)

        task = asyncio.ensure_future(run())
        # a client that hung up leaves the wait running; its result is nobody's to raise
        task.add_done_callback(lambda t: t.cancelled() or t.exception())
        self._waits[key] = (digest, task)
        try:
            return await asyncio.shield(task)
        finally:
            if self._waits.get(key, (None, None))[1] is task:
                del self._waits[key]

    async def warm_up(self) -> None:
        """Start the producer and read the control topics now, not on the first request
        (a service that is down is simply retried on first use)."""
        for step in (self.client, self.control.get):
            with contextlib.suppress(Exception):
                await step()

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
        if self._client is not None:
            await self._client.stop()
            self._client = None
        if self._pool is not None:
            await self._pool.close()
            self._pool = None
        await self.redis.aclose()
