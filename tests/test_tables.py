"""BatchedTable writes the changelog records Faust's own Table would write.

Recovery (Faust's) decodes the changelog with the table's JSON codec, so
the bytes our hand-over sends must be what that codec produces: the same
compact JSON, ASCII-escaped. Checked on the shapes the three tables store.
"""

from __future__ import annotations

import pytest
from faust.serializers import codecs

from agents.tokens import TokenState
from streams.tables import _encode

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
    from faust.types.tuples import Message

    from agents.records import SourceRecord
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
    message = Message(
        topic="src", partition=2, offset=5, timestamp=0, timestamp_type=0, headers=[],
        key=b"k", value=b"v", checksum=None,
    )  # fmt: skip
    event = app.create_event(b"k", b"v", {}, message)
    return table, SourceRecord("src", 2, 5, b"k", b"v", event=event)


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
        table._store_unstored()
        assert db.get(b"a") == b'{"x":2}' and db.get(b"b") is None
        assert table.get(b"a") == {"x": 2} and table._unstored == {}
    # every write still goes to the changelog, in order, on the event's partition
    assert table._queued == [
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
