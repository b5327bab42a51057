"""Every worker's copy of the compacted control topics: rings and submissions.

Why not a Faust GlobalTable: the verifier needs to know not just a ring's
latest value but whether it has *caught up* with the topic, so that a vote
produced after its ring was registered never sees "unknown ring" just because
this worker had not read that far yet. A plain consumer (no group, all
partitions, from the beginning) gives that directly: :meth:`ControlState.sync`
waits until every partition's position reaches the end offsets read at call
time. Without that, the same input could be rejected live and accepted on a
replay (DESIGN invariant 6).

Rings are decoded once, into a ``ringcrypto.Ring`` (points decoded, members
sorted), when their record arrives, not per vote.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from pydantic import ValidationError

from models.control import Ring, Submission
from models.reasons import ReasonCode
from streams.settings import Settings

__all__ = ["ControlState", "RingEntry"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class RingEntry:
    """A registered ring: its message, and its decoded form or why it has none."""

    ring_id: str
    model: Ring | None
    crypto: Any | None  # ringcrypto.Ring
    error: str | None = None


@dataclass(frozen=True, slots=True)
class Lookup:
    """The ring and submission a vote names, or the reason they don't fit it."""

    ring: RingEntry | None = None
    submission: Submission | None = None
    reason: ReasonCode | None = None
    detail: str = ""


