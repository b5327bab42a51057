"""The ownership lease's arithmetic and its hold/wait rules (streams.lease), pure: a fake
clock and a generation the test sets, no Kafka. The worker-level proof is
tests/test_fence.py::test_an_evicted_worker_whose_heartbeats_stopped_writes_nothing."""

from __future__ import annotations

import asyncio
import json
import subprocess
import time

import pytest

from streams.fence import OwnershipLost
from streams.lease import (
    MIN_MARGIN,
    WAIT_LIMIT_FLOOR,
    Lease,
    heartbeat_generation,
    lease_expiry,
    lease_margin,
)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_the_lease_ends_a_margin_before_the_earliest_eviction():
    # At least a second, plus the two clocks' worst rate difference over the longest span.
    assert lease_margin(10.0, 60.0) == pytest.approx(1.06)
    assert lease_margin(300.0, 60.0) == pytest.approx(1.3)
    for session, rebalance in [(1.0, 60.0), (6.0, 60.0), (10.0, 60.0), (300.0, 60.0)]:
        margin = lease_margin(session, rebalance)
        assert margin >= MIN_MARGIN
        # Without a rebalance: the session, or a rebalance starting right after, ends it.
        expiry = lease_expiry(500.0, 500.0, session, rebalance)
        earliest_eviction = 500.0 + min(session, rebalance)
        assert expiry == pytest.approx(earliest_eviction - margin)
        # Earlier than the earliest eviction even if this clock ran 0.1 % slow.
        assert 500.0 + (expiry - 500.0) * 1.001 < earliest_eviction
    # A rebalance in progress: its heartbeats (sent at 540) keep the session, but the
    # rebalance ends at the latest 60 s after the last error-free answer (sent at 500).
    assert lease_expiry(500.0, 540.0, 10.0, 60.0) == pytest.approx(550.0 - 1.06)
    assert lease_expiry(500.0, 555.0, 10.0, 60.0) == pytest.approx(560.0 - 1.06)


def test_every_allowed_session_timeout_leaves_a_lease_between_two_heartbeats():
    """The lease ends a margin (1 s or more) before the session: at a session timeout of
    1 s (allowed before) it never held, and every write waited 300 s and stopped the
    worker (exit 75); at 1.5 s it lapsed before each next heartbeat. The settings now
    refuse those; what they allow keeps the lease at least half a second past the next
    heartbeat's send (Faust's rebalance timeout: 60 s)."""
    from pydantic import ValidationError

    from streams.settings import Settings

    for too_short in (1.0, 1.5, 2.9):
        with pytest.raises(ValidationError, match="session_timeout"):
            Settings(session_timeout=too_short)
    for allowed in (3.0, 4.0, 6.0, 10.0, 45.0, 300.0):
        settings = Settings(session_timeout=allowed)
        lease = lease_expiry(0.0, 0.0, settings.session_timeout, 60.0)
        assert lease >= settings.heartbeat_interval + 0.5, allowed


def test_a_rebalance_in_progress_renews_the_session_not_past_the_rebalance():
    clock, generation = Clock(), [7]
    lease = Lease(10.0, 60.0, clock=clock)
    lease.arm(lambda: generation[0])
    lease.renew(7, sent=clock.now, rebalancing=True)  # never confirmed: no lease from it
    assert not lease.holds()
    start = clock.now
    lease.renew(7, sent=start)  # the last error-free heartbeat
    for _ in range(30):  # RebalanceInProgress answers every 3 s for 90 s
        clock.now += 3.0
        lease.renew(7, sent=clock.now, rebalancing=True)
        inside = clock.now < start + 60.0 - lease_margin(10.0, 60.0)
        assert lease.holds() == inside
    lease.renew(8, sent=clock.now, rebalancing=True)  # a generation never confirmed
    assert lease.expires(8) is None


