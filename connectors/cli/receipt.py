"""``ringtally receipt show|verify``: proofs that a vote is in its submission's signed log.

``show`` builds a receipt from the sink's tables (native/SPEC.md §14.4);
``verify`` checks one offline, with only the log public key
(``RINGTALLY_LOG_PUBLIC_KEY``, else ``<data_dir>/log.pub``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from ._common import echo_json, get_settings, one_line_errors, pg_run

__all__ = ["receipt"]

_FILE = click.Path(exists=True, dir_okay=False, path_type=Path)


@click.group("receipt")
def receipt() -> None:
    """Receipts: a vote's leaf, its inclusion proof and the signed head it is under.

    \b
    Example:
      ringtally receipt show 0b7c…-uuid > receipt.json
      ringtally receipt verify receipt.json --vote my-vote.json
      ringtally receipt show 0b7c…-uuid --since receipt.json > later.json
      ringtally receipt verify later.json --against receipt.json
    """


@receipt.command("show")
@click.argument("vote")
@click.option(
    "--since",
    type=_FILE,
    help="An earlier receipt: add the consistency proof from its head to the current one.",
)
@one_line_errors
def receipt_show(vote: str, since: Path | None) -> None:
    """Print the JSON receipt of VOTE (a vote id, the hex digest of the vote sent, or the
    key image of a counted vote): of its ballot leaf, or of its retraction leaf ("kind":
    "retraction") when it was counted and then withdrawn, or, refused, of its rejection
    leaf ("kind": "rejection", with the "reason"). Exit code 1 when no signed head covers
    the vote yet.
    """
    from connectors.postgres.receipts import build_receipt
    from connectors.sdk.reader import read_at
    from models.votes import VoteCast

    settings = get_settings()
    earlier = _load_receipt(since) if since is not None else None

    def load_vote(partition: int, offset: int) -> Any:
        value = read_at(settings, "votes", [(partition, offset)]).get((partition, offset))
        return None if value is None else VoteCast.model_validate_json(value)

    async def build(conn: Any) -> Any:
        return await build_receipt(conn, vote, since=earlier, load_vote=load_vote)

    rec = pg_run(settings, build)
    if rec.vote is None:
        click.echo(
            f"warning: vote {rec.vote_id} is no longer on the votes topic; this receipt "
            "proves only its digest (verify it with --vote)",
            err=True,
        )
    echo_json(rec.model_dump(mode="json"))


@receipt.command("verify")
@click.argument("file", type=_FILE)
@click.option("--vote", "vote_file", type=_FILE, help="The vote as sent (VoteCast JSON).")
@click.option("--against", type=_FILE, help="An earlier receipt whose head this one's must extend.")
@one_line_errors
def receipt_verify(file: Path, vote_file: Path | None, against: Path | None) -> None:
    """Check the receipt FILE offline: head signature, inclusion, that the vote it carries
    (or --vote) is the leaf's (its digest recomputed), and optionally that it extends the
    receipt --against. A receipt with no vote and no --vote proves only a digest is in
    the log, and says so. Exit code 1 when it fails."""
    from connectors.sdk.receipt import trusted_log_key, verify_receipt
    from models.votes import VoteCast

    rec = _load_receipt(file)
    vote = VoteCast.model_validate_json(vote_file.read_bytes()) if vote_file else None
    earlier = _load_receipt(against) if against is not None else None
    bound = verify_receipt(rec, trusted_log_key(get_settings()), vote=vote, earlier=earlier)
    extends = f", extends the head at size {earlier.head.tree_size}" if earlier else ""
    signed = f"signed at size {rec.head.tree_size}{extends}"
    if rec.head.closed_ms is not None:  # in the signed bytes: checked above
        signed += (
            f"; FINAL: the head of the closed log (closed at {rec.head.closed_ms} ms), no "
            "vote is added after it"
        )
    if bound is None:
        click.echo(
            f"ok: digest {rec.vote_digest} is leaf {rec.leaf_index} ({rec.kind.value}) of "
            f"{rec.submission_id}'s log, {signed}; the receipt carries no vote, so it does "
            "not show which vote that is (pass --vote)"
        )
        return
    what = {
        "ballot": "counted",
        "retraction": "RETRACTED (counted, then withdrawn)",
        "rejection": f"REFUSED ({rec.reason}: not counted)",
    }[rec.kind.value]
    click.echo(
        f"ok: vote {bound.vote_id} is leaf {rec.leaf_index} of {rec.submission_id}'s log, "
        f"{what}, {signed}"
    )


def _load_receipt(path: Path) -> Any:
    from models.log import Receipt

    return Receipt.model_validate_json(path.read_bytes())
