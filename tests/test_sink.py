"""The Postgres sink against real Kafka and Postgres: rows, duplicates, versions, dead letters.

Each test has its own topic prefix and Postgres schema (``t_<hex>``, dropped
at the end) and produces the output records itself with aiokafka: what is
tested is the sink, not the agents.
"""

from __future__ import annotations

import json
import subprocess
import sys

import asyncpg
import pytest
from aiokafka import AIOKafkaConsumer

from connectors.postgres.sink import Sink
from models import Decision
from models.fields import VoteType
from models.reasons import ReasonCode
from tests.fixtures.sink_records import (
    audit_chain,
    make_ballot,
    make_rejection,
    make_tally,
    produce,
    produce_ballots,
    settings_env,
    sink_schema,
    wait_until,
)

pytestmark = pytest.mark.integration


@pytest.fixture
async def pg(settings):  # noqa: ANN001, ANN201
    """The test's schema, migrated, and a connection on it; dropped afterwards."""
    async with sink_schema(settings) as conn:
        yield conn


async def run_sink(settings, **kw) -> object:  # noqa: ANN001
    kw.setdefault("once", True)
    return await Sink(settings, **kw).run()


async def count(conn: asyncpg.Connection, table: str) -> int:
    return await conn.fetchval(f"SELECT count(*) FROM {table}")


async def test_rows_land_and_offsets_are_stored(settings, pg) -> None:
    ballots = [make_ballot(i, f"sub-{i % 5}") for i in range(200)]
    await produce_ballots(settings, ballots)
    await produce(settings, "rejections", [make_rejection(i).to_json() for i in range(30)])
    await produce(settings, "audit", [e.to_json() for e in audit_chain("tally-0", 40)], partition=0)
    await produce(
        settings,
        "tallies",
        [make_tally("sub-1", v, approve=v).to_json() for v in range(1, 11)],
        keys=[b"sub-1"] * 10,
    )
    stats = await run_sink(settings)
    assert stats.records == 200 + 30 + 40 + 10
    assert await count(pg, "ballots") == 200
    assert await count(pg, "rejections") == 30
    assert await count(pg, "audit_log") == 40
    row = await pg.fetchrow("SELECT * FROM tallies WHERE submission_id = 'sub-1'")
    assert (row["version"], row["approve"], row["total"]) == (10, 10, 10)
    stored = await pg.fetchval(
        "SELECT sum(next_offset) FROM sink_offsets WHERE topic = $1", settings.topic("ballots")
    )
    assert stored == 200
    # the sink's copy of a ballot is field for field the model
    b = ballots[7]
    got = await pg.fetchrow("SELECT * FROM ballots WHERE vote_id = $1", b.vote_id)
    assert (got["submission_id"], got["key_image"], got["vote_type"], got["epoch"]) == (
        b.submission_id,
        b.key_image,
        b.vote_type.value,
        b.epoch,
    )


async def test_records_delivered_twice_make_no_duplicate_rows(settings, pg) -> None:
    ballots = [make_ballot(i) for i in range(100)]
    rejections = [make_rejection(i) for i in range(20)]
    chain = audit_chain("tally-1", 25)
    for _ in range(2):  # the agents re-emit identical records after a crash
        await produce(settings, "ballots", [b.to_json() for b in ballots])
        await produce(settings, "rejections", [r.to_json() for r in rejections])
        await produce(settings, "audit", [e.to_json() for e in chain], partition=3)
    stats = await run_sink(settings)
    assert stats.duplicates == 100 + 20 + 25
    assert stats.dead_letters == 0
    assert await count(pg, "ballots") == 100
    assert await count(pg, "rejections") == 20
    assert await count(pg, "audit_log") == 25
    # a replay from scratch (offsets forgotten) changes nothing either
    await pg.execute("DELETE FROM sink_offsets")
    stats = await run_sink(settings, group_id=f"{settings.topic_prefix}-replay")
    assert stats.ballots == 0 and stats.audit == 0 and stats.rejections == 0
    assert await count(pg, "ballots") == 100
    assert await count(pg, "audit_log") == 25


