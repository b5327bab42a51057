"""Faust wiring: the agents of the vote path, their tables and internal topics.

The decisions live in :mod:`agents.verify`, :mod:`agents.tally` and
:mod:`agents.control`; this module only connects them to Kafka.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import time
import weakref
from collections.abc import Awaitable, Callable
from typing import Any, NoReturn

import faust
from faust.types import TP

from models.internal import AcceptedVote, ClosingPassed, RefusedVote
from streams import metrics
from streams.app import app, settings, topics
from streams.errors import UsageProblem
from streams.fence import OwnershipLost
from streams.kafka_client import wait_until_admitted
from streams.pause import exit_fenced
from streams.topics import (
    broker_time_problem,
    ensure_topics,
    partition_count_problem,
    session_timeout_problem,
)

from .control import ControlState
from .loghead import LogSigner, load_log_signer
from .order import Admitted, LogOrder
from .record_reader import RecordReader
from .records import SourceRecord, rejection_for
from .registrar import RegistrarKeys, trusted_registrar_keys
from .tally import TallyKeeper
from .verify import PreparedBatch, VoteVerifier

__all__ = ["WorkerSetupProblem", "accepted_topic", "check_worker_can_start", "control"]

log = logging.getLogger(__name__)


def _internal_topic(name: str) -> faust.TopicT:
    # Named after the app id, like Faust's own repartition topics, so a replay
    # under a fresh app id never mixes with the live pipeline's records.
    return app.topic(
        f"{settings.group_id}-{name}",
        key_type=bytes,
        value_type=bytes,
        partitions=settings.partitions,
        internal=True,
    )


def _table(name: str, help_: str) -> faust.TableT:
    # A streams.tables.BatchedTable (the app's Table class): its changelog writes
    # leave when the agent's batch is done, handed over before acknowledging.
    return app.Table(
        name,
        partitions=settings.partitions,
        # key_type=bytes makes Faust use the raw codec for keys both when writing
        # the changelog and when recovering from it; values are JSON objects.
        key_type=bytes,
        # a fresh dict per table: Faust's store pops keys from it
        options=settings.rocksdb_options(),
        help=help_,
    )


accepted_topic = _internal_topic("accepted")
tokens_table = _table("tokens", "slot tag -> the vote that spent it")
tally_table = _table("tally", "ballot entries, running tallies and audit chain heads")
control = ControlState(settings)


class FaustOutputs:
    """The agents' outputs, sent straight to the app's producer.

    Why not ``Topic.send``: its per-message machinery (future, channel, buffer)
    cost more than the vote's own processing. The guarantee is unchanged,
    because Faust flushes the whole producer before it commits any offset, so
    an output is on the broker before the offset of the vote that caused it.
    """

    def __init__(self) -> None:
        self._names = {
            short: settings.topic(short)
            for short in ("votes", "rejections", "ballots", "tallies", "audit", "heads")
        }
        self._accepted = accepted_topic.get_topic_name()

    async def _send(self, topic: str, key: bytes, value: bytes) -> None:
        await app.producer.send_record(topic, key, value)

    async def rejection(self, key: bytes, rejection: Any) -> None:
        metrics.REJECTIONS.labels(str(rejection.reason)).inc()
        await self._send(self._names["rejections"], key, rejection.to_json())

    async def accepted(self, vote: AcceptedVote) -> None:
        metrics.ACCEPTED.inc()
        await self._send(self._accepted, vote.submission_id.encode(), vote.to_json())

    async def refused(self, refusal: RefusedVote) -> None:
        # The tally stage owns the submission's log: it appends the leaf and emits the
        # Rejection (counted in REJECTIONS there).
        await self._send(self._accepted, refusal.submission_id.encode(), refusal.to_json())

    async def closing_passed(self, passed: ClosingPassed) -> None:
        await self._send(self._accepted, passed.submission_id.encode(), passed.to_json())

    async def ballot(self, ballot: Any) -> None:
        metrics.BALLOTS.inc()
        await self._send(self._names["ballots"], ballot.submission_id.encode(), ballot.to_json())

    async def tally(self, tally: Any) -> None:
        metrics.TALLIES.inc()
        await self._send(self._names["tallies"], tally.submission_id.encode(), tally.to_json())

    async def audit(self, event: Any) -> None:
        await self._send(self._names["audit"], event.chain.encode(), event.to_json())

    async def head(self, head: Any) -> None:
        await self._send(self._names["heads"], head.submission_id.encode(), head.to_json())


outputs = FaustOutputs()


@functools.cache
def registrar_keys() -> RegistrarKeys:
    """The registrar keys this worker trusts (``ringtally worker`` checks them before starting)."""
    keys = RegistrarKeys(trusted_registrar_keys(settings))
    log.info("trusting registrar key(s) %s", ", ".join(pk.hex() for pk in keys.public_keys))
    return keys


@functools.cache
def log_signer() -> LogSigner:
    """The log key this worker signs heads with (``ringtally worker`` loads it before
    starting, so a missing or unreadable key file is one line, not a stopped agent)."""
    return load_log_signer(settings)


class WorkerSetupProblem(UsageProblem):
    """A topic the workers decide by carries producer timestamps, the votes topic has
    another partition count than the settings, or the brokers would refuse the
    worker's session timeout: a worker does not start."""


