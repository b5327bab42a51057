"""``python -m connectors.postgres <command>``: the sink's commands without the Faust app."""

from __future__ import annotations

import sys

import click

from streams.errors import RingtallyError

from .cli import COMMANDS


@click.group()
def main() -> None:
    """ringtally's Postgres sink, audit and read-model commands."""


for _command in COMMANDS:
    main.add_command(_command)

if __name__ == "__main__":
    try:
        code = main.main(prog_name="python -m connectors.postgres", standalone_mode=False)
    except click.ClickException as exc:
        print(f"ringtally: error: {exc.format_message()}", file=sys.stderr)
        sys.exit(exc.exit_code)
    except click.exceptions.Abort:
        sys.exit(1)
    except RingtallyError as exc:
        print(f"ringtally: error: {exc.one_line()}", file=sys.stderr)
        sys.exit(exc.exit_code)
    sys.exit(code if isinstance(code, int) else 0)
