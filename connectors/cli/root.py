"""The ``ringtally`` command: every command in one click group, one error handler, one ``main``.

ringtally's own commands run without the Faust app, so ``--help`` and the
operator commands stay fast. Faust's CLI (and the app with its agents) is
loaded only for ``worker`` (:data:`FAUST_COMMANDS`), with Faust's own options.
Faust's other commands are not offered (issue 18: ``completion`` wanted a 2019
package, ``agents`` crashed, and none is needed to run ringtally); the root
``--help`` and ``--version`` are ringtally's, and shell completion is Click's
own (``_RINGTALLY_COMPLETE=bash_source ringtally``, docs/cli.md).

The group runs with ``standalone_mode=False`` so that a bad argument or an
unreachable service is printed as ONE line with exit code 2 (a
:class:`~streams.errors.RingtallyError` keeps its own code) instead of
click's three-line usage block or a traceback.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

import click

from streams.errors import RingtallyError

from .bulletin import COMMANDS as BULLETIN_COMMANDS
from .config import config
from .gateway import gateway
from .keys import keys
from .produce import produce
from .receipt import receipt
from .rejections import rejections
from .replay import COMMANDS as REPLAY_COMMANDS
from .rings import rings
from .sink import COMMANDS as SINK_COMMANDS
from .stack import stack
from .submissions import submissions
from .tally import tally
from .vote import vote
from .witness import witness

__all__ = ["COMMANDS", "FAUST_COMMANDS", "cli", "main"]

#: ringtally's own commands, in the order they were added to the group.
COMMANDS: tuple[click.Command, ...] = (
    stack,
    *SINK_COMMANDS,
    *REPLAY_COMMANDS,
    keys,
    rings,
    submissions,
    vote,
    produce,
    tally,
    rejections,
    gateway,
    config,
    receipt,
    *BULLETIN_COMMANDS,
    witness,
)

#: Faust's commands ringtally offers (its own one-line help), run by Faust's CLI.
FAUST_COMMANDS: dict[str, str] = {
    "worker": "Run a worker: verify and tally votes (Faust's worker; --help for its options).",
}


def version_line() -> str:
    """``ringtally X (ringcrypto Y, spec Z)``: the package and the Rust core it runs."""
    from streams.version import versions

    v = versions()
    return f"ringtally {v['version']} (ringcrypto {v['ringcrypto']}, spec {v['spec']})"


def _print_version(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    if value and not ctx.resilient_parsing:
        click.echo(version_line())
        ctx.exit()


def _faust_command(name: str, short_help: str) -> click.Command:
    """A stand-in listed in ``ringtally --help`` that hands its arguments to Faust's CLI."""

    @click.pass_context
    def callback(ctx: click.Context) -> Any:
        return _run_faust([name, *ctx.args])

    return click.Command(
        name,
        callback=callback,
        short_help=short_help,
        add_help_option=False,
        context_settings={"ignore_unknown_options": True, "allow_extra_args": True},
    )


@click.group("ringtally")
@click.option(
    "--version",
    is_flag=True,
    expose_value=False,
    is_eager=True,
    callback=_print_version,
    help="Print ringtally's version and its Rust core's, and exit.",
)
def cli() -> None:
    """ringtally: anonymous, rate-limited review votes on Kafka (k per reviewer and epoch).

    \b
    Example:
      ringtally stack up && ringtally worker --loglevel info

    \b
    Shell completion (bash; zsh and fish alike):
      eval "$(_RINGTALLY_COMPLETE=bash_source ringtally)"
    """


for _command in (*COMMANDS, *(_faust_command(n, h) for n, h in FAUST_COMMANDS.items())):
    cli.add_command(_command)


def _web_port_option(args: Sequence[str]) -> str | None:
    """The value of Faust's ``-p``/``--web-port`` worker option, if given."""
    for i, arg in enumerate(args):
        if arg in ("-p", "--web-port") and i + 1 < len(args):
            return args[i + 1]
        if arg.startswith("--web-port="):
            return arg.split("=", 1)[1]
        if arg.startswith("-p") and arg[2:].isdigit():
            return arg[2:]
    return None


def _run_faust(args: list[str]) -> Any:
    """Faust's ``app.main()`` steps, minus its unconditional standalone click run."""
    import os

    from faust.cli.faust import cli as faust_cli

    from streams.settings import get_settings

    # `worker -p 6067` (Faust's way to run a second worker on one host) must reach the
    # settings before the app is built: the port names the worker's RocksDB directory.
    if "--help" in args:  # help runs nothing: a bad RINGTALLY_* value must not stop it
        from streams.settings import lenient_settings

        broken = {f"RINGTALLY_{name.upper()}" for name in lenient_settings().broken}
        for variable in [v for v in os.environ if v.upper() in broken]:
            del os.environ[variable]
        get_settings.cache_clear()
    port = _web_port_option(args)
    if port is not None and port.isdigit() and 1 <= int(port) <= 65535:  # else Faust's error
        os.environ["RINGTALLY_WEB_PORT"] = port
        get_settings.cache_clear()

    import agents.pipeline  # registers the agents on the app
    from streams.app import app

    app.finalize()
    app.worker_init()
    app.worker_init_post_autodiscover()
    # Refuse to start, in one line, before Faust starts anything: registrar keys known,
    # votes/control topics on broker time. Only the command word counts (not an argument
    # that happens to read "worker"), and asking for help starts nothing. Only --help is
    # help: Faust's worker takes -h for --web-host (it skipped the checks, issue 18).
    command = next((a for a in args if a in FAUST_COMMANDS), None)
    if command == "worker" and "--help" not in args:
        agents.pipeline.check_worker_can_start()
    return faust_cli.main(args=args, prog_name="ringtally", standalone_mode=False, app=app)


def _wants_faust(args: Sequence[str]) -> bool:
    """The first command word is one of Faust's (its root options may come before it)."""
    word = next((a for a in args if a in FAUST_COMMANDS or a in cli.commands), None)
    return word in FAUST_COMMANDS


def _one_line_errors(run: Callable[[], Any]) -> int:
    """Run a command; a user's mistake or an unreachable service becomes one line on stderr."""
    from pydantic import ValidationError

    from streams.settings import setting_error

    try:
        code = run()
    except ValidationError as exc:  # a RINGTALLY_* variable with a bad value
        print(f"ringtally: error: {setting_error(exc)}", file=sys.stderr)
        return 2
    except click.exceptions.Abort:
        print("ringtally: aborted", file=sys.stderr)
        return 1
    except click.ClickException as exc:
        print(f"ringtally: error: {exc.format_message()}", file=sys.stderr)
        return exc.exit_code
    except RingtallyError as exc:
        print(f"ringtally: error: {exc.one_line()}", file=sys.stderr)
        return exc.exit_code
    return code if isinstance(code, int) else 0


def main(argv: Sequence[str] | None = None) -> NoReturn:
    """Entry point of the ``ringtally`` console script (and ``python -m connectors.cli``)."""
    from streams.settings import unknown_variables

    args = list(sys.argv[1:] if argv is None else argv)
    for variable, close in unknown_variables():  # a typo would be silently ignored
        hint = f"; did you mean {close}?" if close else ""
        print(f"ringtally: warning: {variable} is not a ringtally setting{hint}", file=sys.stderr)

    def run() -> Any:
        # A bad RINGTALLY_* value stops only the commands that read it (issue 18: it
        # stopped --version, every --help and config show): not checked here.
        if _wants_faust(args):
            return _run_faust(args)
        return cli.main(args=args, prog_name="ringtally", standalone_mode=False)

    sys.exit(_one_line_errors(run))
