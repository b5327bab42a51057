"""``ringtally submissions``: register (registrar-signed, immutable) and list submissions."""

from __future__ import annotations

import click

from ._common import (
    EPOCH,
    IDENTIFIER,
    echo_json,
    kafka_settings,
    one_line_errors,
    print_table,
)

__all__ = ["submissions"]


@click.group("submissions")
def submissions() -> None:
    """Submissions: what reviewers vote on.

    \b
    Example:
      ringtally submissions add sub-42 --genre poetry --epoch 7
      ringtally submissions list
      ringtally submissions close sub-42
    """


@submissions.command("add")
@click.argument("submission_id", type=IDENTIFIER)
@click.option("--genre", required=True, type=IDENTIFIER, help="Its genre (picks the ring).")
@click.option("--epoch", required=True, type=EPOCH, help="The epoch it is reviewed in.")
@one_line_errors
def submissions_add(submission_id: str, genre: str, epoch: int) -> None:
    """Register a submission, signed by the registrar. A submission is immutable: adding
    it again alike does nothing, with another genre or epoch is refused.

    \b
    Example:
      ringtally submissions add sub-42 --genre poetry --epoch 7
    """
    from connectors.sdk.admin import Admin

    settings = kafka_settings()
    sub = Admin(settings, timeout=settings.kafka_timeout).register_submission(
        submission_id, genre=genre, epoch=epoch
    )
    click.echo(f"registered submission {sub.submission_id} (genre {sub.genre}, epoch {sub.epoch})")


@submissions.command("close")
@click.argument("submission_id", type=IDENTIFIER)
@one_line_errors
def submissions_close(submission_id: str) -> None:
    """Close a submission, signed by the registrar: votes appended from now on are rejected
    submission_closed, so its log (ringtally receipt, bulletin) takes no more ballots.

    \b
    Example:
      ringtally submissions close sub-42
    """
    from connectors.sdk.admin import Admin

    settings = kafka_settings()
    Admin(settings, timeout=settings.kafka_timeout).close_submission(submission_id)
    click.echo(f"closed submission {submission_id}: votes appended from now on are refused")


@submissions.command("list")
@click.option("--json", "as_json", is_flag=True, help="JSON instead of a table.")
@one_line_errors
def submissions_list(as_json: bool) -> None:
    """List the registered submissions (read from the submissions topic).

    \b
    Example:
      ringtally submissions list --json
    """
    from connectors.sdk.producer import ensure_topics
    from connectors.sdk.reader import list_submissions

    settings = kafka_settings()
    ensure_topics(settings, ["submissions"], timeout=settings.kafka_timeout)
    found = list_submissions(settings)
    if as_json:
        echo_json([s.model_dump(mode="json") for s in found.values()])
        return
    print_table(
        f"submissions on {settings.topic('submissions')}",
        ["submission", "genre", "epoch"],
        [(s.submission_id, s.genre, s.epoch) for s in found.values()],
    )
