"""Every worker's copy of the control topics: ring versions and submissions.

Why not a Faust GlobalTable: the verifier must know not just the records but
how far in *broker time* its copy is complete. A vote stamped ``t`` (the
votes topic uses LogAppendTime) is decided against the ring versions in force
at ``t``, so before deciding it the worker makes sure it has read every
control record appended up to ``t`` (:meth:`ControlState.cover`). Live
processing and a replay from offset 0 then decide every vote alike, however
late a rotation reached this worker (DESIGN invariant 6; docs/protocol.md).

What a control record does is decided here, by pure code over the log
(:meth:`ControlState.apply`): a record counts only when a trusted registrar
key signed it (checked off the event loop, in a batch), and the first signed
record of a ring version or submission wins. Records that change nothing get
a verdict (reason and detail) that the control-check agent publishes as a
rejection; every worker computes the same verdicts from the same log.

Rings are decoded once, into a ``ringcrypto.Ring`` (points decoded, members
sorted), when their record arrives, not per vote.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from pydantic import ValidationError

from models.control import Ring, Submission, SubmissionClosed
from models.reasons import ReasonCode
from streams.acceptance import Lookup, RingEntry, RingHistory, SubmissionEntry, vote_context
from streams.kafka_client import aiokafka_kwargs
from streams.settings import Settings

from .records import producer_time_problem

__all__ = ["ControlRecord", "ControlState", "Lookup", "RingEntry", "Verdict"]

log = logging.getLogger(__name__)

#: Most control verdicts kept for the control-check agent (rejected records only).
MAX_VERDICTS = 10_000


@dataclass(frozen=True, slots=True)
class Verdict:
    """Why a control record changed nothing (published as a rejection)."""

    reason: ReasonCode
    detail: str


@dataclass(frozen=True, slots=True)
class ControlRecord:
    """One record of a control topic, as the reader hands it to :meth:`ControlState.apply`."""

    topic: str
    partition: int
    offset: int
    timestamp_ms: int
    key: bytes | None
    value: bytes | None
    #: Kafka's timestamp type (1: LogAppendTime); None when unknown (unit tests).
    timestamp_type: int | None = None


class ControlState:
    """Ring versions and submissions, read from their topics into memory.

    ``signed(model) -> bool`` decides whether the registrar signed a parsed
    record; the reader calls :meth:`apply_batch`, which checks a batch's
    signatures off the event loop first.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        ring_factory: Callable[..., Any] | None = None,
        registrar: Any | None = None,
    ):
        self.settings = settings
        self.rings: dict[str, RingHistory] = {}
        self.submissions: dict[str, SubmissionEntry] = {}
        self.registrar = registrar
        self.verdicts: OrderedDict[tuple[str, int, int], Verdict] = OrderedDict()
        self._ring_factory = ring_factory
        self._consumer: AIOKafkaConsumer | None = None
        #: Asks for end offsets on a connection of its own: on the reader's, the request
        #: would queue behind its long-polling fetch (up to 500 ms).
        self._offsets: AIOKafkaConsumer | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._start_lock = asyncio.Lock()
        self._positions: dict[TopicPartition, int] = {}
        self._progress = asyncio.Condition()
        #: Broker time (ms) up to which every control record has been applied.
        self.covered_ms = -1
        self.ready = asyncio.Event()
        #: Signed control records whose signature verified under a trusted key, and not.
        self.trusted_signatures = 0
        self.untrusted_signatures = 0
        self._warned_untrusted = False

    # --- applying records (pure; unit-tested without Kafka) ---------------

    def apply(self, record: ControlRecord, *, signed: bool | None = None) -> Verdict | None:
        """Apply one control record; returns why it changed nothing, or None.

        ``signed``: the registrar signature's verdict, when the caller checked
        it in a batch; None: check it here (unit tests, small batches).
        """
        if record.topic == self.settings.topic("rings"):
            verdict = self._apply_ring(record, signed)
        elif record.topic == self.settings.topic("submissions"):
            verdict = self._apply_submission(record, signed)
        else:
            return None
        if verdict is not None:
            self.verdicts[(record.topic, record.partition, record.offset)] = verdict
            while len(self.verdicts) > MAX_VERDICTS:
                self.verdicts.popitem(last=False)
        return verdict

    def parse(self, record: ControlRecord) -> Ring | Submission | SubmissionClosed | Verdict:
        """The record's model, or the verdict of a record that is not one."""
        model_type: type[Ring | Submission | SubmissionClosed] = (
            Ring
            if record.topic == self.settings.topic("rings")
            else SubmissionClosed
            if _is_closing(record.value)
            else Submission
        )
        producer_time = producer_time_problem(record.timestamp_type)
        if producer_time is not None:  # its validity would rest on a producer's clock
            return Verdict(ReasonCode.MALFORMED, producer_time)
        if record.value is None:
            return Verdict(ReasonCode.MALFORMED, "empty control record (null value)")
        try:
            model = model_type.model_validate_json(record.value)
        except ValidationError as exc:
            return Verdict(ReasonCode.MALFORMED, _first_error(exc))
        ident = model.ring_id if isinstance(model, Ring) else model.submission_id
        if record.key != ident.encode("utf-8"):
            return Verdict(
                ReasonCode.MALFORMED, f"record key {record.key!r} is not its id {ident!r}"
            )
        return model

    def _signed(
        self, model: Ring | Submission | SubmissionClosed, signed: bool | None
    ) -> Verdict | None:
        if signed is None:
            if self.registrar is None:
                raise RuntimeError("ControlState has no registrar keys to check signatures with")
            problem = self.registrar.check(model)
        else:
            problem = (
                None
                if signed
                else f"{model.type}: registrar signature does not verify under any trusted "
                "registrar key"
            )
        if model.registrar_signature_bytes() is not None:
            if problem is None:
                self.trusted_signatures += 1
            else:
                self.untrusted_signatures += 1
        if problem is None:
            return None
        return Verdict(ReasonCode.UNAUTHORIZED_CONTROL_EVENT, problem)

    def warn_if_no_key_matches(self) -> bool:
        """Say once, with the fix, when control records are signed but never by a key this
        worker trusts: the registrar side and the worker use different keys (two data
        directories, or RINGTALLY_REGISTRAR_PUBLIC_KEYS not set), and every ring and
        submission is being rejected ``unauthorized_control_event`` (issue 18)."""
        if self._warned_untrusted or self.trusted_signatures or not self.untrusted_signatures:
            return False
        self._warned_untrusted = True
        trusted = (
            ", ".join(key.hex()[:16] + "…" for key in self.registrar.public_keys)
            if self.registrar is not None
            else "none"
        )
        log.warning(
            "%d signed control record(s) and none signed by a registrar key this worker "
            "trusts (%s): every ring and submission is rejected unauthorized_control_event. "
            "Fix: set RINGTALLY_REGISTRAR_PUBLIC_KEYS to the registrar's public key "
            "('ringtally keys show <registrar.key>'), or start the worker with the registrar "
            "side's RINGTALLY_DATA_DIR (this worker's: %s)",
            self.untrusted_signatures,
            trusted,
            self.settings.data_dir,
        )
        return True

    def _apply_ring(self, record: ControlRecord, signed: bool | None) -> Verdict | None:
        model = self.parse(record)
        if isinstance(model, Verdict):
            return model
        assert isinstance(model, Ring)
        unsigned = self._signed(model, signed)
        if unsigned is not None:
            return unsigned
        history = self.rings.setdefault(model.ring_id, RingHistory())
        latest = len(history.versions)
        if model.version <= latest:
            known = history.versions[model.version - 1].model
            # The signed content, not the record: a re-signed copy carries another signature.
            if known.signing_bytes() == model.signing_bytes():
                return None  # the same version published again: nothing to do
            return Verdict(
                ReasonCode.CONTROL_CONFLICT,
                f"ring {model.ring_id!r} version {model.version} exists with other content; "
                "versions are immutable: publish version "
                f"{latest + 1}",
            )
        if model.version != latest + 1:
            return Verdict(
                ReasonCode.CONTROL_CONFLICT,
                f"ring {model.ring_id!r}: version {model.version} after version {latest}; "
                f"the next version is {latest + 1}",
            )
        try:
            crypto = self._make_ring(model)
        except ValueError as exc:  # ringcrypto.MalformedInput: duplicate/invalid members, too big
            return Verdict(ReasonCode.MALFORMED, f"ring cannot be used: {exc}")
        history.versions.append(
            RingEntry(
                model.ring_id,
                model,
                crypto,
                effective_ms=max(model.valid_from_ms(), record.timestamp_ms),
                appended_ms=record.timestamp_ms,
            )
        )
        return None

    def _make_ring(self, model: Ring) -> Any:
        if self._ring_factory is None:
            import ringcrypto

            self._ring_factory = ringcrypto.Ring
        return self._ring_factory(model.public_key_bytes(), max_size=self.settings.max_ring_size)

    def _apply_submission(self, record: ControlRecord, signed: bool | None) -> Verdict | None:
        model = self.parse(record)
        if isinstance(model, Verdict):
            return model
        unsigned = self._signed(model, signed)
        if unsigned is not None:
            return unsigned
        known = self.submissions.get(model.submission_id)
        if isinstance(model, SubmissionClosed):
            return self._close(known, model, record.timestamp_ms)
        assert isinstance(model, Submission)
        if known is None:
            self.submissions[model.submission_id] = SubmissionEntry(model, record.timestamp_ms)
            return None
        if known.model.signing_bytes() == model.signing_bytes():
            return None  # the same submission published again (maybe re-signed)
        return Verdict(
            ReasonCode.CONTROL_CONFLICT,
            f"submission {model.submission_id!r} exists with genre {known.model.genre!r} and "
            f"epoch {known.model.epoch}; submissions are immutable",
        )

    def _close(
        self, known: SubmissionEntry | None, model: SubmissionClosed, at_ms: int
    ) -> Verdict | None:
        if known is None:
            return Verdict(
                ReasonCode.CONTROL_CONFLICT,
                f"closes submission {model.submission_id!r}, which is not registered",
            )
        if known.closed_ms is None:
            self.submissions[model.submission_id] = replace(known, closed_ms=at_ms)
        return None  # closing a closed submission again changes nothing

    # --- the checks a vote needs ------------------------------------------

    def lookup(
        self,
        *,
        submission_id: str,
        ring_id: str,
        ring_version: int,
        epoch: int,
        slot: int,
        timestamp_ms: int,
    ) -> Lookup:
        """:func:`streams.acceptance.vote_context` over this copy of the control topics.

        Only records appended up to ``timestamp_ms`` count, so the answer is the
        same whether this copy has read further (live, ahead of the votes; a
        replay, which reads the control topics to their end first) or not.
        """
        return vote_context(
            self.submissions,
            self.rings,
            submission_id=submission_id,
            ring_id=ring_id,
            ring_version=ring_version,
            epoch=epoch,
            slot=slot,
            timestamp_ms=timestamp_ms,
        )

    # --- reading the topics -------------------------------------------------

    def _topics(self) -> list[str]:
        return [self.settings.topic("rings"), self.settings.topic("submissions")]

    async def ensure_started(self) -> None:
        """Start reading (once per process) and wait for the first full catch-up."""
        async with self._start_lock:
            if self._consumer is None:
                # No group: aiokafka assigns every partition of the subscribed
                # topics to this consumer, and nothing is ever committed.
                self._consumer = AIOKafkaConsumer(
                    *self._topics(),
                    **aiokafka_kwargs(
                        self.settings,
                        group_id=None,
                        enable_auto_commit=False,
                        auto_offset_reset="earliest",
                        client_id=f"{self.settings.group_id}-control",
                    ),
                )
                await self._consumer.start()
                self._offsets = AIOKafkaConsumer(
                    **aiokafka_kwargs(
                        self.settings,
                        group_id=None,
                        enable_auto_commit=False,
                        client_id=f"{self.settings.group_id}-control-offsets",
                    )
                )
                await self._offsets.start()
                self._tasks = [
                    asyncio.create_task(self._run(), name="control-reader"),
                    asyncio.create_task(self._keep_covered(), name="control-cover"),
                ]
                await self._wait_assigned()
        await self.sync(timeout=120.0)
        self.ready.set()

    async def _wait_assigned(self) -> None:
        """Wait until both topics' partitions are assigned (the worker may be creating them)."""
        assert self._consumer is not None
        names = set(self._topics())
        for _ in range(1200):
            if {tp.topic for tp in self._consumer.assignment()} >= names:
                return
            await asyncio.sleep(0.05)
        raise RuntimeError(
            f"control topics {sorted(names)} not assigned after 60 s: do they exist?"
        )

    async def apply_batch(self, records: Sequence[ControlRecord]) -> None:
        """Apply records in order, their registrar signatures checked in one batch in a
        thread (a flood of forged records never runs a signature check on the event loop)."""
        parsed = [self.parse(r) for r in records]
        items: list[tuple[Any, ...]] = []
        where: list[int | None] = []
        for model in parsed:
            item = None
            if not isinstance(model, Verdict) and self.registrar is not None:
                item = self.registrar.batch_item(model)
            where.append(len(items) if item is not None else None)
            if item is not None:
                items.append(item)
        results: list[Any] = []
        if items:
            results = await asyncio.get_running_loop().run_in_executor(
                None, self.registrar.verify_items, items
            )
        for record, index in zip(records, where, strict=True):
            # Unsigned (no item): apply() says so itself, with no signature to check.
            signed = bool(results[index]) if index is not None else None
            if self.registrar is None:
                signed = False
            self.apply(record, signed=signed)
        self.warn_if_no_key_matches()

    async def _run(self) -> None:
        assert self._consumer is not None
        while True:
            batches = await self._consumer.getmany(timeout_ms=200)
            for tp, records in batches.items():
                await self.apply_batch(
                    [
                        ControlRecord(
                            tp.topic,
                            tp.partition,
                            r.offset,
                            r.timestamp,
                            r.key,
                            r.value,
                            r.timestamp_type,
                        )
                        for r in records
                    ]
                )
                if records:
                    self._positions[tp] = records[-1].offset + 1
            async with self._progress:
                for tp in self._consumer.assignment():
                    self._positions[tp] = max(
                        self._positions.get(tp, 0), await self._consumer.position(tp)
                    )
                self._progress.notify_all()

    async def _keep_covered(self) -> None:
        """Sync every ``control_sync_interval`` so that votes rarely wait in :meth:`cover`."""
        interval = self.settings.control_sync_interval
        while True:
            try:
                await self.sync(timeout=max(5.0, interval * 10))
            except Exception as exc:  # noqa: BLE001 - a broker hiccup: try again, votes wait
                log.warning("control sync failed: %r", exc)
            await asyncio.sleep(interval)

    async def sync(self, timeout: float = 10.0) -> bool:
        """Wait until this copy has read everything written before the call.

        On success :attr:`covered_ms` moves to the call's start, less the
        broker clock skew allowed (``control_clock_skew_ms``). A copy that
        reads no topic (fed by :meth:`apply` alone: unit tests, fuzzing) is
        always in sync and covers all time.
        """
        if self._consumer is None or self._offsets is None:
            self.covered_ms = 2**63 - 1
            return True
        started_ms = int(time.time() * 1000)
        tps = list(self._consumer.assignment())
        ends = await self._offsets.end_offsets(tps)

        def caught_up() -> bool:
            return all(self._positions.get(tp, 0) >= end for tp, end in ends.items())

        try:
            async with self._progress:
                await asyncio.wait_for(self._progress.wait_for(caught_up), timeout)
                self.covered_ms = max(
                    self.covered_ms, started_ms - self.settings.control_clock_skew_ms
                )
                self._progress.notify_all()
            return True
        except TimeoutError:
            log.warning("control topics not caught up after %.1f s", timeout)
            return False

    async def reached(self, topic: str, partition: int, offset: int) -> None:
        """Return once the record at this position has been applied."""
        if self._consumer is None:
            return
        tp = TopicPartition(topic, partition)
        async with self._progress:
            await self._progress.wait_for(lambda: self._positions.get(tp, 0) > offset)

    @property
    def reading(self) -> bool:
        """Does this copy read the control topics? (No: fed by :meth:`apply` alone, as in
        unit tests and fuzzing, and then it covers all time.)"""
        return self._consumer is not None

    async def advance(self, covered_ms: int) -> None:
        """Record that every control record appended up to ``covered_ms`` is applied,
        and wake the votes waiting for it (:meth:`cover`)."""
        async with self._progress:
            self.covered_ms = max(self.covered_ms, covered_ms)
            self._progress.notify_all()

    async def cover(self, timestamp_ms: int) -> None:
        """Return once every control record appended up to ``timestamp_ms`` is applied.

        Never decides on a stale copy: it waits as long as it takes, warning
        every 10 s (a control topic that cannot be read stops the votes).
        """
        if timestamp_ms <= self.covered_ms:
            return
        if not self.reading:
            return  # fed by apply() alone: covers all time
        waited = 0.0
        async with self._progress:
            while timestamp_ms > self.covered_ms:
                try:
                    await asyncio.wait_for(
                        self._progress.wait_for(lambda: timestamp_ms <= self.covered_ms), 10.0
                    )
                except TimeoutError:
                    waited += 10.0
                    log.warning(
                        "votes wait for the control topics: read up to %d ms, a vote is "
                        "stamped %d ms (waited %.0f s)",
                        self.covered_ms,
                        timestamp_ms,
                        waited,
                    )

    async def stop(self) -> None:
        """Stop reading (the worker is stopping): its Kafka clients are closed, not left to
        the garbage collector (aiokafka logs an ERROR for each unclosed consumer)."""
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        consumers = (self._consumer, self._offsets)
        self._consumer = self._offsets = None
        for consumer in consumers:
            if consumer is not None:
                await consumer.stop()


def _first_error(exc: ValidationError) -> str:
    err = exc.errors()[0]
    where = ".".join(str(p) for p in err.get("loc", ())) or "value"
    return f"{where}: {err.get('msg', 'invalid')}"


def _is_closing(value: bytes | None) -> bool:
    """Does a submissions-topic value say ``"type": "submission_closed"``? (Control records
    are rare: parsing one twice costs nothing that matters.)"""
    try:
        return json.loads(value or b"").get("type") == "submission_closed"
    except (ValueError, AttributeError):
        return False
