"""The audit trail in Postgres: append-only by the database itself, verified by hash chain."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

import asyncpg
import pytest

from connectors.postgres.audit_verify import verify
from connectors.postgres.migrate import migrate
from connectors.postgres.sink import Sink
from connectors.postgres.topics import ensure_topics
from tests.fixtures.sink_records import audit_chain, drop_schema, produce, settings_env

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
async def chains(settings):  # noqa: ANN001, ANN201
    """Three chains (30, 20, 10 events) stored through the sink."""
    await migrate(settings)
    await ensure_topics(settings)
    for p, (name, n) in enumerate((("tally-0", 30), ("tally-1", 20), ("tally-2", 10))):
        await produce(settings, "audit", [e.to_json() for e in audit_chain(name, n)], partition=p)
    await Sink(settings, once=True).run()
    yield settings
    await drop_schema(settings)


async def superuser(settings) -> asyncpg.Connection:  # noqa: ANN001
    """A superuser connection to the test database (the stack's 'postgres' role), or skip."""
    parts = urlsplit(settings.postgres_dsn)
    candidates = [
        parts._replace(netloc=f"postgres@{parts.hostname}:{parts.port or 5432}").geturl(),
        settings.postgres_dsn,
    ]
    for dsn in candidates:
        try:
            conn = await asyncpg.connect(dsn)
        except (OSError, asyncpg.PostgresError):
            continue
        if await conn.fetchval("SELECT rolsuper FROM pg_roles WHERE rolname = current_user"):
            await conn.execute(f'SET search_path TO "{settings.postgres_schema}"')
            return conn
        await conn.close()
    pytest.skip("no superuser connection to this Postgres")


def audit_cli(settings) -> subprocess.CompletedProcess[str]:  # noqa: ANN001
    return subprocess.run(
        [sys.executable, "-c", "from connectors.cli import main; main()", "audit", "verify"],
        cwd=ROOT,
        env=settings_env(settings),
        capture_output=True,
        text=True,
        timeout=120,
    )


async def test_intact_chains_check_out(chains) -> None:
    out = audit_cli(chains)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "all 60 events in 3 chains check out"


async def test_update_delete_truncate_are_refused_by_the_database(chains) -> None:
    conn = await asyncpg.connect(
        chains.postgres_dsn, server_settings={"search_path": chains.postgres_schema}
    )
    try:
        with pytest.raises(asyncpg.InsufficientPrivilegeError, match="append-only"):
            await conn.execute("UPDATE audit_log SET decision = 'APPROVED' WHERE sequence = 1")
        with pytest.raises(asyncpg.InsufficientPrivilegeError, match="append-only"):
            await conn.execute("DELETE FROM audit_log WHERE chain = 'tally-1'")
        with pytest.raises(asyncpg.InsufficientPrivilegeError, match="append-only"):
            await conn.execute("TRUNCATE audit_log")
        assert await conn.fetchval("SELECT count(*) FROM audit_log") == 60
    finally:
        await conn.close()


async def test_a_tampered_row_is_named_by_chain_and_sequence(chains) -> None:
    su = await superuser(chains)
    try:
        await su.execute("SET session_replication_role = replica")  # triggers off
        await su.execute(
            "UPDATE audit_log SET submission_id = 'forged' WHERE chain = 'tally-1' AND sequence = 7"
        )
    finally:
        await su.close()
    out = audit_cli(chains)
    assert out.returncode == 1
    assert "BROKEN chain tally-1 at sequence 7: content altered" in out.stdout
    assert "chain tally-1 sequence 7" in out.stderr and "Traceback" not in out.stderr


async def test_a_deleted_row_and_a_rechained_row_are_found(chains) -> None:
    su = await superuser(chains)
    try:
        await su.execute("ALTER TABLE audit_log DISABLE TRIGGER USER")
        await su.execute("DELETE FROM audit_log WHERE chain = 'tally-0' AND sequence = 12")
        # an attacker who recomputes the hash of the row they changed still breaks the next link
        await su.execute(
            "UPDATE audit_log SET hash = repeat('a', 64) WHERE chain = 'tally-2' AND sequence = 4"
        )
        await su.execute("ALTER TABLE audit_log ENABLE TRIGGER USER")
    finally:
        await su.close()
    result = await verify(chains)
    found = {(b.chain, b.sequence, b.problem) for b in result.breaks}
    assert found == {("tally-0", 12, "missing; next is 13"), ("tally-2", 4, "content altered")}
    assert result.events == 59 and result.chains == 3
    only = await verify(chains, chain="tally-1")
    assert only.ok and only.events == 20
