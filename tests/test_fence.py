"""The zombie fence on table changelogs (issue 16 item 2, streams/fence.py).

A worker paused past its session timeout resumes and hands over the batch it
had prepared: changelog records for partitions another worker now owns. Real
Kafka changelog topics and RocksDB stores; the zombie's records are produced
straight into the changelog, as its Kafka client would send them (same key,
partition and header, an older group generation).
"""

from __future__ import annotations

import asyncio
import time
import uuid

import pytest

from tests.fixtures.tables import changelog_table

pytestmark = pytest.mark.integration

HEADER = "ringtally-epoch"  # streams.fence.EPOCH_HEADER, spelled out: the code before lacks it


def _stamp(epoch: int) -> list[tuple[str, bytes]]:
    return [(HEADER, str(epoch).encode())]


async def _recover(app, table, topic: str, partition: int, start: int, batch: int = 2) -> None:  # noqa: ANN001
    """What Faust's recovery does for one changelog partition: read it from ``start`` to
    its end and hand the records to ``table.apply_changelog_batch`` as events, a few
    at a time (a batch boundary falls between the owner's and the zombie's record)."""
    from faust.types import TP
    from faust.types.tuples import Message

    events = []
    for r in await _records(app.ringtally_settings, topic, partition, start):
        message = Message(
            r.topic, r.partition, r.offset, r.timestamp / 1000, r.timestamp_type,
            r.headers, r.key, r.value, r.checksum, tp=TP(topic, partition),
        )  # fmt: skip
        events.append(app.create_event(r.key, r.value, r.headers, message))
    for i in range(0, len(events), batch):
        table.apply_changelog_batch(events[i : i + batch])


async def test_a_recovery_restores_the_owners_value_not_a_zombies_later_write(settings, tmp_path):
    """The owner (generation 7) spent the tag; the zombie (generation 5, paused past
    its session timeout) resumes and its "unspent" lands after. On a compacted
    changelog that record is the last of its key: a changelog-only recovery (empty
    data dir) restored it on the code before, a spent tag unspent. A second recovery
    starting mid-partition (RocksDB's persisted offset) must know the epoch too."""
    from aiokafka import AIOKafkaProducer
    from faust.types import TP

    suffix = uuid.uuid4().hex[:8]
    app, table, topic, _ = await changelog_table(settings, tmp_path / "a", f"fence-{suffix}")
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap, acks="all")
    await producer.start()
    try:
        send = producer.send_and_wait
        await send(topic, b'{"state":"issued"}', key=b"tag", partition=2, headers=_stamp(5))
        await send(topic, b'{"state":"spent"}', key=b"tag", partition=2, headers=_stamp(7))
        await send(topic, b'{"seq":1}', key=b"head", partition=2, headers=_stamp(7))
        await send(topic, b'{"state":"issued"}', key=b"tag", partition=2, headers=_stamp(5))
        old = await send(topic, b'{"seq":0}', key=b"other", partition=2)  # no header: epoch 0
        await _recover(app, table, topic, 2, 0)
        assert table.get(b"tag") == {"state": "spent"}
        assert table.get(b"head") == {"seq": 1}
        assert table.get(b"other") == {"seq": 0}  # unstamped (an older worker's): applied

        # A later zombie record, read by a recovery that starts where the store's
        # persisted offset says (a restart on the same data dir, a new store object).
        await send(topic, b'{"state":"issued"}', key=b"tag", partition=2, headers=_stamp(6))
        known = table.data.persisted_offset(TP(topic, 2))
        assert known is not None and known >= old.offset
        for db in table.data._dbs.values():  # the worker stops: RocksDB's lock is released
            db.close()
        app2, table2, _, _ = await changelog_table(settings, tmp_path / "a", f"fence-{suffix}")
        await _recover(app2, table2, topic, 2, known + 1)
        assert table2.get(b"tag") == {"state": "spent"}
    finally:
        await producer.stop()


async def _records(settings, topic: str, partition: int, start: int) -> list:  # noqa: ANN001
    from aiokafka import AIOKafkaConsumer, TopicPartition

    tp = TopicPartition(topic, partition)
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap)
    await consumer.start()
    try:
        consumer.assign([tp])
        consumer.seek(tp, start)
        end = (await consumer.end_offsets([tp]))[tp]
        out = []
        while await consumer.position(tp) < end:
            out += (await consumer.getmany(tp, timeout_ms=500)).get(tp, [])
        return out
    finally:
        await consumer.stop()


