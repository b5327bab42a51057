"""Topic names and layouts: one place that says which topic holds what.

Names are ``<prefix>.<name>``; the prefix is a setting so tests and replays
can run side by side on one broker. ``key`` documents what each topic is
keyed by; every value is JSON (see :mod:`models`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient, NewTopic

from .errors import ServiceUnavailable
from .kafka_client import auth_fix, kafka_config
from .settings import Settings

__all__ = [
    "INTERNAL_TOPICS",
    "TOPICS",
    "TopicSpec",
    "broker_time_problem",
    "delete_topics",
    "ensure_topics",
    "internal_topic_config",
    "internal_topic_specs",
    "partition_count_problem",
    "refresh_metadata",
    "session_timeout_problem",
    "topic_config",
    "topic_specs",
    "topics_with_prefix",
]

#: librdkafka's own log lines of these admin clients (e.g. "Purging 1 unserved events from
#: background queue" when one is destroyed) go to Python logging, not straight to stderr,
#: where they would break the CLI's one-line errors.
_KAFKA_LOG = logging.getLogger("ringtally.kafka.admin")


def _admin_client(settings: Settings) -> AdminClient:
    return AdminClient(kafka_config(settings, logger=_KAFKA_LOG))


@dataclass(frozen=True, slots=True)
class TopicSpec:
    name: str
    key: str
    compacted: bool
    #: None: the settings' partition count (co-partitioned with votes).
    partitions: int | None
    holds: str
    #: Broker-stamped timestamps (LogAppendTime): the workers decide by them, so a
    #: producer must not choose them (DESIGN invariant 9).
    broker_time: bool = False
    #: Kept for ever (retention.ms=-1): replays and read-backs need every record.
    keep_forever: bool = False
    #: The JSON Schema of its values (``models/schemas/<schema>.schema.json``); None: any bytes.
    schema: str | None = None
    #: The setting that holds its retention.ms (-1 by default: for ever), when it has one.
    retention_setting: str | None = None


TOPICS: tuple[TopicSpec, ...] = (
    # For ever by default (replays, rejection read-backs, receipts' votes); configurable.
    TopicSpec(
        "votes",
        "token_id (slot tag)",
        False,
        None,
        "VoteCast",
        broker_time=True,
        schema="votes",
        retention_setting="votes_retention_ms",
    ),
    # Not compacted: every ring version stays, so a replay can check old votes.
    TopicSpec("rings", "ring_id", False, 1, "Ring (one record per version)", True, True, "ring"),
    TopicSpec("submissions", "submission_id", False, 1, "Submission", True, True, "submission"),
    TopicSpec(
        "ballots",
        "submission_id",
        False,
        None,
        "Ballot",
        schema="ballot",
        retention_setting="output_retention_ms",
    ),
    TopicSpec("tallies", "submission_id", True, None, "Tally", schema="tally"),
    TopicSpec(
        "rejections",
        "token_id or source key",
        False,
        None,
        "Rejection",
        schema="rejection",
        retention_setting="output_retention_ms",
    ),
    TopicSpec(
        "audit",
        "chain",
        False,
        None,
        "AuditEvent",
        schema="audit_event",
        retention_setting="output_retention_ms",
    ),
    TopicSpec(
        "heads",
        "submission_id",
        True,
        None,
        "SignedHead (the latest signed tree head)",
        schema="log_head",
    ),
    TopicSpec(
        "witness",
        "submission_id",
        True,
        None,
        "WitnessCosignature (ringtally witness)",
        schema="witness_cosignature",
    ),
    TopicSpec("sink-dlq", "source key", False, 1, "output records the sink could not store"),
)


#: The worker's own topics, named after its app id: (suffix, compacted).
INTERNAL_TOPICS: tuple[tuple[str, bool], ...] = (
    ("accepted", False),
    ("tokens-changelog", True),
    ("tally-changelog", True),
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


def topic_config(spec: TopicSpec, settings: Settings | None = None) -> dict[str, str]:
    """The broker configuration a topic is created with (and that ensure_topics checks);
    without ``settings``, under the settings' defaults (the documented configuration)."""
    config = {"cleanup.policy": "compact"} if spec.compacted else {}
    if spec.broker_time:
        config["message.timestamp.type"] = "LogAppendTime"
    if spec.keep_forever:
        # Not compacted either: compaction would drop all but a ring's latest version.
        config["cleanup.policy"] = "delete"
        config["retention.ms"] = "-1"
    if spec.retention_setting is not None:
        if settings is None:
            retention = Settings.model_fields[spec.retention_setting].default
        else:
            retention = getattr(settings, spec.retention_setting)
        config["cleanup.policy"] = "delete"  # a retention, not compaction, ends its records
        config["retention.ms"] = str(retention)
    return {**config, **_replication_config(settings)}


