"""One batch of consumed records -> one Postgres transaction: the rows AND the offsets.

This is quix-streams' ``Checkpoint.commit`` done against Postgres instead of
Kafka. The steps of :meth:`BatchWriter.write`, each marked ``# step N`` in
the body:

1. BEGIN; lock the batch's ``sink_offsets`` rows and check they still hold the
   offsets this batch was read from (fencing, see :mod:`.offsets`).
2. ballots: a ballot that ``supersedes`` another (the tally stage retracted
   a vote for one cast earlier with the same key image) first deletes the row
   stored for its (submission_id, key_image), and an earlier ballot of the
   batch it replaces is skipped. Then bulk-load into a temp table, ``INSERT …
   SELECT … ON CONFLICT DO NOTHING`` (vote_id and (submission_id, key_image)
   absorb duplicates); a skipped row that is NOT an identical copy of a
   stored one is a conflict -> dead letter. A ballot of a vote already
   retracted (superseded in the batch, or by a stored retraction leaf) is a
   redelivered batch's copy and is absorbed too (finding F11).
   Every ballot of the batch (replaced ones too) also adds its log leaves
   (``models.log.ballot_leaves``) to ``log_leaves``, and so does every
   rejection of a well-formed vote (step 3, ``models.log.rejection_leaves``:
   its ``rejection`` leaf); a different leaf at a
   stored (submission, index) is logged at ERROR and dead-lettered
   (``log_conflict``). A ballot at a votes-topic position
   that already has a rejection (other than ``duplicate_key_image``) is a
   second outcome for it -> dead letter, not stored.
3. rejections: same, keyed by the original votes-topic position. A rejection
   with another reason (or vote) than the one stored at its position, or with
   a reason other than ``duplicate_key_image`` where a ballot is stored, is a
   second outcome -> logged at ERROR, dead-lettered, the first one kept.
4. audit: same, keyed by (chain, sequence); an identical duplicate is
   ignored, a different event at a stored (chain, sequence) is a FORK -> logged
   at ERROR and dead-lettered.
5. tallies: the highest version per submission in the batch, upserted only
   ``WHERE stored.version < incoming.version``; escalations for every
   ESCALATED tally (first = lowest version, latest = highest).
   Signed heads: the largest tree per submission, upserted only
   ``WHERE stored.tree_size < incoming.tree_size`` (or, at the same size, when
   the incoming head is the final one and the stored one is not).
6. dead letters: into ``sink_dead_letters`` and produced to the DLQ topic,
   acks awaited (so none is lost if the commit then succeeds).
7. store the next offsets of every partition in the batch (dead letters
   included, so a bad record never blocks its partition).
8. COMMIT. Nothing about the batch is visible before, everything after.

Bulk loading: ``copy`` (COPY into the temp table, the default) or ``unnest``
(one ``INSERT … SELECT FROM unnest($arrays)``); the bench compares them.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

import asyncpg

from models import Decision
from models.log import ballot_leaves, final_head_problem, rejection_leaves
from streams.heads import head_problem

from .decode import DeadLetter, Decoded
from .dlq import DeadLetterTopic
from .offsets import TP, check_and_lock, store

__all__ = ["Batch", "BatchWriter", "Loader", "WriteResult"]

log = logging.getLogger("ringtally.sink")

Loader = Literal["copy", "unnest"]

_TEMP_TABLES = """
CREATE TEMP TABLE IF NOT EXISTS sink_in_ballots (
    k_partition int, k_offset bigint,
    vote_id uuid, submission_id text, key_image text, vote_type text, ring_id text,
    epoch bigint, source_partition int, source_offset bigint
) ON COMMIT DELETE ROWS;
CREATE TEMP TABLE IF NOT EXISTS sink_in_rejections (
    k_partition int, k_offset bigint,
    vote_id uuid, token_id text, reason text, detail text, payload_b64 text,
    source_topic text, source_partition int, source_offset bigint
) ON COMMIT DELETE ROWS;
CREATE TEMP TABLE IF NOT EXISTS sink_in_audit (
    k_partition int, k_offset bigint,
    chain text, sequence bigint, prev_hash text, hash text, kind text, vote_id uuid,
    submission_id text, key_image text, reason text, decision text,
    source_partition int, source_offset bigint
) ON COMMIT DELETE ROWS;
"""

_COLUMNS: dict[str, tuple[tuple[str, str], ...]] = {
    "ballots": (
        ("k_partition", "int"),
        ("k_offset", "bigint"),
        ("vote_id", "uuid"),
        ("submission_id", "text"),
        ("key_image", "text"),
        ("vote_type", "text"),
        ("ring_id", "text"),
        ("epoch", "bigint"),
        ("source_partition", "int"),
        ("source_offset", "bigint"),
    ),
    "rejections": (
        ("k_partition", "int"),
        ("k_offset", "bigint"),
        ("vote_id", "uuid"),
        ("token_id", "text"),
        ("reason", "text"),
        ("detail", "text"),
        ("payload_b64", "text"),
        ("source_topic", "text"),
        ("source_partition", "int"),
        ("source_offset", "bigint"),
    ),
    "audit": (
        ("k_partition", "int"),
        ("k_offset", "bigint"),
        ("chain", "text"),
        ("sequence", "bigint"),
        ("prev_hash", "text"),
        ("hash", "text"),
        ("kind", "text"),
        ("vote_id", "uuid"),
        ("submission_id", "text"),
        ("key_image", "text"),
        ("reason", "text"),
        ("decision", "text"),
        ("source_partition", "int"),
        ("source_offset", "bigint"),
    ),
}

_INSERT = {
    "ballots": """
        WITH ins AS (
            INSERT INTO ballots (vote_id, submission_id, key_image, vote_type, ring_id, epoch,
                                 source_partition, source_offset)
            SELECT vote_id, submission_id, key_image, vote_type, ring_id, epoch,
                   source_partition, source_offset
            FROM pg_temp.sink_in_ballots ORDER BY k_partition, k_offset
            ON CONFLICT DO NOTHING RETURNING 1)
        SELECT count(*) FROM ins""",
    "rejections": """
        WITH ins AS (
            INSERT INTO rejections (vote_id, token_id, reason, detail, payload_b64,
                                    source_topic, source_partition, source_offset)
            SELECT vote_id, token_id, reason, detail, payload_b64,
                   source_topic, source_partition, source_offset
            FROM pg_temp.sink_in_rejections ORDER BY k_partition, k_offset
            ON CONFLICT DO NOTHING RETURNING 1)
        SELECT count(*) FROM ins""",
    "audit": """
        WITH ins AS (
            INSERT INTO audit_log (chain, sequence, prev_hash, hash, kind, vote_id, submission_id,
                                   key_image, reason, decision, source_partition, source_offset)
            SELECT chain, sequence, prev_hash, hash, kind, vote_id, submission_id,
                   key_image, reason, decision, source_partition, source_offset
            FROM pg_temp.sink_in_audit ORDER BY k_partition, k_offset
            ON CONFLICT (chain, sequence) DO NOTHING RETURNING 1)
        SELECT count(*) FROM ins""",
}

# Rows of the batch that were skipped and are not identical copies of stored rows.
_BALLOT_CONFLICTS = """
    SELECT i.k_partition, i.k_offset, b.vote_id IS NULL AS other_vote
    FROM pg_temp.sink_in_ballots i LEFT JOIN ballots b ON b.vote_id = i.vote_id
    WHERE b.vote_id IS NULL
       OR (b.submission_id, b.key_image, b.vote_type, b.ring_id, b.epoch,
           b.source_partition, b.source_offset)
          IS DISTINCT FROM
          (i.submission_id, i.key_image, i.vote_type, i.ring_id, i.epoch,
           i.source_partition, i.source_offset)"""

# One outcome per votes-topic position (issue 16). The only legitimate second outcome
# is a retraction: a counted vote later rejected duplicate_key_image because an
# earlier vote with its key image won (its ballot row goes; the sink may see the
# two topics in either order). Anything else at a position with an outcome is a
# worker's bug or a forged output record: the first outcome stays.
_RETRACTION = "'duplicate_key_image'"

# Incoming ballots at a position where another outcome (a rejection) is stored:
# taken out of the batch before the insert, and returned to be dead-lettered.
_BALLOTS_AT_REJECTED = f"""
    DELETE FROM pg_temp.sink_in_ballots i USING rejections r
    WHERE r.source_topic = $1 AND r.source_partition = i.source_partition
      AND r.source_offset = i.source_offset AND r.reason <> {_RETRACTION}
    RETURNING i.k_partition, i.k_offset, r.reason AS stored"""

# Incoming rejections at a position where a ballot is stored (a retraction aside).
_REJECTIONS_AT_BALLOTS = f"""
    DELETE FROM pg_temp.sink_in_rejections i USING ballots b
    WHERE i.source_topic = $1 AND b.source_partition = i.source_partition
      AND b.source_offset = i.source_offset AND i.reason <> {_RETRACTION}
    RETURNING i.k_partition, i.k_offset, 'ballot ' || b.vote_id::text AS stored"""

# Skipped rejections that are not the stored rejection of their position: another
# reason, or another vote (detail and payload may differ: a redelivered retraction
# words its detail from the other side, or finds the payload gone from the log).
_REJECTION_CONFLICTS = """
    SELECT i.k_partition, i.k_offset, 'rejection ' || r.reason AS stored
    FROM pg_temp.sink_in_rejections i JOIN rejections r
      ON (r.source_topic, r.source_partition, r.source_offset)
       = (i.source_topic, i.source_partition, i.source_offset)
    WHERE (r.reason, r.vote_id, r.token_id) IS DISTINCT FROM (i.reason, i.vote_id, i.token_id)"""

# The stored ballot of each (submission, key image) that an incoming ballot supersedes.
_DELETE_SUPERSEDED = """
    DELETE FROM ballots b
    USING unnest($1::text[], $2::text[], $3::uuid[]) AS i(submission_id, key_image, vote_id)
    WHERE b.submission_id = i.submission_id AND b.key_image = i.key_image
      AND b.vote_id <> i.vote_id"""

_AUDIT_FORKS = """
    SELECT i.k_partition, i.k_offset, i.chain, i.sequence, a.hash AS stored_hash,
           i.hash AS incoming_hash
    FROM pg_temp.sink_in_audit i JOIN audit_log a ON a.chain = i.chain AND a.sequence = i.sequence
    WHERE (a.prev_hash, a.hash, a.kind, a.vote_id, a.submission_id, a.key_image, a.reason,
           a.decision, a.source_partition, a.source_offset)
          IS DISTINCT FROM
          (i.prev_hash, i.hash, i.kind, i.vote_id, i.submission_id, i.key_image, i.reason,
           i.decision, i.source_partition, i.source_offset)"""

_UPSERT_TALLIES = """
    INSERT INTO tallies AS t (submission_id, approve, reject, flag, escalate, total, decision,
                              rules_version, version)
    SELECT * FROM unnest($1::text[], $2::int[], $3::int[], $4::int[], $5::int[], $6::int[],
                         $7::text[], $8::text[], $9::bigint[])
    ON CONFLICT (submission_id) DO UPDATE SET
        approve = EXCLUDED.approve, reject = EXCLUDED.reject, flag = EXCLUDED.flag,
        escalate = EXCLUDED.escalate, total = EXCLUDED.total, decision = EXCLUDED.decision,
        rules_version = EXCLUDED.rules_version, version = EXCLUDED.version, updated_at = now()
    WHERE t.version < EXCLUDED.version
    RETURNING submission_id"""

_INSERT_LEAVES = """
    WITH i AS (
        SELECT * FROM unnest($1::text[], $2::bigint[], $3::text[], $4::text[], $5::uuid[],
                             $6::int[], $7::bigint[], $8::text[])
            AS i(submission_id, leaf_index, kind, vote_digest, vote_id,
                 source_partition, source_offset, reason)),
    ins AS (
        INSERT INTO log_leaves (submission_id, leaf_index, kind, vote_digest, vote_id,
                                source_partition, source_offset, reason)
        SELECT * FROM i ON CONFLICT (submission_id, leaf_index) DO NOTHING RETURNING 1)
    SELECT i.submission_id, i.leaf_index
    FROM i JOIN log_leaves l USING (submission_id, leaf_index)
    WHERE (l.kind, l.vote_digest, l.reason) IS DISTINCT FROM (i.kind, i.vote_digest, i.reason)"""

_UPSERT_HEADS = """
    INSERT INTO log_heads AS h (submission_id, tree_size, root_hash, log_key, batch_size,
                                batch_index, batch_path, signature, closed_ms)
    SELECT i.submission_id, i.tree_size, i.root_hash, i.log_key, i.batch_size, i.batch_index,
           ARRAY(SELECT json_array_elements_text(i.batch_path::json)), i.signature, i.closed_ms
    FROM unnest($1::text[], $2::bigint[], $3::text[], $4::text[], $5::bigint[], $6::bigint[],
                $7::text[], $8::text[], $9::bigint[])
        AS i(submission_id, tree_size, root_hash, log_key, batch_size, batch_index, batch_path,
             signature, closed_ms)
    ON CONFLICT (submission_id) DO UPDATE SET
        tree_size = EXCLUDED.tree_size, root_hash = EXCLUDED.root_hash,
        log_key = EXCLUDED.log_key, batch_size = EXCLUDED.batch_size,
        batch_index = EXCLUDED.batch_index, batch_path = EXCLUDED.batch_path,
        signature = EXCLUDED.signature, closed_ms = EXCLUDED.closed_ms, updated_at = now()
    WHERE h.tree_size < EXCLUDED.tree_size
       OR (h.tree_size = EXCLUDED.tree_size AND h.closed_ms IS NULL
           AND EXCLUDED.closed_ms IS NOT NULL)"""

_LOG_ALERT = """
    INSERT INTO log_alerts (submission_id, tree_size, root_hash, reason, detail)
    VALUES ($1, $2, $3, $4, $5)
    ON CONFLICT (submission_id, tree_size, root_hash, reason) DO NOTHING"""

_UPSERT_ESCALATIONS = """
    INSERT INTO escalations AS e (submission_id, first_version, first_escalated_at,
                                  latest_version, latest_escalated_at, latest_total)
    SELECT * FROM unnest($1::text[], $2::bigint[], $3::timestamptz[], $4::bigint[],
                         $5::timestamptz[], $6::int[])
    ON CONFLICT (submission_id) DO UPDATE SET
        first_version = LEAST(e.first_version, EXCLUDED.first_version),
        first_escalated_at = CASE WHEN EXCLUDED.first_version < e.first_version
                                  THEN EXCLUDED.first_escalated_at ELSE e.first_escalated_at END,
        latest_version = GREATEST(e.latest_version, EXCLUDED.latest_version),
        latest_escalated_at = CASE WHEN EXCLUDED.latest_version > e.latest_version
                                   THEN EXCLUDED.latest_escalated_at ELSE e.latest_escalated_at END,
        latest_total = CASE WHEN EXCLUDED.latest_version > e.latest_version
                            THEN EXCLUDED.latest_total ELSE e.latest_total END
    WHERE EXCLUDED.first_version < e.first_version OR EXCLUDED.latest_version > e.latest_version"""

_DEAD_LETTERS = """
    INSERT INTO sink_dead_letters (source_topic, source_partition, source_offset, reason, detail,
                                   key, value)
    SELECT * FROM unnest($1::text[], $2::int[], $3::bigint[], $4::text[], $5::text[],
                         $6::bytea[], $7::bytea[])
    ON CONFLICT (source_topic, source_partition, source_offset) DO NOTHING"""


@dataclass
class Batch:
    """Decoded records of one transaction, and the offsets it moves from and to."""

    ballots: list[Decoded] = field(default_factory=list)
    tallies: list[Decoded] = field(default_factory=list)
    rejections: list[Decoded] = field(default_factory=list)
    audit: list[Decoded] = field(default_factory=list)
    heads: list[Decoded] = field(default_factory=list)
    dead: list[DeadLetter] = field(default_factory=list)
    #: What sink_offsets must hold for this batch to apply (None: no row yet).
    expected: dict[TP, int | None] = field(default_factory=dict)
    #: Where each partition resumes once this batch is committed.
    next_offsets: dict[TP, int] = field(default_factory=dict)
    #: Dead letters already acked by the DLQ topic (a retried batch does not resend them).
    dlq_sent: set[tuple[str, int, int]] = field(default_factory=set)
    records: int = 0


@dataclass
class WriteResult:
    ballots: int = 0
    ballot_duplicates: int = 0
    #: Stored ballots deleted because a ballot of the batch supersedes them.
    ballots_replaced: int = 0
    rejections: int = 0
    rejection_duplicates: int = 0
    audit: int = 0
    audit_duplicates: int = 0
    #: Ballots and rejections dead-lettered as a second outcome for a votes-topic position.
    outcome_conflicts: int = 0
    tallies_changed: list[str] = field(default_factory=list)
    tallies_stale: int = 0
    escalations: int = 0
    dead: list[DeadLetter] = field(default_factory=list)


def _ts(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


def _rows(kind: str, items: list[Decoded]) -> list[tuple[object, ...]]:
    if kind == "ballots":
        return [
            (
                d.record.partition,
                d.record.offset,
                b.vote_id,
                b.submission_id,
                b.key_image,
                b.vote_type.value,
                b.ring_id,
                b.epoch,
                b.source_partition,
                b.source_offset,
            )
            for d in items
            for b in (d.model,)
        ]
    if kind == "rejections":
        return [
            (
                d.record.partition,
                d.record.offset,
                r.vote_id,
                r.token_id,
                r.reason.value,
                r.detail,
                r.payload_b64,
                r.source_topic,
                r.source_partition,
                r.source_offset,
            )
            for d in items
            for r in (d.model,)
        ]
    return [
        (
            d.record.partition,
            d.record.offset,
            a.chain,
            a.sequence,
            a.prev_hash,
            a.hash,
            a.kind.value,
            a.vote_id,
            a.submission_id,
            a.key_image,
            a.reason.value if a.reason is not None else None,
            a.decision.value if a.decision is not None else None,
            a.source_partition,
            a.source_offset,
        )
        for d in items
        for a in (d.model,)
    ]


# Votes of the batch that a stored ballot retracted: its retraction leaf names them.
_RETRACTED = """
    SELECT DISTINCT vote_id FROM log_leaves
    WHERE kind = 'retraction' AND vote_id = ANY($1::uuid[])"""


def _without_replaced(ballots: list[Decoded]) -> tuple[list[Decoded], int]:
    """The batch's ballots less those a later ballot of the batch supersedes; and how many.

    The tally stage's last ballot for a (submission, key image) is the one that
    counts, and one key's ballots share a partition, so they arrive in order.
    """
    last: dict[tuple[str, str], Decoded] = {}
    for d in ballots:
        last[(d.model.submission_id, d.model.key_image)] = d
    kept = [
        d
        for d in ballots
        if (latest := last[(d.model.submission_id, d.model.key_image)]) is d
        or latest.model.supersedes is None
    ]
    return kept, len(ballots) - len(kept)


class BatchWriter:
    """Writes batches on one connection (temp tables are per connection)."""

    def __init__(
        self,
        conn: asyncpg.Connection,
        topics: dict[str, str],
        *,
        dlq: DeadLetterTopic | None = None,
        loader: Loader = "copy",
        votes_topic: str = "ringtally.votes",
        log_key: Callable[[], bytes | None] = lambda: None,
    ) -> None:
        self.conn = conn
        #: The trusted log public key (None: not configured): heads it did not sign are
        #: dead letters, never rows (a forged head with a huge size would freeze log_heads).
        self.log_key = log_key
        self.topics = topics  # short kind -> full topic name
        #: The topic whose positions ballots name (their source_partition, source_offset).
        self.votes_topic = votes_topic
        self.dlq = dlq
        self.loader = loader
        self._ready = False

    async def _prepare(self) -> None:
        if not self._ready:
            await self.conn.execute(_TEMP_TABLES)
            self._ready = True

    async def _load(self, kind: str, rows: list[tuple[object, ...]]) -> None:
        cols = _COLUMNS[kind]
        table = f"sink_in_{kind}"
        if self.loader == "copy":
            await self.conn.copy_records_to_table(
                table, schema_name="pg_temp", records=rows, columns=[c for c, _ in cols]
            )
            return
        arrays = [list(col) for col in zip(*rows, strict=True)]
        casts = ", ".join(f"${i}::{t}[]" for i, (_, t) in enumerate(cols, 1))
        await self.conn.execute(
            f"INSERT INTO pg_temp.{table} ({', '.join(c for c, _ in cols)}) "
            f"SELECT * FROM unnest({casts})",
            *arrays,
        )

    async def _insert(
        self, kind: str, items: list[Decoded], res: WriteResult, refuse: str | None = None
    ) -> tuple[int, int]:
        """Load and insert; returns (inserted, skipped).

        ``refuse``: a DELETE on the loaded rows, run before the insert, returning
        those that would give their votes-topic position a second outcome; each
        becomes a dead letter in ``res`` (not counted as skipped).
        """
        if not items:
            return 0, 0
        await self._load(kind, _rows(kind, items))
        refused = 0
        if refuse is not None:
            for row in await self.conn.fetch(refuse, self.votes_topic):
                self._second_outcome(kind, items, row, res)
                refused += 1
        inserted = await self.conn.fetchval(_INSERT[kind])
        return inserted, len(items) - inserted - refused

    def _second_outcome(
        self, kind: str, items: list[Decoded], row: asyncpg.Record, res: WriteResult
    ) -> None:
        """Dead-letter the record of ``row`` (k_partition, k_offset, stored): another
        outcome is stored for its votes-topic position."""
        found = self._find(kind, items, row["k_partition"], row["k_offset"])
        rec, outcome = found.record, found.model
        topic = outcome.source_topic if kind == "rejections" else self.votes_topic
        why = (
            f"second outcome for {topic}[{outcome.source_partition}]@{outcome.source_offset}: "
            f"{row['stored']} is stored there"
        )
        log.error("OUTCOME CONFLICT at %s[%d]@%d: %s", rec.topic, rec.partition, rec.offset, why)
        res.dead.append(DeadLetter(rec, "outcome_conflict", why))
        res.outcome_conflicts += 1

    def _find(self, kind: str, items: list[Decoded], partition: int, offset: int) -> Decoded:
        topic = self.topics[kind]
        for d in items:
            r = d.record
            if r.topic == topic and r.partition == partition and r.offset == offset:
                return d
        raise LookupError(f"{topic}[{partition}]@{offset} not in batch")  # pragma: no cover

    async def write(self, batch: Batch) -> WriteResult:
        """Apply ``batch`` in one transaction (see the module docstring for the steps)."""
        await self._prepare()
        res = WriteResult()
        conn = self.conn
        async with conn.transaction():
            # step 1: fence on the offsets this batch was read from
            await check_and_lock(conn, batch.expected)

            # step 2: ballots: superseded ones replaced, duplicates absorbed, conflicts
            # dead-lettered
            ballots, retracted = await self._without_retracted(batch.ballots)
            ballots, skipped = _without_replaced(ballots)
            skipped += retracted
            superseding = [d.model for d in ballots if d.model.supersedes is not None]
            if superseding:
                status = await conn.execute(
                    _DELETE_SUPERSEDED,
                    [b.submission_id for b in superseding],
                    [b.key_image for b in superseding],
                    [b.vote_id for b in superseding],
                )
                res.ballots_replaced = int(status.split()[-1])
            res.ballots, res.ballot_duplicates = await self._insert(
                "ballots", ballots, res, refuse=_BALLOTS_AT_REJECTED
            )
            res.ballot_duplicates += skipped
            if res.ballot_duplicates:
                conflicts_before = len(res.dead)
                for row in await conn.fetch(_BALLOT_CONFLICTS):
                    rec = self._find(
                        "ballots", batch.ballots, row["k_partition"], row["k_offset"]
                    ).record
                    why = (
                        "(submission_id, key_image) already counted under another vote_id"
                        if row["other_vote"]
                        else "vote_id already stored with different fields"
                    )
                    log.error(
                        "ballot conflict at %s[%d]@%d: %s",
                        rec.topic,
                        rec.partition,
                        rec.offset,
                        why,
                    )
                    res.dead.append(DeadLetter(rec, "ballot_conflict", why))
                res.ballot_duplicates -= len(res.dead) - conflicts_before

            if batch.ballots:
                await self._leaves(batch.ballots, [], res)

            # step 3: rejections, keyed by the original votes-topic position; one outcome each
            res.rejections, res.rejection_duplicates = await self._insert(
                "rejections", batch.rejections, res, refuse=_REJECTIONS_AT_BALLOTS
            )
            if res.rejection_duplicates:
                for row in await conn.fetch(_REJECTION_CONFLICTS):
                    self._second_outcome("rejections", batch.rejections, row, res)
                    res.rejection_duplicates -= 1
            if batch.rejections:
                await self._leaves([], batch.rejections, res)

            # step 4: audit events; a different event at a stored (chain, sequence) is a fork
            res.audit, res.audit_duplicates = await self._insert("audit", batch.audit, res)
            if res.audit_duplicates:
                forks = await conn.fetch(_AUDIT_FORKS)
                for row in forks:
                    rec = self._find(
                        "audit", batch.audit, row["k_partition"], row["k_offset"]
                    ).record
                    why = (
                        f"audit fork: chain {row['chain']} sequence {row['sequence']} is stored "
                        f"with hash {row['stored_hash']}, this event has {row['incoming_hash']}"
                    )
                    log.error(
                        "AUDIT FORK at %s[%d]@%d: %s", rec.topic, rec.partition, rec.offset, why
                    )
                    res.dead.append(DeadLetter(rec, "audit_fork", why))
                res.audit_duplicates -= len(forks)

            # step 5: tallies (never overwrite a newer version) and escalations
            if batch.tallies:
                await self._tallies(batch.tallies, res)
            if batch.heads:
                await self._heads(batch.heads, res)

            # step 6: dead letters, in the table and (acked) on the DLQ topic
            dead = batch.dead + res.dead
            if dead:
                await conn.execute(
                    _DEAD_LETTERS,
                    [d.record.topic for d in dead],
                    [d.record.partition for d in dead],
                    [d.record.offset for d in dead],
                    [d.reason for d in dead],
                    [d.detail for d in dead],
                    [d.record.key for d in dead],
                    [d.record.value for d in dead],
                )
                if self.dlq is not None:
                    unsent = [
                        d
                        for d in dead
                        if (d.record.topic, d.record.partition, d.record.offset)
                        not in batch.dlq_sent
                    ]
                    await self.dlq.send_all(unsent)
                    batch.dlq_sent.update(
                        (d.record.topic, d.record.partition, d.record.offset) for d in unsent
                    )
            res.dead = dead

            # step 7: the next offsets, in the same transaction as the rows
            await store(conn, batch.next_offsets)
        # step 8: committed (leaving the block above commits; an exception rolled back)
        return res

    async def _without_retracted(self, ballots: list[Decoded]) -> tuple[list[Decoded], int]:
        """The batch's ballots less those of votes already retracted; and how many.

        A retracted vote never counts again (the vote cast first wins, a property
        of the votes log), so its ballot arriving after the one that superseded it
        is a copy re-emitted by a redelivered tally batch (finding F11 in
        docs/reliability.md): the worker died after sending the batch's outputs,
        before its table writes left, and decided the batch again. Retracted means:
        superseded by a ballot of this batch, or named by a stored retraction leaf
        (ballots from before the log carry no leaves: theirs is still a conflict).
        """
        retracted = {d.model.supersedes for d in ballots if d.model.supersedes is not None}
        others = [d.model.vote_id for d in ballots if d.model.vote_id not in retracted]
        if others:
            retracted.update(r["vote_id"] for r in await self.conn.fetch(_RETRACTED, others))
        kept = [d for d in ballots if d.model.vote_id not in retracted]
        return kept, len(ballots) - len(kept)

    async def _leaves(
        self, ballots: list[Decoded], rejections: list[Decoded], res: WriteResult
    ) -> None:
        """The log leaves the batch's ballots (step 2) or rejections (step 3) record;
        conflicts are dead letters."""
        rows = []  # (record, submission, index, kind, digest, vote id, partition, offset, reason)
        for d in rejections:
            r = d.model
            if r.vote_id is None:  # a leaf's rejection names its vote; anything else is forged
                continue
            for index, kind, digest, reason in rejection_leaves(r):
                rows.append(
                    (
                        d.record,
                        r.submission_id,
                        index,
                        kind.value,
                        digest.hex(),
                        r.vote_id,
                        r.source_partition,
                        r.source_offset,
                        reason,
                    )
                )
        for d in ballots:
            b = d.model
            for index, kind, digest in ballot_leaves(b):
                own = kind == "ballot"
                rows.append(
                    (
                        d.record,
                        b.submission_id,
                        index,
                        kind.value,
                        digest.hex(),
                        b.vote_id if own else b.supersedes,
                        b.source_partition if own else None,
                        b.source_offset if own else None,
                        None,
                    )
                )
        if not rows:
            return
        conflicts = await self.conn.fetch(
            _INSERT_LEAVES, *[list(col) for col in zip(*(r[1:] for r in rows), strict=True)]
        )
        for row in conflicts:
            key = (row["submission_id"], row["leaf_index"])
            rec = next(r[0] for r in rows if (r[1], r[2]) == key)
            why = f"log conflict: submission {key[0]} has another leaf stored at index {key[1]}"
            log.error("LOG CONFLICT at %s[%d]@%d: %s", rec.topic, rec.partition, rec.offset, why)
            if all(d.record is not rec for d in res.dead):
                res.dead.append(DeadLetter(rec, "log_conflict", why))

    async def _heads(self, items: list[Decoded], res: WriteResult) -> None:
        """The largest signed head per submission (step 5), if the trusted log key signed it.

        A head it did not sign is a dead letter ``bad_head_signature``; with no log key
        configured every head is a dead letter ``unverified_head`` (nothing unverified is
        stored; the compacted heads topic still has them). A head of the size of another
        head (stored or in the batch) with another root is a fork of the log: a dead
        letter ``head_fork`` and a ``log_alerts`` row, never silently dropped.
        """
        key = self.log_key()
        good: list[Decoded] = []
        for d in items:
            if key is None:
                why = "no log public key (RINGTALLY_LOG_PUBLIC_KEY or <data_dir>/log.pub)"
                res.dead.append(DeadLetter(d.record, "unverified_head", why))
                continue
            problem = head_problem(d.model, key)
            if problem is not None:
                res.dead.append(DeadLetter(d.record, "bad_head_signature", problem))
            else:
                good.append(d)
        if not good:
            return
        rows = await self.conn.fetch(
            "SELECT submission_id, tree_size, root_hash, closed_ms FROM log_heads "
            "WHERE submission_id = ANY($1::text[])",
            sorted({d.model.submission_id for d in good}),
        )
        stored = {(r["submission_id"], r["tree_size"]): r["root_hash"] for r in rows}
        largest = {r["submission_id"]: r["tree_size"] for r in rows}
        finals = {
            r["submission_id"]: (r["tree_size"], r["root_hash"], r["closed_ms"])
            for r in rows
            if r["closed_ms"] is not None
        }
        latest: dict[str, Any] = {}
        for d in good:
            h = d.model
            sub = h.submission_id
            broken = final_head_problem(h, finals.get(sub), largest.get(sub))
            if broken is not None:
                reason, why = broken
                res.dead.append(DeadLetter(d.record, reason, why))
                await self.conn.execute(
                    _LOG_ALERT, h.submission_id, h.tree_size, h.root_hash, reason, why
                )
                log.error("closed log rewritten: %s", why)
                continue
            if h.closed_ms is not None:
                finals[h.submission_id] = (h.tree_size, h.root_hash, h.closed_ms)
            largest[h.submission_id] = max(largest.get(h.submission_id, 0), h.tree_size)
            seen = stored.setdefault((h.submission_id, h.tree_size), h.root_hash)
            if seen != h.root_hash:
                why = (
                    f"two signed heads of {h.submission_id} at size {h.tree_size}: roots "
                    f"{seen} and {h.root_hash}"
                )
                res.dead.append(DeadLetter(d.record, "head_fork", why))
                await self.conn.execute(
                    _LOG_ALERT, h.submission_id, h.tree_size, h.root_hash, "head_fork", why
                )
                log.error("log fork: %s", why)
                continue
            cur = latest.get(h.submission_id)
            if cur is None or _head_order(h) > _head_order(cur):
                latest[h.submission_id] = h
        hs = list(latest.values())
        if not hs:
            return
        await self.conn.execute(
            _UPSERT_HEADS,
            [h.submission_id for h in hs],
            [h.tree_size for h in hs],
            [h.root_hash for h in hs],
            [h.log_key for h in hs],
            [h.batch_size for h in hs],
            [h.batch_index for h in hs],
            [json.dumps(h.batch_path) for h in hs],
            [h.signature for h in hs],
            [h.closed_ms for h in hs],
        )

    async def _tallies(self, items: list[Decoded], res: WriteResult) -> None:
        latest: dict[str, Decoded] = {}
        first_esc: dict[str, Decoded] = {}
        last_esc: dict[str, Decoded] = {}
        for d in items:
            t = d.model
            cur = latest.get(t.submission_id)
            if cur is None or t.version > cur.model.version:
                latest[t.submission_id] = d
            if t.decision == Decision.ESCALATED:
                f = first_esc.get(t.submission_id)
                if f is None or t.version < f.model.version:
                    first_esc[t.submission_id] = d
                la = last_esc.get(t.submission_id)
                if la is None or t.version > la.model.version:
                    last_esc[t.submission_id] = d
        ts = [d.model for d in latest.values()]
        changed = await self.conn.fetch(
            _UPSERT_TALLIES,
            [t.submission_id for t in ts],
            [t.counts.approve for t in ts],
            [t.counts.reject for t in ts],
            [t.counts.flag for t in ts],
            [t.counts.escalate for t in ts],
            [t.total for t in ts],
            [t.decision.value for t in ts],
            [t.rules_version for t in ts],
            [t.version for t in ts],
        )
        res.tallies_changed = [r["submission_id"] for r in changed]
        res.tallies_stale = len(items) - len(res.tallies_changed)
        if first_esc:
            subs = sorted(first_esc)
            await self.conn.execute(
                _UPSERT_ESCALATIONS,
                subs,
                [first_esc[s].model.version for s in subs],
                [_ts(first_esc[s].record.timestamp_ms) for s in subs],
                [last_esc[s].model.version for s in subs],
                [_ts(last_esc[s].record.timestamp_ms) for s in subs],
                [last_esc[s].model.total for s in subs],
            )
            res.escalations = len(subs)


def _head_order(head: Any) -> tuple[int, bool]:
    """Which of two heads of a submission is newer: the larger tree, then the final one."""
    return (head.tree_size, head.closed_ms is not None)
