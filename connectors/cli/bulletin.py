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
    from connectors.sdk.reader import read_records_at, ring_history, submission_records
    from models.votes import VoteCast
    from streams.errors import RingtallyError

    settings = get_settings()

    async def load(conn: Any) -> Any:
        return await bulletin_source(conn, submission)

    source = pg_run(settings, load)
    raw = read_records_at(settings, "votes", [(p, o) for *_, p, o in source.leaves])
    leaves = []
    for index, kind, vote_id, p, o in source.leaves:
        record = raw.get((p, o))
        if record is None or record.value is None:
            raise RingtallyError(
                f"vote {vote_id} (leaf {index}) is no longer on the votes topic at {p}:{o}"
            )
        leaves.append(
            (index, kind, VoteCast.model_validate_json(record.value), record.timestamp_ms)
        )
    records = submission_records(settings, submission)
    history = ring_history(settings)
    rings = [
        (version.ring, version.appended_ms)
        for ring_id in sorted({v.ring_id for _, _, v, _ in leaves})
        for version in history.get(ring_id, [])
    ]
    closing = None
    if records.closing is not None and records.closed_ms is not None:
        closing = (records.closing, records.closed_ms)
    for line in bulletin_lines(
        head=source.head,
        rules=source.rules_version,
        submission=(records.submission, records.appended_ms),
        closing=closing,
        rings=rings,
        leaves=leaves,
        reasons=source.reasons,
    ):
        click.echo(line)


@click.command("recount")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--unverified",
    is_flag=True,
    help="Recount even without the log public key or the registrar keys (the result then "
    "proves nothing about who signed the head and the records).",
)
@one_line_errors
def recount(file: Path, unverified: bool) -> None:
    """Recount the bulletin FILE offline: the workers' acceptance rules for every vote (ring
    version in force at its broker time, active, genre, epoch, slot, submission open),
    every vote signature, the tally, the decision and the log root against the signed
    head (its signature with RINGTALLY_LOG_PUBLIC_KEY or <data_dir>/log.pub, the
    submission's and rings' with the registrar keys). Prints the result as JSON; exit 1
    when anything does not check, or when either key is unknown (unless --unverified)."""
    from connectors.sdk.bulletin import recount as recount_lines
    from connectors.sdk.reader import NO_REGISTRAR_FIX, trusted_registrar_keys
    from connectors.sdk.receipt import trusted_log_key
    from streams.errors import RingtallyError, UsageProblem

    settings = get_settings()
    try:
        log_key = trusted_log_key(settings)
    except UsageProblem as exc:
        if not unverified:  # exit 1: nothing would be verified, not a usage slip
            raise RingtallyError(
                f"{exc} (pass --unverified to recount anyway)", fix=exc.fix
            ) from None
        log_key = None
    registrar_keys = trusted_registrar_keys(settings)
    if not registrar_keys and not unverified:
        raise RingtallyError(
            "no registrar public key known: the bulletin's submission and ring records "
            "cannot be checked (pass --unverified to recount anyway)",
            fix=NO_REGISTRAR_FIX,
        )
    if unverified and (log_key is None or not registrar_keys):
        click.echo(
            "WARNING: UNVERIFIED RECOUNT: "
            + (
                "no log public key, the head's signature is NOT checked; "
                if log_key is None
                else ""
            )
            + (
                "no registrar key, the submission and rings are NOT checked; "
                if not registrar_keys
                else ""
            )
            + "anyone could have written this bulletin",
            err=True,
        )
    with file.open(encoding="utf-8") as lines:
        result = recount_lines(lines, log_key=log_key, registrar_keys=registrar_keys)
    echo_json(result.to_json())


COMMANDS = (bulletin, recount)