def _replication_config(settings: Settings | None) -> dict[str, str]:
    """``min.insync.replicas`` of a replicated topic: a broker's default is 1, so an
    ``acks=all`` write would be acknowledged by the leader alone, and lost with it."""
    wanted = settings.min_insync if settings is not None else None
    return {} if wanted is None else {"min.insync.replicas": str(wanted)}


def internal_topic_config(settings: Settings, compacted: bool) -> dict[str, str]:
    """A worker topic's configuration: a changelog is compacted, and its records stay
    safe from compaction for ``changelog_compaction_lag`` (the zombie fence's heal,
    streams.fence, must land before the owner's record it protects could go)."""
    replication = _replication_config(settings)
    if not compacted:
        return replication
    lag_ms = round(settings.changelog_compaction_lag * 1000)
    return {"cleanup.policy": "compact", "min.compaction.lag.ms": str(lag_ms), **replication}


def _repaired(spec: TopicSpec | None, config: dict[str, str]) -> dict[str, str]:
    """What ensure_topics sets on an existing topic: the settings decisions and durability
    rest on (timestamp type, retention, min.insync.replicas, a changelog's compaction lag,
    and the cleanup of the topics kept for ever). The cleanup policy of other topics is
    left as it is."""
    if spec is not None and (spec.keep_forever or spec.retention_setting is not None):
        return config
    return {k: v for k, v in config.items() if k != "cleanup.policy"}


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
    by_name = {t.name: t for t in TOPICS}
    specs = topic_specs(settings)
    chosen = list(names or specs)
    wanted = [(*specs[n], topic_config(by_name[n], settings)) for n in chosen]
    if internal:
        wanted += [
            (name, partitions, compacted, internal_topic_config(settings, compacted))
            for name, partitions, compacted in internal_topic_specs(settings).values()
        ]
    spec_of = {settings.topic(t.name): t for t in TOPICS}
    admin = _admin_client(settings)
    try:
        existing = set(admin.list_topics(timeout=timeout).topics)
    except KafkaException as exc:
        raise ServiceUnavailable(
            f"kafka at {settings.kafka_bootstrap} unreachable: {exc.args[0]}",
            fix="start it with 'ringtally stack up' or set RINGTALLY_KAFKA_BOOTSTRAP",
        ) from None
    repairs = {
        name: _repaired(spec_of.get(name), config)
        for name, _, _, config in wanted
        if name in existing
    }
    _repair_broker_time(admin, {name: fix for name, fix in repairs.items() if fix}, timeout)
    new = [
        NewTopic(
            name,
            num_partitions=partitions,
            replication_factor=settings.replication_factor,
            config=config,
        )
        for name, partitions, _, config in wanted
        if name not in existing
    ]
    if not new:
        return
    raced = []  # created meanwhile by someone else: repaired like any existing topic
    for name, future in admin.create_topics(new, operation_timeout=timeout).items():
        try:
            future.result()
        except KafkaException as exc:
            if exc.args[0].code() != exc.args[0].TOPIC_ALREADY_EXISTS:
                raise ServiceUnavailable(
                    f"kafka: cannot create topic {name}: {exc.args[0].str()}",
                    fix=auth_fix(exc.args[0].str()),  # a principal without CREATE: its ACLs
                ) from None
            raced.append(name)
    _wait_visible(admin, [topic.topic for topic in new], timeout)
    configs = {name: config for name, _, _, config in wanted}
    fixes = {name: _repaired(spec_of.get(name), configs[name]) for name in raced}
    _repair_broker_time(admin, {name: fix for name, fix in fixes.items() if fix}, timeout)


