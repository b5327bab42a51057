"""``ringtally db|sink|audit|readmodel``: the Postgres sink's and the read model's commands.

``COMMANDS`` is what :mod:`connectors.cli.root` mounts: ``db`` (migrate,
status), ``sink``, ``audit`` (verify) and ``readmodel``. Errors surface as
:class:`~streams.errors.RingtallyError`, which the ``ringtally`` entry point
prints as one line with a non-zero exit code. None of them loads the Faust
app (handy where the agents' native core is not built yet).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import signal
import sys
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import click

from streams.errors import RingtallyError
from streams.settings import Settings, get_settings

from ._common import SCHEMA, echo_json

__all__ = ["COMMANDS", "audit", "db", "sink"]

_T = TypeVar("_T")


def _settings(schema: str | None) -> Settings:
    # The name was checked by SCHEMA; the rest comes from the environment as for any command.
    return get_settings() if schema is None else Settings(postgres_schema=schema)


def _logging(verbose: bool = False) -> None:
    root = logging.getLogger("ringtally")
    if not root.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
        root.addHandler(handler)
        root.propagate = False
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    logging.getLogger("aiokafka").setLevel(logging.ERROR)


def _run(make: Callable[[asyncio.Event], Awaitable[_T]]) -> _T:
    """asyncio.run with SIGTERM/SIGINT setting a stop event (the coroutine finishes cleanly)."""

    async def main() -> _T:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        return await make(stop)

    return asyncio.run(main())


_SCHEMA = click.option(
    "--schema",
    default=None,
    type=SCHEMA,
    help="Postgres schema (default: RINGTALLY_POSTGRES_SCHEMA, else 'ringtally').",
)


# --- db ---------------------------------------------------------------------------


@click.group("db")
def db() -> None:
    """Postgres schema management.

    \b
    Example:
      ringtally db migrate
      ringtally db status --schema ringtally
    """


@db.command("migrate")
@_SCHEMA
@click.option("--dry-run", is_flag=True, help="Show what would be applied; change nothing.")
def db_migrate(schema: str | None, dry_run: bool) -> None:
    """Apply pending SQL migrations (idempotent; refuses edited applied ones).

    \b
    Example:
      ringtally db migrate
      RINGTALLY_POSTGRES_SCHEMA=staging ringtally db migrate --dry-run
    """
    from connectors.postgres.migrate import migrate

    settings = _settings(schema)
    result = asyncio.run(migrate(settings, dry_run=dry_run))
    verb = "would apply" if dry_run else "applied"
    if result.applied:
        for mig in result.applied:
            click.echo(f"{verb} {mig.path.name}")
        click.echo(
            f"schema {result.schema} at version {result.version}"
            + (" (dry run: nothing changed)" if dry_run else "")
        )
    else:
        click.echo(f"schema {result.schema} is up to date (version {result.version})")


@db.command("status")
@_SCHEMA
@click.option("--json", "as_json", is_flag=True, help="JSON on stdout (keys: docs/cli.md).")
def db_status(schema: str | None, as_json: bool) -> None:
    """Show the schema's applied migrations and the sink's stored offsets.

    \b
    Example:
      ringtally db status
      ringtally db status --json
    """
    from connectors.postgres.db import connect
    from connectors.postgres.migrate import check_ready, discover

    settings = _settings(schema)

    async def go() -> None:
        conn = await connect(settings)
        try:
            version = await check_ready(conn, settings.postgres_schema)
            counts = {
                table: int(await conn.fetchval(f"SELECT count(*) FROM {table}"))
                for table in (
                    "ballots",
                    "rejections",
                    "tallies",
                    "escalations",
                    "audit_log",
                    "sink_dead_letters",
                )
            }
            offsets = [
                {"topic": r["topic"], "partitions": r["parts"], "records": int(r["total"])}
                for r in await conn.fetch(
                    "SELECT topic, count(*) AS parts, sum(next_offset) AS total "
                    "FROM sink_offsets GROUP BY topic ORDER BY topic"
                )
            ]
        finally:
            await conn.close()
        if as_json:
            echo_json(
                {
                    "schema": settings.postgres_schema,
                    "version": version,
                    "migrations_known": len(discover()),
                    "rows": counts,
                    "offsets": offsets,
                }
            )
            return
        click.echo(
            f"schema {settings.postgres_schema}: version {version} "
            f"({len(discover())} migrations known)"
        )
        for table, n in counts.items():
            click.echo(f"  {table:<18} {n:>12,} rows")
        for o in offsets:
            click.echo(
                f"  offsets {o['topic']}: {o['partitions']} partitions, "
                f"{o['records']:,} records consumed"
            )

    asyncio.run(go())


# --- sink ---------------------------------------------------------------------------


@click.command("sink")
@_SCHEMA
@click.option(
    "--once", is_flag=True, help="Stop once caught up with the end offsets seen at start."
)
@click.option(
    "--until-idle",
    type=click.FloatRange(0, min_open=True),
    default=None,
    metavar="SECONDS",
    help="Stop after SECONDS without a record (tests, benches).",
)
@click.option(
    "--batch-size",
    type=click.IntRange(1, 100_000),
    default=5000,
    show_default=True,
    help="Most records per Postgres transaction.",
)
@click.option(
    "--loader",
    type=click.Choice(["copy", "unnest"]),
    default="copy",
    show_default=True,
    help="How a batch is bulk-loaded into Postgres.",
)
@click.option("--group-id", default=None, help="Kafka consumer group (default <prefix>-sink).")
@click.option("--migrate", "do_migrate", is_flag=True, help="Run 'db migrate' first.")
@click.option(
    "--readmodel/--no-readmodel",
    default=True,
    show_default=True,
    help="Also keep the Redis read model current (in this process).",
)
@click.option(
    "--accept-gap",
    is_flag=True,
    help="Go on past records deleted from the log (retention) before the sink stored them: "
    "the loss is logged and counted. Without it the sink stops with exit 4.",
)
@click.option("-v", "--verbose", is_flag=True, help="Debug logging.")
def sink(
    schema: str | None,
    once: bool,
    until_idle: float | None,
    batch_size: int,
    loader: str,
    group_id: str | None,
    do_migrate: bool,
    readmodel: bool,
    accept_gap: bool,
    verbose: bool,
) -> None:
    """Copy ballots, tallies, rejections and audit events into Postgres, exactly once.

    Offsets are stored in Postgres in the same transaction as the rows; on
    start and on every rebalance the sink seeks to them. With --readmodel
    (the default) the Redis read model runs in the same process.

    \b
    Example:
      ringtally db migrate && ringtally sink
      ringtally sink --once --no-readmodel        # drain what is there, then exit
    """
    from connectors.postgres.migrate import migrate
    from connectors.postgres.sink import Sink
    from connectors.readmodel.task import ReadModel

    _logging(verbose)
    settings = _settings(schema)
    if do_migrate:
        asyncio.run(migrate(settings))

    async def go(stop: asyncio.Event) -> None:
        s = Sink(
            settings,
            batch_size=batch_size,
            group_id=group_id,
            loader=loader,  # type: ignore[arg-type]
            once=once,
            until_idle=until_idle,
            stop=stop,
            accept_gap=accept_gap,
        )
        if not readmodel:
            await s.run()
            return
        rm_stop = asyncio.Event()
        forever = not (once or until_idle is not None)  # else Redis down ends it, one line
        rm = ReadModel(
            settings, stop=rm_stop, once=once, until_idle=until_idle, wait_for_redis=forever
        )
        s.watch("redis (read model)", rm.outage)
        rm_task = asyncio.create_task(rm.run())
        rm_task.add_done_callback(functools.partial(_read_model_ended, rm))
        relay = asyncio.create_task(_relay(stop, rm_stop))
        try:
            await s.run()
            if not (once or until_idle is not None):
                rm_stop.set()
            await rm_task
        finally:
            relay.cancel()
            if not rm_task.done():
                rm_stop.set()
                await asyncio.wait([rm_task], timeout=10)
            if rm_task.done() and not rm_task.cancelled():
                rm_task.exception()  # seen: the sink's own error is the one line reported

    _run(go)


def _read_model_ended(rm: Any, task: asyncio.Task) -> None:
    """A read model that stops with an error (Redis refused the login, say) while the sink
    goes on: one line now, not at shutdown, and /health reports it down from then on."""
    if task.cancelled() or task.exception() is None:
        return
    exc = task.exception()
    text = exc.one_line() if isinstance(exc, RingtallyError) else f"{type(exc).__name__}: {exc}"
    logging.getLogger("ringtally.readmodel").error(
        "read model stopped (%s); the sink goes on without it", text
    )
    rm.outage.stopped()


async def _relay(src: asyncio.Event, dst: asyncio.Event) -> None:
    await src.wait()
    dst.set()


@click.command("readmodel")
@click.option("--once", is_flag=True, help="Stop once caught up with the tallies topic.")
@click.option(
    "--until-idle",
    type=click.FloatRange(0, min_open=True),
    default=None,
    metavar="SECONDS",
    help="Stop after SECONDS without a record.",
)
@click.option("-v", "--verbose", is_flag=True, help="Debug logging.")
def readmodel(once: bool, until_idle: float | None, verbose: bool) -> None:
    """Keep the Redis read model (latest tally per submission) current, on its own.

    The sink runs this already; use it to run the read model elsewhere, or to
    rebuild a lost one (it rebuilds from the tallies topic when its marker key
    is missing).

    \b
    Example:
      ringtally readmodel
      redis-cli -p 16379 hgetall ringtally:tally:sub-1
    """
    from connectors.readmodel.task import ReadModel

    _logging(verbose)
    settings = get_settings()
    _run(lambda stop: ReadModel(settings, stop=stop, once=once, until_idle=until_idle).run())


# --- audit --------------------------------------------------------------------------


@click.group("audit")
def audit() -> None:
    """The hash-chained audit trail.

    \b
    Example:
      ringtally audit verify
    """


@audit.command("verify")
@_SCHEMA
@click.option("--chain", default=None, help="Check only this chain (e.g. tally-3).")
@click.option("--quiet", is_flag=True, help="No progress bar.")
@click.option("--json", "as_json", is_flag=True, help="JSON on stdout (keys: docs/cli.md).")
def audit_verify(schema: str | None, chain: str | None, quiet: bool, as_json: bool) -> None:
    """Recompute every audit hash chain in Postgres; exit 1 at a broken link.

    \b
    Example:
      ringtally audit verify
      ringtally audit verify --chain tally-0
      ringtally audit verify --json
    """
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    from connectors.postgres.audit_verify import count_events, verify
    from connectors.postgres.errors import AuditChainBroken

    settings = _settings(schema)
    console = Console(stderr=True)
    total = asyncio.run(count_events(settings, chain))
    show = not quiet and not as_json and console.is_terminal and total > 10_000
    with Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=console,
        disable=not show,
        transient=True,
    ) as bar:
        task = bar.add_task("verifying audit chains", total=total)
        result = asyncio.run(
            verify(settings, chain=chain, progress=lambda n: bar.update(task, completed=n))
        )
    if as_json:
        echo_json(
            {
                "ok": result.ok,
                "events": result.events,
                "chains": result.chains,
                "breaks": [
                    {"chain": b.chain, "sequence": b.sequence, "problem": b.problem}
                    for b in result.breaks
                ],
            }
        )
    if result.ok:
        if not as_json:
            click.echo(f"all {result.events} events in {result.chains} chains check out")
        return
    for b in result.breaks if not as_json else ():
        click.echo(f"BROKEN chain {b.chain} at sequence {b.sequence}: {b.problem}")
    first = result.breaks[0]
    raise AuditChainBroken(
        f"{len(result.breaks)} of {result.chains} chains broken; first: chain {first.chain} "
        f"sequence {first.sequence}: {first.problem}"
    )


COMMANDS: tuple[click.Command, ...] = (db, sink, audit, readmodel)
