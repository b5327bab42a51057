"""The sink's positions, kept in Postgres (``sink_offsets``) beside the rows they cover.

Kafka's committed offsets are NOT the sink's truth: they are written after
the Postgres commit, best effort, only so lag shows up in Kafka tooling. The
truth is ``sink_offsets.next_offset``, written in the same transaction as the
rows, so rows and position can never disagree, whatever crashes when.

Fencing: a batch was read starting at the position the sink last loaded or
stored (its *expected* offset). The transaction locks those offset rows first
and checks they still hold the expected values; if another sink (after a
rebalance) or a lost-ack retry has moved one, the batch is rolled back and the
sink re-seeks from Postgres (:class:`OffsetConflict`). Rows are idempotent
anyway, so this is what keeps offsets from ever moving backwards.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import asyncpg

__all__ = ["OffsetConflict", "TP", "check_and_lock", "load", "store"]

#: (topic, partition)
TP = tuple[str, int]


class OffsetConflict(Exception):
    """Stored offsets moved under this batch: roll back and re-seek (not a user error)."""

    def __init__(self, mismatches: dict[TP, tuple[int | None, int | None]]) -> None:
        self.mismatches = mismatches
        shown = ", ".join(
            f"{t}[{p}] expected {e} found {f}" for (t, p), (e, f) in sorted(mismatches.items())[:5]
        )
        super().__init__(f"stored offsets moved: {shown}")


async def load(conn: asyncpg.Connection, tps: Iterable[TP]) -> dict[TP, int]:
    """Stored next offsets for these partitions (absent: never stored -> start at the beginning)."""
    tps = list(tps)
    if not tps:
        return {}
    rows = await conn.fetch(
        "SELECT o.topic, o.partition, o.next_offset FROM sink_offsets o "
        "JOIN unnest($1::text[], $2::int[]) AS w(topic, partition) "
        "ON o.topic = w.topic AND o.partition = w.partition",
        [t for t, _ in tps],
        [p for _, p in tps],
    )
    return {(r["topic"], r["partition"]): r["next_offset"] for r in rows}


async def check_and_lock(conn: asyncpg.Connection, expected: Mapping[TP, int | None]) -> None:
    """Inside the batch's transaction: lock the offset rows and verify they hold ``expected``.

    A partition never stored (expected None) gets a placeholder row now, so a
    second sink racing for it blocks on our insert and then sees the conflict.
    """
    tps = sorted(expected)  # one lock order for every sink: no deadlocks
    rows = await conn.fetch(
        "SELECT o.topic, o.partition, o.next_offset FROM sink_offsets o "
        "JOIN unnest($1::text[], $2::int[]) AS w(topic, partition) "
        "ON o.topic = w.topic AND o.partition = w.partition "
        "ORDER BY o.topic, o.partition FOR UPDATE OF o",
        [t for t, _ in tps],
        [p for _, p in tps],
    )
    found: dict[TP, int | None] = {(r["topic"], r["partition"]): r["next_offset"] for r in rows}
    fresh = [tp for tp in tps if expected[tp] is None and tp not in found]
    if fresh:
        inserted = await conn.fetch(
            "INSERT INTO sink_offsets (topic, partition, next_offset) "
            "SELECT t, p, 0 FROM unnest($1::text[], $2::int[]) AS u(t, p) "
            "ON CONFLICT (topic, partition) DO NOTHING RETURNING topic, partition",
            [t for t, _ in fresh],
            [p for _, p in fresh],
        )
        mine = {(r["topic"], r["partition"]) for r in inserted}
        for tp in fresh:
            found[tp] = None if tp in mine else -1  # -1: someone else created it meanwhile
    bad = {tp: (expected[tp], found.get(tp)) for tp in tps if found.get(tp) != expected[tp]}
    if bad:
        raise OffsetConflict(bad)


async def store(conn: asyncpg.Connection, next_offsets: Mapping[TP, int]) -> None:
    """Inside the batch's transaction: the next offset to read, per partition."""
    tps = sorted(next_offsets)
    await conn.execute(
        "INSERT INTO sink_offsets AS o (topic, partition, next_offset) "
        "SELECT t, p, n FROM unnest($1::text[], $2::int[], $3::bigint[]) AS u(t, p, n) "
        "ON CONFLICT (topic, partition) DO UPDATE "
        "SET next_offset = EXCLUDED.next_offset, updated_at = now()",
        [t for t, _ in tps],
        [p for _, p in tps],
        [next_offsets[tp] for tp in tps],
    )