def test_only_a_renewal_in_the_current_generation_holds():
    clock, generation = Clock(), [-1]
    lease = Lease(10.0, 60.0, clock=clock)
    assert lease.holds()  # not armed (no group consumer): writes are not gated
    lease.arm(lambda: generation[0])
    assert not lease.holds()  # before the first join
    generation[0] = 7
    lease.renew(7, sent=clock.now)
    assert lease.holds() and lease.holds(7) and not lease.holds(6)
    clock.now += 10.0 - lease_margin(10.0, 60.0) - 0.001
    assert lease.holds()
    clock.now += 0.002  # past t_sent + period - margin
    assert not lease.holds(7)
    lease.renew(7, sent=clock.now - 1.0)  # a heartbeat sent a second ago, answered now
    assert lease.holds(7)
    assert lease.expires(7) == pytest.approx(clock.now - 1.0 + 10.0 - 1.06)
    lease.renew(6, sent=clock.now)  # a late answer of an older generation renews nothing
    assert lease.expires(6) is None and lease.holds(7)
    generation[0] = -1  # the coordinator said: evicted
    assert not lease.holds() and not lease.holds(7)


def test_an_expired_lease_waits_for_a_renewal_in_the_same_generation():
    clock, generation = Clock(), [7]
    lease = Lease(10.0, 60.0, clock=clock)
    lease.arm(lambda: generation[0])
    lease.renew(7, sent=clock.now - 9.5)  # expired

    async def scenario() -> None:
        waiting = asyncio.create_task(lease.hold(7))
        await asyncio.sleep(0.1)
        assert not waiting.done()  # held, not sent
        lease.renew(7, sent=clock.now)  # the next heartbeat is answered: still the owner
        await asyncio.wait_for(waiting, 5)

    asyncio.run(scenario())


@pytest.mark.parametrize("then", [-1, 8])
def test_an_expired_lease_whose_generation_changes_is_lost(then):
    clock, generation = Clock(), [7]
    lease = Lease(10.0, 60.0, clock=clock)
    lease.arm(lambda: generation[0])
    lease.renew(7, sent=clock.now - 9.5)

    async def scenario() -> None:
        waiting = asyncio.create_task(lease.hold(7))
        await asyncio.sleep(0.1)
        generation[0] = then  # evicted (-1), or rejoined under a new generation
        if then > 0:
            lease.renew(then, sent=clock.now)  # a lease, but not the batch's generation
        with pytest.raises(OwnershipLost, match="generation 7 lost"):
            await asyncio.wait_for(waiting, 5)

    asyncio.run(scenario())


def test_an_expired_lease_outlasts_a_coordinator_outage_but_not_a_dead_consumer():
    """The coordinator unreachable: the generation never changes, no heartbeat is answered.
    A whole cluster's restart (100 s) is waited out; a consumer silent for good is not."""
    clock, generation = Clock(), [7]
    lease = Lease(6.0, 60.0, clock=clock)
    lease.arm(lambda: generation[0])
    lease.renew(7, sent=clock.now - 6.0)
    assert lease.wait_limit == WAIT_LIMIT_FLOOR

    async def scenario() -> None:
        waiting = asyncio.create_task(lease.hold())
        await asyncio.sleep(0.1)
        clock.now += 100.0  # the brokers come back; the member kept its generation
        await asyncio.sleep(0.1)
        assert not waiting.done()
        lease.renew(7, sent=clock.now)
        await asyncio.wait_for(waiting, 5)

        clock.now += 6.0  # expired again; now nothing answers any more
        waiting = asyncio.create_task(lease.hold())
        await asyncio.sleep(0.1)
        assert not waiting.done()
        clock.now += lease.wait_limit
        with pytest.raises(OwnershipLost, match="not renewed within 300.0 s"):
            await asyncio.wait_for(waiting, 5)

    asyncio.run(scenario())


class StandInClient:
    """aiokafka's client as observe_group sees it: answers queued per request type (a
    DescribeGroups says the group is loaded unless one is queued); keeps what was sent."""

    def __init__(self) -> None:
        self.answers: dict[str, list] = {}
        self.sent: list[tuple[int, str]] = []

    def answer(self, kind: str, **fields) -> None:  # noqa: ANN003
        from types import SimpleNamespace

        self.answers.setdefault(kind, []).append(SimpleNamespace(**fields))

    async def send(self, node_id, request, **kwargs):  # noqa: ANN001, ANN003, ANN201
        from types import SimpleNamespace

        kind = type(request).__name__
        self.sent.append((node_id, kind))
        if self.answers.get(kind):
            return self.answers[kind].pop(0)
        assert kind == "DescribeGroupsRequest", f"no answer queued for a {kind}"
        return SimpleNamespace(groups=[(0, "group", "Stable", "consumer", "range", [])])


def _join_request():  # noqa: ANN202
    from aiokafka.protocol.group import JoinGroupRequest

    return JoinGroupRequest("group", 10_000, 60_000, "", None, "consumer", [])


