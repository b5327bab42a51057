"""``ringtally rejections list``: votes that were not counted, and why (from Postgres)."""

from __future__ import annotations

import click

from models.reasons import ReasonCode

from ._common import echo_json, get_settings, one_line_errors, pg_fetch, print_table

__all__ = ["rejections"]


@click.group("rejections")
def rejections() -> None:
    """Rejections: messages that were not counted, with a machine-readable reason.

    \b
    Example:
      ringtally rejections list --reason duplicate_key_image --limit 20
    """


@rejections.command("list")
@click.option(
    "--reason",
    type=click.Choice([r.value for r in ReasonCode]),
    default=None,
    help="Only this reason.",
)
@click.option(
    "--limit",
    type=click.IntRange(1, 100_000),
    default=20,
    show_default=True,
    help="Most rows, newest first.",
)
@click.option("--json", "as_json", is_flag=True, help="JSON instead of a table.")
@one_line_errors
def rejections_list(reason: str | None, limit: int, as_json: bool) -> None:
    """List the newest rejections stored by the sink (optionally one reason only).

    \b
    Example:
      ringtally rejections list
      ringtally rejections list --reason token_spent --limit 5 --json
    """
    settings = get_settings()
    query = (
        "SELECT id, vote_id, token_id, reason, detail, source_topic, source_partition, "
        "source_offset, recorded_at FROM rejections"
    )
    if reason is None:
        rows = pg_fetch(settings, query + " ORDER BY id DESC LIMIT $1", limit)
    else:
        rows = pg_fetch(
            settings, query + " WHERE reason = $1 ORDER BY id DESC LIMIT $2", reason, limit
        )
    data = [
        {
            "id": r["id"],
            "vote_id": None if r["vote_id"] is None else str(r["vote_id"]),
            "token_id": r["token_id"],
            "reason": r["reason"],
            "detail": r["detail"],
            "source": f"{r['source_topic']}/{r['source_partition']}@{r['source_offset']}",
            "recorded_at": r["recorded_at"].isoformat(),
        }
        for r in rows
    ]
    if as_json:
        echo_json(data)
        return
    print_table(
        f"rejections (postgres schema {settings.postgres_schema}"
        + (f", reason {reason}" if reason else "")
        + ")",
        ["id", "recorded", "reason", "vote", "token", "detail", "source"],
        [
            (
                d["id"],
                d["recorded_at"][:19],
                d["reason"],
                d["vote_id"],
                _short(d["token_id"]),
                d["detail"][:80],
                d["source"],
            )
            for d in data
        ],
    )


def _short(token_id: str | None) -> str | None:
    """A v2 token id (a 64-hex slot tag) abbreviated for the table; --json has it whole."""
    if token_id is None or len(token_id) <= 20:
        return token_id
    return token_id[:16] + "..."