def _wait_visible(admin: AdminClient, names: list[str], timeout: float) -> None:
    """Wait until the broker's metadata shows these new topics with all their partitions.

    A topic is created before every broker's metadata cache knows it: checked or
    subscribed at once (the worker-start checks, Faust's subscription), it would
    read as unknown. Gives up silently after ``timeout`` (what uses it then says so).
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        topics = admin.list_topics(timeout=timeout).topics
        if all(
            name in topics
            and topics[name].error is None
            and topics[name].partitions
            and all(p.leader >= 0 for p in topics[name].partitions.values())
            for name in names
        ):
            return
        time.sleep(0.05)


def _repair_broker_time(
    admin: AdminClient, configs: dict[str, dict[str, str]], timeout: float
) -> None:
    """Set what an existing topic lacks of ``configs`` (its timestamp type, retention and
    cleanup policy, a changelog's compaction lag; a topic made by an older ringtally or by
    hand): decisions must never rest on producer timestamps, nor on a log that lost the
    records they were made on."""
    from confluent_kafka.admin import AlterConfigOpType, ConfigEntry, ConfigResource

    names = list(configs)
    if not names:
        return
    resources = [ConfigResource(ConfigResource.Type.TOPIC, name) for name in names]
    try:
        described = admin.describe_configs(resources, request_timeout=timeout)
        fixes = []
        for resource, future in described.items():
            current = future.result(timeout=timeout)
            wanted = {
                key: value
                for key, value in configs[resource.name].items()
                if current.get(key) is None or current[key].value != value
            }
            if wanted:
                fixes.append(
                    ConfigResource(
                        ConfigResource.Type.TOPIC,
                        resource.name,
                        incremental_configs=[
                            ConfigEntry(k, v, incremental_operation=AlterConfigOpType.SET)
                            for k, v in wanted.items()
                        ],
                    )
                )
        for future in admin.incremental_alter_configs(fixes).values() if fixes else ():
            future.result(timeout=timeout)
    except KafkaException as exc:
        raise ServiceUnavailable(
            f"kafka: cannot check or set the configuration of {', '.join(names)}: "
            f"{exc.args[0].str() if hasattr(exc.args[0], 'str') else exc}",
            fix="votes, rings and submissions need message.timestamp.type=LogAppendTime, "
            "rings and submissions retention.ms=-1 and cleanup.policy=delete, the votes and "
            "output topics their configured retention.ms, replicated topics their "
            "min.insync.replicas, the table changelogs min.compaction.lag.ms; grant "
            "AlterConfigs on them or set them with kafka-configs",
        ) from None


def broker_time_problem(settings: Settings, *, timeout: float = 30.0) -> str | None:
    """Why a topic whose timestamps the workers decide by (votes, rings, submissions) could
    carry a producer's timestamps, or None. A worker refuses to start on such a topic."""
    from confluent_kafka.admin import ConfigResource

    names = [settings.topic(t.name) for t in TOPICS if t.broker_time]
    admin = _admin_client(settings)
    resources = [ConfigResource(ConfigResource.Type.TOPIC, name) for name in names]
    try:
        described = admin.describe_configs(resources, request_timeout=timeout)
        configs = {r.name: f.result(timeout=timeout) for r, f in described.items()}
    except KafkaException as exc:
        error = exc.args[0]
        return f"cannot read the configuration of {', '.join(names)}: " + (
            error.str() if hasattr(error, "str") else str(error)
        )
    for name in names:
        kind = configs[name].get("message.timestamp.type")
        if kind is None or kind.value != "LogAppendTime":
            return (
                f"{name} has message.timestamp.type={kind.value if kind else 'unknown'}: "
                "producers could choose which vote counts first and which ring version is "
                "in force; it must be LogAppendTime (ensure_topics sets it when it may alter "
                f"topic configs: kafka-configs --alter --entity-type topics --entity-name {name} "
                "--add-config message.timestamp.type=LogAppendTime)"
            )
    return None


