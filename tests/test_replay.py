"""``ringtally replay`` and consumer-group resets, against a real live run.

One small live run (the demo's machinery: a worker and the sink as
subprocesses, ~200 votes with attacks) serves the module. Replays must find
no differences with it; a deliberately tampered live schema must show up as
differences; Kafka's own ``kafka-consumer-groups`` resets an inactive group.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid

import pytest
from confluent_kafka import Consumer, TopicPartition
from rich.console import Console

from connectors.demo import DemoConfig, run_demo
from connectors.replay import (
    ReplayConfig,
    committed_offsets,
    compare_schemas,
    drop_shadow,
    render,
    reset_group_offsets,
    run_replay,
    shadow_settings,
)
from connectors.replay.offsets import end_offsets
from connectors.stack.harness import ROOT
from streams.errors import UsageProblem

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def live(stack, tmp_path_factory):
    """Settings of a finished live run (topics and schema dropped at session end)."""
    from tests.fixtures.stack import make_settings

    prefix = f"t-{uuid.uuid4().hex[:8]}"
    data_dir = tmp_path_factory.mktemp("live")
    base = make_settings(stack, prefix, data_dir=data_dir)
    result = run_demo(
        DemoConfig(
            genres=2,
            ring_size=16,
            submissions_per_genre=8,
            votes_per_reviewer=6,
            rate=0,
            partitions=4,
            table_store="memory",
            prefix=prefix,
            draw_chart=False,
            clean_old=False,
            live=False,
            base=base,
            stall_timeout=45,
        )
    )
    assert result.ok, [line for line in result.lines if not line.ok]
    return result.settings


def _topics(settings, prefix: str) -> list[str]:
    from confluent_kafka.admin import AdminClient

    admin = AdminClient({"bootstrap.servers": settings.kafka_bootstrap})
    return [t for t in admin.list_topics(timeout=10).topics if t.startswith(prefix)]


async def _with_conn(settings, work):
    from connectors.postgres.db import connect

    conn = await connect(settings, search_path=False)
    try:
        return await work(conn)
    finally:
        await conn.close()


def test_replay_finds_no_differences_then_finds_the_tampering(live):
    result = run_replay(live, ReplayConfig(keep=True, live=False, stall_timeout=60))
    shadow = result.shadow
    try:
        c = result.comparison
        assert result.ok, [d.describe() for d in c.differences]
        assert c.differences == []
        assert c.counts["ballots"][0] == c.counts["ballots"][1] > 150
        assert c.counts["rejections"][0] == c.counts["rejections"][1] > 10
        assert shadow.output_prefix.startswith(f"{live.topic_prefix}-replay-")
        assert shadow.group_id != live.group_id

        schema, votes = live.postgres_schema, live.topic("votes")

        async def tamper_and_compare(conn):
            q = f'"{schema}"'
            sub = await conn.fetchval(f"SELECT min(submission_id) FROM {q}.tallies")
            ballot = await conn.fetchrow(f"SELECT * FROM {q}.ballots ORDER BY vote_id LIMIT 1")
            rejection = await conn.fetchrow(
                f"SELECT id FROM {q}.rejections WHERE reason = 'token_spent' LIMIT 1"
            )
            await conn.execute(
                f"UPDATE {q}.tallies SET approve = approve + 1, total = total + 1 "
                "WHERE submission_id = $1",
                sub,
            )
            await conn.execute(f"DELETE FROM {q}.ballots WHERE vote_id = $1", ballot["vote_id"])
            await conn.execute(
                f"UPDATE {q}.rejections SET reason = 'malformed' WHERE id = $1", rejection["id"]
            )
            try:
                return (
                    sub,
                    ballot,
                    await compare_schemas(conn, schema, shadow.postgres_schema, votes_topic=votes),
                )
            finally:  # undo, so the other tests see the untouched live run
                await conn.execute(
                    f"UPDATE {q}.tallies SET approve = approve - 1, total = total - 1 "
                    "WHERE submission_id = $1",
                    sub,
                )
                cols = [k for k in ballot.keys() if k != "id"]
                await conn.execute(
                    f"INSERT INTO {q}.ballots ({', '.join(cols)}) VALUES "
                    f"({', '.join(f'${i + 1}' for i in range(len(cols)))})",
                    *(ballot[k] for k in cols),
                )
                await conn.execute(
                    f"UPDATE {q}.rejections SET reason = 'token_spent' WHERE id = $1",
                    rejection["id"],
                )

        sub, ballot, tampered = asyncio.run(_with_conn(live, tamper_and_compare))
        found = {(d.kind, d.key): d for d in tampered.differences}
        assert set(found) == {
            ("tally", sub),
            ("ballot", str(ballot["vote_id"])),
            *((k, key) for k, key in found if k == "rejection"),
        }
        assert len(tampered.differences) == 3, [d.describe() for d in tampered.differences]
        assert found[("tally", sub)].fields == ["approve", "total"]
        assert found[("ballot", str(ballot["vote_id"]))].describe() == "only in replay"
        [rej] = [d for d in tampered.differences if d.kind == "rejection"]
        assert rej.live["reason"] == "malformed" and rej.shadow["reason"] == "token_spent"

        console = Console(record=True, width=200)
        result.comparison = tampered
        render(result, console)
        text = console.export_text()
        assert "3 differences" in text and sub in text and "only in replay" in text
        assert not result.ok
    finally:
        drop_shadow(shadow)
    assert _topics(live, shadow.output_prefix) == []

    async def schema_exists(conn):
        return await conn.fetchval(
            "SELECT count(*) FROM pg_namespace WHERE nspname = $1", shadow.postgres_schema
        )

    assert asyncio.run(_with_conn(live, schema_exists)) == 0


def test_replay_command_from_time_prints_no_differences(live):
    # --from-time: the timestamp of the middle record of partition 0 of the votes topic
    votes = live.topic("votes")
    mid = end_offsets(live, votes)[0] // 2
    consumer = Consumer(
        {
            "bootstrap.servers": live.kafka_bootstrap,
            "group.id": "t-probe",
            "enable.auto.commit": False,
        }
    )
    consumer.assign([TopicPartition(votes, 0, mid)])
    msg = consumer.poll(10)
    consumer.close()
    assert msg is not None and msg.error() is None
    env = {**os.environ, **live.to_env(), "COLUMNS": "200"}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "connectors.cli",
            "replay",
            "--from-time",
            str(msg.timestamp()[1]),
            "--quiet",
            "--stall-timeout",
            "60",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=170,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    assert "no differences" in out and "at/after --from-time" in out
    assert "dropped" in out
    assert [t for t in _topics(live, f"{live.topic_prefix}-replay-")] == []


def test_kafka_tool_resets_an_inactive_group_to_earliest(live):
    from streams.settings import Settings

    # the stack's data dir: where the Kafka jars the tool runs from are cached
    live = live.model_copy(update={"data_dir": Settings().data_dir})
    votes = live.topic("votes")
    group = f"{live.topic_prefix}-reset-{uuid.uuid4().hex[:6]}"
    ends = end_offsets(live, votes)
    consumer = Consumer(
        {"bootstrap.servers": live.kafka_bootstrap, "group.id": group, "enable.auto.commit": False}
    )
    consumer.commit(
        offsets=[TopicPartition(votes, p, end) for p, end in ends.items()], asynchronous=False
    )
    consumer.close()
    assert committed_offsets(live, group, votes) == ends

    plan = reset_group_offsets(live, group, [votes], to="earliest", execute=False)
    assert group in plan and votes in plan
    assert committed_offsets(live, group, votes) == ends  # a dry run changes nothing

    reset_group_offsets(live, group, [votes], to="earliest", execute=True)
    assert committed_offsets(live, group, votes) == {p: 0 for p in ends}

    # an active member: the tool refuses, and says why
    member = Consumer(
        {
            "bootstrap.servers": live.kafka_bootstrap,
            "group.id": group,
            "enable.auto.commit": False,
            "session.timeout.ms": 6000,
        }
    )
    member.subscribe([votes])
    try:
        for _ in range(40):
            member.poll(0.5)
            if member.assignment():
                break
        assert member.assignment()
        with pytest.raises(UsageProblem, match="inactive"):
            reset_group_offsets(live, group, [votes], to="latest", execute=True)
    finally:
        member.close()


def test_a_replay_signs_with_a_throwaway_log_key_never_the_live_one(tmp_path):
    """The review's finding: shadow_settings copied data_dir and log_key_file, so a replay
    signed a second, different log with the live log key."""
    from agents.loghead import load_log_signer
    from streams.settings import Settings

    live = Settings(data_dir=tmp_path, log_key_file=None, log_public_key="")
    live_key = load_log_signer(live).public_key
    shadow = shadow_settings(live, "t1")
    assert shadow.log_key_path != live.log_key_path
    replay_key = load_log_signer(shadow).public_key
    assert replay_key != live_key
    assert shadow.log_public_key == replay_key.hex()  # the shadow sink trusts its own heads
    assert load_log_signer(live).public_key == live_key  # the live key untouched
