"""Stall watchdog: partitions a worker owns, with records waiting, that stopped moving.

Seen after rebalances (finding F1 in docs/reliability.md): the worker owns a
partition, the Kafka client has fetched up to its end, yet the records never
reached the agents (Faust's read offset for it stays empty or behind) and
nothing happens until new input or a restart.

:mod:`streams.consumer` fixes the one cause found; this watchdog is the net for
any other. Every few seconds, outside rebalances and recovery, it compares
each owned source partition's end (Faust's highwater) with Faust's read
offset. A partition that stays behind, with nothing in flight and its read
offset unchanged for ``stall_after`` seconds, is declared stalled, logged,
counted, and that partition alone is sought back to its committed offset (its
first offset if it has none): the records come again and are decided exactly
as before (the agents are idempotent).
"""

from __future__ import annotations

import logging
from collections.abc import Hashable, Mapping
from dataclasses import dataclass, field

__all__ = ["PartitionProgress", "StallDetector"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class PartitionProgress:
    """What the consumer says of one partition: last offset read, the end, and
    how many records it delivered that the agents have not yet acknowledged."""

    read: int | None
    highwater: int | None
    in_flight: int = 0

    @property
    def behind(self) -> bool:
        """Records wait beyond the read offset, and none is with the agents.

        A slack of one covers Faust's two conventions for ``read`` (last
        delivered, or next to read after a seek). A partition with records in
        flight is busy, not stalled: its stream buffer may be full while a slow
        agent works through it, and seeking it back would deliver those records
        twice and break Faust's commit bookkeeping.
        """
        if not self.highwater or self.in_flight:
            return False
        return self.read is None or self.highwater - self.read > 1


@dataclass
class StallDetector:
    """Pure bookkeeping: which partitions have been behind, and unmoving, long enough."""

    stall_after: float
    _since: dict[Hashable, tuple[int | None, float]] = field(default_factory=dict)

    def observe(self, now: float, partitions: Mapping[Hashable, PartitionProgress]) -> list:
        """Record one look at the partitions; return those stalled as of ``now``.

        A stalled partition's clock restarts, so a stall that a seek did not
        cure is reported again only after another ``stall_after``.
        """
        stalled = []
        for tp in list(self._since):
            if tp not in partitions:
                del self._since[tp]
        for tp, progress in partitions.items():
            if not progress.behind:
                self._since.pop(tp, None)
                continue
            seen = self._since.get(tp)
            if seen is None or seen[0] != progress.read:
                self._since[tp] = (progress.read, now)
            elif now - seen[1] >= self.stall_after:
                stalled.append(tp)
                self._since[tp] = (progress.read, now)
        return stalled

    def reset(self) -> None:
        """Forget everything (a rebalance or recovery is under way)."""
        self._since.clear()
