"""Log order (agents.order): per partition, records are decided in offset order, none skipped."""

from __future__ import annotations

from agents.order import LogOrder
from agents.records import SourceRecord


def _r(offset: int, partition: int = 0, topic: str = "votes") -> SourceRecord:
    return SourceRecord(topic, partition, offset, b"k", b"v")


def _offsets(records: list[SourceRecord]) -> list[int]:
    return [r.offset for r in records]


def test_records_in_order_from_the_commit_are_all_ready():
    order = LogOrder(committed=lambda tp: 10)
    admitted = order.admit([_r(11), _r(10), _r(12)])
    assert _offsets(admitted.ready) == [10, 11, 12]
    assert admitted.ahead == [] and admitted.seek == {}


def test_a_record_ahead_of_a_missing_one_is_held_back_until_the_missing_one_came():
    # F7: 6285 reached the agent in a batch before the one holding 6284
    order = LogOrder(committed=lambda tp: 6284)
    first = order.admit([_r(6285)])
    assert first.ready == [] and _offsets(first.ahead) == [6285]
    assert first.seek == {("votes", 0): 6284}
    # after the seek back: 6284, then 6285 again, in order
    again = order.admit([_r(6284), _r(6285)])
    assert _offsets(again.ready) == [6284, 6285] and again.ahead == []


def test_a_record_below_the_mark_was_decided_before_and_is_ready_again():
    order = LogOrder(committed=lambda tp: 0)
    order.admit([_r(0), _r(1), _r(2)])
    assert _offsets(order.admit([_r(1)]).ready) == [1]  # a redelivery: decided as its first time
    assert _offsets(order.admit([_r(3)]).ready) == [3]


def test_partitions_are_independent_and_a_never_committed_one_starts_at_its_first_record():
    starts = {("votes", 0): 5, ("votes", 1): None}
    order = LogOrder(committed=starts.get)
    admitted = order.admit([_r(7, 0), _r(40, 1), _r(41, 1), _r(5, 0)])
    assert _offsets(admitted.ready) == [5, 40, 41]
    assert _offsets(admitted.ahead) == [7]
    assert admitted.seek == {("votes", 0): 6}


def test_every_batch_with_records_ahead_seeks_and_a_gap_is_never_skipped():
    order = LogOrder(committed=lambda tp: 100)
    assert order.admit([_r(102)]).seek == {("votes", 0): 100}
    # the partition's last records, held back again: seek again, or nothing comes
    assert order.admit([_r(102), _r(103)]).seek == {("votes", 0): 100}
    # however long 100 and 101 stay away, nothing after them is decided
    for _ in range(100):
        admitted = order.admit([_r(102), _r(103)])
        assert admitted.ready == [] and _offsets(admitted.ahead) == [102, 103]
    assert _offsets(order.admit([_r(100), _r(101), _r(102)]).ready) == [100, 101, 102]


def test_reset_starts_again_from_the_committed_offsets():
    committed = {("votes", 0): 3}
    order = LogOrder(committed=committed.get)
    order.admit([_r(3), _r(4)])
    committed[("votes", 0)] = 9  # another worker went on while the partition was away
    order.reset()
    admitted = order.admit([_r(10)])
    assert admitted.ready == [] and admitted.seek == {("votes", 0): 9}


def test_partitions_without_a_mark_are_named_so_their_start_can_be_looked_up():
    order = LogOrder(committed=lambda tp: 0)
    assert order.unknown([("votes", 0), ("votes", 1)]) == {("votes", 0), ("votes", 1)}
    order.admit([_r(0, 0)])
    assert order.unknown([("votes", 0), ("votes", 1)]) == {("votes", 1)}
    order.reset()
    assert order.unknown([("votes", 0)]) == {("votes", 0)}


def test_skip_to_moves_past_a_gap_the_log_proved_empty_and_never_back():
    """A transaction marker at 11: the log shows the first record from 11 is 12.
    Fails if skip_to does not move the mark (the partition would hold for ever)."""
    order = LogOrder(committed=lambda tp: 10)
    assert _offsets(order.admit([_r(10)]).ready) == [10]
    held = order.admit([_r(12)])
    assert held.ready == [] and held.seek == {("votes", 0): 11}
    order.skip_to(("votes", 0), 12)
    assert _offsets(order.admit([_r(12), _r(13)]).ready) == [12, 13]
    order.skip_to(("votes", 0), 5)  # never backwards
    assert order.admit([_r(15)]).seek == {("votes", 0): 14}


def test_further_copies_of_a_position_are_named_so_they_are_never_acknowledged():
    order = LogOrder(committed=lambda tp: 10)
    first, second, ahead, ahead_again = _r(10), _r(10), _r(12), _r(12)
    admitted = order.admit([first, ahead, second, ahead_again])
    assert _offsets(admitted.ready) == [10] and _offsets(admitted.ahead) == [12]
    kept = {id(r) for r in admitted.ready + admitted.ahead}
    assert sorted(_offsets(admitted.copies)) == [10, 12]
    assert not kept & {id(r) for r in admitted.copies}
