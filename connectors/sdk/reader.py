"""Reading topics back: end offsets, and the registered ring versions and submissions.

The ``rings`` and ``submissions`` topics keep every record (not compacted): a
ring is a sequence of immutable, registrar-signed versions, a submission the
first signed record of its id (docs/protocol.md). :func:`read_topic` reads a
topic from the beginning up to the end offsets taken when it starts
(``read_committed``), so it terminates even while producers keep writing, and
sees everything written before it was called; :func:`ring_history`,
:func:`list_rings`, :func:`get_ring` and :func:`list_submissions` apply the
workers' rules to what it read.
"""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import NamedTuple

from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    IsolationLevel,
    KafkaError,
    KafkaException,
    Message,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient, OffsetSpec
from pydantic import ValidationError

from models.control import Ring, Submission, SubmissionClosed
from models.encoding import REGISTRAR_CONTEXT
from streams.errors import RingtallyError, ServiceUnavailable
from streams.kafka_client import KafkaRefused, auth_fix, kafka_config, probe
from streams.settings import HEX_PUBLIC_KEY, Settings

from .errors import NotFound, NoTrustedRegistrar
from .producer import KAFKA_LOGGER

__all__ = [
    "RingVersion",
    "TopicRecord",
    "check_kafka",
    "consume_ready",
    "end_offsets",
    "get_ring",
    "list_rings",
    "list_submissions",
    "read_at",
    "read_compacted",
    "read_topic",
    "ring_history",
    "ring_in_force",
    "trusted_registrar_keys",
]

Position = tuple[str, int]  # (topic, partition)


class TopicRecord(NamedTuple):
    """One record read back: where it is, its key and value, its timestamp (ms)."""

    partition: int
    offset: int
    key: bytes
    value: bytes | None
    timestamp_ms: int


#: What a broker answers a principal its ACLs do not allow to read: said at once, in
#: one line naming the principal, instead of waiting out a read's timeout.
_DENIED = frozenset({KafkaError.TOPIC_AUTHORIZATION_FAILED, KafkaError.GROUP_AUTHORIZATION_FAILED})


def _refused(settings: Settings, topic: str, err: KafkaError) -> KafkaRefused:
    who = settings.kafka_sasl_username or "this client"  # a user name, never a secret
    return KafkaRefused(
        f"kafka at {settings.kafka_bootstrap} refused principal {who!r} reading {topic}: "
        f"{auth_fix(err.str())} ({err.str()[:160]})"
    )


def _check_read(settings: Settings, topic: str, err: KafkaError | None) -> None:
    """Raise at once when a consumer's error is an ACL refusal; other per-message errors
    (end of partition, a retriable fetch error) are the read loop's to ride out."""
    if err is not None and err.code() in _DENIED:
        raise _refused(settings, topic, err)


def _unavailable(settings: Settings, exc: BaseException, topic: str = "") -> RingtallyError:
    err = exc.args[0] if exc.args else None
    if isinstance(err, KafkaError) and err.code() in _DENIED:
        return _refused(settings, topic or "a topic", err)
    detail = exc.args[0].str() if exc.args and hasattr(exc.args[0], "str") else str(exc)
    return ServiceUnavailable(
        f"kafka at {settings.kafka_bootstrap} unreachable: {detail}",
        fix="start it with 'ringtally stack up' or set RINGTALLY_KAFKA_BOOTSTRAP",
    )


def check_kafka(settings: Settings, *, timeout: float = 10.0) -> None:
    """Raise ServiceUnavailable (one line, no librdkafka noise) unless Kafka answers in time.

    A broker that refuses the client (wrong password, a certificate the CA file
    does not vouch for) is said at once, naming the setting to check
    (:func:`streams.kafka_client.auth_fix`), instead of after ``timeout`` as
    "unreachable".
    """
    state, detail = probe(settings, timeout)
    if state == "refused":
        raise KafkaRefused(f"kafka at {settings.kafka_bootstrap} refused this client: {detail}")
    if state == "unreachable":
        raise ServiceUnavailable(
            f"kafka at {settings.kafka_bootstrap} unreachable within {timeout:g} s: {detail}",
            fix="start it with 'ringtally stack up' or set RINGTALLY_KAFKA_BOOTSTRAP",
        )


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
    admin = admin or AdminClient(kafka_config(settings, logger=KAFKA_LOGGER))
    topics = list(topics)
    deadline = time.monotonic() + timeout
    while True:
        try:
            return _end_offsets_once(settings, admin, topics, timeout)
        except KafkaException as exc:
            err = exc.args[0] if exc.args else None
            retriable = (
                getattr(err, "retriable", lambda: False)()
                or getattr(err, "code", lambda: None)() in _NOT_READY
            )
            if not retriable or time.monotonic() + 0.2 > deadline:
                raise _unavailable(settings, exc, ",".join(topics)) from None
            time.sleep(0.2)


