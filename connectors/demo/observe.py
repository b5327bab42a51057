"""Watching what the pipeline produces: the output topics (a consumer thread) and Postgres.

:class:`TopicWatch` reads topics from the beginning in a background thread
(confluent-kafka, ``read_committed``, no commits) and keeps, de-duplicated,
every ballot (by vote id; a ballot that ``supersedes`` another removes it),
rejection (by source position) and tally, each with its Kafka timestamp,
for the progress bar, the check and the chart.
:func:`read_postgres` reads the same three things from the sink's tables.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import Consumer

from streams.kafka_client import kafka_config
from streams.settings import Settings

from .check import Observed, TallyView, tallies_from_records

__all__ = ["PgCounts", "TopicWatch", "pg_counts", "read_postgres"]


@dataclass
class TopicWatch:
    """Ballots, rejections and tallies as they appear on the output topics."""

    settings: Settings
    #: Watch the ballots, rejections and tallies topics (False: only ``extra``).
    outputs: bool = True
    #: Extra topics to count distinct things on: full name -> f(key, value) -> identity or None.
    extra: dict[str, Callable[[bytes | None, bytes | None], bytes | None]] = field(
        default_factory=dict
    )
    ballots: dict[str, tuple[int, dict[str, Any]]] = field(default_factory=dict)
    rejections: dict[tuple[str, int, int], tuple[int, str]] = field(default_factory=dict)
    tallies: list[dict[str, Any]] = field(default_factory=list)
    extra_seen: dict[str, set[bytes]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> TopicWatch:
        self._names = (
            {
                self.settings.topic("ballots"): "ballots",
                self.settings.topic("rejections"): "rejections",
                self.settings.topic("tallies"): "tallies",
            }
            if self.outputs
            else {}
        )
        for topic in self.extra:
            self.extra_seen[topic] = set()
        self._thread = threading.Thread(target=self._run, name="topic-watch", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        consumer = Consumer(
            kafka_config(
                self.settings,
                **{
                    "group.id": f"demo-watch-{uuid.uuid4().hex[:8]}",
                    "auto.offset.reset": "earliest",
                    "enable.auto.commit": False,
                    "isolation.level": "read_committed",
                },
            )
        )
        consumer.subscribe([*self._names, *self.extra])
        try:
            while not self._stop.is_set():
                msgs = consumer.consume(1000, timeout=0.2)
                with self.lock:
                    for msg in msgs:
                        if msg.error() is None:
                            self._take(msg)
        finally:
            consumer.close()

    def _take(self, msg: Any) -> None:
        topic = msg.topic()
        if topic in self.extra:
            ident = self.extra[topic](msg.key(), msg.value())
            if ident is not None:
                self.extra_seen[topic].add(ident)
            return
        kind = self._names[topic]
        ts = msg.timestamp()[1]
        body = json.loads(msg.value())
        if kind == "ballots":
            self.ballots.setdefault(body["vote_id"], (ts, body))
            if body.get("supersedes"):  # that vote's ballot was retracted (agents/tally.py)
                self.ballots.pop(body["supersedes"], None)
        elif kind == "rejections":
            position = (body["source_topic"], body["source_partition"], body["source_offset"])
            self.rejections.setdefault(position, (ts, body["reason"]))
        else:
            self.tallies.append(body)

    @property
    def outcomes(self) -> int:
        """Distinct votes-topic records that reached an outcome (ballot or rejection)."""
        with self.lock:
            return len(self.ballots) + len(self.rejections)

    def seen(self, topic: str) -> int:
        with self.lock:
            return len(self.extra_seen.get(topic, ()))

    def observed(self) -> Observed:
        with self.lock:
            return Observed(
                source="topics",
                ballots=set(self.ballots),
                rejections=Counter(reason for _, reason in self.rejections.values()),
                tallies=tallies_from_records(self.tallies),
            )

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)


@dataclass(frozen=True)
class PgCounts:
    ballots: int
    rejections: int
    tallies: int
    tally_versions: int

    @property
    def outcomes(self) -> int:
        return self.ballots + self.rejections


async def pg_counts(conn: Any) -> PgCounts:
    row = await conn.fetchrow(
        "SELECT (SELECT count(*) FROM ballots) AS b, (SELECT count(*) FROM rejections) AS r, "
        "(SELECT count(*) FROM tallies) AS t, (SELECT coalesce(sum(version), 0) FROM tallies) AS v"
    )
    return PgCounts(row["b"], row["r"], row["t"], int(row["v"]))


async def read_postgres(conn: Any) -> Observed:
    """Ballots, rejection counts by reason and tallies from the sink's tables."""
    ballots = {str(r["vote_id"]) for r in await conn.fetch("SELECT vote_id FROM ballots")}
    reasons = Counter(
        {
            r["reason"]: r["n"]
            for r in await conn.fetch(
                "SELECT reason, count(*) AS n FROM rejections GROUP BY reason"
            )
        }
    )
    tallies = {
        r["submission_id"]: TallyView(
            (r["approve"], r["reject"], r["flag"], r["escalate"]), r["decision"], r["version"]
        )
        for r in await conn.fetch(
            "SELECT submission_id, approve, reject, flag, escalate, decision, version FROM tallies"
        )
    }
    return Observed(source="postgres", ballots=ballots, rejections=reasons, tallies=tallies)


def wait_until(done: Callable[[], bool], timeout: float, poll: float = 0.2) -> bool:
    deadline = time.monotonic() + timeout
    while not done():
        if time.monotonic() > deadline:
            return False
        time.sleep(poll)
    return True
