"""No commit passes a record before its decision is out (issue 16: ack before decide).

Against the real ordering code (agents.pipeline.OrderedBatches, agents.order)
and the worker's real consumer bookkeeping (streams.consumer, never started):
a batch goes through ``OrderedBatches.ready``, then every event of it is
acknowledged as Faust's ``take_events`` does once the agent's body moves on,
and the offset Faust would commit (``_new_offset``) is read.
"""

from __future__ import annotations

import asyncio

import pytest
from faust.types import TP
from faust.types.tuples import ConsumerMessage

from agents.pipeline import OrderedBatches
from streams.app import app, settings

VOTES0 = TP(settings.topic("votes"), 0)


@pytest.fixture()
def consumer(monkeypatch):
    consumer = app.consumer
    monkeypatch.setattr(app.topics, "acks_enabled_for", lambda topic: True)
    sought: list[dict] = []

    async def seek_wait(targets):  # the partition would be fetched again from here
        sought.append(dict(targets))

    monkeypatch.setattr(consumer, "seek_wait", seek_wait)
    consumer.sought = sought
    consumer._committed_offset[VOTES0] = 10
    yield consumer
    for name in ("_unacked_messages", "_acked", "_acked_index", "_committed_offset"):
        getattr(consumer, name).clear()


def _event(consumer, offset: int):
    message = ConsumerMessage(
        topic=VOTES0.topic, partition=VOTES0.partition, offset=offset, timestamp=0.0,
        timestamp_type=1, headers=None, key=b"tag", value=b"{}", checksum=None, tp=VOTES0,
    )  # fmt: skip
    consumer.track_message(message)
    message.incref()  # as the conductor does, for the one stream it goes to
    return app.create_event(message.key, message.value, {}, message)


def _batch_done(events) -> None:
    """What take_events does after the agent's body: acknowledge every event it yielded."""
    for event in events:
        event.ack()


def test_a_copy_of_a_held_back_record_does_not_let_the_commit_pass_it(consumer):
    batches = OrderedBatches()
    # 12 arrives twice (a seek back while the fetcher held the first copy), ahead of 10, 11
    events = [_event(consumer, 12), _event(consumer, 12)]
    assert asyncio.run(batches.ready(list(events))) == []
    assert consumer.sought == [{VOTES0: 10}]
    _batch_done(events)
    # the seek back brings 10 and 11; they are decided and acknowledged
    events = [_event(consumer, 10), _event(consumer, 11)]
    assert [r.offset for r in asyncio.run(batches.ready(list(events)))] == [10, 11]
    _batch_done(events)
    # 12 is not decided yet (its third copy is still to come): no commit may pass it
    assert consumer._new_offset(VOTES0) == 12


def test_a_copy_of_a_record_waiting_to_be_applied_does_not_let_the_commit_pass_it(consumer):
    batches = OrderedBatches()
    events = [_event(consumer, 10), _event(consumer, 10)]
    (ready,) = asyncio.run(batches.ready(list(events)))
    ready.event.message.incref()  # as AppliedInTurn.submit: acknowledged once applied
    _batch_done(events)  # the agent took its next batch; this one waits to be applied
    assert consumer._new_offset(VOTES0) is None  # nothing decided: the commit stays at 10
    ready.event.ack()  # applied, table writes handed over
    assert consumer._new_offset(VOTES0) == 11


def test_a_rebalance_frees_an_agent_waiting_for_its_seek_back(consumer, monkeypatch):
    """A seek back through the consumer's thread can wait for the rebalance, and the
    rebalance waits for the records the agent holds (finding F12): the agent gives the
    seek up when the flow stops, and its batch ends. On the code before, ``ready`` waited
    for the seek for good."""
    seek_called = asyncio.Event()

    async def seek_wait(targets):  # the consumer's thread is busy with the rebalance
        seek_called.set()
        await asyncio.Future()

    monkeypatch.setattr(consumer, "seek_wait", seek_wait)
    monkeypatch.setattr(consumer, "suspend_flow", asyncio.Event())

    async def scenario():
        batches = OrderedBatches()
        events = [_event(consumer, 11), _event(consumer, 12)]  # ahead of 10
        agent = asyncio.ensure_future(batches.ready(list(events)))
        await asyncio.wait_for(seek_called.wait(), 5)
        assert not agent.done()  # waiting for the seek: the flow is still running
        consumer.suspend_flow.set()  # Faust's stop_flow at the rebalance's start
        ready = await asyncio.wait_for(agent, 5)
        _batch_done(events)
        return ready

    assert asyncio.run(scenario()) == []
    # the held records are not acknowledged: the rebalance seeks to the commit (10)
    assert consumer._new_offset(VOTES0) is None


def test_a_partition_whose_sought_records_never_come_is_sought_again(consumer):
    """The seek back can be undone by records the fetcher fetched before it (they set
    the read offset past the mark, and the records fetched again are dropped as read):
    with nothing more arriving, the partition waited for good after a worker's
    takeover (tests/test_pipeline_workers.py, about 1 run in 5). The gate seeks again
    once the records it asked for are overdue; on the code before it never did."""
    batches = OrderedBatches()
    events = [_event(consumer, 12)]  # ahead of the commit, 10
    assert asyncio.run(batches.ready(list(events))) == []
    _batch_done(events)
    assert consumer.sought == [{VOTES0: 10}]
    asyncio.run(batches.reseek_waiting(after=60.0))  # not overdue yet
    assert consumer.sought == [{VOTES0: 10}]
    asyncio.run(batches.reseek_waiting(after=0.0))  # overdue, mark unchanged
    assert consumer.sought == [{VOTES0: 10}, {VOTES0: 10}]
    # the records come; once the mark moved past the seek, nothing is sought again
    events = [_event(consumer, 10), _event(consumer, 11), _event(consumer, 12)]
    assert [r.offset for r in asyncio.run(batches.ready(list(events)))] == [10, 11, 12]
    _batch_done(events)
    asyncio.run(batches.reseek_waiting(after=0.0))
    assert consumer.sought == [{VOTES0: 10}, {VOTES0: 10}]
    assert consumer._new_offset(VOTES0) == 13
