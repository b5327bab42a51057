"""``python -m connectors.cli``: the operator commands without the Faust app (same errors)."""

from __future__ import annotations

import sys

import click

from streams.errors import RingtallyError

from . import COMMANDS


@click.group("ringtally")
def cli() -> None:
    """ringtally operator commands."""


for _command in COMMANDS:
    cli.add_command(_command)

try:
    code = cli.main(prog_name="ringtally", standalone_mode=False)
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
