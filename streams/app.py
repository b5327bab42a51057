"""The Faust app: one per process, built from :class:`~streams.settings.Settings`.

Agents (``agents/``) register themselves on :data:`app` when imported; the
CLI imports them before handing over to Faust. Values and keys are raw bytes
here on purpose: parsing happens in the agents with the pydantic models, so a
malformed message becomes a ``malformed`` rejection instead of a crash in
Faust's deserializer.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from pathlib import Path

import faust
from faust.exceptions import ConsumerNotStarted

from . import logfilter, metrics, taskdump
from .consumer import RingtallyTransport
from .fence import OwnershipLost
from .kafka_client import faust_broker_credentials
from .pause import PauseWatchdog, exit_fenced, pause_limit
from .settings import Settings, get_settings
from .stall import StallDetector
from .tables import BatchedTable
from .topics import ensure_topics, topic_specs

__all__ = ["app", "create_app", "settings", "topics"]

log = logging.getLogger(__name__)


class RingtallyApp(faust.App):
    """faust.App that creates every topic it uses before its consumer subscribes."""

    ringtally_settings: Settings

    async def on_first_start(self) -> None:
        ensure_topics(self.ringtally_settings, internal=True)
        # Faust queues table changelog writes (a dict assignment cannot await) and
        # makes the agent wait whenever more than 100 are pending: with batches of
        # 256 votes that is a stall per batch. The cap bounds memory, nothing else.
        self.producer.buffer.max_messages = self.ringtally_settings.producer_buffer
        taskdump.install(asyncio.get_running_loop(), self)  # kill -USR2: where each task waits
        logfilter.install()  # the Kafka client's retry loops: one line per kind every 5 s
        # Created when a worker starts, not when the app is built: importing the app for
        # `ringtally worker --help` must not create a data directory (issue 18). Faust's
        # own mkdir makes only the last level.
        Path(self.conf.datadir).mkdir(parents=True, exist_ok=True)
        conf = self.conf
        limit = pause_limit(conf.broker_session_timeout, conf.broker_heartbeat_interval)
        PauseWatchdog(limit).start()  # paused past the session timeout: exit, write nothing
        await super().on_first_start()

    def fence_failed(self, exc: BaseException) -> None:
        """The changelog watch (streams.fence), or the heal and watch start at a recovery's
        end, failed: without them there is no fence."""
        if isinstance(exc, OwnershipLost):
            exit_fenced(exc)
        log.critical("the changelog fence failed; stopping the worker (exit 70)", exc_info=exc)
        logging.shutdown()
        os._exit(70)

    def _new_transport(self) -> faust.types.TransportT:
        # Faust's aiokafka transport, with the consumer fix of streams.consumer.
        return RingtallyTransport(self.conf.broker_consumer, self)

    async def hand_over_table_writes(self) -> None:
        """Give every table (changelog) write made so far to the Kafka client.

        Agents call this at the end of each batch, before Faust acknowledges the
        batch's records: the client flush that Faust runs to completion before
        every offset commit then covers the writes, so an offset is never
        committed while the table writes of the records before it could still
        be lost (finding F7 in docs/reliability.md: Faust's own pre-commit
        flush of its queue gave up after 0.1 s without a send). Our tables
        queue their writes themselves (:class:`streams.tables.BatchedTable`);
        anything left in Faust's producer buffer goes too.
        """
        for table in self.tables.values():
            if isinstance(table, BatchedTable):
                await table.hand_over()
        buffer = self.producer.buffer
        while buffer.size:
            await buffer.flush()


def create_app(settings: Settings) -> RingtallyApp:
    """A Faust app wired to these settings (brokers, store, partitions, web port)."""
    store = "rocksdb://" if settings.table_store == "rocksdb" else "memory://"
    # One directory per worker instance (the web port tells them apart), so two
    # workers on one host never open the same RocksDB files. `ringtally worker -p N`
    # reaches here as RINGTALLY_WEB_PORT=N (connectors/cli/root.py).
    datadir = settings.data_dir / "workers" / f"{settings.group_id}-{settings.web_port}"
    app = RingtallyApp(
        settings.group_id,
        broker=[f"kafka://{host}" for host in settings.kafka_bootstrap.split(",")],
        broker_credentials=faust_broker_credentials(settings),
        store=store,
        datadir=str(datadir),
        topic_partitions=settings.partitions,
        topic_replication_factor=settings.replication_factor,
        table_standby_replicas=settings.standby_replicas,
        processing_guarantee="at_least_once",
        consumer_auto_offset_reset="earliest",
        producer_acks=-1,
        producer_linger=settings.producer_linger,
        # aiokafka keeps one open batch per partition; when it is full, the agent
        # sending waits until the request in flight returns. At Faust's 16 KiB an
        # accepted vote (about 3 KiB while it carried the signed payload) filled it
        # every few records: 1,123 -> 1,560 votes/s with 256 KiB (docs/pipeline.md).
        producer_max_batch_size=256 * 1024,
        broker_session_timeout=settings.session_timeout,
        broker_heartbeat_interval=settings.heartbeat_interval,
        key_serializer="raw",
        value_serializer="raw",
        # app.Table makes BatchedTables: changelog writes leave once per batch
        # (streams/tables.py), handed over by hand_over_table_writes.
        Table=BatchedTable,
        # Faust binds web_bind (default 0.0.0.0) and only names itself web_host.
        web_bind=settings.web_host,
        web_host=settings.web_host,
        web_port=settings.web_port,
        autodiscover=False,
        origin="streams",
    )
    app.ringtally_settings = settings
    return app


settings = get_settings()
app = create_app(settings)
#: Full topic name -> faust Topic, declared (created if missing) when a worker starts.
topics: dict[str, faust.TopicT] = {
    short: app.topic(
        full,
        key_type=bytes,
        value_type=bytes,
        partitions=partitions,
        compacting=compacted or None,
        internal=True,
    )
    for short, (full, partitions, compacted) in topic_specs(settings).items()
}


@app.page("/health")
async def health(web: faust.web.Web, request: faust.web.Request) -> faust.web.Response:
    """Liveness and readiness for operators and ``make demo``: JSON, 200 when ready."""
    try:
        assignment = app.consumer.assignment()
    except ConsumerNotStarted:  # the web server answers before the consumer thread runs
        assignment = set()
    votes = settings.topic("votes")
    # Ready once the group's assignment is applied *and* the tables recovered:
    # records reaching a worker in recovery wait, or come again after it. Before
    # its first rebalance a worker is neither rebalancing nor recovering, yet owns
    # nothing: the first recovery must have completed too.
    ready = (
        bool(app.producer.started)
        and app.tables.recovery.completed.is_set()
        and not app.rebalancing
        and not app.in_recovery
    )
    body = {
        "status": "ok" if ready else "starting",
        "app_id": settings.group_id,
        "kafka": settings.kafka_bootstrap,
        "assigned_partitions": len(assignment),
        "votes_partitions": sorted(tp.partition for tp in assignment if tp.topic == votes),
        "rebalancing": bool(app.rebalancing),
        "in_recovery": bool(app.in_recovery),
    }
    return web.json(body, status=200 if ready else 503)


read_watch = StallDetector(stall_after=settings.stall_after)
commit_watch = StallDetector(stall_after=settings.stall_after)
_last_task_dump = [float("-inf")]


@app.timer(interval=5.0)
async def seek_stalled_partitions() -> None:
    """Watch each owned source partition's read and commit progress (streams.stall).

    Seek back a partition with records waiting that stopped being read, or
    whose commit is held by a hole (records dropped on their way to the
    agents); log a record an agent holds for ``stall_after`` seconds, with
    where every task waits (at most every 5 minutes).
    """
    consumer = app.consumer
    if not settings.stall_after or app.rebalancing or app.in_recovery or not consumer.flow_active:
        read_watch.reset()
        commit_watch.reset()
        return
    # The agents' source partitions (acked topics; table changelogs are not).
    owned = [tp for tp in consumer.assignment() if app.topics.acks_enabled_for(tp.topic)]
    reads, commits = consumer.progress(owned)
    now = time.monotonic()
    stalled = read_watch.observe(now, reads)
    blocked = commit_watch.observe(now, commits)
    holes = [tp for tp in blocked if commits[tp].blocker == "hole"]
    stuck = [tp for tp in blocked if commits[tp].blocker == "in_flight"]
    if stuck:
        metrics.STUCK_RECORDS.inc(len(stuck))
        log.warning(
            "records with an agent for over %.0f s without being acknowledged: %s",
            settings.stall_after,
            ", ".join(f"{tp.topic}[{tp.partition}]@{commits[tp].oldest_in_flight}" for tp in stuck),
        )
        if now - _last_task_dump[0] >= 300:
            _last_task_dump[0] = now
            log.warning("asyncio tasks:\n%s", taskdump.task_chains(app))
    if stalled:
        log.warning(
            "partitions with records waiting and none in flight made no progress for %.0f s: %s",
            settings.stall_after,
            ", ".join(
                f"{tp.topic}[{tp.partition}] read={reads[tp].read} end={reads[tp].highwater}"
                for tp in stalled
            ),
        )
    if holes:
        log.warning(
            "commits held for %.0f s by records neither acknowledged nor in flight: %s",
            settings.stall_after,
            ", ".join(
                f"{tp.topic}[{tp.partition}] {c.committed}..{c.hole_end}"
                for tp, c in ((tp, commits[tp]) for tp in holes)
            ),
        )
    if not (stalled or holes):
        return
    metrics.STALL_SEEKS.inc()
    try:
        await consumer.seek_back(stalled + [tp for tp in holes if tp not in stalled])
    except Exception as exc:  # the broker may be what is missing: look again next time
        log.warning("seek back to committed offsets failed: %r", exc)
