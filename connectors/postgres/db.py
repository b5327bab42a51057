"""Connecting to Postgres, and telling "the server is down" from "the query is wrong".

Every connection gets ``search_path = <schema>`` (Settings.postgres_schema) as
a server setting, so SQL in this package is unqualified and the same code
serves the production schema and a test's throw-away ``t_<prefix>`` schema.
Which errors mean "unavailable" is decided by asyncpg's exception classes
(SQLSTATE classes 08 and 57, socket errors), never by message text.
"""

from __future__ import annotations

import asyncio
import logging

import asyncpg

from streams.errors import PostgresUnavailable, UsageProblem
from streams.settings import Settings, redact_url

__all__ = ["REFUSED", "TRANSIENT", "connect", "quote_ident", "unavailable"]

log = logging.getLogger(__name__)

#: Errors after which retrying on a fresh connection can succeed: the server is
#: down, restarting, shutting down, refusing connections, or the socket died.
TRANSIENT: tuple[type[BaseException], ...] = (
    OSError,
    asyncio.TimeoutError,
    asyncpg.PostgresConnectionError,  # class 08: connection exceptions
    asyncpg.exceptions.OperatorInterventionError,  # class 57: shutdown, cannot connect now
    asyncpg.exceptions.TooManyConnectionsError,
    asyncpg.exceptions.TransactionRollbackError,  # class 40: serialization failure, deadlock
    asyncpg.InterfaceError,  # "connection is closed" after the server went away
    # "cannot switch to state 15; another operation is in progress": a connection
    # whose last query the server's shutdown cut off mid-protocol (seen in CI twice
    # during a Postgres restart); only a fresh connection recovers from it.
    asyncpg.exceptions.InternalClientError,
)


#: The server is there and said no: retrying will not help until the settings change
#: (SQLSTATE class 28, invalid authorization; 3D000, no such database).
REFUSED: tuple[type[BaseException], ...] = (
    asyncpg.exceptions.InvalidAuthorizationSpecificationError,
    asyncpg.exceptions.InvalidCatalogNameError,
)


def quote_ident(name: str) -> str:
    """A SQL identifier, quoted (schema names come from settings)."""
    return '"' + name.replace('"', '""') + '"'


def unavailable(settings: Settings, exc: BaseException) -> PostgresUnavailable:
    return PostgresUnavailable(
        f"postgres at {redact_url(settings.postgres_dsn)} is unavailable "
        f"({type(exc).__name__}: {exc})".replace("\n", " "),
        fix="start it ('ringtally stack up') or set RINGTALLY_POSTGRES_DSN",
    )


async def connect(
    settings: Settings,
    *,
    timeout: float = 10.0,
    search_path: bool = True,
    restart_grace: float = 0.0,
) -> asyncpg.Connection:
    """One connection with the schema on its search_path; PostgresUnavailable when down.

    ``restart_grace``: seconds to keep trying once the server has said it is
    starting up or shutting down (a restart under way, not a server that is
    absent): a sink restarted while Postgres restarts waits for it instead of
    exiting. A server that is simply not there still fails at once.
    """
    server_settings = {"application_name": "ringtally-sink"}
    if search_path:
        server_settings["search_path"] = quote_ident(settings.postgres_schema)
    loop = asyncio.get_running_loop()
    deadline: float | None = None
    while True:
        try:
            return await asyncpg.connect(
                settings.postgres_dsn, timeout=timeout, server_settings=server_settings
            )
        except REFUSED as exc:  # the server answered: no such role or database, bad password
            raise PostgresUnavailable(
                f"postgres at {redact_url(settings.postgres_dsn)} refused the connection "
                f"({type(exc).__name__}: {exc})".replace("\n", " "),
                fix="check the user, password and database in RINGTALLY_POSTGRES_DSN",
            ) from None
        except asyncpg.ClientConfigurationError as exc:  # settings check most; asyncpg the rest
            raise UsageProblem(
                f"RINGTALLY_POSTGRES_DSN is not usable ({exc})".replace("\n", " "),
                fix="a URL like postgresql://user@host:5432/database",
            ) from None
        except TRANSIENT as exc:
            restarting = isinstance(exc, asyncpg.exceptions.CannotConnectNowError)
            if deadline is None and restarting and restart_grace > 0:
                deadline = loop.time() + restart_grace
                log.warning("postgres is restarting (%s); waiting up to %.0f s", exc, restart_grace)
            if deadline is None or loop.time() >= deadline:
                raise unavailable(settings, exc) from None
            await asyncio.sleep(0.5)