def check_worker_can_start() -> None:
    """Refuse to start a worker, with one line (a ``RingtallyError``), when it could not
    decide correctly: no trusted registrar key (it could accept no ring), a votes,
    rings or submissions topic whose timestamps a producer would choose (which vote
    counts first, which ring version is in force: DESIGN invariant 9), or a votes
    topic with another partition count than ``RINGTALLY_PARTITIONS`` (every vote
    would be judged against the wrong home partition), or a session timeout the
    brokers refuse at every join (it would wait for partitions for ever). Creates the
    topics and repairs their configuration first (``ensure_topics``), so this fails
    only when the broker refuses the repair. ``ringtally worker`` calls it before Faust
    starts anything; the verify agent checks the timestamps again when it starts.
    """
    registrar_keys()
    log_signer()
    wait_until_admitted(settings, log)  # a refused client: one line, retried with backoff
    ensure_topics(settings, internal=True)
    problem = _topics_problem()
    if problem is not None:
        raise WorkerSetupProblem(problem)


def _topics_problem() -> str | None:
    """Why the input topics or the group are not as the decisions need them (blocking),
    or None."""
    return (
        broker_time_problem(settings)
        or partition_count_problem(settings)
        or session_timeout_problem(settings)
    )


metrics.install(app)  # GET /metrics on the worker's web port (streams/metrics.py)

#: Exit status of a worker stopped by an unexpected error (BSD's EX_SOFTWARE).
EXIT_BUG = 70
#: Exit status of a worker that refuses to run on its configuration (BSD's EX_CONFIG).
EXIT_CONFIG = 78


#: Longest wait for a call through the consumer's thread while an agent holds records.
CONSUMER_CALL_TIMEOUT = 15.0


async def unless_rebalancing(
    call: Awaitable[Any], *, timeout: float = CONSUMER_CALL_TIMEOUT
) -> bool:
    """Await a call through the Kafka consumer's thread; give it up (False) when a
    rebalance starts or ``timeout`` passes.

    An agent making such a call holds its batch: the records to decide, and the
    ahead ones it keeps unacknowledged. A rebalance waits (``wait_empty``) until
    every record the agents hold is acknowledged, and a call through the
    consumer's thread can wait for the rebalance: the two waited for each other
    for good, and the worker decided nothing more (finding F12 after a pause; a
    surviving worker's takeover in CI). The rebalance seeks every partition to
    its committed offset anyway, so a seek given up loses nothing; a first
    offset not looked up makes the partition's first record its start, as when
    the look-up fails.
    """
    suspended = app.consumer.suspend_flow
    call_task = asyncio.ensure_future(call)
    if suspended.is_set():
        call_task.cancel()
        return False
    suspension = asyncio.ensure_future(suspended.wait())
    try:
        done, _ = await asyncio.wait(
            {call_task, suspension}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
        )
    finally:
        suspension.cancel()
    if call_task in done:
        call_task.result()
        return True
    call_task.cancel()
    return False


