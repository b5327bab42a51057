"""What the agents' logic sees of a Kafka record, and where its outputs go.

The logic classes (:class:`~agents.verify.VoteVerifier`,
:class:`~agents.tally.TallyKeeper`) take plain records, a mapping for state
and an :class:`Outputs`; the Faust wiring passes a changelog-backed table and
topic senders, the unit tests a dict and a list. One logic, two harnesses.
"""

from __future__ import annotations

import base64
import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from models.audit import AuditEvent
from models.fields import MAX_PAYLOAD_BYTES
from models.internal import AcceptedVote, ClosingPassed, RefusedVote
from models.log import SignedHead
from models.outputs import Ballot, Rejection, Tally
from models.reasons import ReasonCode

__all__ = [
    "LOG_APPEND_TIME",
    "Outputs",
    "producer_time_problem",
    "SourceRecord",
    "event_scope",
    "in_log_order",
    "rejection_for",
]


#: Kafka's timestamp type of a record stamped by the broker.
LOG_APPEND_TIME = 1


def producer_time_problem(timestamp_type: int | None) -> str | None:
    """Why a record's timestamp may be its producer's choice, or None.

    The topic's configuration is checked at start (``ensure_topics``), but a
    record written before it was repaired, or while someone set it back, keeps
    the producer's timestamp; decided by it, a producer would choose which vote
    came first. The type is stored with the record, so a replay agrees.
    """
    if timestamp_type is None or timestamp_type == LOG_APPEND_TIME:
        return None
    return (
        "the record carries its producer's timestamp (CreateTime): decisions use the "
        "broker's, so the topic must be message.timestamp.type=LogAppendTime"
    )


@dataclass(frozen=True, slots=True)
class SourceRecord:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    #: The Faust event the record came from (None in unit tests).
    event: Any = field(default=None, compare=False, repr=False)
    #: The record's Kafka timestamp in milliseconds (None when the broker gave none).
    timestamp_ms: int | None = None
    #: Kafka's timestamp type: 1 = LogAppendTime (the broker's clock), 0 = CreateTime
    #: (the producer's); None when unknown (unit tests).
    timestamp_type: int | None = None

    @property
    def partition_key(self) -> tuple[str, int]:
        """(topic, partition): where this record's offset counts."""
        return (self.topic, self.partition)

    @classmethod
    def from_event(cls, event: Any) -> SourceRecord:
        msg = event.message
        # Faust turns Kafka's integer milliseconds into float seconds; round() undoes it.
        ts = None if msg.timestamp is None else round(msg.timestamp * 1000)
        kind = getattr(msg, "timestamp_type", None)
        return cls(msg.topic, msg.partition, msg.offset, msg.key, msg.value, event, ts, kind)


class Outputs(Protocol):
    """Where the agents send what they decide (Faust topics, or a list in tests)."""

    async def rejection(self, key: bytes, rejection: Rejection) -> None: ...
    async def accepted(self, vote: AcceptedVote) -> None: ...
    async def refused(self, refusal: RefusedVote) -> None: ...
    async def closing_passed(self, passed: ClosingPassed) -> None: ...
    async def ballot(self, ballot: Ballot) -> None: ...
    async def tally(self, tally: Tally) -> None: ...
    async def audit(self, event: AuditEvent) -> None: ...
    async def head(self, head: SignedHead) -> None: ...


def _storable(text: str | None) -> str | None:
    """Text the sink can store: PostgreSQL text holds no NUL, so a NUL from a hostile key
    or message becomes U+FFFD here (the raw bytes stay in ``payload_b64``); otherwise the
    sink would dead-letter the worker's own rejection (F-soak-1, docs/reliability.md)."""
    return None if text is None else text.replace("\x00", "\ufffd")


def rejection_for(
    record: SourceRecord,
    reason: ReasonCode,
    detail: str,
    *,
    vote_id: Any = None,
    token_id: str | None = None,
    payload: bytes | None = None,
    source: tuple[str, int, int] | None = None,
) -> Rejection:
    """A rejection that points at the record (or at ``source``, the original position)."""
    topic, partition, offset = source or (record.topic, record.partition, record.offset)
    raw = (record.value if payload is None else payload) or b""
    if len(raw) > MAX_PAYLOAD_BYTES:
        # Kept whole, an oversized payload would make the rejection itself larger
        # than the producer's request limit, and the worker could never get past it.
        detail = f"payload kept: first {MAX_PAYLOAD_BYTES} of {len(raw)} bytes; {detail}"
        raw = raw[:MAX_PAYLOAD_BYTES]
    return Rejection(
        vote_id=vote_id,
        token_id=_storable(token_id),
        reason=reason,
        detail=_storable(detail[:2000]),
        payload_b64=base64.b64encode(raw).decode("ascii"),
        source_topic=topic,
        source_partition=partition,
        source_offset=offset,
    )


def in_log_order(records: Sequence[SourceRecord]) -> list[SourceRecord]:
    """The batch sorted by (topic, partition, offset), each position once.

    Faust can hand a batch its records out of log order: after a rebalance it
    seeks back to the committed offsets while records fetched before the seek
    are still in the stream's buffer, so an old record at offset n+1 can come
    before the re-fetched one at n (finding F7). Deciding in log order within
    the batch keeps a token's first valid vote the one that spends it.
    """
    unique = {(r.topic, r.partition, r.offset): r for r in records}
    return [unique[k] for k in sorted(unique)]


@contextlib.contextmanager
def event_scope(record: SourceRecord) -> Iterator[None]:
    """Run table reads and writes as if ``record``'s event were the current one.

    Faust chooses a table write's changelog partition (and RocksDB partition
    store) from the *current event*. A ``take_events`` batch spans partitions
    and leaves the last buffered event current, so without this every write of
    a batch would land on one partition. Faust has no public setter for that
    context: :func:`streams.tables.current_event` sets it.
    """
    if record.event is None:
        yield
        return
    from streams.tables import current_event

    with current_event(record.event):
        yield
