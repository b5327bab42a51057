"""Stall watchdogs: partitions a worker owns that stopped moving, read or commit.

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

The second watchdog looks at the commit side (finding F8): Faust commits a
partition up to the first offset nobody acknowledged. Records after it may be
processed and acknowledged for ever while the commit stays put, and the
records at the hole are never decided. :class:`CommitProgress` tells the two
ways this happens apart: a *hole* (records neither acknowledged nor with the
agents: dropped on their way, so seek back and deliver them again) and a
*stuck* record (with an agent that never finished it: log it and where every
task waits, since seeking back would not free the agent).
"""

from __future__ import annotations

import logging
from collections.abc import Hashable, Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["CommitProgress", "PartitionProgress", "StallDetector"]

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

    @property
    def marker(self) -> Hashable | None:
        """For :class:`StallDetector`: None unless behind, else what moves with progress."""
        return ("read", self.read) if self.behind else None


@dataclass(frozen=True, slots=True)
class CommitProgress:
    """One partition's commit bookkeeping: the committed offset (the next to
    process), the lowest offset acknowledged beyond it, and the oldest offset
    delivered to an agent and not yet acknowledged."""

    committed: int | None
    lowest_acked: int | None
    oldest_in_flight: int | None = None
    #: The consumer's read offset (last delivered, or next to read after a seek).
    read: int | None = None

    @property
    def blocker(self) -> str | None:
        """``"hole"``, ``"in_flight"`` or None: what the commit waits for.

        A hole: offsets from ``committed`` up to the lowest acknowledged one
        that are neither acknowledged nor with an agent. Faust commits past a
        head gap of exactly one offset (it takes it for a transaction marker),
        so only a gap of two or more counts. ``in_flight``: the oldest record
        with an agent, normal for a moment and a fault only if it stays the
        oldest for long (an agent that never finishes it).
        """
        in_flight = self.oldest_in_flight
        if self.committed is not None and self.lowest_acked is not None:
            covered = in_flight is not None and in_flight < self.lowest_acked
            if self.lowest_acked - self.committed > 1 and not covered:
                return "hole"
        if (
            self.committed is not None
            and self.lowest_acked is None
            and in_flight is None
            and self.read is not None
            and self.read > self.committed
        ):
            # Read past the commit, yet nothing acknowledged and nothing with an agent:
            # the records vanished on their way (F15: after a takeover, the survivor read
            # its dead peer's votes 9-17 and decided none; the read watchdog saw the read
            # offset at the end, this one saw no acknowledged record to bound a hole).
            return "hole"
        return "in_flight" if in_flight is not None else None

    @property
    def hole_end(self) -> int | None:
        """The last offset of the hole (for the log line)."""
        if self.lowest_acked is not None:
            return self.lowest_acked - 1
        return self.read

    @property
    def marker(self) -> Hashable | None:
        """For :class:`StallDetector`: None if nothing is pending, else what moves with progress."""
        blocker = self.blocker
        if blocker == "hole":
            return (blocker, self.committed, self.lowest_acked, self.read)
        if blocker == "in_flight":
            return (blocker, self.oldest_in_flight)
        return None


@dataclass
class StallDetector:
    """Pure bookkeeping: which partitions have been in trouble, and unmoving, long enough.

    Each look gives a partition's *marker*: None while it is fine, otherwise
    a value that changes whenever it makes progress (see ``marker`` on
    :class:`PartitionProgress` and :class:`CommitProgress`).
    """

    stall_after: float
    _since: dict[Hashable, tuple[Hashable, float]] = field(default_factory=dict)

    def observe(self, now: float, partitions: Mapping[Hashable, Any]) -> list:
        """Record one look at the partitions; return those stalled as of ``now``.

        A stalled partition's clock restarts, so a stall that a seek did not
        cure is reported again only after another ``stall_after``.
        """
        stalled = []
        for tp in list(self._since):
            if tp not in partitions:
                del self._since[tp]
        for tp, progress in partitions.items():
            marker = progress.marker
            if marker is None:
                self._since.pop(tp, None)
                continue
            seen = self._since.get(tp)
            if seen is None or seen[0] != marker:
                self._since[tp] = (marker, now)
            elif now - seen[1] >= self.stall_after:
                stalled.append(tp)
                self._since[tp] = (marker, now)
        return stalled

    def reset(self) -> None:
        """Forget everything (a rebalance or recovery is under way)."""
        self._since.clear()
