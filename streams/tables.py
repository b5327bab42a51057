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

With RocksDB, the store writes wait for the hand-over too: assignments are
kept in a dict (reads look there first) and written as one ``WriteBatch``
per partition, once the broker has acknowledged every changelog record of
the batch. Written one by one,
each ``put`` went through Faust's store layers and appended to that
partition's write-ahead log on its own: about a tenth of the worker's CPU
(``py-spy --gil``, docs/pipeline.md). A key written twice in a batch is
stored once. A crash mid-batch loses the batch's store writes, and perhaps
some of its changelog records; the batch was not acknowledged, so it comes
again.

Why RocksDB waits for the changelog (issue 16): written first, a SIGKILL
before the changelog records reached the broker left RocksDB *ahead* of the
changelog. The restarted worker kept that RocksDB, and a redelivered record
that found its state already written (a spent tag, a chain head, a ballot
entry) wrote nothing again, so the changelog never got it: the next
changelog-only recovery (a rebalance to another worker, a lost disk) restored
the old state, a spent tag unspent, an audit sequence free to be reused. In
this order RocksDB is at most *behind* the changelog after a crash, and
Faust's recovery reads the changelog from RocksDB's persisted offset on, so
it catches up. The cost is one wait for the broker's acknowledgement per
batch (acks=all); measured in docs/reliability.md.

Why the persisted offset moves only over the store's own records (finding F11
in docs/reliability.md): it tells recovery "every changelog record up to here
is in this store". Set from the hand-over's delivered offsets alone, it passed
records another worker had written to the partition in between (a worker that
took the partitions of a paused one; the paused one resumed and its batch's
records landed after): that worker's tag spend was then never read into this
store, and a slot reuse was counted. The offset now moves only when the
delivered records follow on from it; otherwise it stays until a recovery reads
past it.

Why the guarantee is unchanged: the agents call :meth:`hand_over` before
they acknowledge the batch, and Faust flushes the Kafka client before every
offset commit, so a record's table writes are on the broker before its
offset is committed (finding F7 in docs/reliability.md was about exactly
this order).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import weakref
from collections.abc import Iterator
from typing import Any

import faust
from faust.stores.rocksdb import Store as RocksDBStore
from faust.types import TP

__all__ = ["BatchedTable", "current_event"]

log = logging.getLogger(__name__)


@contextlib.contextmanager
def current_event(event: Any) -> Iterator[None]:
    """Make ``event`` Faust's *current event* for the duration of the block.

    Faust chooses a table write's changelog partition (and RocksDB partition
    store) from the current event. Faust has no public setter for that
    context; this is the one place that touches its contextvar.
    """
    from faust.streams import _current_event

    token = _current_event.set(weakref.ref(event))
    try:
        yield
    finally:
        _current_event.reset(token)


