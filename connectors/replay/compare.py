"""Live schema vs shadow schema: what a replay changed (nothing, by invariant 6).

Each table is diffed in Postgres with a FULL OUTER JOIN on its identity, so
only differing rows ever leave the database:

- ballots by ``vote_id``; content: submission, key image, vote type, ring,
  epoch, source partition and offset;
- rejections by source position (topic, partition, offset); content: reason,
  vote id, token id, payload (``detail`` is free text and not compared);
- tallies by ``submission_id``; content: the four counts, total, decision,
  rules version and version.

``since`` (partition -> first votes-topic offset at or after ``--from-time``)
limits ballots and rejections to those whose source is at or after it, and
tallies to submissions that have such a ballot on either side.

A tally's ``version`` is not compared: it counts the changes the tally went
through, and a double vote (one reviewer, two slots, one submission) whose
second-appended half reached the tally stage first costs one more change (its
retraction) than one that arrived in log order. Which vote counts, and so the
counts and decision, is decided by the broker's timestamps and the log
(LogAppendTime), which a replay reads unchanged (see ``agents/tally.py``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from connectors.postgres.db import quote_ident

__all__ = ["Comparison", "Difference", "compare_schemas"]

BALLOT_FIELDS = (
    "submission_id",
    "key_image",
    "vote_type",
    "ring_id",
    "epoch",
    "source_partition",
    "source_offset",
)
REJECTION_FIELDS = ("reason", "vote_id", "token_id", "payload_b64")
TALLY_FIELDS = (
    "approve",
    "reject",
    "flag",
    "escalate",
    "total",
    "decision",
    "rules_version",
)

FIELDS = {"ballot": BALLOT_FIELDS, "rejection": REJECTION_FIELDS, "tally": TALLY_FIELDS}


@dataclass(frozen=True)
class Difference:
    kind: str  # "ballot", "rejection", "tally"
    key: str
    live: Mapping[str, Any] | None
    shadow: Mapping[str, Any] | None

    @property
    def fields(self) -> list[str]:
        if self.live is None or self.shadow is None:
            return []
        order = FIELDS.get(self.kind, tuple(self.live))  # jsonb does not keep key order
        return [f for f in order if self.live.get(f) != self.shadow.get(f)]

    def describe(self) -> str:
        if self.shadow is None:
            return "only in live"
        if self.live is None:
            return "only in replay"
        return "; ".join(f"{f}: {self.live[f]!r} → {self.shadow[f]!r}" for f in self.fields)


@dataclass
class Comparison:
    live_schema: str
    shadow_schema: str
    counts: dict[str, tuple[int, int]] = field(default_factory=dict)  # table -> (live, shadow)
    differences: list[Difference] = field(default_factory=list)


def _position_filter(alias: str) -> str:
    """Source position in [since, until) per partition; $1 since[], $2 until[] (NULL: open)."""
    part = f"{alias}.source_partition + 1"
    return (
        f"($1::bigint[] IS NULL OR {alias}.source_offset >= coalesce(($1::bigint[])[{part}], 0)) "
        f"AND ($2::bigint[] IS NULL OR {alias}.source_offset < coalesce(($2::bigint[])[{part}], 0))"
    )


def _array(offsets: Mapping[int, int] | None) -> list[int] | None:
    if offsets is None:
        return None
    return [offsets.get(p, 0) for p in range(max(offsets, default=-1) + 1)]


async def compare_schemas(
    conn: Any,
    live: str,
    shadow: str,
    *,
    votes_topic: str,
    since: Mapping[int, int] | None = None,
    until: Mapping[int, int] | None = None,
) -> Comparison:
    """Diff ballots, rejections and tallies of two sink schemas (names are schema-qualified).

    ``since`` / ``until``: per votes partition, the first offset compared and
    the first one not compared (``until``: the end offsets the replay was run
    to, so votes the live pipeline received meanwhile are not counted as
    differences). Rejections from another source topic are compared only
    without ``since``.
    """
    lq, sq = quote_ident(live), quote_ident(shadow)
    args: list[Any] = [_array(since), _array(until), votes_topic]
    out = Comparison(live, shadow)

    def cols(alias: str, names: Sequence[str]) -> str:
        return "jsonb_build_object(" + ", ".join(f"'{n}', {alias}.{n}" for n in names) + ")"

    def distinct(names: Sequence[str]) -> str:
        return (
            "("
            + ", ".join(f"l.{n}" for n in names)
            + ") IS DISTINCT FROM ("
            + ", ".join(f"s.{n}" for n in names)
            + ")"
        )

    # Every query takes the same three parameters; Postgres refuses a parameter a
    # statement never mentions (its type is unknown), hence the no-op mentions.
    ballot_where = f"{_position_filter('b')} AND $3::text IS NOT NULL"
    rejection_where = (
        f"CASE WHEN r.source_topic = $3::text THEN {_position_filter('r')} "
        "ELSE $1::bigint[] IS NULL END"
    )
    tally_where = (
        f"$2::bigint[] IS NOT DISTINCT FROM $2::bigint[] AND $3::text IS NOT NULL AND "
        f"($1::bigint[] IS NULL OR t.submission_id IN ("
        f"SELECT submission_id FROM {lq}.ballots b WHERE {_position_filter('b')} "
        f"UNION SELECT submission_id FROM {sq}.ballots b WHERE {_position_filter('b')}))"
    )

    # ballots -----------------------------------------------------------------------
    rows = await conn.fetch(
        f"""
        WITH l AS (SELECT * FROM {lq}.ballots b WHERE {ballot_where}),
             s AS (SELECT * FROM {sq}.ballots b WHERE {ballot_where})
        SELECT coalesce(l.vote_id, s.vote_id)::text AS key,
               CASE WHEN l.vote_id IS NULL THEN NULL ELSE {cols("l", BALLOT_FIELDS)} END AS live,
               CASE WHEN s.vote_id IS NULL THEN NULL ELSE {cols("s", BALLOT_FIELDS)} END AS shadow
        FROM l FULL OUTER JOIN s ON l.vote_id = s.vote_id
        WHERE l.vote_id IS NULL OR s.vote_id IS NULL OR {distinct(BALLOT_FIELDS)}
        ORDER BY key
        """,
        *args,
    )
    out.differences += [_diff("ballot", r) for r in rows]

    # rejections --------------------------------------------------------------------
    rows = await conn.fetch(
        f"""
        WITH l AS (SELECT * FROM {lq}.rejections r WHERE {rejection_where}),
             s AS (SELECT * FROM {sq}.rejections r WHERE {rejection_where})
        SELECT coalesce(l.source_topic, s.source_topic) || '[' ||
                   coalesce(l.source_partition, s.source_partition) || ']@' ||
                   coalesce(l.source_offset, s.source_offset) AS key,
               CASE WHEN l.id IS NULL THEN NULL ELSE {cols("l", REJECTION_FIELDS)} END AS live,
               CASE WHEN s.id IS NULL THEN NULL ELSE {cols("s", REJECTION_FIELDS)} END AS shadow
        FROM l FULL OUTER JOIN s
          ON (l.source_topic, l.source_partition, l.source_offset)
           = (s.source_topic, s.source_partition, s.source_offset)
        WHERE l.id IS NULL OR s.id IS NULL OR {distinct(REJECTION_FIELDS)}
        ORDER BY coalesce(l.source_partition, s.source_partition),
                 coalesce(l.source_offset, s.source_offset)
        """,
        *args,
    )
    out.differences += [_diff("rejection", r) for r in rows]

    # tallies -----------------------------------------------------------------------
    rows = await conn.fetch(
        f"""
        WITH l AS (SELECT * FROM {lq}.tallies t WHERE {tally_where}),
             s AS (SELECT * FROM {sq}.tallies t WHERE {tally_where})
        SELECT coalesce(l.submission_id, s.submission_id) AS key,
               CASE WHEN l.submission_id IS NULL THEN NULL ELSE {cols("l", TALLY_FIELDS)} END
                   AS live,
               CASE WHEN s.submission_id IS NULL THEN NULL ELSE {cols("s", TALLY_FIELDS)} END
                   AS shadow
        FROM l FULL OUTER JOIN s ON l.submission_id = s.submission_id
        WHERE l.submission_id IS NULL OR s.submission_id IS NULL OR {distinct(TALLY_FIELDS)}
        ORDER BY key
        """,
        *args,
    )
    out.differences += [_diff("tally", r) for r in rows]

    # rows in scope on each side
    for table, alias, where in (
        ("ballots", "b", ballot_where),
        ("rejections", "r", rejection_where),
        ("tallies", "t", tally_where),
    ):
        a = await conn.fetchval(f"SELECT count(*) FROM {lq}.{table} {alias} WHERE {where}", *args)
        b = await conn.fetchval(f"SELECT count(*) FROM {sq}.{table} {alias} WHERE {where}", *args)
        out.counts[table] = (a, b)
    return out


def _diff(kind: str, row: Any) -> Difference:
    def load(v: Any) -> dict[str, Any] | None:
        return None if v is None else (json.loads(v) if isinstance(v, str) else dict(v))

    return Difference(kind, row["key"], load(row["live"]), load(row["shadow"]))