def test_a_join_after_the_group_was_reset_renews_the_lease():
    """A group deleted (or expired while empty) starts again at generation 1. A worker
    cut off from its coordinator meanwhile rejoins at 1 after holding 57: the lease took
    every renewal below 57 for a late answer, so the rejoined worker's writes waited the
    300 s limit and it stopped (exit 75). A JoinGroup's answer makes the generation.
    Through the real hook (observe_group) on a stand-in for aiokafka's client."""
    from aiokafka.protocol.group import HeartbeatRequest

    from streams.lease import observe_group

    clock, generation = Clock(), [57]
    lease = Lease(10.0, 60.0, clock=clock)
    lease.arm(lambda: generation[0])
    client = StandInClient()
    observe_group(client, lease)

    async def scenario() -> None:
        client.answer("HeartbeatRequest", error_code=0)
        await client.send(1, HeartbeatRequest("group", 57, "member"))
        assert lease.holds()
        generation[0] = -1  # evicted; meanwhile the empty group was deleted
        client.answer("JoinGroupRequest", error_code=0, generation_id=1)
        await client.send(1, _join_request())
        generation[0] = 1
        assert lease.holds()
        client.answer("HeartbeatRequest", error_code=0)
        clock.now += 5.0
        await client.send(1, HeartbeatRequest("group", 1, "member"))
        assert lease.expires(1) == pytest.approx(clock.now + 10.0 - lease_margin(10.0, 60.0))
        # A late heartbeat answer of the old life renews nothing.
        client.answer("HeartbeatRequest", error_code=0)
        await client.send(1, HeartbeatRequest("group", 0, "member"))
        assert lease.holds(1)

    asyncio.run(scenario())


def test_a_heartbeat_answered_blindly_by_a_loading_coordinator_renews_nothing():
    """Kafka's coordinator answers a Heartbeat "no error" without looking while it loads
    the group (a coordinator move: GroupCoordinator.scala handleHeartbeat, "the group is
    still loading, so respond just blindly"; the same in GroupCoordinatorService). A
    worker evicted by the old coordinator while cut off from it, whose next heartbeat
    reaches the new one mid-load, renewed its lease there and wrote as a zombie for a
    session timeout. Now a coordinator's heartbeats count once it answered the join or
    a DescribeGroups (never blind) saying the group is loaded."""
    from aiokafka.protocol.group import HeartbeatRequest

    from streams.lease import observe_group

    clock, generation = Clock(), [7]
    lease = Lease(10.0, 60.0, clock=clock)
    lease.arm(lambda: generation[0])
    client = StandInClient()
    observe_group(client, lease)
    heartbeat = HeartbeatRequest("group", 7, "member")

    async def scenario() -> None:
        client.answer("JoinGroupRequest", error_code=0, generation_id=7)
        await client.send(1, _join_request())
        client.answer("HeartbeatRequest", error_code=0)
        await client.send(1, heartbeat)
        assert lease.holds()
        assert all(kind != "DescribeGroupsRequest" for _, kind in client.sent)  # joined there
        clock.now += 9.5  # cut off from coordinator 1, which evicts the worker
        assert not lease.holds()
        # The group's coordinator moves to node 2, which is loading it.
        client.answer("DescribeGroupsRequest", groups=[(14, "group", "", "", "", [])])
        client.answer("HeartbeatRequest", error_code=0)  # blind
        await client.send(2, heartbeat)
        assert not lease.holds()
        # Loaded: its answers are real (an evicted member is told UNKNOWN_MEMBER_ID).
        client.answer("HeartbeatRequest", error_code=0)
        await client.send(2, heartbeat)
        assert lease.holds()
        client.answer("HeartbeatRequest", error_code=0)
        await client.send(2, heartbeat)
        kinds = [kind for _, kind in client.sent]
        assert kinds.count("DescribeGroupsRequest") == 2  # asked until loaded, then no more

    asyncio.run(scenario())


def test_a_heartbeat_request_names_its_generation():
    """The hook reads the generation from aiokafka's unbuilt request: if a new aiokafka
    moved it, every lease would stay unrenewed and every worker stop; caught here."""
    from aiokafka.protocol.group import HeartbeatRequest

    assert heartbeat_generation(HeartbeatRequest("group", 42, "member")) == 42