#: The order gates of this worker's agents (:meth:`OrderedBatches.reseek_waiting`).
GATES: weakref.WeakSet[OrderedBatches] = weakref.WeakSet()
#: Seconds a partition may wait for the records its seek back asked for before
#: the gate seeks again.
RESEEK_AFTER = 5.0


@app.timer(interval=2.5)
async def reseek_waiting_partitions() -> None:
    """Seek again partitions whose gate still waits for the records of its seek back."""
    if app.rebalancing or app.in_recovery or not app.consumer.flow_active:
        return
    for gate in list(GATES):
        await gate.reseek_waiting(RESEEK_AFTER)


class OrderedBatches:
    """An agent's batches, cut down to what may be decided now (:mod:`agents.order`).

    Records that came ahead of their partition's next offset are kept
    unacknowledged (one more reference, so the stream's ack is not the last)
    and their partition is sought back: they come again after the missing ones,
    and that second coming is the one decided and acknowledged. Extra copies of
    a position in the batch are kept unacknowledged the same way: the kept
    copy's acknowledgement, once decided, is the only one its offset gets. Nothing may
    keep a held-back record alive past its batch: Faust's in-flight set is
    weak, and a rebalance waits until it is empty.
    """

    def __init__(
        self, first_offset_from: Callable[[int, int], Awaitable[int | None]] | None = None
    ) -> None:
        self.order = LogOrder(committed=lambda tp: app.consumer.next_to_process(TP(*tp)))
        self._generation: int | None = None
        #: Reads the log from an offset (RecordReader.first_offset_from): proof of a gap.
        self._first_offset_from = first_offset_from
        #: The offset each partition was last sought back to.
        self._sought: dict[tuple[str, int], int] = {}
        #: Partitions sought back whose missing records have not come yet: the mark
        #: sought and when (monotonic). See :meth:`reseek_waiting`.
        self._waiting: dict[tuple[str, int], tuple[int, float]] = {}
        GATES.add(self)

    async def ready(self, events: list[Any]) -> list[SourceRecord]:
        generation = app.consumer_generation_id
        if generation != self._generation:  # a rebalance: marks start again from the commits
            self.order.reset()
            self._waiting.clear()
            self._generation = generation
        records = [SourceRecord.from_event(e) for e in events]
        unknown = self.order.unknown(r.partition_key for r in records)
        if unknown:  # where a partition with no commit starts, before its first mark
            try:
                await unless_rebalancing(
                    app.consumer.look_up_first_offsets(TP(*tp) for tp in unknown)
                )
            except Exception as exc:  # noqa: BLE001 - its first record is the start then
                log.warning("could not look up first offsets of %s: %r", sorted(unknown), exc)
        admitted = self.order.admit(records)
        if admitted.seek and self._first_offset_from is not None:
            admitted = await self._past_real_gaps(admitted)
        self._sought = dict(admitted.seek)
        self._note_waits(admitted)
        events.clear()  # the caller's copy of the batch (take_events keeps its own)
        for record in admitted.ahead + admitted.copies:
            record.event.message.incref()
        if admitted.seek:
            metrics.ORDER_SEEKS.inc(len(admitted.seek))
            first_ahead: dict[tuple[str, int], int] = {}
            for r in admitted.ahead:
                first_ahead.setdefault(r.partition_key, r.offset)
            log.warning(
                "records ahead of their partition's next offset, held back; seeking back: %s",
                ", ".join(
                    f"{t}[{p}] next {offset}, got {first_ahead[(t, p)]}"
                    for (t, p), offset in admitted.seek.items()
                ),
            )
            targets = {TP(t, p): offset for (t, p), offset in admitted.seek.items()}
            try:
                if not await unless_rebalancing(app.consumer.seek_wait(targets)):
                    log.info("seek back given up: a rebalance started (it seeks to the commits)")
            except Exception as exc:  # noqa: BLE001 - still held: the next batch or the watchdog
                log.warning("seek back failed (%r); retrying with the next records", exc)
        return admitted.ready

    def _note_waits(self, admitted: Admitted) -> None:
        now = time.monotonic()
        for tp, mark in admitted.seek.items():
            if self._waiting.get(tp, (None,))[0] != mark:
                self._waiting[tp] = (mark, now)
        for tp in {r.partition_key for r in admitted.ready}:
            waited = self._waiting.get(tp)
            if waited is not None and (self.order.mark(tp) or 0) > waited[0]:
                del self._waiting[tp]

    async def reseek_waiting(self, after: float) -> None:
        """Seek back again a partition whose missing records have not come ``after``
        seconds after its seek back.

        The seek back is issued while the fetcher may still hand over records it
        fetched before: one of them then sets the consumer's read offset past the
        mark, and the records fetched again from the mark are dropped as already
        read. The gate holds the partition for them; if nothing more arrives on
        it, no batch brings the next seek back and the read watchdog sees the
        read offset at the end: the partition waits for good (seen after a
        worker's takeover: a surviving worker stopped deciding its dead peer's
        accepted votes). Once the fetcher is quiet, a second seek is not undone.
        """
        now = time.monotonic()
        due = {
            tp: mark
            for tp, (mark, since) in self._waiting.items()
            if now - since >= after and self.order.mark(tp) == mark
        }
        if not due:
            return
        log.warning(
            "partitions still waiting %.0f s after their seek back; seeking again: %s",
            after,
            ", ".join(f"{t}[{p}] next {mark}" for (t, p), mark in due.items()),
        )
        metrics.ORDER_RESEEKS.inc(len(due))
        for tp, mark in due.items():
            self._waiting[tp] = (mark, now)
            self._sought[tp] = mark  # a second seek to one mark is what proves a gap
        try:
            await unless_rebalancing(
                app.consumer.seek_wait({TP(t, p): mark for (t, p), mark in due.items()})
            )
        except Exception as exc:  # noqa: BLE001 - still waiting: the next round retries
            log.warning("seek back failed (%r); retrying", exc)

    async def _past_real_gaps(self, admitted: Admitted) -> Admitted:
        """Skip a gap the log proves real: a partition sought back to the same offset a
        second time, whose first record at or after that offset lies further on (a
        transaction marker, or an aborted transaction's records: agents/order.py)."""
        assert self._first_offset_from is not None
        skipped = set()
        for tp, mark in admitted.seek.items():
            if self._sought.get(tp) != mark:
                continue
            try:
                first = await self._first_offset_from(tp[1], mark)
            except Exception as exc:  # noqa: BLE001 - no proof: keep holding, try next time
                log.warning("could not read %s[%d] from %d: %r", *tp, mark, exc)
                continue
            if first is not None and first > mark:
                log.warning(
                    "%s[%d]: offsets %d..%d hold no record (transaction markers or aborted "
                    "records); moving on to %d",
                    *tp,
                    mark,
                    first - 1,
                    first,
                )
                metrics.ORDER_GAPS_SKIPPED.inc()
                self.order.skip_to(tp, first)
                skipped.add(tp)
        if not skipped:
            return admitted
        again = self.order.admit([r for r in admitted.ahead if r.partition_key in skipped])
        return Admitted(
            ready=admitted.ready + again.ready,
            ahead=[r for r in admitted.ahead if r.partition_key not in skipped] + again.ahead,
            seek={**{tp: m for tp, m in admitted.seek.items() if tp not in skipped}, **again.seek},
            copies=admitted.copies,
        )