_NOT_READY = {
    KafkaError.NOT_LEADER_FOR_PARTITION,
    KafkaError.LEADER_NOT_AVAILABLE,
    KafkaError.UNKNOWN_TOPIC_OR_PART,
}


def _end_offsets_once(
    settings: Settings, admin: AdminClient, topics: list[str], timeout: float
) -> dict[Position, int]:
    metadata = admin.list_topics(timeout=timeout).topics
    request = {}
    for topic in topics:
        if topic in metadata:
            _check_read(settings, topic, metadata[topic].error)  # no DESCRIBE: not "missing"
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


def consume_ready(consumer: Consumer, timeout: float, most: int = 1000) -> list[Message]:
    """Up to ``most`` messages, returned as soon as one is there; ``[]`` after ``timeout``.

    librdkafka's ``consume(n, timeout)`` returns early only once ``n`` messages
    are in: a read of a few records waited out the whole timeout on every call
    (0.5 s each, three or more per topic read, each ``vote --wait``).
    """
    first = consumer.poll(timeout)
    if first is None:
        return []
    return [first, *consumer.consume(most - 1, timeout=0)] if most > 1 else [first]


def _reader(settings: Settings) -> Consumer:
    """A consumer of committed records, in a group of its own (it commits nothing)."""
    return Consumer(
        {
            **kafka_config(settings, logger=KAFKA_LOGGER),
            "group.id": f"ringtally-sdk-reader-{uuid.uuid4().hex[:12]}",
            "enable.auto.commit": False,
            "isolation.level": "read_committed",
            "client.id": "ringtally-sdk-reader",
        }
    )


def read_topic(
    settings: Settings,
    short: str,
    *,
    timeout: float = 30.0,
    partitions: Iterable[int] | None = None,
) -> list[TopicRecord]:
    """Every record of topic ``short`` (e.g. ``"rings"``) up to the end offsets taken when it
    starts, in log order per partition (partitions one after another); only of
    ``partitions`` when given (a key's partition: one submission's outputs)."""
    topic = settings.topic(short)
    only = None if partitions is None else set(partitions)
    ends = {
        p: end
        for (_, p), end in end_offsets(settings, [topic], timeout=min(timeout, 10.0)).items()
        if only is None or p in only
    }
    pending = {p for p, end in ends.items() if end > 0}
    records: list[TopicRecord] = []
    if not pending:
        return records
    consumer = _reader(settings)
    try:
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in sorted(pending)])
        deadline = time.monotonic() + timeout
        while pending:
            if time.monotonic() > deadline:
                raise ServiceUnavailable(
                    f"kafka: reading {topic} did not reach its end offsets within {timeout:.0f}s"
                )
            messages = consume_ready(consumer, 0.5)
            for msg in messages:
                if msg.error() is not None:
                    _check_read(settings, topic, msg.error())
                    continue
                p = msg.partition()
                if msg.offset() >= ends[p]:
                    pending.discard(p)
                    continue
                records.append(
                    TopicRecord(p, msg.offset(), msg.key() or b"", msg.value(), msg.timestamp()[1])
                )
                if msg.offset() + 1 >= ends[p]:
                    pending.discard(p)
            if not messages and pending:  # compaction gaps or control records at the end
                for tp in consumer.position([TopicPartition(topic, p) for p in pending]):
                    if tp.offset >= ends[tp.partition]:
                        pending.discard(tp.partition)
    except KafkaException as exc:
        raise _unavailable(settings, exc, topic) from None
    finally:
        consumer.close()
    records.sort(key=lambda r: (r.partition, r.offset))
    return records


def read_at(
    settings: Settings,
    short: str,
    positions: Iterable[tuple[int, int]],
    *,
    timeout: float = 30.0,
) -> dict[tuple[int, int], bytes | None]:
    """The values at ``(partition, offset)`` positions of topic ``short`` (a position the log
    no longer holds is missing from the answer)."""
    found = read_records_at(settings, short, positions, timeout=timeout)
    return {where: record.value for where, record in found.items()}