async def _wait_committed(settings, topics: dict[str, int]) -> None:  # noqa: ANN001
    """Until the worker group's committed offsets reach the end of these topics (name ->
    partitions)."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    tps = [TopicPartition(t, p) for t, n in topics.items() for p in range(n)]
    # A group id without a subscription: reads the group's commits, never joins it.
    reader = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap, group_id=settings.group_id
    )
    await reader.start()
    try:
        ends = await reader.end_offsets(tps)
        deadline = time.monotonic() + 60
        while True:
            behind = [tp for tp in tps if ends[tp] and (await reader.committed(tp) or 0) < ends[tp]]
            if not behind:
                return
            assert time.monotonic() < deadline, f"not committed: {behind}"
            await asyncio.sleep(0.2)
    finally:
        await reader.stop()


def _survivor_owns_everything(worker, partitions: int) -> bool:  # noqa: ANN001
    body = worker.health() or {}
    return body.get("status") == "ok" and body.get("votes_partitions") == list(range(partitions))


@pytest.mark.integration
def test_an_evicted_worker_whose_heartbeats_stopped_writes_nothing(stack, tmp_path, monkeypatch):
    """A worker cut off from its group coordinator but not from the partition leaders: its
    heartbeats are held (tests/fixtures/heartbeat_gate.py), a second worker joins, the
    coordinator evicts the first after its session timeout and gives the second every
    partition. Then votes come: the first, never told, fetches and decides them too.
    Nothing it writes may reach a topic: no second ballot for any vote, no changelog
    record under its epoch after the hand-over; it stops with exit 75. On the code
    before, its ballots and changelog records landed beside the survivor's."""
    from collections import Counter

    from connectors.sdk import ensure_topics
    from connectors.stack.harness import WorkerProcess, free_port
    from streams.topics import internal_topic_specs, topic_specs
    from tests.fixtures.pipeline import Outputs, pipeline_settings
    from tests.test_fence import HEADER, _records
    from tests.test_pipeline import World

    # 6 s: the broker's least session timeout (group.min.session.timeout.ms).
    settings = pipeline_settings(stack, table_store="rocksdb", partitions=2, session_timeout=6.0)
    ensure_topics(settings)
    changelog = internal_topic_specs(settings)["tally-changelog"][0]
    gate = tmp_path / "heartbeats-held"
    monkeypatch.setenv("HEARTBEAT_GATE", str(gate))
    zombie = WorkerProcess(
        settings, tmp_path / "zombie.log", module="tests.fixtures.heartbeat_gate"
    )
    survivor = WorkerProcess(
        settings.model_copy(update={"web_port": free_port()}), tmp_path / "survivor.log"
    )
    outputs = Outputs(settings)
    world = World(settings, members=4, k=4)

    async def changelog_now() -> list:
        return [r for p in range(2) for r in await _records(settings, changelog, p, 0)]

    async def ballots_now() -> list:  # the topic to its end: every copy, not a group's view
        topic, partitions, _ = topic_specs(settings)["ballots"]
        records = [r for p in range(partitions) for r in await _records(settings, topic, p, 0)]
        return [json.loads(r.value) for r in records]

    try:
        zombie.start()
        before = world.submission()
        world.publish(*[world.vote(m, before) for m in range(4)])
        outputs.wait_for(lambda o: len(o.ballots) >= 4, what="the first worker's ballots")
        after = world.submission()  # its control record now: nothing to commit later
        # Its commits done first: a commit during the coming rebalance, or after it,
        # would tell it to rejoin (aiokafka rejoins on RebalanceInProgress and resets
        # on UnknownMemberId), and it would take part instead of staying evicted.
        specs = {**topic_specs(settings), **internal_topic_specs(settings)}
        sources = {specs[t][0]: specs[t][1] for t in ("votes", "accepted", "rings", "submissions")}
        asyncio.run(_wait_committed(settings, sources))
        written = asyncio.run(changelog_now())
        zombie_epochs = {dict(r.headers).get(HEADER) for r in written}
        assert zombie_epochs and None not in zombie_epochs

        gate.touch()  # from now on the first worker's heartbeats stay unsent
        survivor.start()
        deadline = time.monotonic() + 120
        while not _survivor_owns_everything(survivor, 2):
            assert time.monotonic() < deadline, survivor.tail()
            assert zombie.alive(), zombie.tail()
            time.sleep(0.5)
        handed_over = {(r.partition, r.offset) for r in asyncio.run(changelog_now())}

        world.publish(*[world.vote(m, after) for m in range(4)])
        outputs.wait_for(
            lambda o: sum(b["submission_id"] == after for b in o.ballots) >= 4,
            what="the survivor's ballots",
        )
        # The first worker decided them too, and holds its writes: its lease expired and
        # no heartbeat of its generation is answered (the coordinator is out of reach).
        deadline = time.monotonic() + 60
        while "ownership lease of group generation" not in zombie.tail(80):
            assert time.monotonic() < deadline and zombie.alive(), zombie.tail()
            time.sleep(0.2)

        def nothing_of_the_evicted_worker() -> None:
            ballots = Counter(
                b["vote_id"] for b in asyncio.run(ballots_now()) if b["submission_id"] == after
            )
            assert len(ballots) == 4 and set(ballots.values()) == {1}, ballots
            late = [
                (r.partition, r.offset)
                for r in asyncio.run(changelog_now())
                if (r.partition, r.offset) not in handed_over
                and dict(r.headers).get(HEADER) in zombie_epochs
            ]
            assert not late, f"changelog records of the evicted worker: {late}"

        nothing_of_the_evicted_worker()
        # The coordinator in reach again: the next heartbeat learns the eviction, the held
        # writes are dropped and the worker stops (a coordinator outage alone would
        # renew the lease instead: tests above).
        gate.unlink()
        try:
            code = zombie.proc.wait(60)
        except subprocess.TimeoutExpired:
            code = None
        nothing_of_the_evicted_worker()
        assert code == 75, zombie.tail()
        assert "ownership lease of group generation" in zombie.tail(80)
        assert survivor.alive(), survivor.tail()
    finally:
        outputs.close()
        zombie.kill()
        survivor.stop()