def stop_worker_on_bug(
    body: Callable[[faust.StreamT], Awaitable[None]],
) -> Callable[[faust.StreamT], Awaitable[None]]:
    """An unexpected exception in an agent stops the whole worker, loudly.

    Bad *input* never gets here (it becomes a rejection); this is for bugs. Left
    alone, Faust would restart or park the crashed agent while the worker kept
    heartbeating, silently holding its partitions. Exiting instead commits
    nothing further, so the records in flight are redelivered to whichever
    worker takes the partitions over, and nothing is lost.
    """

    @functools.wraps(body)
    async def guarded(stream: faust.StreamT) -> None:
        try:
            await body(stream)
        except UsageProblem as exc:  # a start check (no registrar key...): no bug
            _refuse_to_run(f"agent {body.__name__}: {exc.one_line()}")
        except OwnershipLost as exc:  # evicted mid-batch: no bug, write nothing more
            exit_fenced(exc)
        except Exception:
            _stop_worker(f"agent {body.__name__}")

    return guarded


def _stop_worker(what: str) -> NoReturn:
    log.critical("%s failed; stopping the worker (exit %d)", what, EXIT_BUG, exc_info=True)
    logging.shutdown()
    os._exit(EXIT_BUG)


def _refuse_to_run(why: str) -> NoReturn:
    """Stop the worker on a configuration it must not run with: one CRITICAL line, no
    traceback (it is no bug)."""
    log.critical("%s; stopping the worker (exit %d)", why, EXIT_CONFIG)
    logging.shutdown()
    os._exit(EXIT_CONFIG)


