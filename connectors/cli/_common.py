"""What every operator command shares: settings, argument types, error translation, output.

Error policy (the ``ringtally`` entry point prints errors as ONE line):

* a bad argument is a ``click.BadParameter`` / ``UsageProblem`` -> exit 2;
* Kafka, Postgres or Redis not answering is a ``ServiceUnavailable`` -> exit 2
  (nothing was done);
* :func:`one_line_errors` turns what libraries raise for bad input (pydantic
  ``ValidationError``, ``ringcrypto.MalformedInput``, a bad ``RINGTALLY_*``
  setting) into those, so no user mistake ends in a traceback. Anything else
  is a bug and keeps its traceback.
"""

from __future__ import annotations

import asyncio
import functools
import json
import re
import sys
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any, TypeVar

import click

from streams.errors import RingtallyError, ServiceUnavailable, UsageProblem

__all__ = [
    "EPOCH",
    "IDENTIFIER",
    "PUBLIC_KEY",
    "SCHEMA",
    "HexBytes",
    "echo_json",
    "get_settings",
    "kafka_settings",
    "one_line_errors",
    "pg_fetch",
    "print_table",
]

_F = TypeVar("_F", bound=Callable[..., Any])
_T = TypeVar("_T")


def get_settings():  # noqa: ANN201 - streams.settings.Settings
    """The process settings; a bad ``RINGTALLY_*`` value is a one-line usage problem when a
    command reads it, and no problem for a command that does not (never shows a secret)."""
    from streams.settings import lenient_settings

    return lenient_settings()


def kafka_settings():  # noqa: ANN201 - streams.settings.Settings
    """:func:`get_settings`, after checking that Kafka answers (one line, exit 2, if not).

    Also silences librdkafka's own log lines: a command reports a Kafka problem
    as its one-line error, not as a screenful of reconnect attempts.
    """
    import logging

    from connectors.sdk.producer import KAFKA_LOGGER
    from connectors.sdk.reader import check_kafka

    KAFKA_LOGGER.setLevel(logging.CRITICAL + 1)
    settings = get_settings()
    check_kafka(settings, timeout=settings.kafka_timeout)
    return settings


def one_line_errors(fn: _F) -> _F:
    """Translate library errors caused by bad input into ringtally's one-line errors."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from confluent_kafka import KafkaException
        from pydantic import ValidationError

        import ringcrypto

        try:
            return fn(*args, **kwargs)
        except (RingtallyError, click.ClickException, click.exceptions.Exit):
            raise
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first.get("loc", ())) or exc.title
            raise UsageProblem(
                f"invalid {where}: {first['msg']} (got {first.get('input')!r})"
            ) from None
        except ringcrypto.MalformedInput as exc:
            raise UsageProblem(f"rejected by ringcrypto: {exc}") from None
        except KafkaException as exc:
            err = exc.args[0] if exc.args else exc
            detail = err.str() if hasattr(err, "str") else str(err)
            raise ServiceUnavailable(
                f"kafka: {detail}", fix="is Kafka up? ('ringtally stack status')"
            ) from None

    return wrapper  # type: ignore[return-value]


# --- argument types -------------------------------------------------------------------


class _Pattern(click.ParamType):
    def __init__(self, name: str, pattern: str, what: str, *, lower: bool = False) -> None:
        self.name = name
        self._re = re.compile(pattern)
        self._what = what
        self._lower = lower

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        text = str(value).lower() if self._lower else str(value)
        if not self._re.fullmatch(text):
            self.fail(f"{value!r} is not {self._what}", param, ctx)
        return text


#: Ring, submission and genre ids: 1-128 printable ASCII characters, no spaces.
IDENTIFIER = _Pattern(
    "ID", r"[\x21-\x7e]{1,128}", "an id (1-128 printable ASCII characters, no spaces)"
)
EPOCH = click.IntRange(0, 2**32 - 1)


class _SchemaName(click.ParamType):
    """A Postgres schema name: the rule of ``RINGTALLY_POSTGRES_SCHEMA``, checked as an option
    (so the error names ``--schema``, not the variable)."""

    name = "NAME"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        from streams.settings import PLAIN_NAME

        if not PLAIN_NAME.match(str(value)):
            self.fail(
                f"{value!r} is not a schema name (1-100 letters, digits, '.', '_' or '-')",
                param,
                ctx,
            )
        return str(value)


SCHEMA = _SchemaName()


class HexBytes(click.ParamType):
    """Exactly ``size`` bytes as hex (any case)."""

    def __init__(self, size: int, name: str) -> None:
        self.size = size
        self.name = name

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> bytes:
        if isinstance(value, bytes):
            return value
        text = str(value).strip()
        if not re.fullmatch(rf"[0-9a-fA-F]{{{2 * self.size}}}", text):
            self.fail(
                f"{value!r} is not {self.size} bytes of hex ({2 * self.size} hex digits)",
                param,
                ctx,
            )
        return bytes.fromhex(text)


class _PublicKey(HexBytes):
    """A ristretto255 public key as 64 hex digits, checked by ringcrypto's strict decoding."""

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> bytes:
        import ringcrypto

        raw = super().convert(value, param, ctx)
        try:
            ringcrypto.Ring([raw])
        except ringcrypto.MalformedInput as exc:
            self.fail(f"{value!r} is not a valid public key ({exc.kind})", param, ctx)
        return raw


PUBLIC_KEY = _PublicKey(32, "PUBHEX")


# --- output -----------------------------------------------------------------------------


def echo_json(value: Any) -> None:
    click.echo(json.dumps(value, indent=2, sort_keys=False, default=str))


def print_table(title: str | None, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    """A rich table on stdout; full width (no truncation) when stdout is not a terminal."""
    from rich.console import Console
    from rich.table import Table

    console = Console()
    if not console.is_terminal:
        console = Console(width=240)
    table = Table(title=title, show_lines=False)
    for name in columns:
        table.add_column(name, no_wrap=True, overflow="fold")
    for row in rows:
        table.add_row(*("" if v is None else str(v) for v in row))
    console.print(table)


# --- postgres -----------------------------------------------------------------------------


def pg_fetch(settings: Any, query: str, *args: Any) -> list[Any]:
    """Run one query in ``settings.postgres_schema`` (checked migrated); one-line errors."""

    async def fetch(conn: Any) -> list[Any]:
        return list(await conn.fetch(query, *args))

    return pg_run(settings, fetch)


def pg_run(settings: Any, use: Callable[[Any], Awaitable[_T]]) -> _T:
    """``use(connection)`` in ``settings.postgres_schema`` (checked migrated); one-line errors."""
    import asyncpg

    from connectors.postgres.db import connect, unavailable
    from connectors.postgres.migrate import check_ready

    async def go() -> _T:
        try:
            conn = await connect(settings)
        except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError) as exc:
            raise unavailable(settings, exc) from None  # e.g. a wrong password
        try:
            await check_ready(conn, settings.postgres_schema)
            return await use(conn)
        finally:
            await conn.close()

    return run(go())


def run(coro: Awaitable[_T]) -> _T:
    return asyncio.run(coro)  # type: ignore[arg-type]


def err(message: str) -> None:
    click.echo(message, err=True)


def stdin_is_terminal() -> bool:
    return sys.stdin.isatty()
