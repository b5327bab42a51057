"""``ringtally vote``: sign one vote with a key file, publish it, and print its outcome."""

from __future__ import annotations

from pathlib import Path

import click

from models.fields import VoteType
from streams.errors import UsageProblem

from ._common import (
    EPOCH,
    IDENTIFIER,
    KAFKA_TIMEOUT,
    echo_json,
    err,
    kafka_settings,
    one_line_errors,
)

__all__ = ["describe_outcome", "vote"]


def describe_outcome(outcome) -> tuple[str, dict]:  # noqa: ANN001 - Ballot | Rejection
    """One line of text and a JSON-able dict for a Ballot or a Rejection."""
    from models import Ballot, ReasonCode

    data = outcome.model_dump(mode="json")
    if isinstance(outcome, Ballot):
        data = {"outcome": "ballot", **data}
        return (
            f"ballot: vote {outcome.vote_id} counted on submission {outcome.submission_id} "
            f"({outcome.vote_type.value}, ring {outcome.ring_id}, key image "
            f"{outcome.key_image[:16]}...)"
        ), data
    data = {"outcome": "rejection", **{k: v for k, v in data.items() if k != "payload_b64"}}
    return (
        f"rejection: vote {outcome.vote_id} not counted, reason {outcome.reason.value} "
        f"({ReasonCode(outcome.reason).meaning}): {outcome.detail}"
    ), data


@click.command("vote")
@click.option(
    "--key-file",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    metavar="FILE",
    help="The reviewer's key file (see 'keys new').",
)
@click.option(
    "--ring",
    "ring_id",
    required=True,
    type=IDENTIFIER,
    metavar="RING_ID",
    help="The ring to sign for (the key must be a member).",
)
@click.option("--submission", required=True, type=IDENTIFIER, metavar="SUBMISSION_ID")
@click.option("--type", "vote_type", required=True, type=click.Choice([v.value for v in VoteType]))
@click.option(
    "--token",
    required=True,
    type=IDENTIFIER,
    metavar="TOKEN_ID",
    help="An unspent token issued to the reviewer's credential.",
)
@click.option("--epoch", type=EPOCH, default=None, help="The vote's epoch (default: the ring's).")
@click.option(
    "--compact",
    is_flag=True,
    help="Compact signature (smaller; default is batchable: faster for the workers).",
)
@click.option(
    "--wait",
    type=click.FloatRange(0, 3600, min_open=True),
    default=None,
    metavar="SECONDS",
    help="Wait up to SECONDS for the ballot or rejection and print it.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the outcome as JSON.")
@click.pass_context
@one_line_errors
def vote(
    ctx: click.Context,
    key_file: Path,
    ring_id: str,
    submission: str,
    vote_type: str,
    token: str,
    epoch: int | None,
    compact: bool,
    wait: float | None,
    as_json: bool,
) -> None:
    """Sign one vote with a key file and publish it; with --wait, print its outcome.

    The ring's members are read from the rings topic. Exit code: 0 published
    (with --wait: counted), 1 rejected (the reason is printed), 2 bad usage or a
    service down, 3 no outcome within --wait seconds (the vote stays published).

    \b
    Example:
      ringtally vote --key-file alice.key --ring ring-poetry-7 --submission sub-42 \\
          --type approve --token 3f2a...e1 --wait 30
    """
    from connectors.sdk.keyfile import load_key_file
    from connectors.sdk.vote import VoteClient
    from models import Ballot

    key = load_key_file(key_file)
    settings = kafka_settings()
    with VoteClient(settings, key, batchable=not compact, timeout=KAFKA_TIMEOUT) as client:
        ring = client.lookup_ring(ring_id)
        if key.public_key.hex() not in ring.public_keys:
            raise UsageProblem(
                f"the key in {key_file} (public key {key.public_key.hex()[:16]}...) is not a "
                f"member of ring {ring_id}",
                fix="check --ring, or add the key with 'rings add'",
            )
        del key  # the client holds the only reference
        if not ring.active:
            err(f"warning: ring {ring_id} is inactive; the vote will be rejected (inactive_ring)")
        vote_id = client.cast(
            ring, submission_id=submission, vote_type=vote_type, token_id=token, epoch=epoch
        )
        if wait is None:
            if as_json:
                echo_json({"outcome": "published", "vote_id": str(vote_id), "token_id": token})
            else:
                click.echo(f"published vote {vote_id} (token {token}) to {settings.topic('votes')}")
            return
        outcome = client.wait_outcome(vote_id, timeout=wait)
    text, data = describe_outcome(outcome)
    if as_json:
        echo_json(data)
    else:
        click.echo(text)
    ctx.exit(0 if isinstance(outcome, Ballot) else 1)
