"""``ringtally vote``: pick a slot, sign one vote with a key file, publish it, print its outcome.

The key file's used slots are kept beside it (``alice.key`` ->
``alice.slots.json``, see :mod:`connectors.sdk.voter`), so a second vote on a
used slot, or one more vote than the ring allows in the epoch, is refused
here in one line, before anything is published."""

from __future__ import annotations

from pathlib import Path

import click

from models.fields import MAX_VOTES_PER_EPOCH, VoteType
from streams.errors import UsageProblem

from ._common import (
    IDENTIFIER,
    echo_json,
    err,
    kafka_settings,
    one_line_errors,
)

__all__ = ["describe_outcome", "vote"]


def describe_outcome(outcome) -> tuple[str, dict]:  # noqa: ANN001 - Ballot | Rejection
    """One line of text and a JSON-able dict for a Ballot or a Rejection."""
    from models import Ballot

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
        f"({outcome.reason.meaning}): {outcome.detail}"
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
    "--ring-version",
    type=click.IntRange(1, 2**32 - 1),
    default=None,
    metavar="N",
    help="The ring version to sign for (default: the one in force now).",
)
@click.option(
    "--slot",
    type=click.IntRange(0, MAX_VOTES_PER_EPOCH - 1),
    default=None,
    metavar="J",
    help="The slot to spend (default: a random unused one; used slots are kept beside the "
    "key file).",
)
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
    ring_version: int | None,
    slot: int | None,
    compact: bool,
    wait: float | None,
    as_json: bool,
) -> None:
    """Sign one vote with a key file and publish it; with --wait, print its outcome.

    The ring version (default: the one in force now) is read from the rings
    topic. The slot is --slot or a random unused one of the ring's
    votes_per_epoch; it is recorded as used in the file beside the key file
    before anything is published, and a used slot or an epoch with no slot
    left is refused in one line (exit 2). Exit code: 0 published (with
    --wait: counted), 1 rejected (the reason is printed), 2 bad usage or a
    service down, 3 no outcome within --wait seconds (the vote stays
    published).

    \b
    Example:
      ringtally vote --key-file alice.key --ring ring-poetry-7 --submission sub-42 \\
          --type approve --wait 30
    """
    from connectors.sdk.vote import VoteClient
    from connectors.sdk.voter import Voter
    from models import Ballot

    voter = Voter.from_key_file(key_file)
    settings = kafka_settings()
    with VoteClient(
        settings, voter, batchable=not compact, timeout=settings.kafka_timeout
    ) as client:
        ring = client.lookup_ring(ring_id, version=ring_version)
        if voter.public_key.hex() not in ring.public_keys:
            raise UsageProblem(
                f"the key in {key_file} (public key {voter.public_key.hex()[:16]}...) is not a "
                f"member of ring {ring_id} version {ring.version}",
                fix="check --ring, or add the key with 'rings rotate --add'",
            )
        if not ring.active:
            err(
                f"warning: ring {ring_id} version {ring.version} is inactive; the vote will be "
                "rejected (inactive_ring)"
            )
        vote_id = client.vote(ring, submission_id=submission, vote_type=vote_type, slot=slot)
        if wait is None:
            if as_json:
                echo_json(
                    {
                        "outcome": "published",
                        "vote_id": str(vote_id),
                        "ring_id": ring.ring_id,
                        "ring_version": ring.version,
                    }
                )
            else:
                click.echo(
                    f"published vote {vote_id} (ring {ring.ring_id} version {ring.version}) "
                    f"to {settings.topic('votes')}"
                )
            return
        outcome = client.wait_outcome(vote_id, timeout=wait)
    text, data = describe_outcome(outcome)
    if as_json:
        echo_json(data)
    else:
        click.echo(text)
    ctx.exit(0 if isinstance(outcome, Ballot) else 1)