class ControlState:
    """Rings and submissions, read from their compacted topics into memory."""

    def __init__(self, settings: Settings, *, ring_factory: Callable[..., Any] | None = None):
        self.settings = settings
        self.rings: dict[str, RingEntry] = {}
        self.submissions: dict[str, Submission] = {}
        self._ring_factory = ring_factory
        self._consumer: AIOKafkaConsumer | None = None
        #: Asks for end offsets on a connection of its own: on the reader's, the request
        #: would queue behind its long-polling fetch (up to 500 ms).
        self._offsets: AIOKafkaConsumer | None = None
        self._task: asyncio.Task[None] | None = None
        self._start_lock = asyncio.Lock()
        self._positions: dict[TopicPartition, int] = {}
        self._progress = asyncio.Condition()
        self.ready = asyncio.Event()

    # --- applying records (pure; unit-tested without Kafka) ---------------

    def apply(self, topic: str, key: bytes | None, value: bytes | None) -> None:
        """Apply one control record; a tombstone (None value) deletes."""
        if topic == self.settings.topic("rings"):
            self._apply_ring(key, value)
        elif topic == self.settings.topic("submissions"):
            self._apply_submission(key, value)

    def _apply_ring(self, key: bytes | None, value: bytes | None) -> None:
        ring_id = (key or b"").decode("utf-8", "replace")
        if value is None:
            self.rings.pop(ring_id, None)
            return
        try:
            model = Ring.model_validate_json(value)
        except ValidationError as exc:
            log.warning("ring %r: unusable record: %s", ring_id, _first_error(exc))
            self.rings[ring_id] = RingEntry(
                ring_id, None, None, f"invalid ring record: {_first_error(exc)}"
            )
            return
        if model.ring_id != ring_id:
            log.warning("ring record keyed %r names ring %r; using the key", ring_id, model.ring_id)
        try:
            crypto = self._make_ring(model)
        except (
            ValueError
        ) as exc:  # ringcrypto.MalformedInput: duplicate or invalid members, too big
            self.rings[ring_id] = RingEntry(ring_id, model, None, f"ring cannot be used: {exc}")
            return
        self.rings[ring_id] = RingEntry(ring_id, model, crypto)

    def _make_ring(self, model: Ring) -> Any:
        if self._ring_factory is None:
            import ringcrypto

            self._ring_factory = ringcrypto.Ring
        return self._ring_factory(model.public_key_bytes(), max_size=self.settings.max_ring_size)

    def _apply_submission(self, key: bytes | None, value: bytes | None) -> None:
        submission_id = (key or b"").decode("utf-8", "replace")
        if value is None:
            self.submissions.pop(submission_id, None)
            return
        try:
            self.submissions[submission_id] = Submission.model_validate_json(value)
        except ValidationError as exc:
            log.warning("submission %r: unusable record: %s", submission_id, _first_error(exc))
            self.submissions.pop(submission_id, None)

    # --- the checks a vote needs ------------------------------------------

    def lookup(self, *, submission_id: str, ring_id: str, epoch: int) -> Lookup:
        """Check a vote's submission and ring, in the documented order."""
        submission = self.submissions.get(submission_id)
        if submission is None:
            return Lookup(
                reason=ReasonCode.UNKNOWN_SUBMISSION, detail=f"no submission {submission_id!r}"
            )
        entry = self.rings.get(ring_id)
        if entry is None:
            return Lookup(reason=ReasonCode.UNKNOWN_RING, detail=f"no ring {ring_id!r}")
        if entry.crypto is None or entry.model is None:
            return Lookup(reason=ReasonCode.UNKNOWN_RING, detail=f"ring {ring_id!r}: {entry.error}")
        ring = entry.model
        if not ring.active:
            return Lookup(reason=ReasonCode.INACTIVE_RING, detail=f"ring {ring_id!r} is not active")
        if ring.genre != submission.genre:
            return Lookup(
                reason=ReasonCode.RING_GENRE_MISMATCH,
                detail=f"ring {ring_id!r} is for genre {ring.genre!r}, "
                f"submission for {submission.genre!r}",
            )
        if not (ring.epoch == submission.epoch == epoch):
            return Lookup(
                reason=ReasonCode.EPOCH_MISMATCH,
                detail=f"vote epoch {epoch}, ring epoch {ring.epoch}, "
                f"submission epoch {submission.epoch}",
            )
        return Lookup(ring=entry, submission=submission)

    # --- reading the topics -------------------------------------------------

    async def ensure_started(self) -> None:
        """Start reading (once per process) and wait for the first full catch-up."""
        async with self._start_lock:
            if self._consumer is None:
                # No group: aiokafka assigns every partition of the subscribed
                # topics to this consumer, and nothing is ever committed.
                self._consumer = AIOKafkaConsumer(
                    self.settings.topic("rings"),
                    self.settings.topic("submissions"),
                    bootstrap_servers=self.settings.kafka_bootstrap,
                    group_id=None,
                    enable_auto_commit=False,
                    auto_offset_reset="earliest",
                    client_id=f"{self.settings.group_id}-control",
                )
                await self._consumer.start()
                self._offsets = AIOKafkaConsumer(
                    bootstrap_servers=self.settings.kafka_bootstrap,
                    group_id=None,
                    enable_auto_commit=False,
                    client_id=f"{self.settings.group_id}-control-offsets",
                )
                await self._offsets.start()
                self._task = asyncio.create_task(self._run(), name="control-reader")
                await self._wait_assigned()
        await self.sync(timeout=120.0)
        self.ready.set()

    async def _wait_assigned(self) -> None:
        """Wait until both topics' partitions are assigned (the worker may be creating them)."""
        assert self._consumer is not None
        names = {self.settings.topic("rings"), self.settings.topic("submissions")}
        for _ in range(1200):
            if {tp.topic for tp in self._consumer.assignment()} >= names:
                return
            await asyncio.sleep(0.05)
        raise RuntimeError(
            f"control topics {sorted(names)} not assigned after 60 s: do they exist?"
        )

    async def _run(self) -> None:
        assert self._consumer is not None
        while True:
            batches = await self._consumer.getmany(timeout_ms=200)
            for tp, records in batches.items():
                for record in records:
                    self.apply(tp.topic, record.key, record.value)
                if records:
                    self._positions[tp] = records[-1].offset + 1
            async with self._progress:
                for tp in self._consumer.assignment():
                    self._positions[tp] = max(
                        self._positions.get(tp, 0), await self._consumer.position(tp)
                    )
                self._progress.notify_all()

    async def sync(self, timeout: float = 10.0) -> bool:
        """Wait until this copy has read everything written before the call.

        A copy that reads no topic (fed by :meth:`apply` alone: unit tests,
        fuzzing) is always in sync.
        """
        if self._consumer is None or self._offsets is None:
            return True
        tps = list(self._consumer.assignment())
        ends = await self._offsets.end_offsets(tps)

        def caught_up() -> bool:
            return all(self._positions.get(tp, 0) >= end for tp, end in ends.items())

        try:
            async with self._progress:
                await asyncio.wait_for(self._progress.wait_for(caught_up), timeout)
            return True
        except TimeoutError:
            log.warning("control topics not caught up after %.1f s", timeout)
            return False

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
        for consumer in (self._consumer, self._offsets):
            if consumer is not None:
                await consumer.stop()


def _first_error(exc: ValidationError) -> str:
    err = exc.errors()[0]
    where = ".".join(str(p) for p in err.get("loc", ())) or "value"
    return f"{where}: {err.get('msg', 'invalid')}"
