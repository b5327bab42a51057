"""The ``ringtally`` command: every command in one click group, one error handler, one ``main``.

ringtally's own commands run without the Faust app, so ``--help`` and the
operator commands stay fast. Faust's CLI (and the app with its agents) is
loaded only when a Faust command is named: ``worker``, or one of Faust's
maintenance commands (:data:`FAUST_COMMANDS`), with Faust's own options.

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
    receipt,
    *BULLETIN_COMMANDS,
    witness,
)

#: Faust's commands (its own one-line help), run by Faust's CLI with the app loaded.
FAUST_COMMANDS: dict[str, str] = {
    "agents": "List agents.",
    "clean-versions": "Delete old version directories.",
    "completion": "Output shell completion to be evaluated by the shell.",
    "livecheck": "Manage LiveCheck instances.",
    "model": "Show model detail.",
    "models": "List all available models as a tabulated list.",
    "reset": "Delete local table state.",
    "send": "Send message to agent/topic.",
    "tables": "List available tables.",
    "worker": "Start worker instance for given app.",
}


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
def cli() -> None:
    """ringtally: anonymous, rate-limited review votes on Kafka (k per reviewer and epoch).

    \b
    Example:
      ringtally stack up && ringtally worker --loglevel info
    """


for _command in (*COMMANDS, *(_faust_command(n, h) for n, h in FAUST_COMMANDS.items())):
    cli.add_command(_command)


def _run_faust(args: list[str]) -> Any:
    """Faust's ``app.main()`` steps, minus its unconditional standalone click run."""
    from faust.cli.faust import cli as faust_cli

    import agents.pipeline  # registers the agents on the app
    from streams.app import app

    app.finalize()
    app.worker_init()
    app.worker_init_post_autodiscover()
    # Refuse to start, in one line, before Faust starts anything: registrar keys known,
    # votes/control topics on broker time. Only the command word counts (not an argument
    # that happens to read "worker"), and asking for help starts nothing.
    command = next((a for a in args if a in FAUST_COMMANDS), None)
    if command == "worker" and not {"--help", "-h"} & set(args):
        agents.pipeline.check_worker_can_start()
    return faust_cli.main(args=args, prog_name="ringtally", standalone_mode=False, app=app)


def _wants_faust(args: Sequence[str]) -> bool:
    """The first command word is one of Faust's (its root options may come before it)."""
    word = next((a for a in args if a in FAUST_COMMANDS or a in cli.commands), None)
    if word is None:
        return "--version" in args  # Faust's root option: "ringtally, version Faust 0.15.3"
    return word in FAUST_COMMANDS


def _one_line_errors(run: Callable[[], Any]) -> int:
    """Run a command; a user's mistake or an unreachable service becomes one line on stderr."""
    from pydantic import ValidationError

    try:
        code = run()
    except ValidationError as exc:  # a RINGTALLY_* variable with a bad value
        err = exc.errors()[0]
        name = "RINGTALLY_" + "_".join(str(p) for p in err.get("loc", ())).upper()
        print(f"ringtally: error: {name}: {err.get('msg', 'invalid value')}", file=sys.stderr)
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
    from streams.settings import get_settings

    args = list(sys.argv[1:] if argv is None else argv)

    def run() -> Any:
        get_settings()  # a bad RINGTALLY_* variable: one line, whatever the command
        if _wants_faust(args):
            return _run_faust(args)
        return cli.main(args=args, prog_name="ringtally", standalone_mode=False)

    sys.exit(_one_line_errors(run))
