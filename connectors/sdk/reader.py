"""Reading topics back: end offsets, and the current state of the compacted control topics.

``rings`` and ``submissions`` are compacted topics keyed by id: their current
state is the last value per key. :func:`read_compacted` reads a topic from the
beginning up to the end offsets taken when it starts (``read_committed``), so
it terminates even while producers keep writing, and sees everything written
before it was called.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable

from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    IsolationLevel,
    KafkaError,
    KafkaException,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient, OffsetSpec
from pydantic import ValidationError

from models.control import Ring, Submission
from streams.errors import ServiceUnavailable
from streams.settings import Settings

from .errors import NotFound
from .producer import kafka_config

__all__ = [
    "check_kafka",
    "end_offsets",
    "get_ring",
    "list_rings",
    "list_submissions",
    "read_compacted",
]

Position = tuple[str, int]  # (topic, partition)


def _unavailable(settings: Settings, exc: BaseException) -> ServiceUnavailable:
    detail = exc.args[0].str() if exc.args and hasattr(exc.args[0], "str") else str(exc)
    return ServiceUnavailable(
        f"kafka at {settings.kafka_bootstrap} unreachable: {detail}",
        fix="start it with 'ringtally stack up' or set RINGTALLY_KAFKA_BOOTSTRAP",
    )


def check_kafka(settings: Settings, *, timeout: float = 10.0) -> None:
    """Raise ServiceUnavailable (one line, no librdkafka noise) unless Kafka answers in time."""
    try:
        AdminClient(kafka_config(settings)).list_topics(timeout=timeout)
    except KafkaException as exc:
        raise _unavailable(settings, exc) from None


def end_offsets(
    settings: Settings,
    topics: Iterable[str],
    *,
    admin: AdminClient | None = None,
    timeout: float = 10.0,
) -> dict[Position, int]:
    """The ``read_committed`` end offset of each partition of ``topics`` (full names).

    Retriable broker errors (a topic created a moment ago whose partition
    leaders are not elected or not yet known everywhere) are retried until
    ``timeout``.
    """
    admin = admin or AdminClient(kafka_config(settings))
    topics = list(topics)
    deadline = time.monotonic() + timeout
    while True:
        try:
            return _end_offsets_once(admin, topics, timeout)
        except KafkaException as exc:
            err = exc.args[0] if exc.args else None
            retriable = (
                getattr(err, "retriable", lambda: False)()
                or getattr(err, "code", lambda: None)() in _NOT_READY
            )
            if not retriable or time.monotonic() + 0.2 > deadline:
                raise _unavailable(settings, exc) from None
            time.sleep(0.2)


_NOT_READY = {
    KafkaError.NOT_LEADER_FOR_PARTITION,
    KafkaError.LEADER_NOT_AVAILABLE,
    KafkaError.UNKNOWN_TOPIC_OR_PART,
}


def _end_offsets_once(admin: AdminClient, topics: list[str], timeout: float) -> dict[Position, int]:
    metadata = admin.list_topics(timeout=timeout).topics
    request = {}
    for topic in topics:
        if topic not in metadata or metadata[topic].error is not None:
            raise NotFound(
                f"topic {topic} does not exist", fix="run 'ringtally stack up' / a worker first"
            )
        for partition in metadata[topic].partitions:
            request[TopicPartition(topic, partition)] = OffsetSpec.latest()
    futures = admin.list_offsets(
        request, isolation_level=IsolationLevel.READ_COMMITTED, request_timeout=timeout
    )
    return {(tp.topic, tp.partition): f.result().offset for tp, f in futures.items()}


def read_compacted(settings: Settings, short: str, *, timeout: float = 30.0) -> dict[bytes, bytes]:
    """The last value per key of topic ``short`` (e.g. ``"rings"``); tombstones remove a key."""
    topic = settings.topic(short)
    ends = {
        p: end for (_, p), end in end_offsets(settings, [topic], timeout=min(timeout, 10.0)).items()
    }
    pending = {p for p, end in ends.items() if end > 0}
    state: dict[bytes, bytes] = {}
    if not pending:
        return state
    consumer = Consumer(
        {
            **kafka_config(settings),
            "group.id": f"ringtally-sdk-reader-{uuid.uuid4().hex[:12]}",
            "enable.auto.commit": False,
            "isolation.level": "read_committed",
            "client.id": "ringtally-sdk-reader",
        }
    )
    try:
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in sorted(pending)])
        deadline = time.monotonic() + timeout
        while pending:
            if time.monotonic() > deadline:
                raise ServiceUnavailable(
                    f"kafka: reading {topic} did not reach its end offsets within {timeout:.0f}s"
                )
            messages = consumer.consume(1000, timeout=0.5)
            for msg in messages:
                if msg.error() is not None:
                    continue
                p = msg.partition()
                if msg.offset() >= ends[p]:
                    pending.discard(p)
                    continue
                key = msg.key() or b""
                if msg.value() is None:
                    state.pop(key, None)
                else:
                    state[key] = msg.value()
                if msg.offset() + 1 >= ends[p]:
                    pending.discard(p)
            if not messages and pending:  # compaction gaps or control records at the end
                for tp in consumer.position([TopicPartition(topic, p) for p in pending]):
                    if tp.offset >= ends[tp.partition]:
                        pending.discard(tp.partition)
    except KafkaException as exc:
        raise _unavailable(settings, exc) from None
    finally:
        consumer.close()
    return state


def list_rings(settings: Settings) -> dict[str, Ring]:
    """Every registered ring by id (its latest definition); unreadable records are skipped."""
    return _parsed(read_compacted(settings, "rings"), Ring, "ring_id")


def list_submissions(settings: Settings) -> dict[str, Submission]:
    """Every registered submission by id; unreadable records are skipped."""
    return _parsed(read_compacted(settings, "submissions"), Submission, "submission_id")


def get_ring(settings: Settings, ring_id: str) -> Ring:
    """The ring ``ring_id`` as registered; :class:`NotFound` if it is not."""
    ring = list_rings(settings).get(ring_id)
    if ring is None:
        raise NotFound(
            f"no ring {ring_id!r} on topic {settings.topic('rings')}",
            fix="register it with 'ringtally rings add' (or check RINGTALLY_TOPIC_PREFIX)",
        )
    return ring


def _parsed(raw: dict[bytes, bytes], model: type, field: str) -> dict:  # type: ignore[type-arg]
    out = {}
    for value in raw.values():
        try:
            item = model.model_validate_json(value)
        except ValidationError:
            continue
        out[getattr(item, field)] = item
    return dict(sorted(out.items()))
