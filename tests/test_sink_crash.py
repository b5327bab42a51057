"""``ringtally sink`` killed with SIGKILL mid-transaction, restarted: the tables match the topics.

The sink runs as a real subprocess (the ``ringtally`` CLI); the test waits
until Postgres shows the sink's connection inside a transaction, kills it
there, twice, then lets a third run drain the topics. Rows must equal the
distinct records produced, tallies the highest version per submission, and
the stored offsets the topics' end offsets.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

import asyncpg
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from connectors.postgres.migrate import migrate
from connectors.postgres.topics import OUTPUTS, ensure_topics
from streams.topics import topic_specs
from tests.fixtures.sink_records import (
    audit_chain,
    drop_schema,
    make_ballot,
    make_rejection,
    make_tally,
    produce,
    produce_ballots,
    settings_env,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]
ROOT = Path(__file__).resolve().parents[1]

N_BALLOTS = 30_000
N_SUBS = 200
VERSIONS = 15


def sink_cmd(*args: str) -> list[str]:
    return [sys.executable, "-c", "from connectors.cli import main; main()", "sink", *args]


async def end_offsets(settings) -> dict[tuple[str, int], int]:  # noqa: ANN001
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap, isolation_level="read_committed"
    )
    await consumer.start()
    try:
        specs = topic_specs(settings)
        tps = [TopicPartition(specs[k][0], p) for k in OUTPUTS for p in range(specs[k][1])]
        consumer.assign(tps)
        ends = await consumer.end_offsets(tps)
    finally:
        await asyncio.sleep(0.1)  # aiokafka: let its no-group task start before stop() cancels it
        await consumer.stop()
    return {(tp.topic, tp.partition): off for tp, off in ends.items() if off > 0}


async def produce_workload(settings) -> None:  # noqa: ANN001
    ballots = [make_ballot(i, f"sub-{i % N_SUBS}") for i in range(N_BALLOTS)]
    await produce_ballots(settings, ballots)
    # the agents' at-least-once re-emission after a crash: 3,000 identical copies
    again = ballots[5000:8000]
    await produce_ballots(settings, again)
    tallies = [
        make_tally(f"sub-{s}", v, approve=v) for v in range(1, VERSIONS + 1) for s in range(N_SUBS)
    ]
    await produce(
        settings,
        "tallies",
        [t.to_json() for t in tallies],
        keys=[t.submission_id.encode() for t in tallies],
    )
    await produce(settings, "rejections", [make_rejection(i).to_json() for i in range(2000)])
    for p in range(3):
        await produce(
            settings, "audit", [e.to_json() for e in audit_chain(f"tally-{p}", 1000)], partition=p
        )


async def kill_mid_transaction(
    proc: subprocess.Popen, conn: asyncpg.Connection, schema: str, min_ballots: int
) -> int:
    """SIGKILL the sink once it has written ``min_ballots`` and is inside a transaction."""
    deadline = asyncio.get_running_loop().time() + 120
    while asyncio.get_running_loop().time() < deadline:
        assert proc.poll() is None, "the sink exited early"
        n = await conn.fetchval(f'SELECT count(*) FROM "{schema}".ballots')
        if n >= min_ballots:
            busy = await conn.fetchval(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = "
                "'ringtally-sink' AND datname = current_database() "
                "AND state IN ('active', 'idle in transaction')"
            )
            if busy:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)
                return n
            await asyncio.sleep(0.001)
            continue
        await asyncio.sleep(0.05)
    raise AssertionError("the sink never got busy")


async def test_sigkill_mid_batch_then_restart_matches_the_topics(settings, tmp_path) -> None:
    await migrate(settings)
    await ensure_topics(settings)
    await produce_workload(settings)
    env = settings_env(settings)
    schema = settings.postgres_schema
    conn = await asyncpg.connect(settings.postgres_dsn)
    logs = []
    try:
        seen = []
        for i, at in enumerate((4000, 15000)):
            log = open(tmp_path / f"sink-{i}.log", "w")  # noqa: SIM115
            logs.append(log)
            proc = subprocess.Popen(
                sink_cmd("--batch-size", "400", "--no-readmodel"),
                cwd=ROOT,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
            try:
                seen.append(await kill_mid_transaction(proc, conn, schema, at))
            finally:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
        assert seen[0] < seen[1] < N_BALLOTS
        final = subprocess.run(
            sink_cmd("--once", "--no-readmodel"),
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert final.returncode == 0, final.stderr[-3000:]

        q = f'SELECT count(*) FROM "{schema}".%s'
        assert await conn.fetchval(q % "ballots") == N_BALLOTS
        assert (
            await conn.fetchval(f'SELECT count(DISTINCT vote_id) FROM "{schema}".ballots')
            == N_BALLOTS
        )
        assert await conn.fetchval(q % "rejections") == 2000
        assert await conn.fetchval(q % "audit_log") == 3000
        assert await conn.fetchval(q % "sink_dead_letters") == 0
        rows = await conn.fetch(f'SELECT submission_id, version, approve FROM "{schema}".tallies')
        assert len(rows) == N_SUBS
        assert {(r["version"], r["approve"]) for r in rows} == {(VERSIONS, VERSIONS)}
        stored = {
            (r["topic"], r["partition"]): r["next_offset"]
            for r in await conn.fetch(
                f'SELECT topic, partition, next_offset FROM "{schema}".sink_offsets'
            )
        }
        assert stored == await end_offsets(settings)
    finally:
        for log in logs:
            log.close()
        await conn.close()
        await drop_schema(settings)