def read_records_at(
    settings: Settings,
    short: str,
    positions: Iterable[tuple[int, int]],
    *,
    timeout: float = 30.0,
) -> dict[tuple[int, int], TopicRecord]:
    """The records (value and broker timestamp) at ``(partition, offset)`` positions of topic
    ``short``, as :func:`read_at`. Reads each partition once, from its lowest wanted
    offset to its highest."""
    topic = settings.topic(short)
    wanted: dict[int, set[int]] = {}
    for p, o in positions:
        wanted.setdefault(p, set()).add(o)
    found: dict[tuple[int, int], TopicRecord] = {}
    if not wanted:
        return found
    consumer = _reader(settings)
    try:
        consumer.assign([TopicPartition(topic, p, min(os)) for p, os in wanted.items()])
        last = {p: max(os) for p, os in wanted.items()}
        pending = set(wanted)
        deadline = time.monotonic() + timeout
        while pending and time.monotonic() < deadline:
            for msg in consume_ready(consumer, 0.5):
                if msg.error() is not None:
                    _check_read(settings, topic, msg.error())
                    continue
                p, o = msg.partition(), msg.offset()
                if o in wanted.get(p, ()):
                    key, at = msg.key() or b"", msg.timestamp()[1]
                    found[(p, o)] = TopicRecord(p, o, key, msg.value(), at)
                if o >= last[p]:
                    pending.discard(p)
    except KafkaException as exc:
        raise _unavailable(settings, exc, topic) from None
    finally:
        consumer.close()
    return found


def read_compacted(settings: Settings, short: str, *, timeout: float = 30.0) -> dict[bytes, bytes]:
    """The last value per key of topic ``short``; tombstones remove a key."""
    state: dict[bytes, bytes] = {}
    for record in read_topic(settings, short, timeout=timeout):
        if record.value is None:
            state.pop(record.key, None)
        else:
            state[record.key] = record.value
    return state


def trusted_registrar_keys(settings: Settings) -> list[bytes]:
    """The registrar public keys the workers of ``settings`` trust, as far as the SDK can tell:
    ``RINGTALLY_REGISTRAR_PUBLIC_KEYS``, else ``registrar.pub`` beside the registrar key, else
    (the registrar side itself, e.g. ``RINGTALLY_REGISTRAR_KEY_FILE`` set outside a checkout)
    the public key of that secret key file (empty: none of these)."""
    from .keyfile import load_key_file

    if settings.registrar_public_keys:
        return settings.registrar_public_key_list
    with contextlib.suppress(OSError, UnicodeDecodeError):
        text = settings.registrar_public_key_path.read_text(encoding="ascii").strip()
        if HEX_PUBLIC_KEY.match(text):
            return [bytes.fromhex(text)]
    if settings.registrar_key_file is not None or settings.registrar_key_path.exists():
        return [load_key_file(settings.registrar_key_path).public_key]  # a bad file: one line
    return []


#: How to get a registrar key, for every message that finds none.
NO_REGISTRAR_FIX = (
    "create one with 'ringtally keys new registrar.key' and set RINGTALLY_REGISTRAR_KEY_FILE "
    "to it on the registrar side; workers and readers elsewhere trust its public key "
    "('ringtally keys show registrar.key') through RINGTALLY_REGISTRAR_PUBLIC_KEYS"
)


class _Signatures:
    """Registrar signature checks, as the workers make them (a ring of one trusted key).

    With no trusted key known (no setting, no ``registrar.pub``) it refuses to
    start (:class:`~.errors.NoTrustedRegistrar`): a record merely *carrying* a
    signature proves nothing, and a voter who signed against a ring that
    anyone could have published would reveal itself to its author.
    """

    def __init__(self, settings: Settings) -> None:
        import ringcrypto

        keys = trusted_registrar_keys(settings)
        if not keys:
            raise NoTrustedRegistrar(
                "no registrar public key known: ring versions and submissions cannot be checked",
                fix=f"{NO_REGISTRAR_FIX} (or in {settings.registrar_public_key_path}); "
                "on a development machine 'ringtally stack up' creates one",
            )
        self._rings = [ringcrypto.Ring([pk]) for pk in keys]

    def valid(self, record: Ring | Submission | SubmissionClosed) -> bool:
        import ringcrypto

        signature = record.registrar_signature_bytes()
        if signature is None:
            return False
        message = record.signing_bytes()
        for ring in self._rings:
            try:
                ringcrypto.verify(ring, REGISTRAR_CONTEXT, message, signature)
                return True
            except (ringcrypto.MalformedInput, ringcrypto.InvalidSignature):
                continue
        return False


@dataclass(frozen=True, slots=True)
class RingVersion:
    """A registered ring version and when it takes effect: ``max(valid_from, the broker
    timestamp of its record)`` in ms (the rings topic uses LogAppendTime)."""

    ring: Ring
    effective_ms: int
    #: The broker timestamp of its record (ms).
    appended_ms: int = 0


