"""The worker's Kafka consumer: Faust's aiokafka consumer, rewinding partitions never committed.

Faust drops records the client fetched while the flow is suspended (a
rebalance, a table recovery) and relies on ``perform_seek`` to fetch them
again: "seek back to committed offsets". aiokafka's ``seek_to_committed`` only
moves partitions whose committed offset is above 0, so a partition that was
never committed (its previous owner died before its first commit) keeps its
position *after* the dropped records, and they are never processed: the
worker sits idle with a partition it owns behind (finding F1,
docs/reliability.md), and once a new record arrives it is processed and
committed past the hole. Here ``perform_seek`` also rewinds such partitions to
their first offset, which is what ``auto_offset_reset=earliest`` means for
them. The records come again; the agents decide them as the first time.

Faust also leaves a message in its in-flight set for good when its offset was
acknowledged before (a record delivered twice after a seek back) or lies below
the committed offset: ``ack`` here takes every acknowledged message out, so
the stall watchdogs (:mod:`streams.stall`) do not mistake such a partition for
a busy one (finding F8). :meth:`RingtallyConsumer.progress` is what they read.

The fetch loop (:meth:`RingtallyConsumer._drain_messages`) hands each record
to the agents' queues directly when nothing can make that wait; Faust races
every delivery against the flow's suspension with two new tasks, which cost
about a tenth of the worker's CPU in the vote path (docs/pipeline.md).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TP, Message
from mode import ServiceT

from .lease import Lease, observe_group
from .producer import RingtallyProducer
from .stall import CommitProgress, PartitionProgress

__all__ = [
    "FETCH_MAX_WAIT_MS",
    "RingtallyConsumer",
    "RingtallyConsumerThread",
    "RingtallyTransport",
]


#: How long a fetch may wait on the broker for records (aiokafka's and Kafka's default).
#: Faust sets 1,500 ms, and every call through the consumer's thread (the seek back to
#: committed offsets after each start and rebalance, highwaters, earliest offsets)
#: waits out the fetch in progress: a worker said ready ~1.5 s after its assignment.
FETCH_MAX_WAIT_MS = 500


class RingtallyConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
    """Faust's consumer thread with :data:`FETCH_MAX_WAIT_MS` (Faust has no setting for it),
    whose group requests renew the worker's ownership lease (:mod:`streams.lease`)."""

    def _create_worker_consumer(self, transport: Any) -> Any:
        consumer = super()._create_worker_consumer(transport)
        # read by start(), which makes the Fetcher: aiokafka has no setter
        consumer._fetch_max_wait_ms = FETCH_MAX_WAIT_MS  # noqa: SLF001
        lease = getattr(transport, "lease", None)
        if lease is not None:
            # This client instance only, before start(): its first JoinGroup is seen.
            observe_group(consumer._client, lease)  # noqa: SLF001
            lease.arm(lambda: _generation_of(consumer))
        return consumer


def _generation_of(client: Any) -> int | None:
    """An aiokafka consumer's group generation (-1: evicted or not joined yet)."""
    coordinator = getattr(client, "_coordinator", None)
    return -1 if coordinator is None else coordinator.generation


