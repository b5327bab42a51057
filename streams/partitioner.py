"""Which partition a key belongs on: Kafka's Java default partitioner (murmur2).

Every keyed decision is made on the key's own partition, so a record anywhere
else must be recognised (docs/protocol.md, "Partition-proof"). murmur2 is what
Java clients, aiokafka (and so Faust) use for keyed records by default, and
what librdkafka calls ``murmur2_random``; librdkafka's and confluent-kafka's
default, ``consistent_random`` (CRC32), places keys elsewhere.
"""

from __future__ import annotations

from aiokafka.partitioner import murmur2

__all__ = ["PARTITIONER_HINT", "partition_for_key"]

#: What a producer must set, in the detail of a wrong_partition rejection.
PARTITIONER_HINT = (
    "Kafka's Java default partitioner, murmur2: librdkafka/confluent-kafka "
    "partitioner=murmur2_random, kcat -X partitioner=murmur2_random"
)


def partition_for_key(key: bytes, partitions: int) -> int:
    """``(murmur2(key) & 0x7fffffff) % partitions``, as Java's ``Utils.toPositive``."""
    return (murmur2(key) & 0x7FFFFFFF) % partitions
