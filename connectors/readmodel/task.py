"""Keeps the Redis read model current from the tallies topic, and rebuilds it when lost.

Why a task of its own (run inside the sink process, or alone as
``ringtally readmodel``) rather than a write after each Postgres commit: its
offsets live in Redis, written by the same atomic script as the data (see
:mod:`.store`), so it is exactly-once into Redis on its own terms with no
crash window between "Postgres committed" and "Redis updated"; a Redis outage
never holds up Postgres and a Postgres outage never freezes the read model;
and a rebuild is the same code path as a cold start. It reads the compacted
tallies topic directly (``read_committed``, every partition assigned, no
consumer group: each read model instance reads everything).

Rebuild: when the marker key is missing (Redis flushed or restarted empty),
read the tallies topic from the beginning to the end offsets taken at the
start of the rebuild, keep the highest version per submission in memory,
write them (compare-and-set, no announcements) and the offsets reached, and
set the marker last; then continue live from there.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaConnectionError
from pydantic import ValidationError
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from models import Tally
from streams.backoff import Outage
from streams.errors import KafkaUnavailable, RedisUnavailable
from streams.kafka_client import aiokafka_kwargs
from streams.settings import Settings, redact_url
from streams.topics import refresh_metadata

from .store import MarkerMissing, ReadModelStore

__all__ = ["ReadModel", "redis_refused"]

log = logging.getLogger("ringtally.readmodel")

_REDIS_DOWN = (RedisConnectionError, RedisTimeoutError, OSError)
_CHUNK = 1000


def redis_refused(settings: Settings, exc: ResponseError) -> RedisUnavailable:
    """Redis answered "no" (a database number out of range, say): one line with the fix."""
    return RedisUnavailable(
        f"redis at {redact_url(settings.redis_url)} refused ({exc})",
        fix="check the database number, user and password in RINGTALLY_REDIS_URL",
    )


class ReadModel:
    """One read model instance for ``settings.topic_prefix``."""

    def __init__(
        self,
        settings: Settings,
        *,
        stop: asyncio.Event | None = None,
        once: bool = False,
        until_idle: float | None = None,
        batch_size: int = 5000,
        marker_check: float = 1.0,
        backoff_cap: float = 5.0,
        wait_for_redis: bool = False,
    ) -> None:
        self.settings = settings
        #: Inside a long-running sink: Redis down at start is an outage to wait out (logged
        #: once, shown by the sink's /health), not an error that ends the read model.
        self.wait_for_redis = wait_for_redis
        self.topic = settings.topic("tallies")
        self.stop = stop or asyncio.Event()
        self.once = once
        self.until_idle = until_idle
        self.batch_size = batch_size
        self.marker_check = marker_check
        self.redis = Redis.from_url(settings.redis_url, decode_responses=True)
        self.store = ReadModelStore(self.redis, settings.topic_prefix)
        self._outage = Outage("redis", log, cap=backoff_cap, doing="read model paused")
        self._consumer: AIOKafkaConsumer | None = None
        self._tps: list[TopicPartition] = []
        self.rebuilds = 0
        self.changes = 0

    @property
    def outage(self) -> Outage:
        """Redis's up/down state as the read model last saw it (the sink's /health reads it)."""
        return self._outage

    async def run(self) -> None:
        try:
            if self.wait_for_redis and await self._redis(self.redis.ping) is None:
                await self.redis.aclose()
                return  # stopped while Redis was still down
            await self.redis.ping()
        except _REDIS_DOWN as exc:
            await self.redis.aclose()
            raise RedisUnavailable(
                f"redis at {redact_url(self.settings.redis_url)} is unavailable ({exc})",
                fix="start it ('ringtally stack up') or set RINGTALLY_REDIS_URL",
            ) from None
        except ResponseError as exc:
            await self.redis.aclose()
            raise redis_refused(self.settings, exc) from None
        self._consumer = consumer = AIOKafkaConsumer(
            **aiokafka_kwargs(
                self.settings,
                group_id=None,
                enable_auto_commit=False,
                isolation_level="read_committed",
                auto_offset_reset="earliest",
                client_id="ringtally-readmodel",
            )
        )
        try:
            await consumer.start()
        except KafkaConnectionError as exc:
            await consumer.stop()  # else "Unclosed AIOKafkaConsumer" after the one-line error
            await self.redis.aclose()
            raise KafkaUnavailable(
                f"kafka at {self.settings.kafka_bootstrap} is unavailable ({exc})",
                fix="start it ('ringtally stack up') or set RINGTALLY_KAFKA_BOOTSTRAP",
            ) from None
        try:
            self._tps = await self._partitions()
            if self._tps:
                consumer.assign(self._tps)
                await self._loop()
        finally:
            await consumer.stop()
            await self.redis.aclose()

    async def _partitions(self) -> list[TopicPartition]:
        consumer = self._consumer
        assert consumer is not None
        while not self.stop.is_set():
            parts = consumer.partitions_for_topic(self.topic)
            if parts:
                return [TopicPartition(self.topic, p) for p in sorted(parts)]
            await refresh_metadata(consumer)  # the topic may be new
            parts = consumer.partitions_for_topic(self.topic)
            if parts:
                return [TopicPartition(self.topic, p) for p in sorted(parts)]
            log.info("waiting for topic %s to exist", self.topic)
            await self._sleep(1.0)
        return []

    async def _sleep(self, seconds: float) -> None:
        try:
            await asyncio.wait_for(self.stop.wait(), timeout=seconds)
        except TimeoutError:
            pass

    async def _redis(self, fn):  # noqa: ANN001, ANN202 - retry wrapper
        """Run ``fn()`` until Redis answers (logging once per outage); None if stopped."""
        while True:
            try:
                result = await fn()
            except _REDIS_DOWN as exc:
                await self._sleep(self._outage.failed(exc))
                if self.stop.is_set():
                    return None
                continue
            self._outage.ok()
            return result

    async def _loop(self) -> None:
        consumer = self._consumer
        assert consumer is not None
        ready = await self._redis(self.store.ready)
        if ready:
            stored = await self._redis(self.store.offsets) or {}
            for tp in self._tps:
                if tp.partition in stored:
                    consumer.seek(tp, stored[tp.partition])
                else:
                    await consumer.seek_to_beginning(tp)
            log.info("read model resumes from the offsets stored in redis")
        elif ready is False:
            await self._rebuild()
        end = await consumer.end_offsets(self._tps) if self.once else None
        idle_since = last_check = time.monotonic()
        while not self.stop.is_set():
            data = await consumer.getmany(timeout_ms=100, max_records=self.batch_size)
            now = time.monotonic()
            if data:
                idle_since = now
                latest: dict[str, Tally] = {}
                offsets: dict[int, int] = {}
                for tp, recs in data.items():
                    for r in recs:
                        t = _parse(r.value)
                        if t is not None:
                            cur = latest.get(t.submission_id)
                            if cur is None or t.version > cur.version:
                                latest[t.submission_id] = t
                    offsets[tp.partition] = recs[-1].offset + 1
                try:
                    changed = await self._redis(
                        functools.partial(self.store.apply, latest.values(), offsets)
                    )
                except MarkerMissing:
                    await self._rebuild()
                    continue
                self.changes += changed or 0
            elif now - last_check >= self.marker_check:
                last_check = now
                if await self._redis(self.store.ready) is False:
                    await self._rebuild()
                    continue
            if self.until_idle is not None and now - idle_since >= self.until_idle:
                return
            if end is not None and await self._reached(end):
                return

    async def _reached(self, end: dict[TopicPartition, int]) -> bool:
        consumer = self._consumer
        assert consumer is not None
        for tp in self._tps:
            if await consumer.position(tp) < end.get(tp, 0):
                return False
        return True

    async def _rebuild(self) -> None:
        """Rebuild from the tallies topic: beginning -> end offsets, max version per key."""
        consumer = self._consumer
        assert consumer is not None
        t0 = time.monotonic()
        self.rebuilds += 1
        log.warning(
            "redis read model is missing (no %s): rebuilding it from %s",
            self.store.marker,
            self.topic,
        )
        await consumer.seek_to_beginning(*self._tps)
        end = await consumer.end_offsets(self._tps)
        latest: dict[str, Tally] = {}
        records = 0
        while not self.stop.is_set():
            behind = [tp for tp in self._tps if await consumer.position(tp) < end.get(tp, 0)]
            if not behind:
                break
            data = await consumer.getmany(*behind, timeout_ms=500, max_records=10_000)
            for recs in data.values():
                for r in recs:
                    records += 1
                    t = _parse(r.value)
                    if t is not None:
                        cur = latest.get(t.submission_id)
                        if cur is None or t.version > cur.version:
                            latest[t.submission_id] = t
        if self.stop.is_set():
            return
        positions = {tp.partition: await consumer.position(tp) for tp in self._tps}
        items = list(latest.values())
        for i in range(0, len(items), _CHUNK):
            chunk = items[i : i + _CHUNK]
            await self._redis(
                lambda c=chunk: self.store.apply(c, {}, publish=False, require_marker=False)
            )
        await self._redis(
            lambda: self.store.apply(
                [],
                positions,
                publish=False,
                require_marker=False,
                set_marker=True,
                marker_value=f"rebuilt {time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())}",
            )
        )
        log.warning(
            "read model rebuilt: %d tallies from %d records in %.1f s",
            len(latest),
            records,
            time.monotonic() - t0,
        )


def _parse(value: bytes | None) -> Tally | None:
    """A tally, or None for a record the sink dead-letters anyway."""
    if value is None:
        return None
    try:
        return Tally.model_validate_json(value)
    except ValidationError:
        return None
