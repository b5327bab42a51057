"""Versioned SQL migrations: ``migrations/NNNN_name.sql``, applied in order, once.

``ringtally db migrate`` applies the pending files in ONE transaction (DDL is
transactional in Postgres: all pending migrations land or none does) under an
advisory lock, so two migrators never interleave. Each applied file is
recorded in ``<schema>.schema_migrations`` with the SHA-256 of its bytes; a
recorded migration whose file changed or vanished is refused, because the
database no longer matches what the file says it is. Running it again is a
no-op. The sink never migrates on its own unless asked (``sink --migrate``);
it checks with :func:`check_ready` and refuses to start on an old schema.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg

from streams.settings import Settings

from .db import TRANSIENT, connect, quote_ident, unavailable
from .errors import MigrationError, MigrationMismatch, SchemaNotReady

__all__ = [
    "MIGRATIONS_DIR",
    "SINK_WRITES",
    "Migration",
    "MigrateResult",
    "check_ready",
    "discover",
    "grant_sink",
    "migrate",
]

MIGRATIONS_DIR = Path(__file__).with_name("migrations")
_FILE = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")

_TABLE = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version    integer     PRIMARY KEY,
    name       text        NOT NULL,
    checksum   text        NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
)
"""


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    path: Path
    sql: str
    checksum: str


@dataclass
class MigrateResult:
    schema: str
    applied: list[Migration] = field(default_factory=list)
    already: list[int] = field(default_factory=list)

    @property
    def version(self) -> int:
        return max([m.version for m in self.applied] + self.already, default=0)


def discover(directory: Path = MIGRATIONS_DIR) -> list[Migration]:
    """The migration files in ``directory``, by version; a misnamed .sql file is an error."""
    found: dict[int, Migration] = {}
    for path in sorted(Path(directory).glob("*.sql")):
        m = _FILE.match(path.name)
        if not m:
            raise MigrationError(
                f"migration file {path.name} is not named NNNN_lowercase_name.sql",
                fix=f"rename it in {directory}",
            )
        version = int(m.group(1))
        if version in found:
            raise MigrationError(
                f"two migrations with version {version}: {found[version].path.name}, {path.name}"
            )
        data = path.read_bytes()
        found[version] = Migration(
            version, m.group(2), path, data.decode("utf-8"), hashlib.sha256(data).hexdigest()
        )
    return [found[v] for v in sorted(found)]


def _check_applied(schema: str, files: list[Migration], applied: dict[int, asyncpg.Record]) -> None:
    by_version = {m.version: m for m in files}
    for version, row in sorted(applied.items()):
        mig = by_version.get(version)
        if mig is None:
            raise MigrationMismatch(
                f"schema {schema} has migration {version:04d}_{row['name']} applied, "
                "but its file is gone",
                fix="restore the file; applied migrations are never removed",
            )
        if mig.checksum != row["checksum"]:
            raise MigrationMismatch(
                f"migration {mig.path.name} was edited after it was applied to schema {schema} "
                f"(checksum {row['checksum'][:12]} recorded, {mig.checksum[:12]} on disk)",
                fix="restore the applied file and put the change in a new migration",
            )


async def _applied(conn: asyncpg.Connection) -> dict[int, asyncpg.Record]:
    rows = await conn.fetch("SELECT version, name, checksum FROM schema_migrations")
    return {r["version"]: r for r in rows}


class _DryRun(Exception):
    """Raised to roll back a dry run."""


async def _apply(
    conn: asyncpg.Connection,
    schema: str,
    files: list[Migration],
    result: MigrateResult,
    dry_run: bool,
) -> None:
    # 1. serialise migrators of this schema (released at commit/rollback)
    await conn.execute(
        "SELECT pg_advisory_xact_lock(hashtext('ringtally.migrate.' || $1::text))", schema
    )
    # 2. the schema and the bookkeeping table
    await conn.execute(f"CREATE SCHEMA IF NOT EXISTS {quote_ident(schema)}")
    await conn.execute(f"SET LOCAL search_path TO {quote_ident(schema)}")
    await conn.execute(_TABLE)
    # 3. what is applied must still match its file
    applied = await _applied(conn)
    _check_applied(schema, files, applied)
    result.already = sorted(applied)
    # 4. apply the rest, in order
    for mig in files:
        if mig.version in applied:
            continue
        if not dry_run:
            try:
                await conn.execute(mig.sql)
            except asyncpg.PostgresError as exc:
                if isinstance(exc, TRANSIENT):
                    raise
                raise MigrationError(
                    f"migration {mig.path.name} failed: {type(exc).__name__}: {exc}"
                ) from None
            await conn.execute(
                "INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, $3)",
                mig.version,
                mig.name,
                mig.checksum,
            )
        result.applied.append(mig)


