"""Reading one votes-topic record back by its position, for a double vote's rejection.

Neither the accepted vote nor the ballot entry keeps the vote's raw payload:
that would make every accepted vote three times larger, and every entry (and
its changelog record, which compaction never removes, since each key image is
a new key) five times larger, for an event that is rare. When the tally stage
rejects a double vote (:mod:`agents.tally`: the half cast later, or a counted
vote retracted by one cast before it), the Rejection still carries the raw
payload, as every rejection does: it is read back from the votes topic at the
vote's position.
The votes topic is the log of record (a replay reads it from offset 0), so
the record is there unless retention has removed it, and then the rejection
says so.
"""

from __future__ import annotations

import asyncio
import logging

from aiokafka import AIOKafkaConsumer, TopicPartition

from streams.kafka_client import aiokafka_kwargs
from streams.settings import Settings

__all__ = ["RecordReader"]

log = logging.getLogger(__name__)


class RecordReader:
    """One group-less consumer that fetches single records of one topic on demand."""

    def __init__(self, settings: Settings, topic: str) -> None:
        self.settings = settings
        self.topic = topic
        self._consumer: AIOKafkaConsumer | None = None
        self._lock = asyncio.Lock()

    async def read(self, partition: int, offset: int) -> bytes | None:
        """The value at ``partition``/``offset``; None when the log no longer holds it.

        Waits (logging every 30 s) while the broker cannot be reached: giving
        up would write the rejection without its payload for good.
        """
        tp = TopicPartition(self.topic, partition)
        async with self._lock:
            consumer = await self._started()
            consumer.assign([tp])
            while True:
                consumer.seek(tp, offset)
                done, value = await self._fetch(consumer, tp, offset, timeout=30.0)
                if done:
                    return value
                log.warning("votes record %s[%d]@%d not fetched yet", self.topic, partition, offset)

    async def first_offset_from(self, partition: int, offset: int) -> int | None:
        """The offset of the first record at or after ``offset``, read from the log itself;
        None when none came within a few seconds (say, ``offset`` is the end)."""
        tp = TopicPartition(self.topic, partition)
        async with self._lock:
            consumer = await self._started()
            consumer.assign([tp])
            consumer.seek(tp, offset)
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 5.0
            while loop.time() < deadline:
                batch = await consumer.getmany(tp, timeout_ms=500, max_records=1)
                for record in batch.get(tp, ()):
                    if record.offset >= offset:
                        return record.offset
            return None

    async def end_offsets(self, partitions: list[int]) -> dict[int, int]:
        """Each partition's end offset as the broker gives it now (its high watermark)."""
        tps = [TopicPartition(self.topic, p) for p in partitions]
        async with self._lock:
            consumer = await self._started()
            ends = await consumer.end_offsets(tps)
        return {tp.partition: offset for tp, offset in ends.items()}

    async def _fetch(
        self, consumer: AIOKafkaConsumer, tp: TopicPartition, offset: int, *, timeout: float
    ) -> tuple[bool, bytes | None]:
        """(True, the value or None when removed), or (False, None) when nothing came in time."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while loop.time() < deadline:
            batch = await consumer.getmany(tp, timeout_ms=500, max_records=1)
            for record in batch.get(tp, ()):
                if record.offset == offset:
                    return True, record.value or b""
                if record.offset > offset:  # below the log start: removed by retention
                    return True, None
        return False, None

    async def _started(self) -> AIOKafkaConsumer:
        if self._consumer is None:
            self._consumer = AIOKafkaConsumer(
                **aiokafka_kwargs(
                    self.settings,
                    group_id=None,
                    enable_auto_commit=False,
                    auto_offset_reset="earliest",  # an offset below the log start reads its first
                    client_id=f"{self.settings.group_id}-record-reader",
                )
            )
            await self._consumer.start()
        return self._consumer

    async def stop(self) -> None:
        if self._consumer is not None:
            await self._consumer.stop()
            self._consumer = None