async def _guarded_producer(settings, lease: Lease, lost: list):  # noqa: ANN001, ANN202
    """A real aiokafka producer whose sender checks ``lease`` (streams.lease.guard_sender),
    lingering 300 ms so a record waits in its buffer after send() returned."""
    from aiokafka import AIOKafkaProducer

    from streams.lease import guard_sender

    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap, linger_ms=300)
    await producer.start()
    guard_sender(producer._sender, lease, lost.append)
    return producer


def _a_held_lease_on_ballots(settings):  # noqa: ANN001, ANN202
    """The ballots topic, a fresh key, and a lease held in generation 7 on a fake clock
    (6 s session), with the list its guard reports losses to."""
    import uuid

    from connectors.sdk import ensure_topics

    ensure_topics(settings)
    clock, generation, lost = Clock(), [7], []
    lease = Lease(6.0, 60.0, clock=clock)
    lease.arm(lambda: generation[0])
    lease.renew(7, sent=clock.now)
    return settings.topic("ballots"), uuid.uuid4().hex.encode(), clock, generation, lease, lost


@pytest.mark.integration
@pytest.mark.parametrize("renewed", [False, True])
def test_a_record_buffered_before_the_lease_expired_leaves_only_if_it_is_renewed(settings, renewed):
    """Item 3: a record handed to the client while the lease was held, still in its buffer
    when the lease expires (appended before a pause, sent after it). The sender holds
    the produce request; evicted, the record's delivery fails and nothing reaches the
    topic; renewed in the same generation, it leaves. Real Kafka, read back."""
    from tests.test_fence import _records

    topic, key, clock, generation, lease, lost = _a_held_lease_on_ballots(settings)

    async def scenario() -> None:
        producer = await _guarded_producer(settings, lease, lost)
        try:
            delivery = await producer.send(topic, b"{}", key=key, partition=0)
            clock.now += 6.0  # expired while the record lingers in the buffer
            await asyncio.sleep(0.5)  # past the linger: the sender holds the request
            assert not delivery.done()
            if renewed:
                lease.renew(7, sent=clock.now)  # a heartbeat answered: still the owner
                await asyncio.wait_for(delivery, 30)
            else:
                generation[0] = -1  # the coordinator said: evicted
                with pytest.raises(OwnershipLost):
                    await asyncio.wait_for(delivery, 30)
                assert len(lost) == 1
        finally:
            await producer.stop()
        on_topic = [r for r in await _records(settings, topic, 0, 0) if r.key == key]
        assert len(on_topic) == (1 if renewed else 0)

    asyncio.run(scenario())


