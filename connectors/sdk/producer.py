"""The SDK's Kafka producer and topic layout.

Idempotent, ``acks=all``: a retried send is never written twice. The
partitioner is ``murmur2_random``, Java's (and aiokafka's) default for keyed
records, instead of librdkafka's CRC32 default: the agents' tables are
co-partitioned with the votes topic, so every client must put a token id on
the partition the workers expect.
"""

from __future__ import annotations

from collections.abc import Iterable

from confluent_kafka import KafkaException, Producer
from confluent_kafka.admin import AdminClient, NewTopic

from streams.errors import ServiceUnavailable
from streams.settings import Settings
from streams.topics import topic_specs

__all__ = ["SdkProducer", "ensure_topics"]


class SdkProducer:
    """A thin, flushing wrapper over one confluent-kafka producer."""

    def __init__(self, settings: Settings, **overrides: object) -> None:
        config: dict[str, object] = {
            "bootstrap.servers": settings.kafka_bootstrap,
            "enable.idempotence": True,
            "acks": "all",
            "partitioner": "murmur2_random",
            "linger.ms": 5,
            "client.id": "ringtally-sdk",
        }
        config.update(overrides)
        self._producer = Producer(config)
        self._errors: list[str] = []

    def send(self, topic: str, key: bytes, value: bytes) -> None:
        """Queue one record (delivery is confirmed by :meth:`flush`)."""
        while True:
            try:
                self._producer.produce(topic, key=key, value=value, on_delivery=self._on_delivery)
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
            raise ServiceUnavailable(f"kafka: delivery failed: {errors[0]} (+{len(errors) - 1} more)")


def ensure_topics(settings: Settings, names: Iterable[str] | None = None, timeout: float = 30.0) -> None:
    """Create ringtally's topics with their partition counts and cleanup policies (idempotent).

    Workers declare the same topics when they start; creating them here first
    means a producer that runs before any worker never gets broker-default
    (auto-created, wrongly partitioned) topics.
    """
    specs = topic_specs(settings)
    wanted = [specs[n] for n in (names or specs)]
    admin = AdminClient({"bootstrap.servers": settings.kafka_bootstrap})
    try:
        existing = set(admin.list_topics(timeout=timeout).topics)
    except KafkaException as exc:
        raise ServiceUnavailable(
            f"kafka at {settings.kafka_bootstrap} unreachable: {exc.args[0]}",
            fix="start it with 'ringtally stack up' or set RINGTALLY_KAFKA_BOOTSTRAP",
        ) from None
    new = [
        NewTopic(
            name,
            num_partitions=partitions,
            replication_factor=settings.replication_factor,
            config={"cleanup.policy": "compact"} if compacted else {},
        )
        for name, partitions, compacted in wanted
        if name not in existing
    ]
    if not new:
        return
    for name, future in admin.create_topics(new, operation_timeout=timeout).items():
        try:
            future.result()
        except KafkaException as exc:
            if exc.args[0].code() != exc.args[0].TOPIC_ALREADY_EXISTS:
                raise ServiceUnavailable(f"kafka: cannot create topic {name}: {exc.args[0].str()}") from None
