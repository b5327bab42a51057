"""Topic names and layouts: one place that says which topic holds what.

Names are ``<prefix>.<name>``; the prefix is a setting so tests and replays
can run side by side on one broker. ``key`` documents what each topic is
keyed by; every value is JSON (see :mod:`models`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient, NewTopic

from .errors import ServiceUnavailable
from .settings import Settings

__all__ = [
    "INTERNAL_TOPICS",
    "TOPICS",
    "TopicSpec",
    "ensure_topics",
    "internal_topic_specs",
    "topic_specs",
]


@dataclass(frozen=True, slots=True)
class TopicSpec:
    name: str
    key: str
    compacted: bool
    #: None: the settings' partition count (co-partitioned with votes).
    partitions: int | None
    holds: str


TOPICS: tuple[TopicSpec, ...] = (
    TopicSpec("votes", "token_id", False, None, "VoteCast, TokenIssued, TokenRevoked"),
    TopicSpec("rings", "ring_id", True, 1, "Ring"),
    TopicSpec("submissions", "submission_id", True, 1, "Submission"),
    TopicSpec("revocations", "credential_hash", False, None, "CredentialRevoked"),
    TopicSpec("ballots", "submission_id", False, None, "Ballot"),
    TopicSpec("tallies", "submission_id", True, None, "Tally"),
    TopicSpec("rejections", "token_id or source key", False, None, "Rejection"),
    TopicSpec("audit", "chain", False, None, "AuditEvent"),
    TopicSpec("sink-dlq", "source key", False, 1, "output records the sink could not store"),
)


#: The worker's own topics, named after its app id: (suffix, compacted).
INTERNAL_TOPICS: tuple[tuple[str, bool], ...] = (
    ("accepted", False),
    ("credential-index", False),
    ("tokens-changelog", True),
    ("tally-changelog", True),
    ("credentials-changelog", True),
)


def internal_topic_specs(settings: Settings) -> dict[str, tuple[str, int, bool]]:
    """The worker's internal topics (repartition and changelogs) under these settings."""
    return {
        suffix: (f"{settings.group_id}-{suffix}", settings.partitions, compacted)
        for suffix, compacted in INTERNAL_TOPICS
    }


def topic_specs(settings: Settings) -> dict[str, tuple[str, int, bool]]:
    """Short name -> (full name, partitions, compacted) under these settings."""
    return {
        t.name: (settings.topic(t.name), t.partitions or settings.partitions, t.compacted)
        for t in TOPICS
    }


def ensure_topics(
    settings: Settings,
    names: Iterable[str] | None = None,
    *,
    internal: bool = False,
    timeout: float = 30.0,
) -> None:
    """Create ringtally's topics with their partition counts and cleanup policies (idempotent).

    A producer that runs before any worker must not get broker-default
    (auto-created, wrongly partitioned) topics. A worker calls this with
    ``internal=True`` before it subscribes: a topic Faust creates *while* the
    group subscribes is missing from that subscription's metadata and gets
    ignored until the next metadata refresh, minutes later.
    """
    specs = topic_specs(settings)
    wanted = [specs[n] for n in (names or specs)]
    if internal:
        wanted += internal_topic_specs(settings).values()
    admin = AdminClient({"bootstrap.servers": settings.kafka_bootstrap})
    try:
        existing = set(admin.list_topics(timeout=timeout).topics)
    except KafkaException as exc:
        raise ServiceUnavailable(
            f"kafka at {settings.kafka_bootstrap} unreachable: {exc.args[0]}",
            fix="start it with 'ringtally stack up' or set RINGTALLY_KAFKA_BOOTSTRAP",
        ) from None
    new = [
        NewTopic(
            name,
            num_partitions=partitions,
            replication_factor=settings.replication_factor,
            config={"cleanup.policy": "compact"} if compacted else {},
        )
        for name, partitions, compacted in wanted
        if name not in existing
    ]
    if not new:
        return
    for name, future in admin.create_topics(new, operation_timeout=timeout).items():
        try:
            future.result()
        except KafkaException as exc:
            if exc.args[0].code() != exc.args[0].TOPIC_ALREADY_EXISTS:
                raise ServiceUnavailable(
                    f"kafka: cannot create topic {name}: {exc.args[0].str()}"
                ) from None