async def _check_topics() -> None:
    """The worker-start check of the input topics, from inside the worker: a worker
    started some other way than ``ringtally worker`` (or a topic altered since) still
    never decides by producer timestamps or against the wrong partition count."""
    problem = await asyncio.get_running_loop().run_in_executor(None, _topics_problem)
    if problem is not None:
        _refuse_to_run(problem)


class AppliedInTurn:
    """Verify batches prepared by the agent and applied, in order, by a task of their own.

    Preparing a batch starts its signature checks (a thread, the GIL
    released); applying it walks the token table and emits outcomes. Done in
    turn inside the agent, the checks and the event loop each waited for the
    other. Here the agent prepares batch n+1 (its checks start) while this
    task applies batch n. Each record keeps one extra reference until its
    batch is applied and its table writes are with the Kafka client, so the
    stream's own acknowledgement is never the last one and no commit passes
    a record that is not decided yet. At most one prepared batch waits.
    """

    def __init__(self, verifier: VoteVerifier) -> None:
        self.verifier = verifier
        self._waiting: asyncio.Queue[tuple[list[SourceRecord], PreparedBatch]] = asyncio.Queue(
            maxsize=1
        )
        self._task = asyncio.create_task(self._apply_in_turn(), name="verify-apply")

    async def submit(self, records: list[SourceRecord]) -> None:
        """Prepare these records and queue them (waits while a batch is already queued)."""
        if self._task.done():  # it stops the worker on a bug; this is only a safety net
            raise RuntimeError("the verify applier stopped")
        for record in records:
            record.event.message.incref()  # acknowledged when applied (_apply_in_turn)
        await self._waiting.put((records, await self.verifier.prepare(records)))

    async def _apply_in_turn(self) -> None:
        try:
            while True:
                records, prepared = await self._waiting.get()
                with metrics.batch("verify", len(records)):
                    await self.verifier.apply(prepared)
                    await app.hand_over_table_writes()
                for record in records:
                    record.event.ack()
        except asyncio.CancelledError:
            raise
        except OwnershipLost as exc:
            exit_fenced(exc)
        except Exception:
            _stop_worker("verify applier")

    def close(self) -> None:
        self._task.cancel()


#: Seconds between the verify stage's checks for closings its idle votes partitions passed.
CLOSING_CHECK_INTERVAL = 1.5
#: Seconds a record may stay above a replicated partition's high watermark: Kafka's
#: ``replica.lag.time.max.ms`` default, after which a lagging follower leaves the ISR.
REPLICA_LAG_MAX = 30.0


def closing_grace() -> float:
    """How long after reading a closing the verify stage waits before it asks a votes
    partition's end offset to pass the closing without a vote (native/SPEC.md §14.3)."""
    skew = settings.control_clock_skew_ms / 1000
    return skew + (REPLICA_LAG_MAX if settings.replication_factor > 1 else 0.0)