async def test_the_owner_rewrites_a_key_a_zombie_wrote_after_it(settings, tmp_path):
    """Compaction may delete the owner's record and keep the zombie's later one, so the
    owner must put its own value after the zombie's: a newer record of the key, under
    its epoch, with its value. Waited for on the changelog, with a deadline."""
    from aiokafka import AIOKafkaProducer
    from faust.types import TP

    from agents.records import event_scope

    app, table, topic, record = await changelog_table(
        settings, tmp_path, f"fence-{uuid.uuid4().hex[:8]}"
    )
    table.generation = lambda: 7  # the group generation the owner's consumer is in
    zombie = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap, acks="all")
    await app.producer.start()
    await zombie.start()
    try:
        await table.on_recovery_completed({TP(topic, 2)}, set())  # the owner takes over
        with event_scope(record):
            table[b"tag"] = {"state": "spent"}
            table[b"head"] = {"seq": 3}
        await table.hand_over()

        late = await zombie.send_and_wait(
            topic, b'{"state":"issued"}', key=b"tag", partition=2, headers=_stamp(5)
        )
        deadline = time.monotonic() + 30
        healed = []
        while not healed and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
            healed = [
                r for r in await _records(settings, topic, 2, late.offset + 1) if r.key == b"tag"
            ]
        assert healed, "no record of the key after the zombie's"
        assert healed[-1].value == b'{"state":"spent"}'
        assert dict(healed[-1].headers).get(HEADER) == b"7"
        assert table.get(b"tag") == {"state": "spent"}  # the owner's state is unchanged
    finally:
        watch = getattr(table, "_watch", None)
        if watch is not None:
            await watch.stop()
        await zombie.stop()
        await app.producer.stop()


async def test_a_batch_written_before_a_generation_change_is_dropped(settings, tmp_path):
    """The generation check: writes made under generation 7 and handed over once the
    consumer knows it was evicted (-1) or rejoined (8) are a zombie's: nothing reaches
    the changelog or RocksDB, and the hand-over raises so the worker stops."""
    from agents.records import event_scope

    app, table, topic, record = await changelog_table(
        settings, tmp_path, f"fence-{uuid.uuid4().hex[:8]}"
    )
    generation = [7]
    table.generation = lambda: generation[0]
    await app.producer.start()
    try:
        with event_scope(record):
            table[b"tag"] = {"state": "spent"}
        await table.hand_over()  # under one generation: delivered, stamped
        first = await _records(settings, topic, 2, 0)
        assert [(r.key, dict(r.headers).get(HEADER)) for r in first] == [(b"tag", b"7")]

        with event_scope(record):
            table[b"tag"] = {"state": "issued"}
        generation[0] = -1  # the coordinator told the resumed worker it was evicted
        with pytest.raises(Exception) as raised:
            await table.hand_over()
        assert type(raised.value).__name__ == "OwnershipLost"
        assert len(await _records(settings, topic, 2, 0)) == 1  # nothing more was sent
        assert table.data._db_for_partition(2).get(b"tag") == b'{"state":"spent"}'
    finally:
        await app.producer.stop()


def _worker_settings(stack):  # noqa: ANN001, ANN202
    """A two-partition pipeline with RocksDB tables, its topics, and its tally changelog."""
    from connectors.sdk import ensure_topics
    from streams.topics import internal_topic_specs
    from tests.fixtures.pipeline import pipeline_settings

    settings = pipeline_settings(stack, table_store="rocksdb", partitions=2)
    ensure_topics(settings)
    return settings, internal_topic_specs(settings)["tally-changelog"][0]


def _four_votes(settings, outputs) -> None:  # noqa: ANN001
    from tests.test_pipeline import World

    world = World(settings, members=4, k=4)
    submission = world.submission()
    world.publish(*[world.vote(m, submission) for m in range(4)])
    outputs.wait_for(lambda o: len(o.ballots) >= 4, what="four ballots")


async def _last_records(settings, changelog: str) -> dict:  # noqa: ANN001
    """Each key's last record on the two-partition changelog: (partition, offset, value,
    epoch header)."""
    out = {}
    for partition in range(2):
        for r in await _records(settings, changelog, partition, 0):
            out[r.key] = (partition, r.offset, r.value, dict(r.headers).get(HEADER))
    return out


async def _zombie_write(settings, changelog: str) -> tuple:  # noqa: ANN001
    """Produce a stale value, under the epoch below the writer's, for a key whose last
    record holds a value; returns (key, partition, that value, its epoch, stale offset)."""
    from aiokafka import AIOKafkaProducer

    last = await _last_records(settings, changelog)
    key, (partition, _, value, epoch) = next((k, v) for k, v in last.items() if v[2])
    zombie = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap, acks="all")
    await zombie.start()
    try:
        late = await zombie.send_and_wait(
            changelog, b'{"stale":true}', key=key, partition=partition,
            headers=_stamp(int(epoch or 1) - 1),
        )  # fmt: skip
    finally:
        await zombie.stop()
    return key, partition, value, epoch, late.offset


