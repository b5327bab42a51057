"""The dead-letter topic ``<prefix>.sink-dlq``: records the sink will not store as rows.

Value = the original bytes, key = the original key; headers say why and
where from (``dlq.reason``, ``dlq.detail``, ``dlq.source.topic``,
``dlq.source.partition``, ``dlq.source.offset``). The sink produces them and
waits for the broker's acks BEFORE committing the Postgres transaction that
moves the offset past them, so a dead letter is never lost; after a crash
between the two it is produced again (at-least-once: consumers de-duplicate
on the source headers). The exactly-once copy is the ``sink_dead_letters``
table, written in the same transaction as the offsets.
"""

from __future__ import annotations

import asyncio
import logging

from aiokafka import AIOKafkaProducer

from streams.kafka_client import aiokafka_kwargs
from streams.settings import Settings

from .decode import DeadLetter

__all__ = ["DeadLetterTopic", "dlq_headers"]

log = logging.getLogger("ringtally.sink.dlq")


def dlq_headers(dead: DeadLetter) -> list[tuple[str, bytes]]:
    rec = dead.record
    return [
        ("dlq.reason", dead.reason.encode()),
        ("dlq.detail", dead.detail[:2000].encode("utf-8", "replace")),
        ("dlq.source.topic", rec.topic.encode()),
        ("dlq.source.partition", str(rec.partition).encode()),
        ("dlq.source.offset", str(rec.offset).encode()),
        ("dlq.source.timestamp", str(rec.timestamp_ms).encode()),
    ]


class DeadLetterTopic:
    """Produces dead letters with an idempotent producer, acks=all."""

    def __init__(self, settings: Settings, topic: str) -> None:
        self.topic = topic
        self.settings = settings
        self._producer: AIOKafkaProducer | None = None  # created on first use

    async def start(self) -> None:
        if self._producer is None:
            producer = AIOKafkaProducer(
                **aiokafka_kwargs(
                    self.settings,
                    acks="all",
                    enable_idempotence=True,
                    client_id="ringtally-sink-dlq",
                )
            )
            await producer.start()
            self._producer = producer

    async def stop(self) -> None:
        producer, self._producer = self._producer, None
        if producer is not None:
            await producer.stop()

    async def send_all(self, dead: list[DeadLetter]) -> None:
        """Produce every dead letter and wait until the broker has them all."""
        if not dead:
            return
        await self.start()
        assert self._producer is not None
        futures = [
            await self._producer.send(
                self.topic,
                value=d.record.value,
                # Kafka needs a key or a value: an empty key stands in for a keyless tombstone
                key=d.record.key if d.record.key is not None or d.record.value is not None else b"",
                headers=dlq_headers(d),
            )
            for d in dead
        ]
        await asyncio.gather(*futures)
        for d in dead:
            log.warning(
                "dead-lettered %s[%d]@%d to %s: %s (%s)",
                d.record.topic,
                d.record.partition,
                d.record.offset,
                self.topic,
                d.reason,
                d.detail[:200],
            )
