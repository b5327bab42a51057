"""``stack up --secure``: the sink's Postgres role and a Redis ACL user per role.

The secured Kafka has a principal per role; the plain stack's Postgres and
Redis (which ``--secure`` shares) get theirs here, so that every client of a
secured local stack can run as its own principal (issue 15, item 3):

* Postgres: a login role ``RINGTALLY_POSTGRES_SINK_ROLE`` (default
  ``<schema>_sink``) that owns nothing; when the schema exists it gets the
  grants of :func:`connectors.postgres.migrate.grant_sink` (migrations give
  them again when the setting names the role).
* Redis: ``<prefix>-sink`` and ``<prefix>-reader`` with
  :func:`connectors.readmodel.store.acl_rules`.

Their passwords are made once and kept in ``credentials.json`` (0600) with
the Kafka principals; each ``up`` sets them again, so the file stays the
truth. The local Postgres trusts loopback: the role is made as its super user.
"""

from __future__ import annotations

import asyncio
import json
import re
import secrets
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

from connectors.postgres.db import quote_ident
from connectors.postgres.migrate import grant_sink
from connectors.readmodel.store import acl_rules
from connectors.stack.kafka.broker import write_private
from connectors.stack.postgres import SUPERUSER
from streams.settings import Settings

__all__ = ["provision_service_users", "sink_role"]


def sink_role(settings: Settings) -> str:
    """The sink's Postgres role: the setting, else ``<schema>_sink``."""
    return settings.postgres_sink_role or f"{settings.postgres_schema}_sink"


def _with_user(url: str, user: str, password: str | None) -> str:
    """``url`` (Postgres DSN or Redis URL) as ``user``, its path and query kept."""
    parts = urlsplit(url)
    auth = quote(user, safe="") + (f":{quote(password, safe='')}" if password else "")
    host = parts.hostname or "127.0.0.1"
    netloc = f"{auth}@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def _password(section: dict[str, Any], name: str) -> str:
    """The kept password, or a new one: always ``token_urlsafe``'s alphabet, so it can go
    into ``ALTER ROLE ... PASSWORD '...'`` (DDL takes no parameters) as it is."""
    kept = str(section.get(name, {}).get("password") or "")
    return kept if re.fullmatch(r"[A-Za-z0-9_-]{24,}", kept) else secrets.token_urlsafe(24)


async def _postgres(settings: Settings, role: str, password: str) -> str:
    import asyncpg

    conn = await asyncpg.connect(
        _with_user(settings.postgres_dsn, SUPERUSER, None), timeout=10, command_timeout=30
    )
    try:
        r = quote_ident(role)
        verb = (
            "ALTER"
            if await conn.fetchval("SELECT 1 FROM pg_roles WHERE rolname=$1", role)
            else "CREATE"
        )
        # _password: [A-Za-z0-9_-] only, safe inside the literal
        await conn.execute(
            f"{verb} ROLE {r} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD '{password}'"
        )
        schema = settings.postgres_schema
        if await conn.fetchval("SELECT 1 FROM pg_namespace WHERE nspname=$1", schema):
            await grant_sink(conn, schema, role)
            return f"role {role}, granted the sink's rights in schema {schema}"
        return f"role {role} (schema {schema} not made yet: migrations grant it)"
    finally:
        await conn.close()


async def _redis(settings: Settings, users: dict[str, tuple[str, str]]) -> None:
    from redis.asyncio import Redis

    admin = Redis.from_url(settings.redis_url, socket_connect_timeout=5, socket_timeout=10)
    try:
        for role, rules in acl_rules(settings.topic_prefix).items():
            user, password = users[role]
            await admin.execute_command(
                "ACL", "SETUSER", user, "reset", "on", f">{password}", *rules.split()
            )
    finally:
        await admin.aclose()


def provision_service_users(settings: Settings, credentials: Path) -> list[str]:
    """Make (or reset) the sink's Postgres role and the Redis ACL users and add them to
    ``credentials``; one line per piece to show. A piece not running is said, not fatal:
    the next ``stack up --secure`` makes its users."""
    import asyncpg
    from redis.exceptions import RedisError

    data = json.loads(credentials.read_text())
    pg, rd = data.get("postgres", {}), data.get("redis", {})
    role = sink_role(settings)
    # the migrating role owns audit_log: it is never made the sink's role
    own = role in (urlsplit(settings.postgres_dsn).username, SUPERUSER)
    pg_password = _password(pg, "sink")
    users = {
        r: (f"{settings.topic_prefix}-{r}", _password(rd, r))
        for r in acl_rules(settings.topic_prefix)
    }
    if not own:
        dsn = _with_user(settings.postgres_dsn, role, pg_password)
        data["postgres"] = {"sink": {"role": role, "password": pg_password, "dsn": dsn}}
    data["redis"] = {
        r: {"username": u, "password": p, "url": _with_user(settings.redis_url, u, p)}
        for r, (u, p) in users.items()
    }
    write_private(credentials, json.dumps(data, indent=2) + "\n")  # first: passwords kept
    lines = []
    try:
        if own:
            lines.append(f"postgres: RINGTALLY_POSTGRES_SINK_ROLE={role} owns the schema; no role")
        else:
            lines.append(f"postgres: {asyncio.run(_postgres(settings, role, pg_password))}")
    except (OSError, TimeoutError, asyncpg.PostgresError) as exc:  # one line, no secret
        lines.append(f"postgres: no sink role made ({type(exc).__name__}: {str(exc)[:120]})")
    try:
        asyncio.run(_redis(settings, users))
        lines.append(f"redis: ACL users {', '.join(u for u, _ in users.values())}")
    except (OSError, RedisError) as exc:
        lines.append(f"redis: no ACL users made ({type(exc).__name__}: {str(exc)[:120]})")
    return lines
