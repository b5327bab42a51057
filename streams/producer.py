"""The worker's Kafka producer: Faust's aiokafka producer, plus a lean send for the vote path.

Every vote makes about five records (accepted vote, tag and ballot table
writes, ballot, audit event). Through ``Producer.send`` each one also fires
Faust's produce signal and runs aiokafka's default partitioner, which hashes
the key in pure Python and builds two partition lists. :meth:`send_record`
skips the signal and remembers each key's partition, computed by that same
partitioner (murmur2 of the key, as Java clients and Faust's repartitioning
use), so records land exactly where ``Producer.send`` would put them.
"""

from __future__ import annotations

import asyncio

from aiokafka.partitioner import DefaultPartitioner
from faust.transport.drivers import aiokafka as faust_aiokafka

__all__ = ["RingtallyProducer"]

#: Keys whose partition is remembered, per process: submissions and audit
#: chains are few; slot tags (rejections are keyed by them) are many, so the memory is bounded.
PARTITION_CACHE_SIZE = 65_536


class RingtallyProducer(faust_aiokafka.Producer):
    """Faust's aiokafka producer with :meth:`send_record`."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        self._partitions: dict[str, list[int]] = {}
        self._partition_of: dict[tuple[str, bytes], int] = {}
        self._key_partitioner = DefaultPartitioner()

    async def send_record(
        self,
        topic: str,
        key: bytes,
        value: bytes | None,
        partition: int | None = None,
        headers: list[tuple[str, bytes]] | None = None,
    ) -> asyncio.Future:
        """Hand one record to the Kafka client; returns its delivery future.

        ``partition`` None: the key's partition under the default partitioner.
        """
        client = self._ensure_producer()
        if partition is None:
            partition = await self.partition_for(topic, key)
        return await client.send(topic, value, key=key, partition=partition, headers=headers)

    async def partition_for(self, topic: str, key: bytes) -> int:
        """The partition the default partitioner gives ``key`` on ``topic``."""
        known = self._partition_of.get((topic, key))
        if known is not None:
            return known
        partitions = self._partitions.get(topic)
        if partitions is None:
            found = await self._ensure_producer().partitions_for(topic)
            partitions = self._partitions[topic] = sorted(found)
        partition = self._key_partitioner(key, partitions, partitions)
        if len(self._partition_of) >= PARTITION_CACHE_SIZE:
            self._partition_of.clear()
        self._partition_of[(topic, key)] = partition
        return partition
