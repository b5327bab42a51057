"""RecordReader against a real broker: a record read back by position, or None once deleted."""

from __future__ import annotations

import pytest
from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from agents.record_reader import RecordReader
from connectors.sdk.producer import SdkProducer

pytestmark = pytest.mark.integration


async def test_a_record_is_read_back_by_position_and_none_once_retention_removed_it(settings):
    topic = settings.topic("reader")
    admin = AdminClient({"bootstrap.servers": settings.kafka_bootstrap})
    admin.create_topics([NewTopic(topic, num_partitions=2, replication_factor=1)])[topic].result()
    producer = SdkProducer(settings)
    for n in range(5):
        producer.send(topic, b"k", f"value {n}".encode())
    producer.flush()
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
