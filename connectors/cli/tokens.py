"""``ringtally tokens``: the issuer's side (one-time voting tokens) and ``ringtally revoke``."""

from __future__ import annotations

import click

from ._common import (
    CREDENTIAL_HASH,
    EPOCH,
    IDENTIFIER,
    KAFKA_TIMEOUT,
    echo_json,
    kafka_settings,
    one_line_errors,
)

__all__ = ["revoke", "tokens"]


@click.group("tokens")
def tokens() -> None:
    """One-time voting tokens, issued per credential and epoch.

    \b
    Example:
      HASH=$(printf alice | sha256sum | cut -c1-64)
      ringtally tokens issue --credential $HASH --epoch 7 --count 3
    """


@tokens.command("issue")
@click.option(
    "--credential",
    required=True,
    type=CREDENTIAL_HASH,
    metavar="HASH",
    help="The credential's hash: 64 hex digits (e.g. sha256 of the credential).",
)
@click.option("--epoch", required=True, type=EPOCH, help="The epoch the tokens are valid for.")
@click.option(
    "--count",
    required=True,
    type=click.IntRange(1, 10_000),
    metavar="N",
    help="How many tokens (1-10000).",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of one id per line.")
@one_line_errors
def tokens_issue(credential: str, epoch: int, count: int, as_json: bool) -> None:
    """Issue N fresh tokens to a credential and print their ids, one per line.

    Each token lets the credential's holder cast one vote in the epoch; hand
    the ids to the holder (they are not secret from the issuer, but a token
    spent by someone else is lost to its holder).

    \b
    Example:
      ringtally tokens issue --epoch 7 --count 2 \\
          --credential 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08
    """
    from connectors.sdk.admin import Admin

    ids = Admin(kafka_settings(), timeout=KAFKA_TIMEOUT).issue_tokens(
        credential, epoch=epoch, count=count
    )
    if as_json:
        echo_json({"credential_hash": credential, "epoch": epoch, "tokens": ids})
    else:
        for token_id in ids:
            click.echo(token_id)


@tokens.command("revoke")
@click.argument("token_id", type=IDENTIFIER)
@click.option(
    "--reason", required=True, help="Why (kept with the token's revocation, max 500 chars)."
)
@one_line_errors
def tokens_revoke(token_id: str, reason: str) -> None:
    """Revoke one token, signed by the issuer: a later vote with it is rejected (token_revoked).

    A vote it already cast stays counted.

    \b
    Example:
      ringtally tokens revoke 5f0c9a1e2b7d4c3a8e6f1d2c3b4a5968 --reason "token leaked"
    """
    from connectors.sdk.admin import Admin

    _check_reason(reason)
    Admin(kafka_settings(), timeout=KAFKA_TIMEOUT).revoke_token(token_id, reason)
    click.echo(f"revoked token {token_id}")


def _check_reason(reason: str) -> None:
    if not reason.strip() or len(reason) > 500:
        raise click.BadParameter("must be 1-500 characters", param_hint="'--reason'")


@click.command("revoke")
@click.argument("credential_hash", type=CREDENTIAL_HASH)
@click.option(
    "--reason", required=True, help="Why (kept with every token revocation, max 500 chars)."
)
@one_line_errors
def revoke(credential_hash: str, reason: str) -> None:
    """Revoke a credential: the workers revoke every unspent token it was issued.

    Votes already counted stay counted; a later vote with one of its tokens is
    rejected (token_revoked).

    \b
    Example:
      ringtally revoke 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08 \\
          --reason "credential leaked"
    """
    from connectors.sdk.admin import Admin

    _check_reason(reason)
    Admin(kafka_settings(), timeout=KAFKA_TIMEOUT).revoke_credential(credential_hash, reason)
    click.echo(f"revoked credential {credential_hash}: its unspent tokens will be revoked")
