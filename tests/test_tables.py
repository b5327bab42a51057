"""BatchedTable writes the changelog records Faust's own Table would write.

Recovery (Faust's) decodes the changelog with the table's JSON codec, so
the bytes our hand-over sends must be what that codec produces: the same
compact JSON, ASCII-escaped. Checked on the shapes the three tables store.
"""

from __future__ import annotations

import asyncio

import pytest
from faust.serializers import codecs

from agents.tokens import TokenState
from streams.tables import _encode
from tests.fixtures.tables import changelog_table, source_record

SPENT = TokenState.spend(
    vote_id="0b7c1a4e-0000-5000-8000-000000000000",
    digest="ef" * 32,
    key_image="12" * 32,
    offset=9,
)
VALUES = [
    SPENT.to_dict(),
    {
        "winner": {"vote_id": "v", "order": [1767323045678, 2, 9]},
        "changes": [{"by": "v", "version": 7, "events": ['{"chain":"tally-3","sequence":7}']}],
    },
    {"counts": {"approve": 1, "reject": 0, "flag": 2, "escalate": 0}, "version": 3},
    {"seq": 12, "hash": "00" * 32},
    {"detail": "ünïcode — é"},
]


@pytest.mark.parametrize("value", VALUES)
def test_changelog_value_bytes_equal_fausts_json_codec(value):
    assert _encode(value) == codecs.dumps("json", value)


def test_tag_state_round_trips_through_the_changelog_encoding():
    import json

    assert TokenState.from_dict(json.loads(_encode(SPENT.to_dict()))) == SPENT


def _table_in_event(tmp_path, store: str):
    """A BatchedTable of an unstarted app, and a record of partition 2 to write under."""
    import faust

    from streams.tables import BatchedTable

    app = faust.App(
        f"t-tables-{store}",
        broker="kafka://127.0.0.1:1",  # never contacted: nothing is sent here
        store=f"{store}://",
        datadir=str(tmp_path),
        Table=BatchedTable,
        topic_partitions=4,
    )
    table = app.Table("state", partitions=4, key_type=bytes)
    return table, source_record(app)


def test_rocksdb_writes_are_read_back_at_once_and_stored_once_per_batch(tmp_path):
    from agents.records import event_scope

    table, record = _table_in_event(tmp_path, "rocksdb")
    with event_scope(record):
        table[b"a"] = {"x": 1}
        table[b"a"] = {"x": 2}
        table[b"b"] = {"y": 1}
        del table[b"b"]
        assert table.get(b"a") == {"x": 2} and table[b"a"] == {"x": 2}  # before the store has it
        assert table.get(b"b") is None and table.get(b"c", "none") == "none"
        with pytest.raises(KeyError):
            table[b"b"]
        db = table.data._db_for_partition(2)
        assert db.get(b"a") is None  # not in RocksDB until the hand-over
        queued, table._queued = table._queued, []  # no changelog to wait for here
        asyncio.run(table.hand_over())
        assert db.get(b"a") == b'{"x":2}' and db.get(b"b") is None
        assert table.get(b"a") == {"x": 2} and table._unstored == {}
    # every write still goes to the changelog, in order, on the event's partition
    assert queued == [
        (2, b"a", b'{"x":1}'),
        (2, b"a", b'{"x":2}'),
        (2, b"b", b'{"y":1}'),
        (2, b"b", None),
    ]


def test_memory_writes_go_to_the_store_at_once(tmp_path):
    from agents.records import event_scope

    table, record = _table_in_event(tmp_path, "memory")
    with event_scope(record):
        table[b"a"] = {"x": 1}
        assert table._unstored == {} and table.data[b"a"] == b'{"x":1}'
        assert table.get(b"a") == {"x": 1}


