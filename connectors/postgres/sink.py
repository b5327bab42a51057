"""``ringtally sink``: the output topics into Postgres, exactly once.

Why aiokafka (not confluent-kafka): the sink is an asyncio program around
asyncpg, and aiokafka's rebalance listener is a coroutine awaited inside the
rebalance, on the same loop, so assignment handling, pausing and seeking need
no thread hand-off (confluent-kafka calls ``on_assign`` from ``poll()`` on
its own thread). Throughput is bounded by Postgres, not the client: aiokafka
decodes well above the target rate on one core (see ``docs/sink.md``).
The Faust workers use aiokafka too, so one client library is in play.

Exactly once: the consumer runs with ``isolation_level=read_committed`` and
``enable_auto_commit=False``; each batch's rows and the partitions' next
offsets are written in ONE Postgres transaction (:mod:`.writer`); on start
and on every partition assignment the sink pauses the new partitions, reads
their offsets from ``sink_offsets`` and seeks there (none stored: the
beginning), then resumes. Kafka's committed offsets are written after each
Postgres commit, best effort, for lag dashboards only; nothing reads them.

Outages: a Postgres error of the "unavailable" kind (:data:`.db.TRANSIENT`)
pauses every assigned partition and retries the SAME batch with capped
exponential backoff, logging once when it goes down and once when it is back
(:class:`.backoff.Outage`); the fencing check makes the retry safe even when
the lost reply was the COMMIT's. A batch Postgres refuses for its content
(a value out of range, a NUL in text) is split record by record and the
record it refuses is dead-lettered, so no partition is ever stuck.

Gaps: when a partition's stored offset is below the log's start (retention or
``deleteRecords`` removed records the sink never stored), Kafka would move the
consumer to the log start and the sink would skip them without a word. It
checks instead, when it seeks a partition and whenever a batch starts past the
stored offset (a compacted topic or a transaction marker jumps too; the log
start tells them apart), and stops with :class:`~.errors.SinkGap` (one line,
exit 4). ``accept_gap`` (``ringtally sink --accept-gap``) logs the loss at
ERROR, counts it (``ringtally_sink_gap_records_total``) and goes on.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from typing import Any

import asyncpg
from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import KafkaConnectionError, KafkaError

from streams.backoff import Outage
from streams.errors import KafkaUnavailable, PostgresUnavailable, UsageProblem
from streams.heads import trusted_log_key
from streams.kafka_client import aiokafka_kwargs, wait_until_admitted
from streams.settings import Settings

from .db import TRANSIENT, connect
from .decode import DeadLetter, Decoded, Record, decode
from .dlq import DeadLetterTopic
from .errors import SchemaNotReady, SinkGap
from .migrate import check_ready
from .offsets import TP, OffsetConflict, load
from .topics import DLQ, ensure_topics, output_topics
from .writer import Batch, BatchWriter, Loader, WriteResult

__all__ = ["Sink", "SinkStats"]

log = logging.getLogger("ringtally.sink")

#: Errors meaning "retry this batch later on a fresh connection".
_RETRY = (*TRANSIENT, PostgresUnavailable, KafkaError)


@dataclass
class SinkStats:
    """Counters for logs, ``--once`` summaries and the bench."""

    started: float = field(default_factory=time.monotonic)
    records: int = 0
    batches: int = 0
    ballots: int = 0
    #: stored ballots replaced by a ballot that supersedes them (a retracted double vote)
    ballots_replaced: int = 0
    rejections: int = 0
    audit: int = 0
    tallies_changed: int = 0
    duplicates: int = 0
    dead_letters: int = 0
    #: dead letters that were a second outcome for a votes-topic position (issue 16)
    outcome_conflicts: int = 0
    offset_conflicts: int = 0
    postgres_outages: int = 0
    #: records lost to a gap the operator accepted (--accept-gap)
    gap_records: int = 0

    def summary(self) -> str:
        secs = max(time.monotonic() - self.started, 1e-9)
        return (
            f"{self.records} records in {self.batches} batches ({self.records / secs:,.0f}/s): "
            f"{self.ballots} ballots ({self.ballots_replaced} replaced), "
            f"{self.rejections} rejections, {self.audit} audit events, "
            f"{self.tallies_changed} tally changes, {self.duplicates} duplicates absorbed, "
            f"{self.dead_letters} dead-lettered"
        )


class _Rebalance(ConsumerRebalanceListener):
    """Hands assignment changes to the sink (awaited by aiokafka inside the rebalance)."""

    def __init__(self, sink: Sink) -> None:
        self.sink = sink

    async def on_partitions_revoked(self, revoked: Any) -> None:
        self.sink.on_revoked(revoked)

    async def on_partitions_assigned(self, assigned: Any) -> None:
        self.sink.on_assigned(assigned)


class _Stopping(Exception):
    """The sink was asked to stop while waiting out an outage."""


class Sink:
    """Consumes the four output topics and writes them to Postgres exactly once."""

    def __init__(
        self,
        settings: Settings,
        *,
        batch_size: int = 5000,
        group_id: str | None = None,
        loader: Loader = "copy",
        once: bool = False,
        until_idle: float | None = None,
        poll_ms: int = 100,
        stop: asyncio.Event | None = None,
        backoff_cap: float = 5.0,
        accept_gap: bool = False,
    ) -> None:
        self.settings = settings
        #: Go on past records deleted from the log before they were stored (logged, counted).
        self.accept_gap = accept_gap
        #: Per partition, the log start up to which a gap was accepted (not reported twice).
        self._gap_accepted: dict[TP, int] = {}
        self.batch_size = batch_size
        self.group_id = group_id or f"{settings.topic_prefix}-sink"
        self.loader = loader
        self.once = once
        self.until_idle = until_idle
        self.poll_ms = poll_ms
        self.stop = stop or asyncio.Event()
        self.topics = output_topics(settings)
        self._kind = {full: kind for kind, full in self.topics.items()}
        self.stats = SinkStats()
        self._pg = Outage("postgres", log, cap=backoff_cap)
        self._kafka = Outage("kafka (dead-letter topic)", log, cap=backoff_cap)
        self._watched: dict[str, Outage] = {}
        self._conn: asyncpg.Connection | None = None
        self._writer: BatchWriter | None = None
        self._trusted_log_key: bytes | None = None
        self._warned_no_log_key = False
        self._consumer: AIOKafkaConsumer | None = None
        self._dlq: DeadLetterTopic | None = None
        #: Resolved partitions -> the offset stored in Postgres (None: never stored).
        self._expected: dict[TP, int | None] = {}
        #: Assigned partitions not yet seeked to their Postgres offsets (kept paused).
        self._pending: set[TopicPartition] = set()
        self._end: dict[TopicPartition, int] | None = None
        self._last_kafka_commit = 0.0
        #: Prometheus endpoint (metrics.py), when Settings.metrics_port is set.
        self.metrics: Any = None

    def outages(self) -> dict[str, Outage]:
        """The dependencies the sink waits out, by name (its /health reads them), and those
        of the tasks it runs beside it (:meth:`watch`: the read model's Redis)."""
        return {"postgres": self._pg, "kafka": self._kafka, **self._watched}

    def watch(self, name: str, outage: Outage) -> None:
        """Report ``outage`` (a task run beside the sink) under ``name`` in /health."""
        self._watched[name] = outage

    # --- rebalance callbacks ----------------------------------------------------

    def on_revoked(self, revoked: Any) -> None:
        for tp in revoked:
            self._pending.discard(tp)
            self._expected.pop((tp.topic, tp.partition), None)
        if revoked:
            log.info("partitions revoked: %s", _tps(revoked))

    def on_assigned(self, assigned: Any) -> None:
        if not assigned:
            return
        assert self._consumer is not None
        self._consumer.pause(*assigned)  # nothing is fetched until seeked from Postgres
        self._pending.update(assigned)
        self._end = None
        log.info("partitions assigned: %s", _tps(assigned))

    # --- life cycle -------------------------------------------------------------

    async def run(self) -> SinkStats:
        """Run until stopped (or caught up / idle, with ``once`` / ``until_idle``)."""
        s = self.settings
        # Unreachable at start: a one-line error, exit 2; restarting: wait for it.
        self._conn = await connect(s, restart_grace=60.0)
        try:
            await check_ready(self._conn, s.postgres_schema)
            if await self._conn.fetchval(
                "SELECT tableowner = current_user FROM pg_tables"
                " WHERE schemaname = $1 AND tablename = 'audit_log'",
                s.postgres_schema,
            ):
                log.warning(
                    "the sink's Postgres role owns audit_log: it could disable the table's "
                    "append-only trigger; run it as a role without ownership "
                    "(RINGTALLY_POSTGRES_SINK_ROLE, docs/security.md)"
                )
            # Refused by Kafka (credentials, CA): one line, retried with backoff.
            await asyncio.to_thread(wait_until_admitted, s, log, self.stop.is_set)
            if self.stop.is_set():
                await self._drop_conn()
                return self.stats
            await ensure_topics(s)
            if s.metrics_port:
                from .metrics import SinkMetrics

                self.metrics = SinkMetrics(self).start(s.metrics_port, s.web_host)
                log.info("metrics on http://%s:%d/metrics", s.web_host, self.metrics.port)
        except asyncpg.InsufficientPrivilegeError as exc:
            await self._drop_conn()
            raise SchemaNotReady(
                f"the sink's Postgres role may not use schema {s.postgres_schema} ({exc})",
                fix="migrate as the owner with RINGTALLY_POSTGRES_SINK_ROLE set to this role "
                "(docs/security.md)",
            ) from None
        except BaseException:
            await self._drop_conn()
            raise
        self._dlq = DeadLetterTopic(s, s.topic(DLQ))
        self._consumer = AIOKafkaConsumer(
            **aiokafka_kwargs(
                s,
                group_id=self.group_id,
                client_id=f"{self.group_id}",
                enable_auto_commit=False,
                isolation_level="read_committed",
                auto_offset_reset="earliest",
                session_timeout_ms=10_000,
                heartbeat_interval_ms=2_000,
                max_partition_fetch_bytes=4 * 1024 * 1024,
                fetch_max_wait_ms=100,  # bounds the lag of a quiet partition (default 500 ms)
            )
        )
        self._consumer.subscribe(list(self.topics.values()), listener=_Rebalance(self))
        try:
            await self._consumer.start()
        except KafkaConnectionError as exc:
            await self._close()
            raise KafkaUnavailable(
                f"kafka at {s.kafka_bootstrap} is unavailable ({exc})",
                fix="start it ('ringtally stack up') or set RINGTALLY_KAFKA_BOOTSTRAP",
            ) from None
        log.info(
            "sink started: %s -> postgres schema %s (group %s, batch %d, loader %s)",
            ", ".join(self.topics.values()),
            s.postgres_schema,
            self.group_id,
            self.batch_size,
            self.loader,
        )
        try:
            await self._loop()
        except _Stopping:
            pass
        finally:
            await self._close()
        log.info("sink stopped: %s", self.stats.summary())
        return self.stats

    async def _close(self) -> None:
        if self.metrics is not None:
            self.metrics.stop()
        if self._consumer is not None:
            await self._consumer.stop()
        if self._dlq is not None:
            await self._dlq.stop()
        await self._drop_conn()

    async def _loop(self) -> None:
        consumer = self._consumer
        assert consumer is not None
        idle_since: float | None = None
        last_report = time.monotonic()
        while not self.stop.is_set():
            if self._pending:
                await self._resolve_pending()
                idle_since = time.monotonic()
                continue
            data = await consumer.getmany(timeout_ms=self.poll_ms, max_records=self.batch_size)
            if self.metrics is not None:
                self.metrics.sample(consumer, self._expected)
            if data:
                await self._check_gaps(
                    [tp for tp, recs in data.items() if self._starts_past_expected(tp, recs)]
                )
            batch = self._build(data) if data else None
            now = time.monotonic()
            if batch is not None and batch.next_offsets:
                await self._commit(batch)
                idle_since = now
            elif consumer.assignment() and idle_since is not None:
                if self.until_idle is not None and now - idle_since >= self.until_idle:
                    log.info("idle for %.1f s: stopping (--until-idle)", now - idle_since)
                    return
            if self.once and await self._caught_up():
                log.info("caught up with the end offsets seen at start: stopping (--once)")
                return
            if now - last_report >= 10.0:
                last_report = now
                log.info("sink: %s", self.stats.summary())

    async def _caught_up(self) -> bool:
        consumer = self._consumer
        assert consumer is not None
        assigned = list(consumer.assignment())
        if not assigned or self._pending:
            return False
        if self._end is None:
            self._end = await consumer.end_offsets(assigned)
        for tp in assigned:
            if await consumer.position(tp) < self._end.get(tp, 0):
                return False
        return True

    # --- Postgres connection ----------------------------------------------------

    async def _ensure_conn(self) -> asyncpg.Connection:
        if self._conn is None or self._conn.is_closed():
            self._conn = await connect(self.settings)
            self._writer = None
        if self._writer is None:
            self._writer = BatchWriter(
                self._conn,
                self.topics,
                dlq=self._dlq,
                loader=self.loader,
                votes_topic=self.settings.topic("votes"),
                log_key=self._log_key,
            )
        return self._conn

    def _log_key(self) -> bytes | None:
        """The trusted log public key, looked up until found (the workers write log.pub
        when they first start, maybe after the sink). None: heads are dead letters."""
        if self._trusted_log_key is None:
            try:
                self._trusted_log_key = trusted_log_key(self.settings)
            except UsageProblem:
                if not self._warned_no_log_key:
                    self._warned_no_log_key = True
                    log.warning(
                        "no log public key (RINGTALLY_LOG_PUBLIC_KEY or %s): signed heads are "
                        "dead-lettered 'unverified_head', not stored",
                        self.settings.log_public_key_path,
                    )
        return self._trusted_log_key

    async def _drop_conn(self) -> None:
        conn, self._conn, self._writer = self._conn, None, None
        if conn is not None and not conn.is_closed():
            conn.terminate()

    async def _outage(self, exc: BaseException) -> None:
        """Pause everything, wait the backoff delay (stop-aware)."""
        outage = self._kafka if isinstance(exc, KafkaError) else self._pg
        if not outage.down and outage is self._pg:
            self.stats.postgres_outages += 1
        if outage is self._pg:
            await self._drop_conn()
        consumer = self._consumer
        assert consumer is not None
        consumer.pause(*consumer.assignment())
        delay = outage.failed(exc)
        try:
            await asyncio.wait_for(self.stop.wait(), timeout=delay)
        except TimeoutError:
            return
        raise _Stopping

    def _recovered(self) -> None:
        back = [o.ok() for o in (self._pg, self._kafka)]
        if any(b is not None for b in back):
            consumer = self._consumer
            assert consumer is not None
            consumer.resume(*(tp for tp in consumer.assignment() if tp not in self._pending))

    # --- assignment -------------------------------------------------------------

    async def _resolve_pending(self) -> None:
        """Seek newly assigned partitions to the offsets stored in Postgres, then resume."""
        consumer = self._consumer
        assert consumer is not None
        while True:
            tps = [tp for tp in self._pending if tp in consumer.assignment()]
            try:
                conn = await self._ensure_conn()
                stored = await load(conn, [(tp.topic, tp.partition) for tp in tps])
            except _RETRY as exc:
                await self._outage(exc)
                continue
            break
        self._recovered()
        fresh = []
        for tp in tps:
            key = (tp.topic, tp.partition)
            if key in stored:
                consumer.seek(tp, stored[key])
            else:
                fresh.append(tp)
            self._expected[key] = stored.get(key)
        if fresh:
            await consumer.seek_to_beginning(*fresh)
        await self._check_gaps(tps)
        self._pending.difference_update(tps)
        self._pending = {tp for tp in self._pending if tp in consumer.assignment()}
        if not (self._pg.down or self._kafka.down):
            consumer.resume(*tps)
        log.info(
            "seeked %d partition(s) to their postgres offsets (%d from the beginning)",
            len(tps),
            len(fresh),
        )

    def _starts_past_expected(self, tp: TopicPartition, recs: list[Any]) -> bool:
        key = (tp.topic, tp.partition)
        if tp in self._pending or key not in self._expected or not recs:
            return False
        return recs[0].offset > max(self._expected[key] or 0, self._gap_accepted.get(key, 0))

    async def _check_gaps(self, tps: list[TopicPartition]) -> None:
        """Stop (SinkGap) if any of these partitions' logs start past the offset stored
        in Postgres: records were deleted before the sink stored them. With
        ``accept_gap``, log and count the loss instead, once per gap."""
        if not tps:
            return
        consumer = self._consumer
        assert consumer is not None
        starts = await consumer.beginning_offsets(tps)
        for tp in tps:
            key = (tp.topic, tp.partition)
            expected = max(self._expected.get(key) or 0, self._gap_accepted.get(key, 0))
            start = starts.get(tp, 0)
            if start <= expected:
                continue
            what = (
                f"{tp.topic}[{tp.partition}]: offsets {expected}..{start - 1} were deleted from "
                f"the log (retention or deleteRecords) before the sink stored them in postgres"
            )
            if not self.accept_gap:
                raise SinkGap(
                    f"sink gap: {what}",
                    fix="restore them from a backup, or accept the loss and go on: "
                    "ringtally sink --accept-gap (docs/sink.md)",
                )
            log.error("SINK GAP accepted (--accept-gap): %s; going on from %d", what, start)
            self._gap_accepted[key] = start
            self.stats.gap_records += start - expected

    def _mark_all_pending(self) -> None:
        consumer = self._consumer
        assert consumer is not None
        assigned = consumer.assignment()
        consumer.pause(*assigned)
        self._pending.update(assigned)
        self._expected.clear()

    # --- batches ----------------------------------------------------------------

    def _build(self, data: dict[TopicPartition, list[Any]]) -> Batch:
        batch = Batch()
        for tp, recs in data.items():
            key = (tp.topic, tp.partition)
            if tp in self._pending or key not in self._expected:
                continue  # fetched before a rebalance: it will be read again after the seek
            kind = self._kind[tp.topic]
            expected = self._expected[key]
            start = expected or 0
            last = None
            for r in recs:
                if r.offset < start:
                    continue
                rec = Record(r.topic, r.partition, r.offset, r.timestamp, r.key, r.value)
                out = decode(kind, rec)
                if isinstance(out, DeadLetter):
                    batch.dead.append(out)
                else:
                    getattr(batch, kind).append(out)
                last = r.offset
                batch.records += 1
            if last is not None:
                batch.expected[key] = expected
                batch.next_offsets[key] = last + 1
        return batch

    async def _commit(self, batch: Batch) -> None:
        """Write the batch (retrying through outages), then advance the in-memory offsets."""
        while True:
            try:
                await self._ensure_conn()
                assert self._writer is not None
                result = await self._writer.write(batch)
            except OffsetConflict as exc:
                self.stats.offset_conflicts += 1
                log.warning("%s; dropping the batch and re-seeking from postgres", exc)
                self._mark_all_pending()
                return
            except _RETRY as exc:
                await self._outage(exc)
                continue
            except asyncpg.PostgresError as exc:
                self._recovered()
                if batch.records > 1:
                    log.error(
                        "postgres refused a batch of %d records (%s: %s); "
                        "retrying record by record",
                        batch.records,
                        type(exc).__name__,
                        exc,
                    )
                    for one in _split(batch):
                        if self._pending:  # an offset conflict: everything is re-read anyway
                            return
                        await self._commit(one)
                    return
                batch = _unstorable(batch, exc)  # this record is what Postgres refuses
                continue
            break
        self._recovered()
        self._account(batch, result)
        await self._commit_kafka()

    def _account(self, batch: Batch, r: WriteResult) -> None:
        for key, nxt in batch.next_offsets.items():
            if key in self._expected:
                self._expected[key] = nxt
        st = self.stats
        st.records += batch.records
        st.batches += 1
        st.ballots += r.ballots
        st.ballots_replaced += r.ballots_replaced
        st.rejections += r.rejections
        st.audit += r.audit
        st.tallies_changed += len(r.tallies_changed)
        st.duplicates += r.ballot_duplicates + r.rejection_duplicates + r.audit_duplicates
        st.dead_letters += len(r.dead)
        st.outcome_conflicts += r.outcome_conflicts

    async def _commit_kafka(self) -> None:
        """Best effort, at most once a second: only for lag dashboards, never read back."""
        now = time.monotonic()
        if now - self._last_kafka_commit < 1.0:
            return
        self._last_kafka_commit = now
        consumer = self._consumer
        assert consumer is not None
        assigned = consumer.assignment()
        offsets = {
            TopicPartition(t, p): off
            for (t, p), off in self._expected.items()
            if off is not None and TopicPartition(t, p) in assigned
        }
        if not offsets:
            return
        try:
            await consumer.commit(offsets)
        except (KafkaError, AssertionError, ValueError) as exc:
            log.debug("kafka offset commit skipped (%s); postgres holds the truth", exc)


def _split(batch: Batch) -> list[Batch]:
    """One batch per record, in offset order per partition, each with its own offsets."""
    items: list[tuple[TP, int, str, Decoded | DeadLetter]] = []
    for kind in ("ballots", "tallies", "rejections", "audit", "heads"):
        for d in getattr(batch, kind):
            items.append(((d.record.topic, d.record.partition), d.record.offset, kind, d))
    for d in batch.dead:
        items.append(((d.record.topic, d.record.partition), d.record.offset, "dead", d))
    items.sort(key=lambda x: (x[0], x[1]))
    expected = dict(batch.expected)
    out = []
    for tp, offset, kind, item in items:
        one = Batch(expected={tp: expected[tp]}, next_offsets={tp: offset + 1}, records=1)
        one.dlq_sent = batch.dlq_sent
        getattr(one, kind).append(item)
        out.append(one)
        expected[tp] = offset + 1
    return out


def _unstorable(one: Batch, exc: BaseException) -> Batch:
    """The one-record batch ``one`` as a dead letter (same offsets), since Postgres refuses it."""
    items = one.ballots + one.tallies + one.rejections + one.audit + one.heads
    if not items:
        raise exc  # a dead letter itself was refused: a bug, not bad data
    rec = items[0].record
    dead = DeadLetter(rec, "unstorable", f"postgres refused it: {type(exc).__name__}: {exc}"[:2000])
    log.error("dead-lettering %s[%d]@%d: %s", rec.topic, rec.partition, rec.offset, dead.detail)
    out = Batch(dead=[dead], expected=one.expected, next_offsets=one.next_offsets, records=1)
    out.dlq_sent = one.dlq_sent
    return out


def _tps(tps: Any) -> str:
    """``t.ballots[0-11], t.tallies[0-11]``: partitions grouped by topic."""
    by_topic: dict[str, list[int]] = {}
    for tp in tps:
        by_topic.setdefault(tp.topic, []).append(tp.partition)
    parts = []
    for topic, ps in sorted(by_topic.items()):
        ps.sort()
        contiguous = ps == list(range(ps[0], ps[-1] + 1))
        shown = f"{ps[0]}-{ps[-1]}" if contiguous and len(ps) > 1 else ",".join(map(str, ps))
        parts.append(f"{topic}[{shown}]")
    return ", ".join(parts) or "-"