class BatchedTable(faust.Table):
    """A ``faust.Table`` whose changelog writes are sent by :meth:`hand_over`."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("value_type", bytes)  # the raw codec: values arrive encoded
        super().__init__(*args, **kwargs)
        self._queued: list[tuple[int, bytes, bytes | None]] = []
        #: RocksDB writes made since the last hand-over: key -> (partition, value or None).
        self._unstored: dict[bytes, tuple[int, bytes | None]] = {}
        #: The hand-over's writes while it waits for the broker (still read from here).
        self._storing: dict[bytes, tuple[int, bytes | None]] = {}
        self._store_later: bool | None = None  # RocksDB (rocksdict) store; known on first write
        #: Changelog partitions whose persisted offset stays where a gap was found, at it.
        self._held: dict[TP, int | None] = {}
        # Two agents' hand-overs must not interleave one queue's records.
        self._handing_over = asyncio.Lock()

    def __getitem__(self, key: Any) -> Any:
        raw = self._read(key)
        if raw is None:
            raise KeyError(key)
        return json.loads(raw)

    def get(self, key: Any, default: Any = None) -> Any:
        """One store lookup. Faust's ``__getitem__`` (mode's ``FastUserDict``) asks the
        store ``key in data`` and then reads it: two RocksDB reads for every key found."""
        self.on_key_get(key)  # the sensors Faust's read would call
        raw = self._read(key)
        return default if raw is None else json.loads(raw)

    def _read(self, key: Any) -> bytes | None:
        unstored = self._unstored.get(key) or self._storing.get(key)
        return self.data.get(key) if unstored is None else unstored[1]

    def __setitem__(self, key: Any, value: Any) -> None:
        self._write(key, _encode(value))

    def __delitem__(self, key: Any) -> None:
        self._write(key, None)

    def _write(self, key: Any, value: bytes | None) -> None:
        # The current event's partition, as Faust's own write would use (and the
        # check that the event's topic is co-partitioned with the changelog).
        partition = self.partition_for_key(key)
        if partition is None:  # pragma: no cover - only with use_partitioner
            raise TypeError(f"table {self.name}: writes need the current event's partition")
        self._queued.append((partition, key, value))
        if self._store_later is None:
            self._store_later = isinstance(self.data, RocksDBStore) and self.data.use_rocksdict
        if self._store_later:
            self._unstored[key] = (partition, value)
        elif value is None:
            del self.data[key]
        else:
            self.data[key] = value

    def _write_rocksdb(self, unstored: dict[bytes, tuple[int, bytes | None]]) -> None:
        """Write a batch's RocksDB assignments: one ``WriteBatch`` per partition."""
        if not unstored:
            return
        import rocksdict

        batches: dict[int, rocksdict.WriteBatch] = {}
        for key, (partition, value) in unstored.items():
            batch = batches.get(partition)
            if batch is None:
                batch = batches[partition] = rocksdict.WriteBatch(raw_mode=True)
            if value is None:
                batch.delete(key)
            else:
                batch.put(key, value)
        store = self.data
        for partition, batch in batches.items():
            store._db_for_partition(partition).write(batch)  # noqa: SLF001 - Faust's per-partition DB

    async def hand_over(self) -> None:
        """Give every queued changelog record to the Kafka client, in write order; once
        the broker has them all, store the batch's writes in RocksDB (never before:
        see the module's docstring). A failed delivery raises and stores nothing."""
        async with self._handing_over:
            self._storing, self._unstored = self._unstored, {}
            try:
                delivered = await self._send_queued()
                if self._store_later:
                    self._write_rocksdb(self._storing)
                    for tp, offsets in delivered.items():
                        self._persisted(tp, offsets)
            finally:
                self._storing = {}

    def _persisted(self, tp: TP, offsets: list[int]) -> None:
        """Move the store's persisted changelog offset over the records just delivered, if
        they follow on from it: the store then holds every record up to the last of
        them, and recovery reads only what comes after (what Faust's own per-record
        callback does). Records of another writer in between (a worker that took the
        partition over while this one was paused, or the reverse) are not in this
        store: the offset stays, until a recovery reads them (finding F11). A retried
        send's copies look the same; holding the offset back then costs only a longer
        read at the next recovery."""
        known = self.data.persisted_offset(tp)
        if tp in self._held and self._held[tp] == known:
            return  # held since an earlier gap, until a recovery reads past it
        self._held.pop(tp, None)
        first = 0 if known is None else known + 1
        if offsets == list(range(first, first + len(offsets))):
            self.data.set_persisted_offset(tp, offsets[-1])
            return
        self._held[tp] = known
        log.warning(
            "changelog %s[%d]: offsets %d..%d hold records this store did not write "
            "(its own: %s): another worker wrote the partition, or a retried send left "
            "copies; the persisted offset stays at %s, so the next recovery reads them",
            tp.topic,
            tp.partition,
            first,
            offsets[-1],
            _spans(offsets),
            known,
        )

    async def _send_queued(self) -> dict[TP, list[int]]:
        """Send the queued changelog records and wait until the broker has them all;
        returns each changelog partition's offsets, in send order."""
        if not self._queued:
            return {}
        queued, self._queued = self._queued, []
        topic = self.changelog_topic.get_topic_name()
        send = self.app.producer.send_record  # streams.producer
        sent = [await send(topic, key, value, partition) for partition, key, value in queued]
        offsets: dict[TP, list[int]] = {}
        for (partition, _, _), meta in zip(queued, await asyncio.gather(*sent), strict=True):
            offsets.setdefault(TP(topic, partition), []).append(meta.offset)
        return offsets


def _spans(offsets: list[int]) -> str:
    """``3-5, 9`` for [3, 4, 5, 9]: a log line's view of many offsets."""
    spans: list[list[int]] = []
    for o in offsets:
        if spans and o == spans[-1][1] + 1:
            spans[-1][1] = o
        else:
            spans.append([o, o])
    return ", ".join(str(a) if a == b else f"{a}-{b}" for a, b in spans)


def _encode(value: Any) -> bytes:
    """The table codec's encoding (compact JSON), without the codec registry."""
    return json.dumps(value, separators=(",", ":")).encode()
