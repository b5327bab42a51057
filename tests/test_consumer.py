"""The worker's consumer bookkeeping (streams.consumer), on a Faust consumer never started."""

from __future__ import annotations

import pytest
from faust.types import TP, Message
from faust.types.tuples import ConsumerMessage

from streams.app import app, settings


@pytest.fixture()
def consumer(monkeypatch):
    consumer = app.consumer
    # Acks count only for topics an agent subscribed to; no agent runs here.
    monkeypatch.setattr(app.topics, "acks_enabled_for", lambda topic: True)
    monkeypatch.setattr(consumer, "highwater", lambda tp: 100)
    yield consumer
    for name in ("_unacked_messages", "_acked", "_acked_index", "_committed_offset"):
        getattr(consumer, name).clear()


VOTES0 = TP(settings.topic("votes"), 0)


def _delivered(consumer, offset: int) -> Message:
    message = ConsumerMessage(  # what the transport makes: its final ack reaches the consumer
        topic=VOTES0.topic,
        partition=VOTES0.partition,
        offset=offset,
        timestamp=0.0,
        timestamp_type=0,
        headers=None,
        key=b"token",
        value=b"{}",
        checksum=None,
        tp=VOTES0,
    )
    consumer.track_message(message)
    message.incref()  # as the conductor does, for the one stream it goes to
    return message


def test_acknowledged_messages_leave_the_in_flight_set_even_when_delivered_twice(consumer):
    """Faust keeps a redelivered duplicate, or a message below the commit, in flight
    for good; the stall watchdog would then take the partition for a busy one (F8)."""
    consumer._committed_offset[VOTES0] = 10
    first, again = _delivered(consumer, 12), _delivered(consumer, 12)
    below = _delivered(consumer, 5)
    waiting = _delivered(consumer, 13)
    assert consumer.ack(first) is True
    assert consumer.ack(again) is False  # not counted twice
    assert consumer.ack(below) is False  # below the commit: nothing to count
    assert set(consumer._unacked_messages) == {waiting}
    assert consumer._acked[VOTES0] == [12]


def test_progress_reports_the_hole_in_front_of_the_acknowledged_records(consumer):
    consumer._committed_offset[VOTES0] = 10
    for offset in (14, 15):
        consumer.ack(_delivered(consumer, offset))
    reads, commits = consumer.progress([VOTES0])
    assert commits[VOTES0].blocker == "hole"  # 10..13 neither acknowledged nor in flight
    assert (commits[VOTES0].committed, commits[VOTES0].lowest_acked) == (10, 14)
    assert reads[VOTES0].highwater == 100
    on_its_way = _delivered(consumer, 11)  # the in-flight set is weak: keep the message
    _, commits = consumer.progress([VOTES0])
    assert commits[VOTES0].blocker == "in_flight"
    assert commits[VOTES0].oldest_in_flight == on_its_way.offset == 11


def test_a_held_back_copy_is_not_in_flight_once_its_offset_is_acknowledged(consumer):
    """agents.order keeps a record that came ahead unacknowledged; its second coming
    is acknowledged. The first copy must not pass for a record an agent is stuck on."""
    consumer._committed_offset[VOTES0] = 10
    held = _delivered(consumer, 12)
    held.incref()  # as agents.order does: the stream's ack is not the last
    assert held.ack(consumer) is False and not held.acked
    second = _delivered(consumer, 12)
    assert second.ack(consumer) is True
    _, commits = consumer.progress([VOTES0])
    assert held in consumer._unacked_messages
    assert commits[VOTES0].oldest_in_flight is None
    assert commits[VOTES0].blocker == "hole"  # 10 and 11 never came: seen, not masked


def test_a_jump_in_offsets_is_not_taken_for_acknowledged_records(consumer):
    """F10: after a seek back, a record fetched before it jumps past undecided ones;
    Faust would count the skipped offsets as acknowledged and commit past them."""
    import asyncio

    consumer._committed_offset[VOTES0] = 10
    asyncio.run(consumer._add_gap(VOTES0, 11, 40))
    consumer.ack(_delivered(consumer, 10))
    consumer.ack(_delivered(consumer, 41))
    assert consumer._new_offset(VOTES0) == 11  # 11..40 were never decided


def test_a_partition_never_committed_starts_at_its_first_offset(consumer, monkeypatch):
    """agents.order marks a partition from next_to_process; for one never committed it
    must be the partition's first offset, not whatever record happened to come first."""
    import asyncio

    asked: list[tuple] = []

    async def earliest(*tps):
        asked.append(tps)
        return {tp: 7 for tp in tps}

    monkeypatch.setattr(consumer, "earliest_offsets", earliest)
    monkeypatch.setattr(consumer, "_first_offsets", {})
    votes1 = TP(VOTES0.topic, 1)
    consumer._committed_offset[VOTES0] = 30
    asyncio.run(consumer.look_up_first_offsets([VOTES0, votes1]))
    asyncio.run(consumer.look_up_first_offsets([votes1]))  # known now: not asked again
    assert asked == [(votes1,)]
    assert consumer.next_to_process(VOTES0) == 30
    assert consumer.next_to_process(votes1) == 7


def test_health_answers_starting_before_the_consumer_thread_runs():
    """The web server answers before the consumer thread starts: /health said 500 with a
    traceback in the worker's log then (a chaos run polling it every 0.1 s hit it)."""
    import asyncio
    import json

    from streams.app import health

    assert not app.consumer._thread.started  # the state a starting worker is in
    response = asyncio.run(health(app, app.web).get(None))
    assert response.status == 503
    body = json.loads(response.body)
    assert (body["status"], body["assigned_partitions"], body["votes_partitions"]) == (
        "starting",
        0,
        [],
    )


def test_the_workers_fetch_waits_at_most_half_a_second_on_the_broker():
    """Every call through the consumer's thread (the seek back after a start or a
    rebalance) waits out the fetch in progress: with Faust's 1.5 s each worker said
    ready 1.5 s after its assignment (~1 s more per start, measured in session 10)."""
    import asyncio

    from streams.consumer import FETCH_MAX_WAIT_MS

    async def created():  # the consumer object only: nothing connects before start()
        consumer = app.consumer._thread._create_worker_consumer(app.transport)
        return consumer._fetch_max_wait_ms

    assert FETCH_MAX_WAIT_MS == 500
    assert asyncio.run(created()) == FETCH_MAX_WAIT_MS
