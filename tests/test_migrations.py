"""``ringtally db migrate``: versioned, idempotent, checksummed, in the configured schema."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import asyncpg
import pytest

from connectors.postgres.errors import MigrationError, MigrationMismatch
from connectors.postgres.migrate import MIGRATIONS_DIR, discover, migrate
from tests.fixtures.sink_records import drop_schema, settings_env

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[1]
RINGTALLY = [sys.executable, "-c", "from connectors.cli import main; main()"]


@pytest.fixture
async def scratch(settings):  # noqa: ANN001, ANN201
    yield settings
    await drop_schema(settings)


def ringtally(settings, *args: str) -> subprocess.CompletedProcess[str]:  # noqa: ANN001
    return subprocess.run(
        [*RINGTALLY, *args],
        cwd=ROOT,
        env=settings_env(settings),
        capture_output=True,
        text=True,
        timeout=120,
    )


async def test_migrate_twice_is_a_no_op(scratch) -> None:
    first = ringtally(scratch, "db", "migrate")
    assert first.returncode == 0, first.stderr
    assert "applied 0001_initial.sql" in first.stdout
    second = ringtally(scratch, "db", "migrate")
    assert second.returncode == 0, second.stderr
    assert "up to date" in second.stdout
    conn = await asyncpg.connect(scratch.postgres_dsn)
    try:
        rows = await conn.fetch(
            f'SELECT version, checksum FROM "{scratch.postgres_schema}".schema_migrations'
        )
        tables = {
            r["table_name"]
            for r in await conn.fetch(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = $1",
                scratch.postgres_schema,
            )
        }
    finally:
        await conn.close()
    assert [r["version"] for r in rows] == [m.version for m in discover()]
    assert {
        "ballots",
        "rejections",
        "tallies",
        "audit_log",
        "escalations",
        "sink_offsets",
        "sink_dead_letters",
        "schema_migrations",
        "log_leaves",
        "log_heads",
    } <= tables


#: The version a new migration file added by a test gets.
NEXT = len(discover()) + 1


async def test_an_edited_applied_migration_is_refused(scratch, tmp_path) -> None:
    mdir = tmp_path / "migrations"
    shutil.copytree(MIGRATIONS_DIR, mdir)
    await migrate(scratch, mdir)
    (mdir / f"{NEXT:04d}_extra.sql").write_text("CREATE TABLE extra (id int);\n")
    result = await migrate(scratch, mdir)
    assert [m.version for m in result.applied] == [NEXT]
    first = mdir / "0001_initial.sql"
    first.write_text(first.read_text() + "\n-- a harmless-looking edit\n")
    with pytest.raises(MigrationMismatch, match="0001_initial.sql was edited"):
        await migrate(scratch, mdir)
    (mdir / "0001_initial.sql").unlink()
    with pytest.raises(MigrationMismatch, match="file is gone"):
        await migrate(scratch, mdir)


async def test_the_cli_refuses_an_edited_migration_in_one_line(scratch, tmp_path) -> None:
    # the applied record says 0001 had another checksum: what an edited file looks like
    await migrate(scratch)
    conn = await asyncpg.connect(scratch.postgres_dsn)
    try:
        await conn.execute(
            f'UPDATE "{scratch.postgres_schema}".schema_migrations SET checksum = $1 '
            "WHERE version = 1",
            "0" * 64,
        )
    finally:
        await conn.close()
    out = ringtally(scratch, "db", "migrate")
    assert out.returncode == 1
    assert out.stderr.count("\n") == 1 and "Traceback" not in out.stderr
    assert "was edited after it was applied" in out.stderr


async def test_a_failing_migration_changes_nothing(scratch, tmp_path) -> None:
    mdir = tmp_path / "migrations"
    shutil.copytree(MIGRATIONS_DIR, mdir)
    broken = f"{NEXT:04d}_broken.sql"
    (mdir / broken).write_text("CREATE TABLE fine (id int);\nSELECT nope FROM;\n")
    with pytest.raises(MigrationError, match=f"{broken} failed"):
        await migrate(scratch, mdir)
    conn = await asyncpg.connect(scratch.postgres_dsn)
    try:
        exists = await conn.fetchval(
            "SELECT to_regclass($1) IS NOT NULL", f"{scratch.postgres_schema}.ballots"
        )
    finally:
        await conn.close()
    assert not exists  # one transaction: 0001 rolled back with the broken one


def test_misnamed_migration_files_are_refused(tmp_path) -> None:
    (tmp_path / "1_init.sql").write_text("SELECT 1;")
    with pytest.raises(MigrationError, match="NNNN_lowercase_name.sql"):
        discover(tmp_path)


def test_postgres_unreachable_is_one_line_exit_2(settings) -> None:
    bad = settings.model_copy(update={"postgres_dsn": "postgresql://x@127.0.0.1:1/x"})
    for args in (("db", "migrate"), ("sink", "--once"), ("audit", "verify")):
        out = ringtally(bad, *args)
        assert out.returncode == 2, (args, out.stderr)
        assert "Traceback" not in out.stderr and out.stderr.count("\n") == 1, out.stderr
        assert "postgres at postgresql://x@127.0.0.1:1/x is unavailable" in out.stderr


def test_help_has_examples(settings) -> None:
    for args in (("db", "migrate"), ("sink",), ("audit", "verify"), ("readmodel",)):
        out = ringtally(settings, *args, "--help")
        assert out.returncode == 0, out.stderr
        assert "Example:" in out.stdout