def partition_count_problem(settings: Settings, *, timeout: float = 30.0) -> str | None:
    """Why the votes topic's partition count is not ``settings.partitions``, or None.

    The verify stage rejects a record that is not on its key's murmur2
    partition *of settings.partitions*; on a topic with another count it would
    reject nearly every vote ``wrong_partition``. A worker refuses to start.
    """
    name = settings.topic("votes")
    admin = _admin_client(settings)
    try:
        # All topics: asking for one by name would make the broker auto-create it.
        topic = admin.list_topics(timeout=timeout).topics.get(name)
    except KafkaException as exc:
        return f"cannot read the metadata of {name}: {exc.args[0]}"
    if topic is None or topic.error is not None:
        return f"cannot read the metadata of {name}: {getattr(topic, 'error', 'no such topic')}"
    if len(topic.partitions) != settings.partitions:
        return (
            f"{name} has {len(topic.partitions)} partitions, but RINGTALLY_PARTITIONS is "
            f"{settings.partitions}: set RINGTALLY_PARTITIONS={len(topic.partitions)} (every "
            "worker and producer must agree on the count the keys are placed by)"
        )
    return None


def session_timeout_problem(settings: Settings, *, timeout: float = 30.0) -> str | None:
    """Why the brokers would refuse the worker's ``RINGTALLY_SESSION_TIMEOUT``, or None.

    A group member asking for a session timeout outside the brokers'
    ``group.min.session.timeout.ms``..``group.max.session.timeout.ms`` is refused at
    every join (InvalidSessionTimeoutError): the worker would run for ever without
    a partition. None too when the brokers' configuration cannot be read (a
    principal without DescribeConfigs): the join then says it, as before.
    """
    from confluent_kafka.admin import ConfigResource

    admin = _admin_client(settings)
    try:
        brokers = admin.list_topics(timeout=timeout).brokers
        resources = [ConfigResource(ConfigResource.Type.BROKER, str(b)) for b in brokers]
        described = admin.describe_configs(resources, request_timeout=timeout)
        configs = [future.result(timeout=timeout) for future in described.values()]
    except KafkaException:
        return None
    wanted_ms = round(settings.session_timeout * 1000)
    for config in configs:
        low, high = (config.get(f"group.{end}.session.timeout.ms") for end in ("min", "max"))
        if low is not None and low.value is not None and wanted_ms < int(low.value):
            return (
                f"RINGTALLY_SESSION_TIMEOUT={settings.session_timeout:g} s is below the "
                f"brokers' group.min.session.timeout.ms={low.value}: the group would refuse "
                f"the worker at every join; set it to at least {int(low.value) / 1000:g}"
            )
        if high is not None and high.value is not None and wanted_ms > int(high.value):
            return (
                f"RINGTALLY_SESSION_TIMEOUT={settings.session_timeout:g} s is above the "
                f"brokers' group.max.session.timeout.ms={high.value}: the group would refuse "
                f"the worker at every join; set it to at most {int(high.value) / 1000:g}"
            )
    return None


def delete_topics(settings: Settings, names: Iterable[str], *, timeout: float = 30.0) -> int:
    """Delete these topics, best effort (a topic already gone is no error); returns how many.

    For throw-away prefixes (tests, benchmarks, demos, replay shadows): a
    broker keeps every partition's files open, and partitions left behind run
    after run end in "Too many open files" and a broker that shuts itself down.
    """
    names = list(names)
    if not names:
        return 0
    admin = _admin_client(settings)
    deleted = 0
    for future in admin.delete_topics(names, operation_timeout=timeout).values():
        try:
            future.result(timeout=timeout)
            deleted += 1
        except Exception:  # noqa: BLE001, S112 - best effort: it may be gone already
            continue
    return deleted


def topics_with_prefix(
    settings: Settings, prefixes: Iterable[str], *, timeout: float = 10.0
) -> list[str]:
    """Existing topics named ``<prefix>.…`` or ``<prefix>-…`` (internal ones) for these prefixes."""
    starts = tuple(f"{p}{sep}" for p in prefixes for sep in ".-")
    admin = _admin_client(settings)
    return [t for t in admin.list_topics(timeout=timeout).topics if t.startswith(starts)]


async def refresh_metadata(consumer: Any) -> None:
    """Fetch an aiokafka consumer's cluster metadata now (a topic may have just been created).

    aiokafka has no public call for it; this is the one place that reaches
    into the consumer's client.
    """
    await consumer._client.force_metadata_update()  # noqa: SLF001