def ring_history(settings: Settings) -> dict[str, list[RingVersion]]:
    """Every ring's versions, in version order, as the workers count them.

    The rings topic keeps every version (it is not compacted). A record counts
    when a trusted registrar key signed it and it is the next version of its
    ring (1, 2, ... without gaps); a second record of an existing version, a
    gap, an unsigned or foreign-signed record and an unreadable one change
    nothing (the workers reject them as control records, docs/protocol.md).
    """
    signatures = _Signatures(settings)
    history: dict[str, list[RingVersion]] = {}
    for record in read_topic(settings, "rings"):
        if record.value is None:
            continue
        try:
            ring = Ring.model_validate_json(record.value)
        except ValidationError:
            continue
        versions = history.setdefault(ring.ring_id, [])
        if ring.version != len(versions) + 1 or not signatures.valid(ring):
            continue
        effective = max(ring.valid_from_ms(), record.timestamp_ms)
        versions.append(RingVersion(ring, effective, record.timestamp_ms))
    return {ring_id: versions for ring_id, versions in sorted(history.items()) if versions}


def list_rings(settings: Settings) -> dict[str, Ring]:
    """Every registered ring by id: its latest version."""
    return {ring_id: versions[-1].ring for ring_id, versions in ring_history(settings).items()}


def get_ring(settings: Settings, ring_id: str, version: int | None = None) -> Ring:
    """Ring ``ring_id``: its latest version, or version ``version``; :class:`NotFound` if
    there is no such (signed) version."""
    versions = ring_history(settings).get(ring_id)
    if not versions:
        raise NotFound(
            f"no ring {ring_id!r} on topic {settings.topic('rings')}",
            fix="register it with 'ringtally rings add' (or check RINGTALLY_TOPIC_PREFIX)",
        )
    if version is None:
        return versions[-1].ring
    if not 1 <= version <= len(versions):
        raise NotFound(
            f"ring {ring_id!r} has no version {version} (latest: {len(versions)})",
            fix="see 'ringtally rings show " + ring_id + "'",
        )
    return versions[version - 1].ring


def ring_in_force(settings: Settings, ring_id: str, *, at_ms: int | None = None) -> Ring:
    """The version of ``ring_id`` in force at ``at_ms`` (default: now), the one a vote cast
    then must name; the latest version when none is in force yet. :class:`NotFound` if the
    ring is not registered."""
    versions = ring_history(settings).get(ring_id)
    if not versions:
        get_ring(settings, ring_id)  # raises NotFound
    assert versions
    at_ms = int(time.time() * 1000) if at_ms is None else at_ms
    in_force = [v.ring for v in versions if v.effective_ms <= at_ms]
    return in_force[-1] if in_force else versions[-1].ring


def list_submissions(settings: Settings) -> dict[str, Submission]:
    """Every registered submission by id: the first signed record of each."""
    signatures = _Signatures(settings)
    found: dict[str, Submission] = {}
    for record in read_topic(settings, "submissions"):
        if record.value is None:
            continue
        try:
            submission = Submission.model_validate_json(record.value)
        except ValidationError:
            continue
        if submission.submission_id not in found and signatures.valid(submission):
            found[submission.submission_id] = submission
    return dict(sorted(found.items()))


@dataclass(frozen=True, slots=True)
class SubmissionRecords:
    """A submission's first signed record and first signed closing, with their broker
    timestamps (ms): what decides which votes it takes (a bulletin carries them)."""

    submission: Submission
    appended_ms: int
    closing: SubmissionClosed | None = None
    closed_ms: int | None = None


def submission_records(settings: Settings, submission_id: str) -> SubmissionRecords:
    """The signed records of ``submission_id`` as the workers count them (first signed
    record; first signed closing after it); :class:`NotFound` when there is none."""
    signatures = _Signatures(settings)
    found: SubmissionRecords | None = None
    for record in read_topic(settings, "submissions"):
        if record.key != submission_id.encode() or record.value is None:
            continue
        try:
            closing = SubmissionClosed.model_validate_json(record.value)
        except ValidationError:
            closing = None
        if closing is not None:
            if found is not None and found.closing is None and signatures.valid(closing):
                found = replace(found, closing=closing, closed_ms=record.timestamp_ms)
            continue
        try:
            submission = Submission.model_validate_json(record.value)
        except ValidationError:
            continue
        if found is None and signatures.valid(submission):
            found = SubmissionRecords(submission, record.timestamp_ms)
    if found is None:
        raise NotFound(f"no signed submission {submission_id!r} on {settings.topic('submissions')}")
    return found
