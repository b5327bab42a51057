"""The SDK's Kafka producer and topic layout.

Idempotent, ``acks=all``: a retried send is never written twice. The
partitioner is ``murmur2_random``, Java's (and aiokafka's) default for keyed
records, instead of librdkafka's CRC32 default: the agents' tables are
co-partitioned with the votes topic, so every client must put a token id on
the partition the workers expect.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from confluent_kafka import Producer

from streams.errors import ServiceUnavailable
from streams.kafka_client import auth_fix, kafka_config
from streams.settings import Settings
from streams.topics import ensure_topics

__all__ = ["KAFKA_LOGGER", "SdkProducer", "ensure_topics"]  # ensure_topics re-exported

#: librdkafka's own log lines (connection failures and the like) from every SDK client go
#: here instead of straight to stderr; the ``ringtally`` CLI silences it (its errors are
#: raised as one-line exceptions), an application configures it like any logger.
KAFKA_LOGGER = logging.getLogger("ringtally.sdk.kafka")


class SdkProducer:
    """A thin, flushing wrapper over one confluent-kafka producer."""

    def __init__(self, settings: Settings, **overrides: object) -> None:
        defaults = {
            "enable.idempotence": True,
            "acks": "all",
            "partitioner": "murmur2_random",
            "linger.ms": 5,
            "client.id": "ringtally-sdk",
        }
        self._producer = Producer(
            kafka_config(settings, logger=KAFKA_LOGGER, **{**defaults, **overrides})
        )
        self._errors: list[str] = []

    def send(
        self,
        topic: str,
        key: bytes,
        value: bytes,
        on_delivered: Callable[[int, int], None] | None = None,
        *,
        timestamp_ms: int | None = None,
    ) -> None:
        """Queue one record (delivery is confirmed by :meth:`flush`).

        ``on_delivered(partition, offset)`` is called once the broker has it.
        ``timestamp_ms``: the record's timestamp (default: now). For votes it
        is the cast time that decides which of a reviewer's two votes on one
        submission counts: the earlier.
        """

        def report(err: object, msg: Any) -> None:
            self._on_delivery(err, msg)
            if err is None and on_delivered is not None:
                on_delivered(msg.partition(), msg.offset())

        while True:
            try:
                self._producer.produce(
                    topic, key=key, value=value, on_delivery=report, timestamp=timestamp_ms or 0
                )
                break
            except BufferError:  # local queue full: let deliveries drain
                self._producer.poll(0.1)
        self._producer.poll(0)

    def _on_delivery(self, err: object, _msg: object) -> None:
        if err is not None:
            self._errors.append(str(err))

    def flush(self, timeout: float = 30.0) -> None:
        """Wait until every queued record is acknowledged; raise if any failed."""
        remaining = self._producer.flush(timeout)
        if remaining:
            raise ServiceUnavailable(
                f"kafka: {remaining} record(s) not acknowledged after {timeout:.0f}s",
                fix="is Kafka up? (ringtally stack status)",
            )
        if self._errors:
            errors, self._errors = self._errors, []
            raise ServiceUnavailable(
                f"kafka: delivery failed: {errors[0]} (+{len(errors) - 1} more)",
                fix=auth_fix(errors[0]),  # e.g. a principal without the ACL to write here
            )