async def test_a_lower_tally_version_never_overwrites_a_higher_one(settings, pg) -> None:
    # same batch: v5 then v3
    await produce(
        settings,
        "tallies",
        [make_tally("s-a", 5, approve=5).to_json(), make_tally("s-a", 3, approve=3).to_json()],
        keys=[b"s-a", b"s-a"],
    )
    await run_sink(settings)
    assert await pg.fetchval("SELECT version FROM tallies WHERE submission_id='s-a'") == 5
    # a later batch: v4 (stale) is ignored, v6 replaces
    await produce(settings, "tallies", [make_tally("s-a", 4, approve=4).to_json()], keys=[b"s-a"])
    await run_sink(settings)
    row = await pg.fetchrow("SELECT version, approve FROM tallies WHERE submission_id='s-a'")
    assert (row["version"], row["approve"]) == (5, 5)
    await produce(settings, "tallies", [make_tally("s-a", 6, approve=6).to_json()], keys=[b"s-a"])
    await run_sink(settings)
    row = await pg.fetchrow("SELECT version, approve FROM tallies WHERE submission_id='s-a'")
    assert (row["version"], row["approve"]) == (6, 6)


async def test_escalations_keep_first_and_latest(settings, pg) -> None:
    tallies = [
        make_tally("s-e", 1, flag=1),
        make_tally("s-e", 2, flag=2),
        make_tally("s-e", 3, flag=3, decision=Decision.ESCALATED),
        make_tally("s-e", 4, flag=3, approve=1, decision=Decision.ESCALATED),
        make_tally("s-ok", 3, approve=3, decision=Decision.APPROVED),
    ]
    await produce(settings, "tallies", [t.to_json() for t in tallies[:3]], keys=[b"s-e"] * 3)
    await run_sink(settings)
    await produce(settings, "tallies", [t.to_json() for t in tallies[3:]], keys=[b"s-e", b"s-ok"])
    await run_sink(settings)
    rows = await pg.fetch("SELECT * FROM escalations")
    assert [r["submission_id"] for r in rows] == ["s-e"]
    r = rows[0]
    assert (r["first_version"], r["latest_version"], r["latest_total"]) == (3, 4, 4)
    assert r["first_escalated_at"] <= r["latest_escalated_at"]