def test_a_running_worker_heals_a_zombie_write_on_its_tally_changelog(stack, tmp_path):
    """The same with a real worker (RocksDB tables) as the owner: after its tally
    agent wrote a submission's state, a record for that key lands with an older
    epoch (a paused worker of an earlier generation). The worker re-writes the key
    with its own value and epoch; waited for on the changelog."""
    from connectors.stack.harness import WorkerProcess
    from tests.fixtures.pipeline import Outputs

    settings, changelog = _worker_settings(stack)
    worker = WorkerProcess(settings, tmp_path / "worker.log").start()
    outputs = Outputs(settings)

    async def scenario() -> None:
        _four_votes(settings, outputs)
        key, partition, value, epoch, late = await _zombie_write(settings, changelog)
        deadline = time.monotonic() + 60
        healed = []
        while not healed and time.monotonic() < deadline:
            await asyncio.sleep(0.5)
            records = await _records(settings, changelog, partition, late + 1)
            healed = [r for r in records if r.key == key]
        assert healed, "the worker never re-wrote the key after the zombie's record"
        assert epoch is not None  # the worker stamps its records
        assert healed[-1].value == value and dict(healed[-1].headers).get(HEADER) == epoch

    try:
        asyncio.run(scenario())
        assert worker.alive()
    finally:
        outputs.close()
        worker.stop()


def test_a_worker_on_an_empty_data_dir_restores_and_rewrites_the_owners_value(stack, tmp_path):
    """Faust's own changelog-only recovery, in a real worker: worker A decides four votes
    and stops; a zombie's record (the epoch below A's) lands after A's on one of its
    tally keys; worker B starts on an empty data dir. B's recovery must skip it and, as
    the key's last record is the stale one, re-write the key with what B restored:
    A's value. On the code before, the zombie's record stayed the key's last."""
    from connectors.stack.harness import WorkerProcess, free_port
    from tests.fixtures.pipeline import Outputs

    settings, changelog = _worker_settings(stack)
    first = WorkerProcess(settings, tmp_path / "a.log").start()
    outputs = Outputs(settings)
    second = None
    try:
        _four_votes(settings, outputs)
        first.stop()
        key, _, value, _, late = asyncio.run(_zombie_write(settings, changelog))
        second = WorkerProcess(
            settings.model_copy(update={"web_port": free_port()}), tmp_path / "b.log"
        ).start()  # its own, empty table directory
        deadline = time.monotonic() + 60
        last = asyncio.run(_last_records(settings, changelog))[key]
        while last[1] == late and time.monotonic() < deadline:
            time.sleep(0.5)
            last = asyncio.run(_last_records(settings, changelog))[key]
        assert last[1] > late, "the zombie's record is still the key's last"
        assert last[2] == value  # what B restored: A's value, not the zombie's
        assert second.alive()
    finally:
        outputs.close()
        first.stop()
        if second is not None:
            second.stop()


async def test_a_reset_group_generation_does_not_freeze_the_changelog(settings, tmp_path):
    """Generations only grow within one life of the consumer group: deleted by an
    operator (``kafka-consumer-groups --delete``), or forgotten once its offsets
    expire while it is empty, the group starts again at generation 1 while the
    changelog holds records stamped, say, 57. On the code before, the new owner's
    records (epoch 1) were below the partition's largest epoch, so every later
    recovery skipped them: the state restored was the one from before the reset,
    for ever. The owner's epoch must stay above what its recovery read."""
    from aiokafka import AIOKafkaProducer
    from faust.types import TP

    suffix = uuid.uuid4().hex[:8]
    app, table, topic, record = await changelog_table(settings, tmp_path / "a", f"fence-{suffix}")
    table.generation = lambda: 1  # the group's first generation after the reset
    before = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap, acks="all")
    await before.start()
    await app.producer.start()
    try:  # the group's previous life wrote seq 1 at generation 57
        await before.send_and_wait(
            topic, b'{"seq":1}', key=b"head", partition=2, headers=_stamp(57)
        )
        await _recover(app, table, topic, 2, 0)
        await table.on_recovery_completed({TP(topic, 2)}, set())
        from agents.records import event_scope

        with event_scope(record):
            table[b"head"] = {"seq": 2}
        await table.hand_over()

        app2, table2, _, _ = await changelog_table(settings, tmp_path / "b", f"fence-{suffix}")
        await _recover(app2, table2, topic, 2, 0)  # another worker, empty data dir
        assert table2.get(b"head") == {"seq": 2}
    finally:
        watch = getattr(table, "_watch", None)
        if watch is not None:
            await watch.stop()
        await before.stop()
        await app.producer.stop()