class RingtallyConsumer(faust_aiokafka.Consumer):
    """aiokafka consumer whose seek back to committed offsets covers never-committed partitions."""

    def _new_consumer_thread(self) -> RingtallyConsumerThread:
        return RingtallyConsumerThread(self, loop=self.loop, beacon=self.beacon)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        #: First offset of partitions never committed, as last looked up.
        self._first_offsets: dict[TP, int] = {}
        super().__init__(*args, **kwargs)

    def generation(self) -> int | None:
        """The group generation as the client knows it: it only grows, and the client
        resets it to -1 when the coordinator says the member was evicted. None before
        the client started. The changelog fence's epoch (streams.fence)."""
        thread = getattr(self, "_thread", None)
        client = getattr(thread, "_consumer", None)
        coordinator = getattr(client, "_coordinator", None)
        return None if coordinator is None else coordinator.generation

    def ack(self, message: Message) -> bool:
        newly = super().ack(message)
        if message.acked:  # Faust keeps duplicates and below-commit messages "in flight"
            self._unacked_messages.discard(message)
        return newly

    async def _add_gap(self, tp: TP, offset_from: int, offset_to: int) -> None:
        """Never take skipped offsets for acknowledged ones.

        Faust records a jump in a partition's offsets as a gap that counts as
        acknowledged when it commits: meant for compacted topics and
        transaction markers, neither of which our source topics have. A seek
        back (agents.order, the watchdogs) while the fetcher still hands over
        records fetched before it makes such a jump, over records nobody
        decided, and the commit then passed them: 14 votes lost in a full
        chaos run (finding F10). Without gaps a commit only passes acknowledged
        offsets (and, as Faust allows, a single missing one at its head, which
        is what a transaction's commit marker leaves).
        """

    async def _drain_messages(self, fetcher: ServiceT) -> None:
        """The fetch loop: every record fetched goes to the agents' queues, in order.

        Faust's loop races each delivery against ``suspend_flow`` so that a
        delivery stuck on a full queue or a suspended flow (a rebalance) is
        dropped rather than made after it. That race costs two tasks per
        record. Here a delivery that cannot wait (flow running, queues with
        room, producer buffer below its cap, subscriptions not being rebuilt)
        is awaited directly: it completes without yielding, so nothing can
        change under it. Anything else takes Faust's race. Records below the
        partition's read offset are dropped, as Faust does; offset jumps are
        not gaps here (:meth:`_add_gap`).
        """
        deliver = self.callback
        read_offset = self._read_offset
        commit_every = self._commit_every
        since_yield = 0
        try:
            while not (self.should_stop or fetcher.should_stop):
                records = self.getmany(timeout=1.0)
                await asyncio.sleep(0)  # getmany may return at once, again and again
                if self.should_stop:
                    continue
                async for tp, message in records:
                    since_yield += 1
                    if since_yield > 100:  # let the agents and timers run
                        since_yield = 0
                        await asyncio.sleep(0)
                    last = read_offset.get(tp)
                    if last is not None and message.offset < last:
                        continue  # fetched again before a seek took effect
                    if commit_every is not None and self._n_acked >= commit_every:
                        self._n_acked = 0
                        await self.commit()
                    if self._delivery_cannot_wait():
                        await deliver(message)
                    else:
                        await self.wait_first(deliver(message), self.suspend_flow.wait())
                    read_offset[tp] = message.offset
        except self.consumer_stopped_errors:
            if self.transport.app.should_stop:
                return
            raise
        except asyncio.CancelledError:
            if self.transport.app.should_stop:
                return
            raise
        except Exception as exc:
            self.log.exception("fetch loop failed: %r", exc)
            raise

    def _delivery_cannot_wait(self) -> bool:
        """True when handing a record to the agents' queues completes without waiting."""
        app = self.app
        if self.suspend_flow.is_set() or not app.flow_control.is_active():
            return False
        buffer = app.producer.buffer
        if buffer.size > buffer.max_messages:
            return False
        conductor = app.topics
        lock = getattr(conductor, "_tp_to_callback_lock", None)
        if lock is None or lock.locked():
            return False
        return not any(channel.queue.full() for channel in conductor)

    async def look_up_first_offsets(self, tps: Iterable[TP]) -> None:
        """Learn the first offset of each of these partitions that has no commit.

        :meth:`next_to_process` needs it for a partition never committed, and
        the agents may see such a partition's records before any seek back
        looked it up (Faust delivers records during table recovery).
        """
        missing = [
            tp for tp in tps if not self._committed_offset.get(tp) and tp not in self._first_offsets
        ]
        if missing:
            self._first_offsets.update(await self.earliest_offsets(*missing))

    def next_to_process(self, tp: TP) -> int | None:
        """The committed offset, or for a partition never committed its first offset
        (as :meth:`seek_back` or :meth:`look_up_first_offsets` last saw it); None if
        not known."""
        return self._committed_offset.get(tp) or self._first_offsets.get(tp)

    def progress(
        self, tps: Iterable[TP]
    ) -> tuple[dict[TP, PartitionProgress], dict[TP, CommitProgress]]:
        """Read and commit bookkeeping of these partitions, for :mod:`streams.stall`."""
        # In flight: delivered, and its offset acknowledged by no copy of it. A
        # record held back by the agents (agents.order) stays unacknowledged
        # after its second coming was; it is not in flight any more.
        in_flight: dict[TP, list[int]] = {}
        for message in list(self._unacked_messages):
            tp, offset = message.tp, message.offset
            committed = self._committed_offset.get(tp)
            done = (committed is not None and offset < committed) or offset in (
                self._acked_index.get(tp) or ()
            )
            if not (message.acked or done):
                in_flight.setdefault(tp, []).append(offset)
        reads, commits = {}, {}
        for tp in tps:
            offsets = in_flight.get(tp, [])
            acked = self._acked.get(tp)
            reads[tp] = PartitionProgress(
                read=self._read_offset.get(tp),
                highwater=self.highwater(tp),
                in_flight=len(offsets),
            )
            commits[tp] = CommitProgress(
                committed=self._committed_offset.get(tp),
                lowest_acked=min(acked) if acked else None,
                oldest_in_flight=min(offsets) if offsets else None,
                read=self._read_offset.get(tp),
            )
        return reads, commits

    async def perform_seek(self) -> None:
        await super().perform_seek()
        committed = self._committed_offset
        never = [
            tp
            for tp in self.assignment()
            if self.app.topics.acks_enabled_for(tp.topic) and not committed.get(tp)
        ]
        await self.seek_back(never)

    async def seek_back(self, tps: Iterable[TP]) -> None:
        """Seek each partition to its committed offset, or its first one if it has none.

        Only for partitions with nothing in flight (a rebalance, or a stall):
        records already with the agents would otherwise come twice.
        """
        tps = list(tps)
        if not tps:
            return
        # Both through the consumer's thread, each waiting out the fetcher's long poll
        # (up to FETCH_MAX_WAIT_MS): together, not one after the other.
        starts, ends = await asyncio.gather(self.earliest_offsets(*tps), self.highwaters(*tps))
        self._first_offsets.update(starts)
        targets = {}
        for tp in tps:
            target = self.next_to_process(tp)  # the commit, else the start just looked up
            if target is not None and target < (ends.get(tp) or 0):  # empty: nothing to fetch
                targets[tp] = target
        if targets:
            self.log.info(
                "seeking back: %s",
                ", ".join(f"{tp.topic}[{tp.partition}]->{off}" for tp, off in targets.items()),
            )
        if targets:  # through the consumer's thread: safe while the fetcher runs
            await self.seek_wait(targets)


class RingtallyTransport(faust_aiokafka.Transport):
    """Faust's aiokafka transport with :class:`RingtallyConsumer` and
    :class:`~streams.producer.RingtallyProducer`."""

    Consumer = RingtallyConsumer
    Producer = RingtallyProducer

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        conf = self.app.conf
        #: The worker's ownership lease: renewed by the consumer, held by every write.
        self.lease = Lease(conf.broker_session_timeout, conf.broker_rebalance_timeout)
