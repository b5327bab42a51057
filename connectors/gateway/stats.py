"""``GET /api/v1/statistics``: counts per epoch and genre, and the last minutes' activity.

Everything is an aggregate over the sink's tables: votes (every decided
message of the votes topic), ballots, rejections by reason and decisions, per
(epoch, genre); nothing per reviewer, per key image or per vote. A ballot's
genre is its ring's; a rejected vote's epoch and ring are read from its stored
payload when it was readable that far (else ``"unknown"``); a decision's
epoch and genre are its submission's. Rejections of control records (rings,
submissions topics) are counted apart, by reason.

``recent`` is the activity of the last ``minutes`` in 10-second buckets (the
sink's commit times), what the dashboard draws as votes/s and rejections by
reason.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime
from typing import Any

from .backends import Backends

__all__ = ["BUCKET_SECONDS", "statistics"]

BUCKET_SECONDS = 10

_BALLOTS = "SELECT epoch, ring_id, count(*) AS n FROM ballots GROUP BY epoch, ring_id"
_REJECTIONS = r"""
SELECT reason,
       substring(p FROM '"epoch":([0-9]{1,19})[,}]') AS epoch,
       substring(p FROM '"ring_id":"([!#-~]{1,128})"') AS ring_id,
       count(*) AS n
FROM (SELECT reason, encode(decode(payload_b64, 'base64'), 'escape') AS p
      FROM rejections WHERE source_topic = $1) r
GROUP BY 1, 2, 3
"""
_CONTROL = "SELECT reason, count(*) AS n FROM rejections WHERE source_topic <> $1 GROUP BY reason"
_DECISIONS = "SELECT submission_id, decision FROM tallies"
_RECENT_BALLOTS = """
SELECT date_bin($1::interval, recorded_at, 'epoch'::timestamptz) AS t, count(*) AS n
FROM ballots WHERE recorded_at >= now() - $2::interval GROUP BY 1
"""
_RECENT_REJECTIONS = """
SELECT date_bin($1::interval, recorded_at, 'epoch'::timestamptz) AS t, reason, count(*) AS n
FROM rejections WHERE recorded_at >= now() - $2::interval AND source_topic = $3 GROUP BY 1, 2
"""


def _group() -> dict[str, Any]:
    return {"votes": 0, "ballots": 0, "rejections": defaultdict(int), "decisions": defaultdict(int)}


async def statistics(backends: Backends, minutes: int) -> dict[str, Any]:
    from datetime import timedelta

    votes_topic = backends.settings.topic("votes")
    control = await backends.control.get()
    genre_of_ring = {rid: versions[-1].ring.genre for rid, versions in control.rings.items()}
    groups: dict[tuple[int | None, str], dict[str, Any]] = defaultdict(_group)

    for r in await backends.fetch(_BALLOTS):
        g = groups[(r["epoch"], genre_of_ring.get(r["ring_id"], "unknown"))]
        g["ballots"] += r["n"]
        g["votes"] += r["n"]
    for r in await backends.fetch(_REJECTIONS, votes_topic):
        epoch = int(r["epoch"]) if r["epoch"] is not None and len(r["epoch"]) < 19 else None
        g = groups[(epoch, genre_of_ring.get(r["ring_id"] or "", "unknown"))]
        g["rejections"][r["reason"]] += r["n"]
        g["votes"] += r["n"]
    for r in await backends.fetch(_DECISIONS):
        sub = control.submissions.get(r["submission_id"])
        g = groups[(sub.epoch, sub.genre) if sub else (None, "unknown")]
        g["decisions"][r["decision"]] += 1
    control_rejections = {r["reason"]: r["n"] for r in await backends.fetch(_CONTROL, votes_topic)}

    bucket = timedelta(seconds=BUCKET_SECONDS)
    window = timedelta(minutes=minutes)
    recent: dict[datetime, dict[str, Any]] = defaultdict(
        lambda: {"ballots": 0, "rejections": defaultdict(int)}
    )
    for r in await backends.fetch(_RECENT_BALLOTS, bucket, window):
        recent[r["t"]]["ballots"] += r["n"]
    for r in await backends.fetch(_RECENT_REJECTIONS, bucket, window, votes_topic):
        recent[r["t"]]["rejections"][r["reason"]] += r["n"]

    def key(item: tuple[tuple[int | None, str], Any]) -> tuple[int, str]:
        (epoch, genre), _ = item
        return (-1 if epoch is None else epoch, genre)

    per_group = [
        {
            "epoch": epoch,
            "genre": genre,
            "votes": g["votes"],
            "ballots": g["ballots"],
            "rejections": dict(sorted(g["rejections"].items())),
            "decisions": dict(sorted(g["decisions"].items())),
        }
        for (epoch, genre), g in sorted(groups.items(), key=key)
    ]
    totals = {
        "votes": sum(g["votes"] for g in per_group),
        "ballots": sum(g["ballots"] for g in per_group),
        "rejections": sum(sum(g["rejections"].values()) for g in per_group),
    }
    return {
        "generated_at": datetime.now(UTC).isoformat(),
        "totals": totals,
        "groups": per_group,
        "control_rejections": dict(sorted(control_rejections.items())),
        "recent": {
            "bucket_seconds": BUCKET_SECONDS,
            "buckets": [
                {
                    "t": t.isoformat(),
                    "ballots": v["ballots"],
                    "rejections": dict(sorted(v["rejections"].items())),
                }
                for t, v in sorted(recent.items())
            ],
        },
    }