def test_an_idle_closing_check_whose_lease_is_lost_stops_the_worker_with_75(monkeypatch):
    """The verify stage's idle-closing timer writes ClosingPassed records outside any
    batch; one held past its lease raises OwnershipLost like every write. It stopped the
    worker as a bug (exit 70, a traceback: the chaos harness's unplanned exit) instead
    of as evicted (75). The real timer loop (agents.pipeline), the app never started."""
    import logging
    import os

    from agents import pipeline

    class Exited(BaseException):
        pass

    def exit_(code: int) -> None:
        raise Exited(code)

    monkeypatch.setattr(os, "_exit", exit_)
    monkeypatch.setattr(logging, "shutdown", lambda: None)
    monkeypatch.setattr(pipeline, "CLOSING_CHECK_INTERVAL", 0)
    monkeypatch.setattr(pipeline.app.consumer, "assignment", lambda: set())

    class Verifier:
        async def pass_idle_closings(self, *args, **kwargs):  # noqa: ANN002, ANN003, ANN202
            raise OwnershipLost("ownership lease of group generation 7 lost (test)")

    with pytest.raises(Exited) as exited:
        asyncio.run(pipeline.pass_idle_closings(Verifier(), None))
    assert exited.value.args == (75,)


@pytest.mark.integration
def test_a_coordinator_first_seen_at_a_heartbeat_renews_the_lease_once_asked(settings):
    """The other side of the blind-answer rule, on the real broker: heartbeats to a
    coordinator this lease never saw answer the join (as after a coordinator move) renew
    it once a DescribeGroups says the group is loaded. Passes on the code before too (it
    had no such rule); it fails if the question or the reading of its answer breaks,
    which would leave every lease unrenewed after a coordinator move (exit 75)."""
    import uuid

    from aiokafka import AIOKafkaConsumer

    from connectors.sdk import ensure_topics
    from streams.lease import observe_group

    ensure_topics(settings)

    async def scenario() -> None:
        consumer = AIOKafkaConsumer(
            settings.topic("votes"),
            bootstrap_servers=settings.kafka_bootstrap,
            group_id=f"lease-{uuid.uuid4().hex[:8]}",
            session_timeout_ms=6000,
            heartbeat_interval_ms=200,
        )
        await consumer.start()
        try:
            coordinator = consumer._coordinator
            deadline = time.monotonic() + 60
            while coordinator.generation < 1:  # joined; the lease below never saw it
                assert time.monotonic() < deadline, "never joined"
                await asyncio.sleep(0.05)
            lease = Lease(6.0, 60.0)
            lease.arm(lambda: coordinator.generation)
            observe_group(consumer._client, lease)
            while not lease.holds():
                assert time.monotonic() < deadline, "no heartbeat renewed the lease"
                await asyncio.sleep(0.05)
        finally:
            await consumer.stop()

    asyncio.run(scenario())


@pytest.mark.integration
def test_a_produce_request_is_checked_once_its_connection_is_open(settings):
    """Opening the connection to a partition leader may take as long as the request
    timeout (SYN retries to an unreachable leader), and the sender's check came before
    it: a request checked under a held lease left after the connection opened, however
    long after. Here the connection's opening takes a lease's length and the worker is
    evicted meanwhile: the record's delivery fails and the topic stays empty (before:
    delivered). Real Kafka; the slow connection is a wrapper on the client's ready()."""
    from tests.test_fence import _records

    topic, key, clock, generation, lease, lost = _a_held_lease_on_ballots(settings)

    async def scenario() -> None:
        producer = await _guarded_producer(settings, lease, lost)
        client = producer.client
        ready = client.ready

        async def slow_ready(node_id, **kwargs):  # noqa: ANN001, ANN003, ANN202
            if generation[0] == 7:
                clock.now += 6.0  # the connection took a lease's length to open...
                generation[0] = -1  # ...and the coordinator evicted the worker meanwhile
            return await ready(node_id, **kwargs)

        try:
            delivery = await producer.send(topic, b"{}", key=key, partition=0)
            client.ready = slow_ready  # before the linger ends: the sender's turn
            with pytest.raises(OwnershipLost):
                await asyncio.wait_for(delivery, 30)
            assert len(lost) == 1
        finally:
            client.ready = ready
            await producer.stop()
        assert not [r for r in await _records(settings, topic, 0, 0) if r.key == key]

    asyncio.run(scenario())
