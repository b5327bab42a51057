"""Postgres goes away while ``ringtally sink`` runs, and comes back: nothing lost, nothing doubled.

The outage is real: a PostgreSQL server of the test's own (the stack's
``PostgresService``, on a throw-away data dir and a free port, so other test
sessions sharing the stack's Postgres are not disturbed) is stopped with
the stack's own API while the sink is writing, and started again while a
producer keeps producing (the pipeline does not wait for the sink).
"""

from __future__ import annotations

import asyncio
import shutil
import socket
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

import asyncpg
import pytest

from connectors.postgres.migrate import migrate
from connectors.postgres.topics import ensure_topics
from tests.fixtures.sink_records import (
    make_ballot,
    make_tally,
    produce,
    produce_ballots,
    settings_env,
    wait_until,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]
ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def private_postgres(stack, settings):  # noqa: ANN001, ANN201
    """A PostgreSQL of this test alone, managed by connectors.stack (local stack only)."""
    if stack.kind != "local":
        pytest.skip("needs the local stack's PostgresService")
    from connectors.stack import LocalStack

    parts = urlsplit(settings.postgres_dsn)
    dsn = f"postgresql://{parts.username or 'ringtally'}@127.0.0.1:{free_port()}/ringtally"
    data_dir = settings.data_dir / "test-pg" / settings.topic_prefix
    mine = settings.model_copy(update={"postgres_dsn": dsn, "data_dir": data_dir})
    local = LocalStack(mine)
    local.up(["postgres"])
    try:
        yield mine, local
    finally:
        local.down(["postgres"])
        shutil.rmtree(data_dir, ignore_errors=True)


async def test_postgres_restart_loses_and_doubles_nothing(private_postgres, tmp_path) -> None:
    settings, local = private_postgres
    await migrate(settings)
    await ensure_topics(settings)
    first = [make_ballot(i, f"sub-{i % 50}") for i in range(20_000)]
    await produce_ballots(settings, first)
    log_path = tmp_path / "sink.log"
    log = open(log_path, "w")  # noqa: SIM115
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from connectors.cli import main; main()",
            "sink",
            "--batch-size",
            "200",
            "--until-idle",
            "12",  # outlives the outage's start even when the first 20,000 went fast
            "--no-readmodel",
        ],
        cwd=ROOT,
        env=settings_env(settings),
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    schema = settings.postgres_schema

    async def ballots() -> int:
        conn = await asyncpg.connect(settings.postgres_dsn)
        try:
            return await conn.fetchval(f'SELECT count(*) FROM "{schema}".ballots')
        finally:
            await conn.close()

    try:
        await wait_until(lambda: _at_least(ballots, 3000), 60, what="3,000 ballots")
        await asyncio.to_thread(local.down, ["postgres"])  # SIGINT: fast shutdown, mid-stream
        # the pipeline keeps producing while Postgres is away
        more = [make_ballot(i, f"sub-{i % 50}") for i in range(20_000, 25_000)]
        await produce_ballots(settings, more)
        await produce(
            settings,
            "tallies",
            [make_tally("sub-1", v).to_json() for v in (3, 9, 4)],
            keys=[b"sub-1"] * 3,
        )
        # the sink met the outage (it writes the new ballots) and waits it out
        await wait_until(lambda: _logged(log_path, "postgres unavailable"), 60, what="the outage")
        await asyncio.sleep(2)
        assert proc.poll() is None, "the sink must wait out the outage, not exit"
        await asyncio.to_thread(local.up, ["postgres"])
        code = await asyncio.to_thread(proc.wait, 180)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        log.close()
    out = log_path.read_text()
    assert code == 0, out[-3000:]
    conn = await asyncpg.connect(settings.postgres_dsn)
    try:
        assert await conn.fetchval(f'SELECT count(*) FROM "{schema}".ballots') == 25_000
        assert (
            await conn.fetchval(f'SELECT count(DISTINCT vote_id) FROM "{schema}".ballots') == 25_000
        )
        assert (
            await conn.fetchval(
                f"SELECT version FROM \"{schema}\".tallies WHERE submission_id = 'sub-1'"
            )
            == 9
        )
        stored = await conn.fetchval(
            f'SELECT sum(next_offset) FROM "{schema}".sink_offsets WHERE topic = $1',
            settings.topic("ballots"),
        )
        assert stored == 25_000
    finally:
        await conn.close()
    # logged once per state change, not once per retry
    assert out.count("postgres unavailable") == 1, out[-3000:]
    assert out.count("postgres back after") == 1, out[-3000:]


async def _logged(path: Path, text: str) -> bool:
    return text in path.read_text()


async def _at_least(count, n: int) -> bool:  # noqa: ANN001
    try:
        return await count() >= n
    except (OSError, asyncpg.PostgresError):
        return False
