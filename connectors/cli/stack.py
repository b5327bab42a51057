"""``stack`` command group: up, down, status, logs (and fetch for ``make deps``).

A plain click group with no dependency on the Faust app, mounted into the
``ringtally`` CLI by :mod:`connectors.cli.root`. Every failure prints one line per failed
piece on stderr and exits 1; click itself exits 2 on bad usage.
"""

from __future__ import annotations

import functools
import logging
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from connectors.stack.errors import StackError, display_path
from connectors.stack.paths import ALL_PIECES, SECURE
from connectors.stack.process import tail_lines
from streams.errors import RingtallyError

__all__ = ["stack"]

_F = TypeVar("_F", bound=Callable[..., Any])
_PIECE = click.Choice(ALL_PIECES)


def _fail(lines: list[str], code: int = 1) -> None:
    for line in lines:
        click.echo(line, err=True)
    sys.exit(code)


def _errors_as_lines(fn: _F) -> _F:
    """StackError becomes one line each on stderr, exit 1; a bad setting one line, exit 2."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except StackError as exc:
            _fail(exc.lines())
        except KeyboardInterrupt:
            _fail(["stack: interrupted"], 130)
        except Exception as exc:
            if type(exc).__name__ == "ValidationError":  # pydantic: a bad RINGTALLY_* value
                _fail([_settings_error(exc)], 2)
            raise
        return None

    return wrapper  # type: ignore[return-value]


def _settings_error(exc: Exception) -> str:
    """``stack: invalid setting RINGTALLY_PARTITIONS: Input should be ...``: the variable, never
    its value (it may hold a password; :func:`streams.settings.setting_error`)."""
    from streams.settings import setting_error

    return f"stack: invalid setting {setting_error(exc)}"  # type: ignore[arg-type]


def _stack(brokers: int | None = None):  # noqa: ANN202 - lazy: `--help` needs no settings
    from connectors.stack.manager import LocalStack

    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)  # probes fail while starting
    return LocalStack(brokers=brokers)


class _Progress:
    """Per-piece progress: a spinner per line on a terminal, plain lines otherwise."""

    def __init__(self) -> None:
        self.tty = sys.stdout.isatty()
        self.lines: dict[str, str] = {}
        self.live = None

    def __enter__(self) -> _Progress:
        if self.tty:
            from rich.live import Live

            self.live = Live(self._render(), refresh_per_second=10, transient=True)
            self.live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.live is not None:
            self.live.__exit__(None, None, None)

    def __call__(self, piece: str, message: str) -> None:
        self.lines[piece] = message
        if self.live is not None:
            self.live.update(self._render())
        else:
            click.echo(f"{piece}: {message}")

    def _render(self):  # noqa: ANN202
        from rich.spinner import Spinner
        from rich.table import Table

        grid = Table.grid(padding=(0, 1))
        for piece, message in self.lines.items():
            mark = "[green]✓[/]" if message.startswith("healthy") else Spinner("dots")
            grid.add_row(mark, f"[bold]{piece:<8}[/]", message)
        if not self.lines:
            grid.add_row(Spinner("dots"), "checking the stack")
        return grid


@click.group(name="stack")
def stack() -> None:
    """Local Kafka, PostgreSQL and Redis as plain processes on 127.0.0.1.

    Ports, addresses and the data dir come from the RINGTALLY_* settings
    (defaults: Kafka 127.0.0.1:19092, PostgreSQL :15432, Redis :16379, data in
    .ringtally/). No container engine is needed.

    \b
    Example:
      ringtally stack up && ringtally stack status
    """


def _ensure_log_key(settings: Any) -> None:
    """The development log key (signed tree heads): created on the first ``stack up`` when
    no log key file is configured, with ``<data_dir>/log.pub`` for ``receipt verify``."""
    if settings.log_key_file is not None:
        return  # configured explicitly: the operator manages the log key
    from streams.keyfile import load_service_key

    try:
        key = load_service_key(settings.log_key_path, configured=False, what="log")
    except RingtallyError as exc:
        _fail([f"stack: log key: {exc.one_line()}"])
        return
    click.echo(f"log key {settings.log_key_path} public key {key.public_key.hex()}")


@stack.command()
@click.argument("pieces", nargs=-1, type=_PIECE)
@click.option(
    "--timeout",
    type=float,
    default=None,
    metavar="SECONDS",
    help="How long each piece may take to become healthy after it starts "
    "(default: kafka 90, postgres 60, redis 30).",
)
@click.option(
    "--secure",
    is_flag=True,
    help="Start the secured Kafka (SASL_SSL, SCRAM users per role, ACLs) on "
    "RINGTALLY_KAFKA_SECURE_PORT (19094) beside the plain stack; credentials in "
    "<data_dir>/stack/secure/credentials.json (docs/security.md).",
)
@click.option(
    "--brokers",
    type=click.IntRange(1, 5),
    default=None,
    metavar="N",
    help="Kafka as a KRaft cluster of N brokers (replication factor min(N, 3), "
    "min.insync.replicas one less; default: as the stack was formatted, else 1). "
    "Changing it needs 'stack down --purge'.",
)
@_errors_as_lines
def up(pieces: tuple[str, ...], timeout: float | None, secure: bool, brokers: int | None) -> None:
    """Start the stack (or just PIECES) and wait until every piece is healthy.

    Idempotent: pieces already running are only checked. The first start
    fetches the Kafka jars with Maven and formats the data dirs.

    \b
    Examples:
      ringtally stack up
      ringtally stack up kafka --timeout 120
      ringtally stack up --brokers 3
    """
    local = _stack(brokers)
    t0 = time.monotonic()
    if secure:
        pieces = (*pieces, SECURE) if pieces else (SECURE,)
    with _Progress() as progress:
        results = local.up(pieces or None, timeout=timeout, report=progress)
    for name, res in results.items():
        svc = local.services[name]
        how = {
            "started": f"started in {res.seconds:.1f}s",
            "already running": "already running",
            "adopted": f"adopted in {res.seconds:.1f}s",
        }[res.action]
        click.echo(f"{name:<9}127.0.0.1:{svc.ports[0]:<6} pid {res.pid:<8} healthy, {how}")
    if local.brokers > 1:
        addresses = ",".join(f"127.0.0.1:{local.services[n].ports[0]}" for n in local.kafka_nodes)
        click.echo(
            f"kafka: {local.brokers} brokers; give clients all of them and replicate topics:"
            f" RINGTALLY_KAFKA_BOOTSTRAP={addresses}"
            f" RINGTALLY_REPLICATION_FACTOR={min(local.brokers, 3)}"
        )
    _ensure_registrar_key(local.settings)
    _ensure_log_key(local.settings)
    if SECURE in results:
        from ._service_users import provision_service_users

        creds_file = local.services[SECURE].credentials_file
        for line in provision_service_users(local.settings, creds_file):
            click.echo(f"secure   {line}")
        click.echo(f"secure   credentials (mode 0600) in {display_path(creds_file)}")
    click.echo(f"stack up: {len(results)} healthy in {time.monotonic() - t0:.1f}s")


def _ensure_registrar_key(settings: Any) -> None:
    """The development registrar key: created on the first ``stack up`` when no registrar
    key file is configured, so that workers trust ``<data_dir>/registrar.pub`` and the
    CLI's ``rings``/``submissions`` commands sign with it."""
    if settings.registrar_key_file is not None or settings.registrar_public_keys:
        return  # configured explicitly: the operator manages the registrar key
    from connectors.sdk.registrar import load_registrar

    try:
        registrar = load_registrar(settings)
    except RingtallyError as exc:
        _fail([f"stack: registrar key: {exc.one_line()}"])
        return
    click.echo(f"registrar {settings.registrar_key_path} public key {registrar.public_key.hex()}")


