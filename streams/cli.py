"""The ``ringtally`` command: Faust's own CLI (``worker`` and friends) plus ringtally's commands.

This follows Faust's ``app.main()`` convention, with one change: the click
group runs with ``standalone_mode=False`` so that a bad argument or an
unreachable service is printed as ONE line with exit code 2 (a
:class:`~streams.errors.RingtallyError` keeps its own code) instead of
click's three-line usage block or a traceback.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

import click

from .errors import RingtallyError

__all__ = ["main", "register_commands"]


def register_commands(cli: click.Group) -> None:
    """Add ringtally's command groups to Faust's root group (idempotent)."""
    from connectors.cli import COMMANDS as operator_commands
    from connectors.postgres.cli import COMMANDS as sink_commands
    from connectors.replay.cli import COMMANDS as replay_commands
    from connectors.stack.cli import stack

    for command in (stack, *sink_commands, *replay_commands, *operator_commands):
        if command.name not in cli.commands:
            cli.add_command(command)


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of the ``ringtally`` console script."""
    from faust.cli.faust import cli
    from pydantic import ValidationError

    try:
        from streams.app import app
    except ValidationError as exc:  # a RINGTALLY_* variable with a bad value
        err = exc.errors()[0]
        name = "RINGTALLY_" + "_".join(str(p) for p in err.get("loc", ())).upper()
        print(f"ringtally: error: {name}: {err.get('msg', 'invalid value')}", file=sys.stderr)
        sys.exit(2)

    import agents.pipeline  # registers the agents on the app

    register_commands(cli)
    # The steps of faust.App.main(), minus its unconditional standalone click run.
    app.finalize()
    app.worker_init()
    app.worker_init_post_autodiscover()
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        if "worker" in args:  # refuse to start, in one line, before Faust starts anything
            agents.pipeline.issuer_keys()
        code = cli.main(args=args, prog_name="ringtally", standalone_mode=False, app=app)
    except click.exceptions.Abort:
        print("ringtally: aborted", file=sys.stderr)
        sys.exit(1)
    except click.ClickException as exc:
        print(f"ringtally: error: {exc.format_message()}", file=sys.stderr)
        sys.exit(exc.exit_code)
    except RingtallyError as exc:
        print(f"ringtally: error: {exc.one_line()}", file=sys.stderr)
        sys.exit(exc.exit_code)
    sys.exit(code if isinstance(code, int) else 0)
