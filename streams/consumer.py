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
"""

from __future__ import annotations

from collections.abc import Iterable

from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TP

__all__ = ["RingtallyConsumer", "RingtallyTransport"]


class RingtallyConsumer(faust_aiokafka.Consumer):
    """aiokafka consumer whose seek back to committed offsets covers never-committed partitions."""

    async def perform_seek(self) -> None:
        await super().perform_seek()
        await self.rewind_uncommitted(self.assignment())

    async def rewind_uncommitted(self, tps: Iterable[TP]) -> None:
        """Seek those of the agents' partitions in ``tps`` never committed to their start."""
        committed = self._committed_offset
        never = [
            tp for tp in tps if self.app.topics.acks_enabled_for(tp.topic) and not committed.get(tp)
        ]
        if never:
            starts = await self.earliest_offsets(*never)
            self.log.info(
                "seeking never-committed partitions to their start: %s",
                ", ".join(f"{tp.topic}[{tp.partition}]@{offset}" for tp, offset in starts.items()),
            )
            for tp, offset in starts.items():
                await self.seek(tp, offset)


class RingtallyTransport(faust_aiokafka.Transport):
    """Faust's aiokafka transport with :class:`RingtallyConsumer`."""

    Consumer = RingtallyConsumer