async def _changelog(settings, topic: str) -> dict[bytes, bytes | None]:
    """What a changelog-only recovery restores: the last value of each key on ``topic``."""
    from aiokafka import AIOKafkaConsumer

    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=settings.kafka_bootstrap, auto_offset_reset="earliest"
    )
    await consumer.start()
    try:
        tps = consumer.assignment() or set()
        while not tps:  # the subscription's first assignment
            await consumer.getmany(timeout_ms=100)
            tps = consumer.assignment()
        ends = await consumer.end_offsets(list(tps))
        state: dict[bytes, bytes | None] = {}
        while [tp for tp in tps if await consumer.position(tp) < ends[tp]]:
            for records in (await consumer.getmany(timeout_ms=500)).values():
                for r in records:
                    state[r.key] = r.value
        return state
    finally:
        await consumer.stop()


@pytest.mark.integration
async def test_rocksdb_is_never_ahead_of_the_changelog_when_the_worker_dies_mid_hand_over(
    settings, tmp_path
):
    """Issue 16: the batch went to RocksDB before its changelog records reached the
    broker. A SIGKILL in between left RocksDB ahead; the redelivered records found
    their state written and wrote nothing, so a changelog-only recovery (another
    worker, a lost disk) restored the old state. Here the crash is a changelog send
    that never happens: whatever RocksDB holds, the changelog must hold too."""
    from agents.records import event_scope

    app, table, topic, record = await changelog_table(settings, tmp_path)
    db = table.data._db_for_partition(2)
    await app.producer.start()
    try:
        with event_scope(record):
            table[b"tag"] = {"spent_by": None}
        await table.hand_over()  # a batch that went through
        assert db.get(b"tag") == b'{"spent_by":null}'

        with event_scope(record):
            table[b"tag"] = {"spent_by": "v1"}
            table[b"head"] = {"seq": 1}
        sent = app.producer.send_record

        async def killed(*args, **kwargs):  # the worker dies before the records leave
            raise RuntimeError("SIGKILL")

        app.producer.send_record = killed
        with pytest.raises(RuntimeError, match="SIGKILL"):
            await table.hand_over()
        app.producer.send_record = sent

        logged = await _changelog(settings, topic)
        stored = {k: db.get(k) for k in (b"tag", b"head")}
        assert stored == {k: logged.get(k) for k in stored}  # RocksDB is not ahead
        assert stored == {b"tag": b'{"spent_by":null}', b"head": None}
    finally:
        await app.producer.stop()


@pytest.mark.integration
async def test_the_persisted_offset_never_passes_another_writers_changelog_record(
    settings, tmp_path
):
    """F11 (docs/reliability.md): three-broker chaos, seed 5539, session 8 code. Worker 1
    took the partitions of a paused worker 0 and spent a tag (tokens changelog[7]@198);
    worker 0 resumed, its batch's changelog records landed after (199-202), and their
    delivery set its RocksDB's persisted offset to 202. Its next recovery read from 203:
    the spend at 198 never reached its store, and a slot reuse was counted. RocksDB's
    persisted offset says "every record up to here is in this store"; a hand-over may
    move it only over records that are its own, following on from it."""
    from aiokafka import AIOKafkaProducer
    from faust.types import TP

    from agents.records import event_scope

    app, table, topic, record = await changelog_table(settings, tmp_path)
    tp = TP(topic, 2)
    other = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap, acks="all")
    await app.producer.start()
    await other.start()
    try:
        with event_scope(record):
            table[b"tag-a"] = {"spent_by": "a"}
        await table.hand_over()
        known = table.data.persisted_offset(tp)
        assert known is not None

        # another worker (the partition's new owner) writes the same changelog partition
        theirs = await other.send_and_wait(topic, b'{"spent_by":"b"}', key=b"tag-b", partition=2)
        assert theirs.offset > known

        with event_scope(record):
            table[b"tag-c"] = {"spent_by": "c"}
        await table.hand_over()  # lands after theirs

        # where a recovery of this store starts reading: their record must be ahead of it
        assert table.data.persisted_offset(tp) < theirs.offset
    finally:
        await other.stop()
        await app.producer.stop()