async def _join_and_leave(settings, times: int) -> int:  # noqa: ANN001
    """Join the workers' group alone ``times`` times (each join raises its generation),
    committing, so the group outlives its members; returns the last generation."""
    from aiokafka import AIOKafkaConsumer

    generation = 0
    for _ in range(times):
        consumer = AIOKafkaConsumer(
            settings.topic("votes"), bootstrap_servers=settings.kafka_bootstrap,
            group_id=settings.group_id, enable_auto_commit=False,
        )  # fmt: skip
        await consumer.start()
        try:
            while not consumer.assignment():
                await consumer.getmany(timeout_ms=200)
            generation = consumer._coordinator.generation
            await consumer.commit()
        finally:
            await consumer.stop()
    return generation


def test_workers_after_a_group_deletion_keep_what_they_wrote(stack, tmp_path):
    """The reset for real: worker A writes under a group generation of 5 or more; an
    operator deletes the group (``kafka-consumer-groups --delete``, here the admin
    API); worker B joins at generation 1 and decides a submission's votes; worker C
    starts on an empty data dir. C's recovery must restore B's writes: on the code
    before it skipped them all (below A's epoch) and re-wrote B's keys with what it
    had instead, tombstones for B's submission."""
    from confluent_kafka.admin import AdminClient

    from connectors.stack.harness import WorkerProcess, free_port
    from tests.fixtures.pipeline import Outputs
    from tests.test_pipeline import World

    settings, changelog = _worker_settings(stack)
    assert asyncio.run(_join_and_leave(settings, 3)) >= 5
    outputs = Outputs(settings)
    workers = []

    def worker(name: str) -> WorkerProcess:
        update = {"web_port": free_port()}  # each its own, empty table directory
        workers.append(WorkerProcess(settings.model_copy(update=update), tmp_path / name))
        return workers[-1].start()

    try:
        world = World(settings, members=4, k=4)
        for name in ("a.log", "b.log"):  # B also decides A's votes again: no offsets left
            worker(name)
            sub = world.submission()
            world.publish(*[world.vote(m, sub) for m in range(4)])
            outputs.wait_for(
                lambda o, s=sub: (
                    len({b["vote_id"] for b in o.ballots if b["submission_id"] == s}) >= 4
                ),
                what="the submission's four ballots",
            )
            workers[-1].stop()
            if name == "a.log":
                admin = AdminClient({"bootstrap.servers": settings.kafka_bootstrap})
                for done in admin.delete_consumer_groups([settings.group_id]).values():
                    done.result()
        written = asyncio.run(_last_records(settings, changelog))
        worker("c.log")  # ready: its recovery and the heals it made are done
        restored = asyncio.run(_last_records(settings, changelog))
        changed = {k for k, v in written.items() if restored.get(k, (None,) * 4)[2] != v[2]}
        assert not changed, f"{len(changed)} of {len(written)} keys re-written on recovery"
        assert workers[-1].alive()
    finally:
        outputs.close()
        for w in workers:
            w.stop()


async def _produce(settings, topic: str, values: list[tuple[bytes, int]]) -> None:  # noqa: ANN001
    """Produce these (value, epoch) records of key ``tag`` to partition 2, in order."""
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap, acks="all")
    await producer.start()
    try:
        for value, epoch in values:
            await producer.send_and_wait(
                topic, value, key=b"tag", partition=2, headers=_stamp(epoch)
            )
    finally:
        await producer.stop()


async def test_a_failed_heal_at_recovery_end_stops_the_worker(settings, tmp_path):
    """Faust runs each table's ``on_recovery_completed`` as a task and only waits for it
    (``asyncio.wait``): an exception there is never raised. A heal that fails there
    (here the Kafka client refuses the send) left the worker running with the stale
    record as its key's last and no changelog watch: no fence, in silence. The worker
    must stop (``fence_failed``), as it does when the watch fails later."""
    from faust.types import TP

    app, table, topic, _ = await changelog_table(
        settings, tmp_path, f"fence-{uuid.uuid4().hex[:8]}"
    )
    table.generation = lambda: 7
    failures: list[BaseException] = []
    app.fence_failed = failures.append  # the real one exits the process
    await _produce(settings, topic, [(b'{"state":"spent"}', 7), (b'{"state":"issued"}', 5)])
    await _recover(app, table, topic, 2, 0)
    # The app's producer is not started: the heal's send raises, as a broken client would.
    done, _ = await asyncio.wait(
        [asyncio.ensure_future(table.on_recovery_completed({TP(topic, 2)}, set()))]
    )
    [task] = done
    assert task.exception() is None, "raised into Faust's recovery, which drops it"
    assert failures, "the worker carried on without its fence"
    watch = getattr(table, "_watch", None)
    if watch is not None:
        await watch.stop()