async def pass_idle_closings(verifier: VoteVerifier, reader: RecordReader) -> None:
    """Every :data:`CLOSING_CHECK_INTERVAL`: closings passed on this worker's votes
    partitions that no vote after the closing reached (:meth:`VoteVerifier.pass_idle_closings`),
    so a closed submission gets its final head without waiting for traffic."""
    votes = settings.topic("votes")
    grace = closing_grace()

    async def end_offsets(partitions: list[int]) -> dict[int, int]:
        try:
            return await reader.end_offsets(partitions)
        except Exception as exc:  # noqa: BLE001 - the broker answers next time
            log.warning("could not list the end offsets of %s%s: %r", votes, partitions, exc)
            return {}

    try:
        while True:
            await asyncio.sleep(CLOSING_CHECK_INTERVAL)
            if app.rebalancing or app.in_recovery or not app.consumer.flow_active:
                continue
            owned = sorted(tp.partition for tp in app.consumer.assignment() if tp.topic == votes)
            await verifier.pass_idle_closings(
                owned,
                end_offsets=end_offsets,
                committed=lambda p: app.consumer.next_to_process(TP(votes, p)),
                grace=grace,
            )
    except asyncio.CancelledError:
        raise
    except OwnershipLost as exc:  # a ClosingPassed held past its lease: evicted, no bug
        exit_fenced(exc)
    except Exception:
        _stop_worker("closing check")


@app.agent(topics["votes"], name="verify")
@stop_worker_on_bug
async def verify(stream: faust.StreamT) -> None:
    """Votes topic -> accepted votes and rejections, signatures checked in batches."""
    import ringcrypto

    await _check_topics()
    control.registrar = registrar_keys()
    await control.ensure_started()
    log.info(
        "verify: control topics read (%d rings, %d submissions)",
        len(control.rings),
        len(control.submissions),
    )
    verifier = VoteVerifier(
        control=control,
        tokens=tokens_table,
        outputs=outputs,
        verify_batch=ringcrypto.verify_vote_batch,
        partitions=settings.partitions,
    )
    # Reads the votes log from an offset when a gap persists: proof that it holds no record.
    gaps = RecordReader(settings, settings.topic("votes"))
    batches = OrderedBatches(gaps.first_offset_from)
    applier = AppliedInTurn(verifier)
    closings = asyncio.create_task(pass_idle_closings(verifier, gaps), name="pass-idle-closings")
    try:
        async for events in stream.take_events(
            settings.verify_batch_size, within=settings.verify_batch_window
        ):
            metrics.VOTES_IN.inc(len(events))
            await applier.submit(await batches.ready(events))
    finally:
        closings.cancel()
        applier.close()
        await gaps.stop()
        await control.stop()  # the worker is stopping (the control-check agent needs it no more)


@app.agent(accepted_topic, name="tally")
@stop_worker_on_bug
async def tally(stream: faust.StreamT) -> None:
    """Accepted votes -> ballots, tallies and audit events."""
    reader = RecordReader(settings, settings.topic("votes"))
    keeper = TallyKeeper(
        settings=settings,
        state=tally_table,
        outputs=outputs,
        read_vote=reader.read,
        sign_heads=log_signer().sign,
    )
    batches = OrderedBatches()
    try:
        async for events in stream.take_events(
            settings.verify_batch_size, within=settings.verify_batch_window
        ):
            with metrics.batch("tally", len(events)):
                await keeper.process(await batches.ready(events))
                await app.hand_over_table_writes()
    finally:
        await reader.stop()


@app.agent(
    app.topic(
        settings.topic("rings"),
        settings.topic("submissions"),
        key_type=bytes,
        value_type=bytes,
    ),
    name="control-check",
)
@stop_worker_on_bug
async def control_check(stream: faust.StreamT) -> None:
    """Control records that changed nothing -> one rejection each.

    Every worker's :class:`ControlState` reads and judges every control
    record; this agent, which owns each control partition on exactly one
    worker, publishes the verdicts of the records it is handed, so each bad
    record gets exactly one rejection (an unsigned ring version:
    ``unauthorized_control_event``).
    """
    control.registrar = registrar_keys()
    await control.ensure_started()
    async for event in stream.events():
        record = SourceRecord.from_event(event)
        await control.reached(record.topic, record.partition, record.offset)
        verdict = control.verdicts.get((record.topic, record.partition, record.offset))
        if verdict is not None:
            rejection = rejection_for(record, verdict.reason, verdict.detail)
            await outputs.rejection(record.key or b"", rejection)
