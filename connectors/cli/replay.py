"""``ringtally replay`` and ``ringtally reset-offsets``, mounted by :mod:`connectors.cli.root`."""

from __future__ import annotations

import sys

import click

from streams.errors import RingtallyError
from streams.settings import get_settings

from ._common import echo_json

__all__ = ["COMMANDS", "replay", "reset_offsets"]


@click.command("replay")
@click.option(
    "--from-beginning",
    "from_beginning",
    is_flag=True,
    default=False,
    help="Replay and compare everything (the default).",
)
@click.option(
    "--from-time",
    "from_time",
    default=None,
    metavar="T",
    help="Still replay from the beginning (state needs every vote and ring version), but compare "
    "only outputs of votes-topic records timestamped at or after T (ISO 8601, no zone = "
    "local time, or epoch ms).",
)
@click.option("--keep", is_flag=True, help="Keep the shadow topics, groups and schema.")
@click.option(
    "--store",
    type=click.Choice(["memory", "rocksdb"]),
    default="memory",
    show_default=True,
    help="Table store of the replay worker (always fresh).",
)
@click.option(
    "--stall-timeout",
    type=click.FloatRange(0, min_open=True),
    default=120.0,
    show_default=True,
    metavar="S",
    help="Give up after S seconds without progress.",
)
@click.option("--quiet", is_flag=True, help="No progress bar.")
@click.option("--json", "as_json", is_flag=True, help="JSON on stdout (keys: docs/cli.md).")
def replay(
    from_beginning: bool,
    from_time: str | None,
    keep: bool,
    store: str,
    stall_timeout: float,
    quiet: bool,
    as_json: bool,
) -> None:
    """Rebuild state from the input topics into a shadow and diff it with the live schema.

    A fresh consumer group, fresh tables, shadow output topics
    (<prefix>-replay-<ts>.*), the revocation fan-out off, and a shadow
    Postgres schema (<schema>_replay_<ts>) filled by its own sink. Once the
    replay has caught up with the votes topic's end offsets noted at start,
    ballots, rejections and tallies are compared with the live schema.
    Exit 0: no differences; 1: differences (listed).

    \b
    Example:
      ringtally replay
      ringtally replay --from-time 2026-01-31T12:00:00 --keep
      ringtally replay --json --quiet
    """
    from rich.console import Console

    from connectors.replay.run import ReplayConfig, parse_time, render, run_replay

    if from_beginning and from_time:
        raise click.UsageError("--from-beginning and --from-time exclude each other")
    console = Console(stderr=as_json)  # with --json, stdout holds the JSON alone
    config = ReplayConfig(
        from_time=parse_time(from_time) if from_time else None,
        keep=keep,
        table_store=store,
        stall_timeout=stall_timeout,
        live=not quiet and console.is_terminal,
    )
    try:
        result = run_replay(get_settings(), config, console)
    except (TimeoutError, RuntimeError) as exc:
        raise ReplayFailed(str(exc)) from None
    if as_json:
        echo_json(_as_json(result))
    else:
        render(result, console)
    if not result.ok:
        sys.exit(1)


def _as_json(result) -> dict:  # noqa: ANN001 - connectors.replay.run.ReplayResult
    """The replay's outcome with the keys docs/cli.md lists (every difference, not the first
    few the table shows)."""
    c = result.comparison
    kinds = {"ballots": "ballot", "rejections": "rejection", "tallies": "tally"}
    return {
        "ok": result.ok,
        "live_schema": c.live_schema,
        "replay_schema": c.shadow_schema,
        "since": None if result.since is None else {str(p): o for p, o in result.since.items()},
        "tables": {
            name: {
                "live_rows": live,
                "replay_rows": shadow,
                "differences": sum(d.kind == kinds[name] for d in c.differences),
            }
            for name, (live, shadow) in c.counts.items()
        },
        "differences": [
            {"kind": d.kind, "key": d.key, "fields": d.fields, "live": d.live, "replay": d.shadow}
            for d in c.differences
        ],
        "votes_records": result.votes_records,
        "seconds": round(result.seconds, 3),
        "kept": result.kept,
        "notes": list(result.notes),
    }


class ReplayFailed(RingtallyError):
    """The replay did not finish (stalled, or a process died)."""


@click.command("reset-offsets")
@click.option("--group", required=True, help="Consumer group (must be inactive).")
@click.option(
    "--topic", "topics", multiple=True, help="Topic (repeatable; default: the votes topic)."
)
@click.option(
    "--to",
    "to",
    default="earliest",
    show_default=True,
    help="earliest, latest, or an ISO date-time.",
)
@click.option("--execute", is_flag=True, help="Apply (default: dry run, print the plan).")
def reset_offsets(group: str, topics: tuple[str, ...], to: str, execute: bool) -> None:
    """Reset a consumer group's offsets with Kafka's own kafka-consumer-groups tool.

    Runs org.apache.kafka.tools.consumer.group.ConsumerGroupCommand from the
    stack's jars. The group must have no active member.

    \b
    Example:
      ringtally reset-offsets --group ringtally-worker                   # dry run
      ringtally reset-offsets --group ringtally-worker --to earliest --execute
    """
    from connectors.replay.offsets import reset_group_offsets

    settings = get_settings()
    out = reset_group_offsets(
        settings, group, list(topics) or [settings.topic("votes")], to=to, execute=execute
    )
    click.echo(out.rstrip())
    if not execute:
        click.echo("(dry run: add --execute to apply)")


COMMANDS: tuple[click.Command, ...] = (replay, reset_offsets)
