"""``ringtally tally show``: the current tallies, from Postgres (the sink's table) or Redis."""

from __future__ import annotations

import click

from ._common import (
    IDENTIFIER,
    echo_json,
    get_settings,
    one_line_errors,
    pg_fetch,
    print_table,
    run,
)

__all__ = ["tally"]

_COLUMNS = ["submission", "approve", "reject", "flag", "escalate", "total", "decision", "version"]


@click.group("tally")
def tally() -> None:
    """Tallies: vote counts and the decision per submission.

    \b
    Example:
      ringtally tally show sub-42
      ringtally tally show --redis sub-42
    """


@tally.command("show")
@click.argument("submission", type=IDENTIFIER, required=False)
@click.option(
    "--redis", "from_redis", is_flag=True, help="Read the Redis read model instead of Postgres."
)
@click.option(
    "--limit",
    type=click.IntRange(1, 100_000),
    default=50,
    show_default=True,
    help="Most submissions to list (without SUBMISSION).",
)
@click.option("--json", "as_json", is_flag=True, help="JSON instead of a table.")
@one_line_errors
def tally_show(submission: str | None, from_redis: bool, limit: int, as_json: bool) -> None:
    """Show the tally of SUBMISSION (or of the latest-updated submissions).

    Postgres (default) holds what the sink has stored; Redis (--redis) the
    read model. Exit code 1 when SUBMISSION has no tally there yet.

    \b
    Example:
      ringtally tally show sub-42
      ringtally tally show --redis --json sub-42
      ringtally tally show --limit 10
    """
    settings = get_settings()
    rows = (
        _from_redis(settings, submission, limit)
        if from_redis
        else _from_postgres(settings, submission, limit)
    )
    where = (
        ("redis " + settings.redis_url.rsplit("@", 1)[-1])
        if from_redis
        else (f"postgres schema {settings.postgres_schema}")
    )
    if submission is not None and not rows:
        from streams.errors import RingtallyError

        raise RingtallyError(
            f"no tally for submission {submission} in {where}",
            fix="has a vote been counted, and has the sink run?",
        )
    if as_json:
        echo_json(rows if submission is None else rows[0])
        return
    print_table(
        f"tallies ({where})",
        _COLUMNS,
        [
            (
                r["submission_id"],
                r["counts"]["approve"],
                r["counts"]["reject"],
                r["counts"]["flag"],
                r["counts"]["escalate"],
                r["total"],
                r["decision"],
                r["version"],
            )
            for r in rows
        ],
    )


def _from_postgres(settings, submission: str | None, limit: int) -> list[dict]:  # noqa: ANN001
    query = (
        "SELECT submission_id, approve, reject, flag, escalate, total, decision, version, "
        "rules_version, updated_at FROM tallies"
    )
    if submission is not None:
        rows = pg_fetch(settings, query + " WHERE submission_id = $1", submission)
    else:
        rows = pg_fetch(
            settings, query + " ORDER BY updated_at DESC, submission_id LIMIT $1", limit
        )
    return [
        {
            "submission_id": r["submission_id"],
            "counts": {k: r[k] for k in ("approve", "reject", "flag", "escalate")},
            "total": r["total"],
            "decision": r["decision"],
            "version": r["version"],
            "rules_version": r["rules_version"],
            "updated_at": r["updated_at"].isoformat(),
        }
        for r in rows
    ]


def _from_redis(settings, submission: str | None, limit: int) -> list[dict]:  # noqa: ANN001
    from redis.asyncio import Redis
    from redis.exceptions import ConnectionError as RedisConnectionError
    from redis.exceptions import ResponseError
    from redis.exceptions import TimeoutError as RedisTimeoutError

    from connectors.readmodel.store import ReadModelStore
    from connectors.readmodel.task import redis_refused
    from streams.errors import RedisUnavailable
    from streams.settings import redact_url

    async def go() -> list[dict]:
        redis = Redis.from_url(
            settings.redis_url, decode_responses=True, socket_connect_timeout=5, socket_timeout=10
        )
        store = ReadModelStore(redis, settings.topic_prefix)
        try:
            if submission is not None:
                found = await store.get(submission)
                return [] if found is None else [{"submission_id": submission, **found}]
            ids = []
            prefix = store.key("")
            async for key in redis.scan_iter(match=f"{prefix}*", count=1000):
                ids.append(key[len(prefix) :])
            rows = []
            for sub in sorted(ids)[:limit]:
                found = await store.get(sub)
                if found is not None:
                    rows.append({"submission_id": sub, **found})
            return rows
        except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
            raise RedisUnavailable(
                f"redis at {redact_url(settings.redis_url)} unavailable "
                f"({type(exc).__name__}: {exc})",
                fix="start it ('ringtally stack up') or set RINGTALLY_REDIS_URL",
            ) from None
        except ResponseError as exc:  # it answered "no": e.g. a database number out of range
            raise redis_refused(settings, exc) from None
        finally:
            await redis.aclose()

    return run(go())
