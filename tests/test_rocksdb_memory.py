"""A worker's RocksDB memory has one bound, whatever number of table partitions it owns.

The soak (issue 16, docs/reliability.md) saw the worker's RSS rise in steps
for 30 minutes: 24 databases (12 partitions x 2 tables), each filling its
own 4 MiB memtables and its own block cache, flushing only when *it* was
full. ``Settings.rocksdb_memory`` is now one cache shared by every database
of the process, with memtables charged to it and flushed at half of it.
"""

from __future__ import annotations

import os
import time

from streams.settings import Settings

MIB = 1024 * 1024


def _databases(tmp_path, settings: Settings) -> list:
    """The 24 RocksDB databases of a worker app's two 12-partition tables (opened)."""
    import faust

    from streams.tables import BatchedTable

    app = faust.App(
        "t-rocksdb-memory",
        broker="kafka://127.0.0.1:1",  # never contacted: nothing is sent here
        store="rocksdb://",
        datadir=str(tmp_path),
        Table=BatchedTable,
        topic_partitions=12,
    )
    tables = [
        app.Table(name, partitions=12, key_type=bytes, options=settings.rocksdb_options())
        for name in ("tokens", "tally")
    ]
    return [(t.data, p) for t in tables for p in range(12)]


def _memtables(dbs: list) -> int:
    return sum(
        int(store._db_for_partition(p).property_int_value("rocksdb.size-all-mem-tables"))
        for store, p in dbs
    )


def _flushing(dbs: list) -> bool:
    return any(
        int(store._db_for_partition(p).property_int_value(prop))
        for store, p in dbs
        for prop in ("rocksdb.mem-table-flush-pending", "rocksdb.num-running-flushes")
    )


def test_memtables_of_all_partitions_stay_within_the_workers_budget(tmp_path):
    budget = 8 * MIB
    settings = Settings(rocksdb_write_buffer=1 * MIB, rocksdb_memory=budget)
    dbs = _databases(tmp_path, settings)
    # 0.9 MiB per database, 21 MiB in all: each memtable stays below its own 1 MiB, so
    # only a bound across databases flushes anything. After each round the flushes it
    # started are let finish (RocksDB's one background flush thread is shared by all
    # databases; a worker's write rate is far below what it flushes).
    written: dict[tuple[int, int], tuple[bytes, bytes]] = {}
    most = 0
    for round_ in range(28):
        for i, (store, partition) in enumerate(dbs):
            writes = [(partition, os.urandom(16), os.urandom(1024)) for _ in range(32)]
            store.write(writes, {})
            written[(i, round_)] = writes[0][1:]
        deadline = time.monotonic() + 60
        while _flushing(dbs) and time.monotonic() < deadline:
            time.sleep(0.01)
        most = max(most, _memtables(dbs))
    assert most <= budget, f"memtables held {most / MIB:.1f} MiB"
    # one cache for all of them, of the budget's size (per database before: 24 caches)
    capacities = {
        int(store._db_for_partition(p).property_int_value("rocksdb.block-cache-capacity"))
        for store, p in dbs
    }
    assert capacities == {budget}
    # and nothing was lost on the way to disk
    for (i, _), (key, value) in written.items():
        store, partition = dbs[i]
        assert store._db_for_partition(partition).get(key) == value


def test_the_default_budget_is_sized_for_the_partitions():
    assert Settings(partitions=12).rocksdb_options()["memory_budget"] == 64 * MIB
    assert Settings(partitions=4).rocksdb_options()["memory_budget"] == 64 * MIB  # the floor
    # 36 partitions x 2 tables: a third of a 4 MiB write buffer each for the memtables
    assert Settings(partitions=36).rocksdb_options()["memory_budget"] == 192 * MIB
    assert Settings(partitions=36, rocksdb_memory=32 * MIB).rocksdb_options() == {
        "write_buffer_size": 4 * MIB,
        "max_write_buffer_number": 2,
        "memory_budget": 32 * MIB,
    }