async def test_undecodable_records_go_to_the_dead_letter_topic(settings, pg) -> None:
    good = [make_ballot(i) for i in range(10)]
    values = [g.to_json() for g in good[:5]]
    values += [b"{not json", b'{"vote_id": "nope"}', None]
    values += [g.to_json() for g in good[5:]]
    await produce(settings, "ballots", values, partition=2, keys=[b"sub-1"] * len(values))
    stats = await run_sink(settings)
    assert stats.dead_letters == 3
    assert await count(pg, "ballots") == 10  # the records after the bad ones still land
    dead = await pg.fetch("SELECT * FROM sink_dead_letters ORDER BY source_offset")
    assert [(d["source_offset"], d["reason"]) for d in dead] == [
        (5, "bad_json"),
        (6, "invalid_message"),
        (7, "empty_value"),
    ]
    assert (
        await pg.fetchval(
            "SELECT next_offset FROM sink_offsets WHERE topic = $1 AND partition = 2",
            settings.topic("ballots"),
        )
        == 13
    )
    consumer = AIOKafkaConsumer(
        settings.topic("sink-dlq"),
        bootstrap_servers=settings.kafka_bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    try:
        got = []
        while len(got) < 3:
            data = await consumer.getmany(timeout_ms=5000)
            assert data, "dead letters did not arrive"
            got += [r for rs in data.values() for r in rs]
    finally:
        await consumer.stop()
    first = got[0]
    headers = {k: v.decode() for k, v in first.headers}
    assert first.value == b"{not json"
    assert headers["dlq.reason"] == "bad_json"
    assert headers["dlq.source.topic"] == settings.topic("ballots")
    assert (headers["dlq.source.partition"], headers["dlq.source.offset"]) == ("2", "5")
    assert "Ballot" in headers["dlq.detail"]


async def test_an_audit_fork_is_dead_lettered_and_an_identical_copy_ignored(
    settings, pg, caplog
) -> None:
    chain = audit_chain("tally-2", 5)
    forged = audit_chain("tally-2", 5, submission="other")[2]  # different event at sequence 3
    await produce(settings, "audit", [e.to_json() for e in chain], partition=1)
    await run_sink(settings)
    await produce(settings, "audit", [chain[2].to_json(), forged.to_json()], partition=1)
    stats = await run_sink(settings)
    assert stats.duplicates == 1 and stats.dead_letters == 1
    assert await count(pg, "audit_log") == 5
    dead = await pg.fetchrow("SELECT reason, detail FROM sink_dead_letters")
    assert dead["reason"] == "audit_fork"
    assert "chain tally-2 sequence 3" in dead["detail"]
    assert any("AUDIT FORK" in r.getMessage() for r in caplog.records)
    stored = await pg.fetchval("SELECT hash FROM audit_log WHERE chain='tally-2' AND sequence=3")
    assert stored == chain[2].hash


async def test_a_conflicting_ballot_is_dead_lettered(settings, pg) -> None:
    b = make_ballot(1)
    twin = b.model_copy(update={"vote_id": make_ballot(2).vote_id})  # same key image, new id
    await produce(settings, "ballots", [b.to_json(), twin.to_json()], partition=0)
    stats = await run_sink(settings)
    assert stats.ballots == 1 and stats.dead_letters == 1
    reason = await pg.fetchval("SELECT reason FROM sink_dead_letters")
    assert reason == "ballot_conflict"


async def test_a_superseding_ballot_replaces_the_retracted_one(settings, pg) -> None:
    """The tally stage retracted a counted vote for one cast earlier (same key image)."""

    def superseded_pair(submission: str) -> tuple:
        counted = make_ballot(1, submission)
        earlier = counted.model_copy(
            update={
                "vote_id": make_ballot(2, submission).vote_id,
                "vote_type": VoteType.FLAG,
                "source_offset": 0,
                "supersedes": counted.vote_id,
            }
        )
        return counted, earlier

    async def stored(submission: str) -> list[tuple]:
        rows = await pg.fetch(
            "SELECT vote_id, vote_type FROM ballots WHERE submission_id = $1", submission
        )
        return [(r["vote_id"], r["vote_type"]) for r in rows]

    # across two transactions
    counted, earlier = superseded_pair("sub-a")
    await produce(settings, "ballots", [counted.to_json()], partition=0)
    await run_sink(settings)
    assert await stored("sub-a") == [(counted.vote_id, counted.vote_type.value)]
    await produce(settings, "ballots", [earlier.to_json()], partition=0)
    stats = await run_sink(settings)
    assert stats.dead_letters == 0 and stats.ballots_replaced == 1
    assert await stored("sub-a") == [(earlier.vote_id, "flag")]
    # both in one poll (one transaction, or two: the same end), then the winner again
    counted, earlier = superseded_pair("sub-b")
    for batch in ([counted, earlier], [earlier]):
        await produce(settings, "ballots", [b.to_json() for b in batch], partition=0)
        stats = await run_sink(settings)
        assert stats.dead_letters == 0
        assert await stored("sub-b") == [(earlier.vote_id, "flag")]
    assert await count(pg, "sink_dead_letters") == 0


async def test_the_sink_refuses_an_unmigrated_schema(settings) -> None:
    from connectors.postgres.errors import SchemaNotReady

    with pytest.raises(SchemaNotReady) as info:
        await Sink(settings, once=True).run()
    assert "ringtally db migrate" in info.value.one_line()


def test_announcement_json_shape() -> None:
    from connectors.readmodel.store import announcement

    data = json.loads(announcement(make_tally("x", 2, approve=2)))
    assert data["type"] == "tally" and data["version"] == 2 and data["counts"]["approve"] == 2


async def test_two_sinks_in_one_group_rebalance_without_loss_or_doubles(settings, pg) -> None:
    """A second sink joins mid-stream: partitions move, each seeks to its Postgres offset.

    The second wave of ballots is produced only once the second sink holds
    partitions, so both sinks write whatever the speed of the first: before,
    a fast first sink could finish everything before the group rebalanced.
    """
    import asyncio

    ballots = [make_ballot(i, f"sub-{i % 40}") for i in range(30_000)]
    await produce_ballots(settings, ballots[:15_000])
    await produce(
        settings,
        "tallies",
        [make_tally(f"sub-{s}", v).to_json() for v in range(1, 6) for s in range(40)],
        keys=[f"sub-{s}".encode() for _ in range(1, 6) for s in range(40)],
    )
    stop = asyncio.Event()
    first = Sink(settings, batch_size=25, stop=stop)
    second = Sink(settings, batch_size=25, stop=stop)
    t1 = asyncio.create_task(first.run())
    t2: asyncio.Task | None = None
    try:
        await wait_until(lambda: _at_least(pg, "ballots", 1000), 90, what="1,000 ballots")
        t2 = asyncio.create_task(second.run())

        async def second_holds_ballots() -> bool:
            consumer = second._consumer  # noqa: SLF001 - the group's view is what is awaited
            held = consumer.assignment() if consumer is not None else set()
            return any(tp.topic == settings.topic("ballots") for tp in held)

        await wait_until(second_holds_ballots, 90, what="the second sink's ballots partitions")
        await produce_ballots(settings, ballots[15_000:])
        await wait_until(lambda: _at_least(pg, "ballots", 30_000), 90, what="30,000 ballots")
        await wait_until(_tallies_at(pg, 5), 90, what="every tally at version 5")
    finally:
        stop.set()
        s1, s2 = await asyncio.gather(t1, *([t2] if t2 is not None else []))
    assert s1.records > 0 and s2.records > 0, "both sinks should have written"
    assert s1.ballots + s2.ballots >= 30_000
    assert await count(pg, "ballots") == 30_000
    assert await pg.fetchval("SELECT count(DISTINCT vote_id) FROM ballots") == 30_000
    assert await pg.fetchval("SELECT min(version) FROM tallies") == 5
    stored = await pg.fetchval(
        "SELECT sum(next_offset) FROM sink_offsets WHERE topic = $1", settings.topic("ballots")
    )
    assert stored == 30_000


async def _at_least(conn: asyncpg.Connection, table: str, n: int) -> bool:
    return await count(conn, table) >= n


def _tallies_at(conn: asyncpg.Connection, version: int):  # noqa: ANN202
    async def check() -> bool:
        row = await conn.fetchrow("SELECT count(*) AS n, min(version) AS v FROM tallies")
        return row["n"] == 40 and row["v"] == version

    return check


async def test_a_record_postgres_refuses_is_dead_lettered_not_blocking(settings, pg) -> None:
    """Valid JSON and a valid model, but Postgres text cannot hold NUL: split, dead-letter it."""
    bad = make_rejection(5).model_copy(update={"detail": "nul \x00 inside"})
    values = [make_rejection(i).to_json() for i in range(5)] + [bad.to_json()]
    values += [make_rejection(i).to_json() for i in range(6, 10)]
    await produce(settings, "rejections", values, partition=0)
    stats = await run_sink(settings)
    assert stats.dead_letters == 1
    assert await count(pg, "rejections") == 9
    dead = await pg.fetchrow("SELECT reason, source_offset FROM sink_dead_letters")
    assert (dead["reason"], dead["source_offset"]) == ("unstorable", 5)
    assert (
        await pg.fetchval(
            "SELECT next_offset FROM sink_offsets WHERE topic = $1 AND partition = 0",
            settings.topic("rejections"),
        )
        == 10
    )


async def test_the_workers_rejection_of_a_record_with_a_nul_is_stored(settings, pg) -> None:
    """A hostile record's key (or a detail quoting it) can hold NUL, which Postgres text
    refuses: the worker's rejection must still be storable (invariant 2: the same
    outcome on the topics and in Postgres). Found by the session-10 soak (random bytes
    as a key). Fails on the code before: the sink dead-lettered it as unstorable."""
    from agents.records import SourceRecord, rejection_for

    record = SourceRecord(settings.topic("votes"), 0, 7, b"\x00key", b"\x00\x01 not json")
    token_id = record.key.decode("utf-8", "replace")  # as the verify stage reads a bad key
    rejection = rejection_for(record, ReasonCode.MALFORMED, "bad \x00 detail", token_id=token_id)
    await produce(settings, "rejections", [rejection.to_json()], partition=0)
    stats = await run_sink(settings)
    assert stats.dead_letters == 0
    row = await pg.fetchrow("SELECT token_id, detail, payload_b64 FROM rejections")
    assert (row["token_id"], row["detail"]) == ("\ufffdkey", "bad \ufffd detail")
    assert row["payload_b64"] == rejection.payload_b64  # the raw bytes, NUL included


async def test_a_second_different_outcome_for_a_position_is_dead_lettered(settings, pg) -> None:
    """Issue 16: one votes-topic position, one outcome. A different rejection, a
    rejection where a ballot is stored, or a ballot where a rejection is, is a
    conflict: dead-lettered and counted, the first outcome kept. Identical copies,
    and a retraction (duplicate_key_image where a ballot was), stay accepted."""
    votes = settings.topic("votes")
    first = make_rejection(0, topic=votes)  # malformed at votes[0]@0
    other = first.model_copy(update={"reason": ReasonCode.BAD_SIGNATURE, "detail": "other"})
    counted = make_ballot(5)  # a ballot at votes[0]@5
    at_ballot = make_rejection(5, topic=votes).model_copy(update={"reason": ReasonCode.MALFORMED})
    retraction = at_ballot.model_copy(update={"reason": ReasonCode.DUPLICATE_KEY_IMAGE})
    at_rejection = make_ballot(6).model_copy(update={"source_offset": 0})  # votes[0]@0 again
    await produce(settings, "rejections", [first.to_json()], partition=0)
    await produce(settings, "ballots", [counted.to_json()], partition=0)
    await run_sink(settings)
    await produce(
        settings,
        "rejections",
        [first.to_json(), other.to_json(), at_ballot.to_json(), retraction.to_json()],
        partition=0,
    )
    await produce(settings, "ballots", [at_rejection.to_json()], partition=0)
    stats = await run_sink(settings)
    assert sorted(
        r["detail"].split(":")[0] for r in await pg.fetch("SELECT detail FROM sink_dead_letters")
    ) == [f"second outcome for {votes}[0]@0"] * 2 + [f"second outcome for {votes}[0]@5"]
    assert {r["reason"] for r in await pg.fetch("SELECT reason FROM sink_dead_letters")} == {
        "outcome_conflict"
    }
    stored = await pg.fetch("SELECT source_offset, reason FROM rejections ORDER BY source_offset")
    assert [(r["source_offset"], r["reason"]) for r in stored] == [
        (0, "malformed"),
        (5, "duplicate_key_image"),
    ]
    assert await pg.fetchval("SELECT vote_id FROM ballots") == counted.vote_id
    assert stats.duplicates == 1  # the identical copy of the first rejection
    assert stats.outcome_conflicts == 3 and stats.dead_letters == 3


async def _delete_records_before(settings, kind: str, partition: int, offset: int) -> None:
    """What retention does to a partition's head: the log now starts at ``offset``."""
    from aiokafka import TopicPartition
    from aiokafka.admin import AIOKafkaAdminClient, RecordsToDelete

    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    await admin.start()
    try:
        tp = TopicPartition(settings.topic(kind), partition)
        await admin.delete_records({tp: RecordsToDelete(before_offset=offset)})
    finally:
        await admin.close()


async def test_records_deleted_before_they_were_stored_stop_the_sink(settings, pg) -> None:
    """Issue 16: a stored offset below the log start (retention) was skipped without a
    word. Now the sink stops with SinkGap (nothing more stored, the offset unmoved);
    with accept_gap it logs, counts and goes on from the log start."""
    from connectors.postgres.errors import SinkGap

    votes = settings.topic("votes")
    rejections = [make_rejection(i, topic=votes).to_json() for i in range(20)]
    await produce(settings, "rejections", rejections[:10], partition=0)
    await run_sink(settings)
    await produce(settings, "rejections", rejections[10:], partition=0)
    await _delete_records_before(settings, "rejections", 0, 15)  # 10..14 never stored
    stored_offset = "SELECT next_offset FROM sink_offsets WHERE topic = $1 AND partition = 0"
    with pytest.raises(SinkGap, match=r"\[0\]: offsets 10\.\.14 were deleted") as info:
        await run_sink(settings)
    assert info.value.exit_code == 4 and "--accept-gap" in info.value.one_line()
    assert await count(pg, "rejections") == 10
    assert await pg.fetchval(stored_offset, settings.topic("rejections")) == 10
    stats = await run_sink(settings, accept_gap=True)
    assert stats.gap_records == 5
    assert await count(pg, "rejections") == 15
    assert await pg.fetchval(stored_offset, settings.topic("rejections")) == 20
    assert (await run_sink(settings)).gap_records == 0  # accepted once: no gap any more


async def test_a_partition_never_stored_whose_log_lost_its_head_is_a_gap_too(settings, pg) -> None:
    await produce(settings, "audit", [e.to_json() for e in audit_chain("tally-1", 4)], partition=1)
    await _delete_records_before(settings, "audit", 1, 2)
    from connectors.postgres.errors import SinkGap

    with pytest.raises(SinkGap, match=r"audit\[1\]: offsets 0\.\.1 were deleted"):
        await run_sink(settings)
    assert await count(pg, "audit_log") == 0
    # the command: one line naming the gap and the way on, exit 4, no traceback
    out = subprocess.run(
        [sys.executable, "-c", "from connectors.cli import main; main()", "sink", "--once"],
        env=settings_env(settings),
        capture_output=True,
        text=True,
        timeout=120,
    )
    errors = [line for line in out.stderr.splitlines() if line.startswith("ringtally: error")]
    assert out.returncode == 4 and "Traceback" not in out.stderr, out.stderr
    assert len(errors) == 1 and "offsets 0..1 were deleted" in errors[0]
    assert "--accept-gap" in errors[0]


async def test_a_gap_that_opens_after_the_seek_stops_the_sink_at_its_first_batch(
    settings, pg, monkeypatch
) -> None:
    """Records may be deleted between the seek (checked) and the fetch: Kafka then moves
    the consumer to the log start, and the batch starting past the stored offset is
    checked too. The seek-time check is made to miss here, as that timing would."""
    from connectors.postgres.errors import SinkGap

    votes = settings.topic("votes")
    rejections = [make_rejection(i, topic=votes).to_json() for i in range(20)]
    await produce(settings, "rejections", rejections[:10], partition=0)
    await run_sink(settings)
    await produce(settings, "rejections", rejections[10:], partition=0)
    await _delete_records_before(settings, "rejections", 0, 15)
    checked = Sink._check_gaps
    calls: list[object] = []

    async def seek_time_check_misses(self, tps):  # noqa: ANN001, ANN202
        calls.append(tps)
        if len(calls) > 1:  # the first call is the seek's
            await checked(self, tps)

    monkeypatch.setattr(Sink, "_check_gaps", seek_time_check_misses)
    with pytest.raises(SinkGap, match=r"rejections\[0\]: offsets 10\.\.14 were deleted"):
        await run_sink(settings)
    assert await count(pg, "rejections") == 10
