"""The worker's Kafka producer: Faust's aiokafka producer, plus a lean send for the vote path.

Every vote makes about five records (accepted vote, tag and ballot table
writes, ballot, audit event). Through ``Producer.send`` each one also fires
Faust's produce signal and runs aiokafka's default partitioner, which hashes
the key in pure Python and builds two partition lists. :meth:`send_record`
skips the signal and remembers each key's partition, computed by that same
partitioner (murmur2 of the key, as Java clients and Faust's repartitioning
use), so records land exactly where ``Producer.send`` would put them.

Every record waits for the worker's ownership lease before it is handed to the
client, and every produce request before the client's sender puts it on the
wire (:mod:`streams.lease`): a worker that may have lost its partitions writes
nothing more.
"""

from __future__ import annotations

import asyncio
from typing import Any

from aiokafka.partitioner import DefaultPartitioner
from faust.transport.drivers import aiokafka as faust_aiokafka

from .fence import OwnershipLost
from .lease import Lease, guard_sender
from .pause import exit_fenced

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

    @property
    def lease(self) -> Lease | None:
        """The worker's ownership lease (the transport's; None on another transport)."""
        return getattr(self.transport, "lease", None)

    def _new_producer(self, transactional_id: str | None = None) -> Any:
        producer = super()._new_producer(transactional_id)
        lease = self.lease
        if lease is not None:
            guard_sender(producer._sender, lease, self._lease_lost)  # noqa: SLF001
        return producer

    def _lease_lost(self, exc: OwnershipLost) -> None:
        """A produce request's lease was lost: its records were dropped; stop the worker
        (exit 75) unless it is stopping anyway (it left its group: nothing to own)."""
        if not self.app.should_stop:
            exit_fenced(exc)

    async def send_record(
        self,
        topic: str,
        key: bytes,
        value: bytes | None,
        partition: int | None = None,
        headers: list[tuple[str, bytes]] | None = None,
        *,
        generation: int | None = None,
    ) -> asyncio.Future:
        """Hand one record to the Kafka client; returns its delivery future.

        ``partition`` None: the key's partition under the default partitioner.
        Waits while the ownership lease of ``generation`` (default: the worker's now)
        is expired; raises :class:`~streams.fence.OwnershipLost` if it is lost.
        """
        lease = self.lease
        if lease is not None and not lease.holds(generation):
            await lease.hold(generation, what="record")
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
