"""Reading records back from a real broker: RecordReader (a record by position, or None once
deleted) and the SDK's consume_ready (a read returns when its records are in)."""

from __future__ import annotations

import time
import uuid

import pytest
from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from agents.record_reader import RecordReader
from connectors.sdk.producer import SdkProducer
from connectors.sdk.reader import consume_ready
from streams.kafka_client import kafka_config

pytestmark = pytest.mark.integration


def _topic_with_values(settings, name: str, *, partitions: int, values: int):  # noqa: ANN001, ANN202
    """A new topic holding ``value 0`` .. ``value <values-1>``, all under one key."""
    topic = settings.topic(name)
    admin = AdminClient({"bootstrap.servers": settings.kafka_bootstrap})
    admin.create_topics([NewTopic(topic, num_partitions=partitions, replication_factor=1)])[
        topic
    ].result()
    producer = SdkProducer(settings)
    for n in range(values):
        producer.send(topic, b"k", f"value {n}".encode())
    producer.flush()
    return topic, admin


async def test_a_record_is_read_back_by_position_and_none_once_retention_removed_it(settings):
    topic, admin = _topic_with_values(settings, "reader", partitions=2, values=5)
    [partition] = [p for p in (0, 1) if _end(settings, topic, p) == 5]  # one key, one partition
    reader = RecordReader(settings, topic)
    try:
        assert await reader.read(partition, 3) == b"value 3"
        assert await reader.read(partition, 0) == b"value 0"  # backwards too
        deleted = admin.delete_records([TopicPartition(topic, partition, 2)])
        for future in deleted.values():
            future.result()
        assert await reader.read(partition, 1) is None  # below the new log start
        assert await reader.read(partition, 4) == b"value 4"
    finally:
        await reader.stop()
        admin.delete_topics([topic])


def _end(settings, topic: str, partition: int) -> int:  # noqa: ANN001
    consumer = Consumer({"bootstrap.servers": settings.kafka_bootstrap, "group.id": "reader-test"})
    try:
        return consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=10)[1]
    finally:
        consumer.close()


def test_consume_ready_returns_as_soon_as_records_are_in_not_after_its_timeout(settings):
    """librdkafka's consume(n, timeout) waits out the timeout unless n records arrive: every
    topic read of the SDK (rings, a bulletin, vote --wait) paid 0.5 s per call for it."""
    topic, admin = _topic_with_values(settings, "ready", partitions=1, values=3)
    consumer = Consumer(kafka_config(settings, **{"group.id": f"ready-{uuid.uuid4().hex[:8]}"}))
    try:
        consumer.assign([TopicPartition(topic, 0, 0)])
        started, got = time.monotonic(), []
        while len(got) < 3:
            got += [m for m in consume_ready(consumer, 60.0) if m.error() is None]
        waited = time.monotonic() - started
        assert [m.value() for m in got] == [b"value 0", b"value 1", b"value 2"]
        assert waited < 30.0, f"{waited:.1f}s: the read waited out its 60 s timeout"
        assert consume_ready(consumer, 0.2) == []  # nothing more: empty after the timeout
    finally:
        consumer.close()
        admin.delete_topics([topic])