@stack.command()
@click.argument("pieces", nargs=-1, type=_PIECE)
@click.option(
    "--purge", is_flag=True, help="Also delete their data (topics, tables); keeps the jar cache."
)
@_errors_as_lines
def down(pieces: tuple[str, ...], purge: bool) -> None:
    """Stop the stack's processes (only those it started).

    A process is stopped only if its PID file, start time and command line
    all match what 'up' recorded: SIGTERM (PostgreSQL: SIGINT), then SIGKILL
    after a grace period.

    \b
    Examples:
      ringtally stack down
      ringtally stack down kafka --purge     # wipe Kafka's topics, keep the rest
    """
    local = _stack()
    with _Progress() as progress:
        results = local.down(pieces or None, purge=purge, report=progress)
    for name, what in results.items():
        click.echo(f"{name:<9}{what}")


@stack.command()
@click.argument("pieces", nargs=-1, type=_PIECE)
@click.option("--check", is_flag=True, help="Exit 1 unless every piece shown is healthy.")
@click.option("--json", "as_json", is_flag=True, help="JSON on stdout (keys: docs/cli.md).")
@_errors_as_lines
def status(pieces: tuple[str, ...], check: bool, as_json: bool) -> None:
    """Show each piece: address, PID, health and log file.

    \b
    Examples:
      ringtally stack status
      ringtally stack status kafka --check && echo kafka is up
      ringtally stack status --json
    """
    from rich.console import Console
    from rich.table import Table

    from ._common import echo_json

    local = _stack()
    rows = local.status(pieces or None)
    if any(st.state == "port taken" for st in rows):  # most often: a stack of another data dir
        from streams.settings import locate_data_dir

        why = "RINGTALLY_DATA_DIR" if "RINGTALLY_DATA_DIR" in os.environ else locate_data_dir()[1]
        click.echo(
            f"ringtally: hint: a port is used by a process this data directory did not start "
            f"({local.settings.data_dir}, from {why}); if it is a ringtally stack started "
            "elsewhere, set RINGTALLY_DATA_DIR to its data directory (in its command line)",
            err=True,
        )
    if as_json:
        echo_json(
            [
                {
                    "piece": st.piece,
                    "address": f"127.0.0.1:{st.port}",
                    "pid": st.pid,
                    "state": st.state,
                    "healthy": st.healthy,
                    "detail": st.detail,
                    "log": str(st.log_file),
                }
                for st in rows
            ]
        )
        if check and not all(st.healthy for st in rows):
            sys.exit(1)
        return
    table = Table(title=None, show_lines=False)
    for col in ("piece", "address", "pid", "state", "detail", "log"):
        table.add_column(col)
    colour = {"healthy": "green", "unhealthy": "yellow", "stopped": "dim", "port taken": "red"}
    for st in rows:
        table.add_row(
            st.piece,
            f"127.0.0.1:{st.port}",
            str(st.pid) if st.pid else "-",
            f"[{colour[st.state]}]{st.state}[/]",
            st.detail,
            display_path(st.log_file),
        )
    Console(width=None if sys.stdout.isatty() else 200).print(table)
    if check and not all(st.healthy for st in rows):
        _fail([f"{st.piece}: {st.state} ({st.detail})" for st in rows if not st.healthy])


