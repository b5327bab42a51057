"""``ringtally bulletin export`` and ``ringtally recount``: a submission's public record,
and its recount with no ringtally service (connectors/sdk/bulletin.py has the format)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from ._common import IDENTIFIER, echo_json, get_settings, one_line_errors, pg_run

__all__ = ["COMMANDS", "bulletin", "recount"]


@click.group("bulletin")
def bulletin() -> None:
    """Bulletins: every leaf of a submission's log with its vote, as JSON Lines.

    \b
    Example:
      ringtally bulletin export sub-42 > sub-42.jsonl
      ringtally recount sub-42.jsonl
    """


@bulletin.command("export")
@click.argument("submission", type=IDENTIFIER)
@one_line_errors
def bulletin_export(submission: str) -> None:
    """Print SUBMISSION's bulletin (JSON Lines) under its latest stored signed head: the head,
    the ring versions its votes name, every leaf's vote with its signature (from Postgres and
    the votes and rings topics). Exit 1 when the sink has no head for it yet."""
    from connectors.postgres.receipts import bulletin_source
    from connectors.sdk.bulletin import bulletin_lines
    from connectors.sdk.reader import get_ring, read_at
    from models.votes import VoteCast
    from streams.errors import RingtallyError

    settings = get_settings()

    async def load(conn: Any) -> Any:
        return await bulletin_source(conn, submission)

    source = pg_run(settings, load)
    raw = read_at(settings, "votes", [(p, o) for *_, p, o in source.leaves])
    leaves = []
    for index, kind, vote_id, p, o in source.leaves:
        value = raw.get((p, o))
        if value is None:
            raise RingtallyError(
                f"vote {vote_id} (leaf {index}) is no longer on the votes topic at {p}:{o}"
            )
        leaves.append((index, kind, VoteCast.model_validate_json(value)))
    versions = sorted({(v.ring_id, v.ring_version) for _, _, v in leaves})
    rings = [get_ring(settings, ring_id, version) for ring_id, version in versions]
    for line in bulletin_lines(
        head=source.head, rules=source.rules_version, rings=rings, leaves=leaves
    ):
        click.echo(line)


@click.command("recount")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@one_line_errors
def recount(file: Path) -> None:
    """Recount the bulletin FILE offline: every vote signature, the tally, the decision and
    the log root against the signed head (its signature with RINGTALLY_LOG_PUBLIC_KEY or
    <data_dir>/log.pub, rings' with the registrar keys, when known). Prints the result as
    JSON; exit 1 when anything does not check."""
    from connectors.sdk.bulletin import recount as recount_lines
    from connectors.sdk.reader import trusted_registrar_keys
    from connectors.sdk.receipt import trusted_log_key
    from streams.errors import UsageProblem

    settings = get_settings()
    try:
        log_key = trusted_log_key(settings)
    except UsageProblem:
        log_key = None
    with file.open(encoding="utf-8") as lines:
        result = recount_lines(
            lines, log_key=log_key, registrar_keys=trusted_registrar_keys(settings)
        )
    echo_json(result.to_json())


COMMANDS = (bulletin, recount)
