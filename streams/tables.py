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

The zombie fence (issue 16 item 2, docs/reliability.md "Zombie workers"): a
worker paused past its session timeout may resume and hand over a batch for
partitions another worker now owns; on a compacted changelog its stale value,
written after the owner's, would be the one a recovery restores. Three parts:
every changelog record carries the writer's ownership epoch (the consumer
group generation the batch was written under, header ``ringtally-epoch``, kept
above what the partition held after a group reset: :func:`streams.fence.owner_epoch`),
and a batch whose generation changed before its hand-over is dropped
(:class:`OwnershipLost`); a recovery skips a record whose epoch is below the
largest one its partition has shown (kept with RocksDB's persisted offset);
and the owner re-writes, under its own epoch, every key whose last record is
such a stale one (:meth:`BatchedTable.heal`, fed by the recovery's skipped
keys and by :class:`streams.fence.ChangelogWatch`), so compaction keeps the
owner's value.

Why one RocksDB memory bound per worker (issue 16, the soak): Faust opens one
database per table partition, each with its own block cache and memtables, so
a worker's bound was (partitions x tables) x (memtables + cache) -- 24 x 16 MiB
for 12 partitions -- and a memtable flushes only when *it* is full: at 45
votes/s the 24 memtables filled for half an hour and RSS rose in steps the
whole time. :class:`BoundedRocksDBOptions` gives every database of the process
one LRU cache (data, index and filter blocks) and one write buffer manager
charged to it, so the worker's RocksDB memory is ``Settings.rocksdb_memory``
whatever it owns, and a database written while the memtables hold more than
half of it flushes its memtable.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import weakref
from collections.abc import Iterable, Iterator
from typing import Any

import faust
from faust import stores
from faust.stores.rocksdb import RocksDBOptions
from faust.stores.rocksdb import Store as RocksDBStore
from faust.types import TP

from . import metrics
from .fence import (
    ChangelogWatch,
    Epoch,
    OwnershipLost,
    epoch_header,
    epoch_of,
    format_epoch,
    owner_epoch,
    parse_epoch,
)

__all__ = ["BatchedTable", "BoundedRocksDBOptions", "EpochStore", "current_event"]

log = logging.getLogger(__name__)


@functools.cache
def shared_rocksdb_memory(budget: int) -> tuple[Any, Any]:
    """The process's one RocksDB cache of ``budget`` bytes and the write buffer manager
    charged to it (memtables up to half of it): shared by every database opened with
    this budget, so the bound does not grow with the partitions a worker owns."""
    import rocksdict

    cache = rocksdict.Cache(budget)
    manager = rocksdict.WriteBufferManager.new_write_buffer_manager_with_cache(
        budget // 2, False, cache
    )
    return cache, manager


class BoundedRocksDBOptions(RocksDBOptions):
    """Faust's RocksDB options (rocksdict) with the worker-wide memory bound
    ``memory_budget``: index and filter blocks live in the shared cache too (else
    they are held outside any bound, growing with the data on disk)."""

    def __init__(self, memory_budget: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.memory_budget = memory_budget

    def as_options(self) -> Any:
        import rocksdict

        cache, manager = shared_rocksdb_memory(self.memory_budget)
        options = rocksdict.Options(raw_mode=True)
        options.create_if_missing(True)
        options.set_max_open_files(self.max_open_files)
        options.set_write_buffer_size(self.write_buffer_size)
        options.set_target_file_size_base(self.target_file_size_base)
        options.set_max_write_buffer_number(self.max_write_buffer_number)
        options.set_write_buffer_manager(manager)
        table = rocksdict.BlockBasedOptions()
        table.set_bloom_filter(self.bloom_filter_size, True)
        table.set_block_cache(cache)
        table.set_cache_index_and_filter_blocks(True)
        table.set_pin_l0_filter_and_index_blocks_in_cache(True)
        table.set_index_type(rocksdict.BlockBasedIndexType.binary_search())
        options.set_block_based_table_factory(table)
        return options


class EpochStore(RocksDBStore):
    """Faust's RocksDB store that also keeps each partition's largest changelog epoch,
    written in the same ``WriteBatch`` as the records it covers, so a recovery that
    starts mid-partition (from the persisted offset) knows it."""

    epoch_key = b"__ringtally\0epoch__"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        faust_options = self.rocksdb_options
        extra = dict(faust_options.extra_options)
        budget = extra.pop("memory_budget", None)
        if budget is not None and self.use_rocksdict:
            self.rocksdb_options = BoundedRocksDBOptions(
                budget,
                max_open_files=faust_options.max_open_files,
                write_buffer_size=faust_options.write_buffer_size,
                max_write_buffer_number=faust_options.max_write_buffer_number,
                target_file_size_base=faust_options.target_file_size_base,
                bloom_filter_size=faust_options.bloom_filter_size,
                use_rocksdict=True,
                ttl=faust_options.ttl,
                **extra,
            )

    def persisted_epoch(self, partition: int) -> Epoch:
        raw = self._db_for_partition(partition).get(self.epoch_key)
        return (0, 0) if raw is None else parse_epoch(raw) or (0, 0)

    def _visible_keys(self, db: Any) -> Iterator[bytes]:
        return (k for k in super()._visible_keys(db) if k != self.epoch_key)

    def _visible_items(self, db: Any) -> Iterator[tuple[bytes, bytes]]:
        return (kv for kv in super()._visible_items(db) if kv[0] != self.epoch_key)

    def write(
        self, writes: Iterable[tuple[int, bytes, bytes | None]], epochs: dict[int, Epoch]
    ) -> None:
        """Store these ``(partition, key, value or None)`` writes and partition epochs: one
        ``WriteBatch`` per partition, its epoch in the same batch as the records it covers."""
        import rocksdict

        batches: dict[int, rocksdict.WriteBatch] = {}

        def batch_of(partition: int) -> rocksdict.WriteBatch:
            batch = batches.get(partition)
            if batch is None:
                batch = batches[partition] = rocksdict.WriteBatch(raw_mode=True)
            return batch

        for partition, key, value in writes:
            if value is None:
                batch_of(partition).delete(key)
            else:
                batch_of(partition).put(key, value)
        for partition, epoch in epochs.items():
            batch_of(partition).put(self.epoch_key, format_epoch(epoch))
        for partition, batch in batches.items():
            self._db_for_partition(partition).write(batch)

    def apply_fenced(
        self, events: list[Any], offsets: dict[TP, int], epochs: dict[int, Epoch]
    ) -> None:
        """Faust's ``apply_changelog_batch`` for the records the fence kept, with the
        partitions' new epochs; the persisted offset moves over the skipped records too
        (they were read and judged)."""
        self.write(((e.message.partition, e.message.key, e.message.value) for e in events), epochs)
        for tp, offset in offsets.items():
            self.set_persisted_offset(tp, offset)


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
        #: The fence (streams.fence): each changelog partition's largest epoch seen or
        #: written (a cache of EpochStore's; the only copy with a memory store).
        self._epochs: dict[int, Epoch] = {}
        #: Per owned changelog partition, the least E this owner stamps: one above the
        #: largest its recovery read (streams.fence.owner_epoch; a group reset).
        self._floors: dict[int, int] = {}
        #: The group generation the queued writes were made under (None: not known).
        self._batch_generation: int | None = None
        #: Keys whose last changelog record a recovery read was a skipped stale one.
        self._stale: dict[int, dict[bytes, int]] = {}
        self._watch: ChangelogWatch | None = None

    def _new_store_by_url(self, url: Any) -> Any:
        """Faust's store, with :class:`EpochStore` for Faust's RocksDB store."""
        if stores.by_url(url) is not RocksDBStore:
            return super()._new_store_by_url(url)
        return EpochStore(
            url,
            self.app,
            self,
            table_name=self.name,
            key_type=self.key_type,
            key_serializer=self.key_serializer,
            value_serializer=self.value_serializer,
            value_type=self.value_type,
            loop=self.loop,
            options=self.options,
        )

    def generation(self) -> int | None:
        """The consumer group generation this worker is in, as its consumer knows it
        (-1 once the coordinator told it it was evicted); None without a group."""
        known = getattr(self.app.consumer, "generation", None)
        return known() if callable(known) else None

    def _epoch(self, partition: int) -> Epoch:
        """The largest epoch changelog partition ``partition`` has shown this store."""
        epoch = self._epochs.get(partition)
        if epoch is None:
            store = self.data
            epoch = store.persisted_epoch(partition) if isinstance(store, EpochStore) else (0, 0)
            self._epochs[partition] = epoch
        return epoch

    def _stamp(self, partition: int, generation: int | None) -> Epoch | None:
        """The epoch this worker's records of ``partition`` carry under ``generation``."""
        if generation is None:
            return None
        return owner_epoch(generation, self._floors.get(partition, 0))

    def _own_epoch(self, partition: int) -> Epoch | None:
        """This worker's epoch on ``partition`` now (the changelog watch's yardstick)."""
        return self._stamp(partition, self.generation())

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
        if not self._queued:
            self._batch_generation = self.generation()
        self._queued.append((partition, key, value))
        if self._store_later is None:
            self._store_later = isinstance(self.data, RocksDBStore) and self.data.use_rocksdict
        if self._store_later:
            self._unstored[key] = (partition, value)
        elif value is None:
            del self.data[key]
        else:
            self.data[key] = value

    def _write_rocksdb(
        self, unstored: dict[bytes, tuple[int, bytes | None]], epochs: dict[int, Epoch]
    ) -> None:
        """Write a batch's RocksDB assignments, with the epochs of the partitions whose
        epoch the batch moved (:meth:`EpochStore.write`)."""
        if unstored or epochs:
            self.data.write(((p, k, v) for k, (p, v) in unstored.items()), epochs)

    async def hand_over(self) -> None:
        """Give every queued changelog record to the Kafka client, in write order; once
        the broker has them all, store the batch's writes in RocksDB (never before:
        see the module's docstring). A failed delivery raises and stores nothing."""
        async with self._handing_over:
            self._fence_check()
            await self._hold_lease()
            self._storing, self._unstored = self._unstored, {}
            try:
                generation = self._batch_generation
                delivered = await self._send_queued(generation)
                moved = {}  # the partitions whose largest epoch this batch raised
                for tp in delivered:
                    epoch = self._stamp(tp.partition, generation)
                    if epoch is not None and epoch > self._epoch(tp.partition):
                        moved[tp.partition] = self._epochs[tp.partition] = epoch
                if self._store_later:
                    self._write_rocksdb(self._storing, moved)
                    for tp, offsets in delivered.items():
                        self._persisted(tp, offsets)
            finally:
                self._storing = {}

    def _fence_check(self) -> None:
        """The generation check: queued writes made under another group generation than
        the worker's now are a zombie's (an evicted worker's): drop them, raise."""
        if not self._queued or self._batch_generation is None:
            return
        now = self.generation()
        if now is None or now == self._batch_generation:  # None: the client stopped
            return
        dropped = self._drop_queued()
        raise OwnershipLost(
            f"table {self.name}: {dropped} changelog write(s) made under group generation "
            f"{self._batch_generation}, the worker's is now {now}; dropped"
        )

    async def _hold_lease(self) -> None:
        """The ownership lease (streams.lease): queued writes leave only while this worker
        holds its lease in the generation they were made under. Expired, the hand-over
        waits for a renewal in that generation; lost, the writes are dropped and
        :class:`OwnershipLost` raised, as by the generation check."""
        lease = getattr(self.app.producer, "lease", None)
        generation = self._batch_generation
        if lease is None or not self._queued or generation is None or lease.holds(generation):
            return
        try:
            await lease.hold(generation, what=f"changelog batch of table {self.name}")
        except OwnershipLost:
            self._drop_queued()
            raise

    def _drop_queued(self) -> int:
        """Drop a fenced batch's queued writes (neither sent nor stored) and count it; how
        many writes it held. Both fences use it: the generation check and the lease."""
        dropped = len(self._queued)
        self._queued, self._unstored = [], {}
        metrics.FENCED_BATCHES.inc()
        return dropped

    async def heal(self, partition: int, keys: list[bytes]) -> None:
        """Re-write these keys of ``partition`` with this worker's values (a tombstone for
        a key it does not hold), under its current epoch: their last changelog records
        were a zombie's (streams.fence). The table's values do not change."""
        if not self._queued:
            self._batch_generation = self.generation()
        for key in dict.fromkeys(keys):
            self._queued.append((partition, key, self._read(key)))
        metrics.FENCE_HEALS.inc(len(keys))
        await self.hand_over()

    def apply_changelog_batch(self, batch: Any) -> None:
        """Faust's recovery (and standby) apply, fenced: a record whose epoch is below
        the largest its partition has shown is a zombie's late write, skipped (and its
        key healed once this worker owns the partition, :meth:`on_recovery_completed`)."""
        kept, offsets, moved = [], {}, {}
        skipped: dict[int, list[Epoch]] = {}
        for event in batch:
            msg = event.message
            offsets[msg.tp] = max(msg.offset, offsets.get(msg.tp, -1))
            epoch, top = epoch_of(msg.headers), self._epoch(msg.partition)
            stale = self._stale.setdefault(msg.partition, {})
            if epoch is not None and epoch < top:
                skipped.setdefault(msg.partition, []).append(epoch)
                stale[msg.key] = epoch
                continue
            if epoch is not None and epoch > top:
                moved[msg.partition] = self._epochs[msg.partition] = epoch
            stale.pop(msg.key, None)
            kept.append(event)
        for partition, epochs in skipped.items():
            metrics.FENCE_SKIPPED.inc(len(epochs))
            log.warning(
                "changelog %s[%d]: skipped %d record(s) written under ownership epochs %s, "
                "older than the partition's %s: a paused worker's late writes",
                self.changelog_topic.get_topic_name(),
                partition,
                len(epochs),
                sorted({format_epoch(e).decode() for e in epochs}),
                format_epoch(self._epochs[partition]).decode(),
            )
        store = self.data
        if isinstance(store, EpochStore) and store.use_rocksdict:
            store.apply_fenced(kept, offsets, moved)
        else:
            store.apply_changelog_batch(kept, to_key=self._to_key, to_value=self._to_value)

    async def on_rebalance(
        self, assigned: Any, revoked: Any, newly_assigned: Any, generation_id: int = 0
    ) -> None:
        """The fence forgets what a recovery will read again, and stops watching."""
        self._epochs.clear()  # re-read from the store (a memory store is read again from 0)
        self._floors.clear()  # set again when the recovery completes
        if self._watch is not None:
            await self._watch.pause()
        await super().on_rebalance(assigned, revoked, newly_assigned, generation_id)

    async def on_stop(self) -> None:
        if self._watch is not None:
            await self._watch.stop()
        await super().on_stop()

    async def on_recovery_completed(self, active_tps: Any, standby_tps: Any) -> None:
        """Heal the keys whose last record the recovery skipped, then watch the active
        changelog partitions from where the recovery stopped (streams.fence)."""
        await super().on_recovery_completed(active_tps, standby_tps)
        mine = {tp.partition for tp in active_tps}
        for partition in mine:  # above all the recovery read, before the heals stamp
            self._floors[partition] = self._epoch(partition)[0] + 1
        settings = getattr(self.app, "ringtally_settings", None)  # None: not a ringtally worker
        try:
            await self._heal_and_watch(active_tps, settings)
        except Exception as exc:
            # Faust runs this as a task whose outcome it never reads (asyncio.wait): raised,
            # the worker would carry on without its heals and watch, with no fence.
            if settings is None:  # tests of the table alone
                raise
            self.app.fence_failed(exc)

    async def _heal_and_watch(self, active_tps: Any, settings: Any) -> None:
        """Heal the recovery's skipped keys of the active partitions, then start the watch."""
        mine = {tp.partition for tp in active_tps}
        for partition in list(self._stale):
            keys = self._stale.pop(partition)
            if partition in mine and keys:
                await self.heal(partition, list(keys))
        if settings is None:  # tests of the table alone
            return
        if self._watch is None:
            self._watch = ChangelogWatch(
                settings,
                self._own_epoch,
                self.heal,
                self.app.fence_failed,
            )
        # The recovery read each partition up to its last offset then (-1: empty); from
        # the end when it did not look (never from 0: every older epoch would be healed).
        highwaters = self.app.tables.recovery.active_highwaters
        last = {tp: highwaters.get(tp) for tp in active_tps}
        await self._watch.follow({tp: None if o is None else o + 1 for tp, o in last.items()})

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

    async def _send_queued(self, generation: int | None) -> dict[TP, list[int]]:
        """Send the queued changelog records, stamped with this worker's epoch under
        ``generation``, and wait until the broker has them all; returns each changelog
        partition's offsets, in send order."""
        if not self._queued:
            return {}
        queued, self._queued = self._queued, []
        topic = self.changelog_topic.get_topic_name()
        send = self.app.producer.send_record  # streams.producer
        headers: dict[int, Any] = {}
        for partition, _, _ in queued:
            if partition not in headers:
                epoch = self._stamp(partition, generation)
                headers[partition] = None if epoch is None else epoch_header(epoch)
        sent = [
            await send(
                topic, key, value, partition, headers=headers[partition], generation=generation
            )
            for partition, key, value in queued
        ]
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