@stack.command()
@click.argument("piece", required=False, type=_PIECE)
@click.option(
    "-n",
    "--lines",
    "n",
    type=click.IntRange(min=0),
    default=50,
    show_default=True,
    help="How many lines to show from the end of each log.",
)
@click.option("-f", "--follow", is_flag=True, help="Keep printing new lines (Ctrl-C stops).")
@_errors_as_lines
def logs(piece: str | None, n: int, follow: bool) -> None:
    """Show the log of PIECE (default: all three).

    \b
    Examples:
      ringtally stack logs kafka -n 100
      ringtally stack logs postgres --follow
    """
    local = _stack()
    files = [s.log_file for s in local.select([piece] if piece else None)]
    many = len(files) > 1
    for path in files:
        if many:
            click.echo(f"==> {display_path(path)} <==")
        if not path.exists():
            click.echo(f"(no log yet: {display_path(path)})")
        for line in tail_lines(path, n):
            click.echo(line)
    if follow:
        try:
            _follow(files, prefix=many)
        except KeyboardInterrupt:
            return


def _follow(files: list[Path], *, prefix: bool) -> None:
    """tail -F: notices a log rotated by a restart and starts the new file from 0."""
    pos: dict[Path, tuple[int, int]] = {}
    for p in files:
        try:
            st = p.stat()
            pos[p] = (st.st_ino, st.st_size)
        except FileNotFoundError:
            pos[p] = (0, 0)
    while True:
        for p in files:
            try:
                st = p.stat()
            except FileNotFoundError:
                continue
            inode, offset = pos[p]
            if st.st_ino != inode or st.st_size < offset:
                offset = 0
            if st.st_size > offset:
                with open(p, "rb") as fh:
                    fh.seek(offset)
                    data = fh.read()
                # print whole lines only; keep a partial last line for the next round
                cut = data.rfind(b"\n") + 1
                for line in data[:cut].decode(errors="replace").splitlines():
                    click.echo(f"{p.stem}: {line}" if prefix else line)
                offset += cut
            pos[p] = (st.st_ino, offset)
        time.sleep(0.3)


@stack.command()
@_errors_as_lines
def fetch() -> None:
    """Download the Kafka jars into the cache now (what 'up' does on first use).

    \b
    Example:
      ringtally stack fetch      # e.g. in 'make deps', so tests start warm
    """
    from connectors.stack.kafka import ensure_libs, kafka_version

    local = _stack()
    local.paths.ensure()
    libs = ensure_libs(local.paths.cache_dir, lambda piece, msg: click.echo(f"{piece}: {msg}"))
    size = sum(f.stat().st_size for f in libs.iterdir()) / (1 << 20)
    click.echo(f"kafka {kafka_version()} jars in {display_path(libs)} ({size:.0f} MiB)")
