"""Kafka offsets for replays: end offsets, a group's committed offsets, offsets by time, resets.

Everything here is a plain confluent-kafka admin/consumer call except
:func:`reset_group_offsets`, which runs Kafka's own ``kafka-consumer-groups``
tool (``ConsumerGroupCommand``) from the stack's jars, exactly as an operator
would from a Kafka distribution.
"""

from __future__ import annotations

import tempfile
import uuid
from collections.abc import Sequence
from datetime import datetime

from confluent_kafka import Consumer, KafkaException, TopicPartition

from streams.errors import ServiceUnavailable, UsageProblem
from streams.kafka_client import java_client_properties, kafka_config
from streams.settings import Settings

__all__ = [
    "OffsetProbe",
    "committed_offsets",
    "end_offsets",
    "offsets_for_time",
    "partitions_of",
    "reset_group_offsets",
]


class OffsetProbe:
    """Reusable consumers for repeated offset queries (one per group; none joins a group)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._consumers: dict[str | None, Consumer] = {}
        self._partitions: dict[str, list[int]] = {}

    def _get(self, group: str | None = None) -> Consumer:
        if group not in self._consumers:
            self._consumers[group] = _consumer(self.settings, group)
        return self._consumers[group]

    def partitions(self, topic: str) -> list[int]:
        if not self._partitions.get(topic):
            self._partitions[topic] = partitions_of(self.settings, topic)
        return self._partitions[topic]

    def end(self, topic: str, timeout: float = 10.0) -> dict[int, int]:
        c = self._get()
        return {
            p: c.get_watermark_offsets(TopicPartition(topic, p), timeout=timeout)[1]
            for p in self.partitions(topic)
        }

    def committed(self, group: str, topic: str, timeout: float = 10.0) -> dict[int, int]:
        parts = self.partitions(topic)
        if not parts:
            return {}
        found = self._get(group).committed(
            [TopicPartition(topic, p) for p in parts], timeout=timeout
        )
        return {tp.partition: tp.offset for tp in found if tp.offset >= 0}

    def close(self) -> None:
        for c in self._consumers.values():
            c.close()
        self._consumers.clear()


def _consumer(settings: Settings, group: str | None = None) -> Consumer:
    return Consumer(
        kafka_config(
            settings,
            **{
                "group.id": group or f"ringtally-probe-{uuid.uuid4().hex[:8]}",
                "enable.auto.commit": False,
            },
        )
    )


def partitions_of(settings: Settings, topic: str, timeout: float = 10.0) -> list[int]:
    """The topic's partition numbers ([] when it does not exist)."""
    consumer = _consumer(settings)
    try:
        meta = consumer.list_topics(topic, timeout=timeout).topics.get(topic)
    except KafkaException as exc:
        raise ServiceUnavailable(
            f"kafka at {settings.kafka_bootstrap} unreachable: {exc.args[0]}",
            fix="start it with 'ringtally stack up'",
        ) from None
    finally:
        consumer.close()
    if meta is None or meta.error is not None:
        return []
    return sorted(meta.partitions)


def end_offsets(settings: Settings, topic: str, timeout: float = 10.0) -> dict[int, int]:
    """Partition -> highwater mark (the offset the next record will get)."""
    consumer = _consumer(settings)
    try:
        return {
            p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=timeout)[1]
            for p in partitions_of(settings, topic, timeout)
        }
    finally:
        consumer.close()


def committed_offsets(
    settings: Settings, group: str, topic: str, timeout: float = 10.0
) -> dict[int, int]:
    """Partition -> offset the group committed (next to read); partitions never committed: absent.

    An OffsetFetch only: this does not join the group.
    """
    parts = partitions_of(settings, topic, timeout)
    if not parts:
        return {}
    consumer = _consumer(settings, group)
    try:
        found = consumer.committed([TopicPartition(topic, p) for p in parts], timeout=timeout)
    finally:
        consumer.close()
    return {tp.partition: tp.offset for tp in found if tp.offset >= 0}


def offsets_for_time(
    settings: Settings, topic: str, when: datetime, timeout: float = 10.0
) -> dict[int, int]:
    """Partition -> first offset whose record timestamp is >= ``when`` (the end when none is)."""
    ms = int(when.timestamp() * 1000)
    parts = partitions_of(settings, topic, timeout)
    consumer = _consumer(settings)
    try:
        found = consumer.offsets_for_times(
            [TopicPartition(topic, p, ms) for p in parts], timeout=timeout
        )
        ends = {
            p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=timeout)[1]
            for p in parts
        }
    finally:
        consumer.close()
    return {tp.partition: tp.offset if tp.offset >= 0 else ends[tp.partition] for tp in found}


def reset_group_offsets(
    settings: Settings,
    group: str,
    topics: Sequence[str],
    *,
    to: str = "earliest",
    execute: bool = True,
    timeout: float = 120.0,
) -> str:
    """Reset ``group``'s offsets on ``topics`` with Kafka's ``kafka-consumer-groups`` tool.

    ``to``: ``earliest``, ``latest``, or an ISO date-time (``--to-datetime``).
    Without ``execute`` the tool only prints the plan (its ``--dry-run``). The
    group must be inactive (no member connected): the tool refuses otherwise,
    and so does this (UsageProblem with the tool's own message). Returns the
    tool's output (the table of new offsets).
    """
    from connectors.stack import CONSUMER_GROUPS, StackError, run_kafka_tool

    if not topics:
        raise UsageProblem("reset_group_offsets: name at least one topic")
    if to in ("earliest", "latest"):
        target = [f"--to-{to}"]
    else:
        try:
            when = datetime.fromisoformat(to)
        except ValueError:
            raise UsageProblem(
                f"--to {to!r}: use earliest, latest or an ISO date-time (2026-01-31T12:00:00)"
            ) from None
        # The tool wants YYYY-MM-DDTHH:mm:SS.sss with an optional zone offset.
        stamp = when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}"
        if when.tzinfo is not None:
            stamp += when.strftime("%z")[:3] + ":" + when.strftime("%z")[3:]
        target = ["--to-datetime", stamp]
    args = [
        "--bootstrap-server",
        settings.kafka_bootstrap,
        "--group",
        group,
        "--reset-offsets",
        *target,
        "--execute" if execute else "--dry-run",
    ]
    for topic in topics:
        args += ["--topic", topic]
    # The security settings (password included) go in a file only we may read
    # (NamedTemporaryFile is mode 0600), deleted when the tool is done.
    with tempfile.NamedTemporaryFile("w", prefix="ringtally-kafka-", suffix=".properties") as cfg:
        cfg.write(java_client_properties(settings))
        cfg.flush()
        try:
            proc = run_kafka_tool(
                CONSUMER_GROUPS,
                [*args, "--command-config", cfg.name],
                timeout=timeout,
                settings=settings,
            )
        except StackError as exc:
            raise ServiceUnavailable(str(exc)) from None
    out = proc.stdout.decode(errors="replace")
    err = proc.stderr.decode(errors="replace")
    if proc.returncode != 0 or "Error:" in out or "Error:" in err:
        lines = [ln for ln in (out + "\n" + err).splitlines() if ln.strip() and "SLF4J" not in ln]
        problem = next((ln for ln in lines if "Error" in ln), lines[-1] if lines else "")
        active = "inactive" in problem
        raise UsageProblem(
            f"kafka-consumer-groups refused to reset group {group}: {problem.strip()[:300]}",
            fix="stop every member of the group first (the group must be inactive)"
            if active
            else "check the group and topic names (does the topic exist?)",
        )
    return out