#: What the sink writes: it inserts, updates and deletes here, and only inserts into
#: ``audit_log`` (append-only by trigger; the sink's role must not own it, or it could
#: disable the trigger). A migration that adds a table the sink writes adds it here.
SINK_WRITES = (
    "ballots",
    "rejections",
    "tallies",
    "escalations",
    "sink_dead_letters",
    "sink_offsets",
    "log_heads",
)


async def grant_sink(conn: asyncpg.Connection, schema: str, role: str) -> None:
    """Give ``role`` what the sink needs in ``schema`` and no more: it reads every table,
    writes :data:`SINK_WRITES`, inserts into ``audit_log`` and ``log_leaves``; it owns
    nothing, so it can neither alter nor drop a table nor disable a trigger
    (docs/security.md)."""
    s, r = quote_ident(schema), quote_ident(role)
    if not await conn.fetchval("SELECT 1 FROM pg_roles WHERE rolname = $1", role):
        raise MigrationError(
            f"RINGTALLY_POSTGRES_SINK_ROLE={role}: no such Postgres role; create it first "
            f"(CREATE ROLE {role} LOGIN)"
        )
    await conn.execute(f"GRANT USAGE ON SCHEMA {s} TO {r}")
    await conn.execute(f"GRANT SELECT ON ALL TABLES IN SCHEMA {s} TO {r}")
    tables = ", ".join(f"{s}.{quote_ident(t)}" for t in SINK_WRITES)
    await conn.execute(f"GRANT INSERT, UPDATE, DELETE ON {tables} TO {r}")
    # append-only tables (a trigger refuses UPDATE and DELETE): insert, never own
    await conn.execute(f"GRANT INSERT ON {s}.audit_log, {s}.log_leaves TO {r}")


async def migrate(
    settings: Settings, directory: Path = MIGRATIONS_DIR, *, dry_run: bool = False
) -> MigrateResult:
    """Apply pending migrations to ``settings.postgres_schema`` (idempotent)."""
    files = discover(directory)
    schema = settings.postgres_schema
    result = MigrateResult(schema)
    conn = await connect(settings, search_path=False)
    try:
        try:
            async with conn.transaction():
                await _apply(conn, schema, files, result, dry_run)
                if dry_run:
                    raise _DryRun
                if settings.postgres_sink_role:
                    await grant_sink(conn, schema, settings.postgres_sink_role)
        except _DryRun:
            pass
    except TRANSIENT as exc:
        raise unavailable(settings, exc) from None
    finally:
        await conn.close()
    return result


async def check_ready(
    conn: asyncpg.Connection, schema: str, directory: Path = MIGRATIONS_DIR
) -> int:
    """The schema's version when every migration is applied unchanged; else SchemaNotReady."""
    files = discover(directory)
    exists = await conn.fetchval(
        "SELECT to_regclass(format('%I.schema_migrations', $1::text)) IS NOT NULL", schema
    )
    if not exists:
        raise SchemaNotReady(
            f"schema {schema} has no ringtally tables yet",
            fix="run 'ringtally db migrate' (or 'ringtally sink --migrate')",
        )
    applied = {
        r["version"]: r
        for r in await conn.fetch(
            f"SELECT version, name, checksum FROM {quote_ident(schema)}.schema_migrations"
        )
    }
    try:
        _check_applied(schema, files, applied)
    except MigrationMismatch as exc:
        raise SchemaNotReady(str(exc), fix=exc.fix) from None
    missing = [m for m in files if m.version not in applied]
    if missing:
        raise SchemaNotReady(
            f"schema {schema} lacks migration(s) {', '.join(m.path.name for m in missing)}",
            fix="run 'ringtally db migrate'",
        )
    return max(applied, default=0)
