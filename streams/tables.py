"""Tables whose changelog writes leave in one go at the end of the agent's batch.

A Faust table sends every assignment to its changelog through the topic
machinery: a ``FutureMessage``, the producer buffer's queue, its background
sender, the JSON codec registry and a callback per record. In the vote path
that cost more than a fifth of the worker's CPU (``py-spy --gil`` on
``bench/bench_pipeline.py``, docs/pipeline.md). :class:`BatchedTable`
keeps the same changelog records (same topic, partition, key bytes and
compact JSON value) but queues them as ``(partition, key, value)`` and
:meth:`BatchedTable.hand_over` gives the whole queue to the Kafka client, in
order, when the agent's batch is done. RocksDB's persisted changelog offset
is written once per partition per hand-over (the last record's), not once
per record.

Values are JSON objects to the agents and compact JSON bytes to Faust: the
table encodes on assignment and decodes on lookup with the ``json`` module,
and Faust stores and logs the bytes with its raw codec. Through Faust's codec
registry, encoding for RocksDB and decoding from it cost another fifth of the
worker's CPU. The bytes are those Faust's JSON codec writes, so changelogs
and RocksDB files written before read the same.

Why the guarantee is unchanged: the agents call :meth:`hand_over` before
they acknowledge the batch, and Faust flushes the Kafka client before every
offset commit, so a record's table writes are on the broker before its
offset is committed (finding F7 in docs/reliability.md was about exactly
this order).
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import faust
from faust.types import TP

__all__ = ["BatchedTable"]


class BatchedTable(faust.Table):
    """A ``faust.Table`` whose changelog writes are sent by :meth:`hand_over`."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("value_type", bytes)  # the raw codec: values arrive encoded
        super().__init__(*args, **kwargs)
        self._queued: list[tuple[int, bytes, bytes | None]] = []
        # Two agents' hand-overs must not interleave one queue's records.
        self._handing_over = asyncio.Lock()

    def __getitem__(self, key: Any) -> Any:
        return json.loads(super().__getitem__(key))

    def get(self, key: Any, default: Any = None) -> Any:
        """One store lookup. Faust's ``__getitem__`` (mode's ``FastUserDict``) asks the
        store ``key in data`` and then reads it: two RocksDB reads for every key found."""
        self.on_key_get(key)  # the sensors Faust's read would call
        raw = self.data.get(key)
        return default if raw is None else json.loads(raw)

    def __setitem__(self, key: Any, value: Any) -> None:
        super().__setitem__(key, _encode(value))

    def on_key_set(self, key: Any, value: Any) -> None:
        # The current event's partition, as Faust's own write would use (and the
        # check that the event's topic is co-partitioned with the changelog).
        partition = self.partition_for_key(key)
        if partition is None:  # pragma: no cover - only with use_partitioner
            raise TypeError(f"table {self.name}: writes need the current event's partition")
        self._queued.append((partition, key, value))  # already encoded (__setitem__)

    def on_key_del(self, key: Any) -> None:
        partition = self.partition_for_key(key)
        if partition is None:  # pragma: no cover - only with use_partitioner
            raise TypeError(f"table {self.name}: deletes need the current event's partition")
        self._queued.append((partition, key, None))  # a tombstone

    async def hand_over(self) -> None:
        """Give every queued changelog record to the Kafka client, in write order."""
        async with self._handing_over:
            if not self._queued:
                return
            queued, self._queued = self._queued, []
            topic = self.changelog_topic.get_topic_name()
            send = self.app.producer.send_record  # streams.producer
            last: dict[int, asyncio.Future] = {}
            for partition, key, value in queued:
                last[partition] = await send(topic, key, value, partition)
            for partition, delivered in last.items():
                delivered.add_done_callback(self._persisted(TP(topic, partition)))

    def _persisted(self, tp: TP) -> Any:
        def record(delivered: asyncio.Future) -> None:
            # What Faust's own per-record callback does: the store remembers how far
            # its changelog is known, so recovery reads only what came after.
            if not delivered.cancelled() and delivered.exception() is None:
                self.data.set_persisted_offset(tp, delivered.result().offset)

        return record


def _encode(value: Any) -> bytes:
    """The table codec's encoding (compact JSON), without the codec registry."""
    return json.dumps(value, separators=(",", ":")).encode()
