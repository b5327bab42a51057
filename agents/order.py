"""Log order: each source partition's records are decided in offset order, none skipped.

The agents' outcomes depend on order: a token's first valid vote spends it, a
key image's first vote counts. Kafka delivers each partition in order, but
Faust does not always pass that order on. After a restart or a rebalance it
hands the agents records during table recovery, before it seeks back to the
committed offsets, and the records in front of them come later or not at all
(seen on every partition of a restarted worker: next offset 6497, first
record 6505); after any seek back, records fetched before it can still arrive
ahead of the re-fetched ones (findings F7 and F8 in docs/reliability.md).
Sorting a batch fixes disorder within it, not across batches.

:class:`LogOrder` keeps, per partition, the next offset to decide. A record
at that offset is decided and the mark moves on; a record below it was decided
before (a redelivery, decided again as its first time); a record above it is
*ahead*: it is not decided now, and the partition is sought back to the mark so
the missing records come, followed by this one again. The caller keeps ahead
records unacknowledged, so no commit passes them before their second coming is
decided.

A position delivered twice in one batch (a seek back while the fetcher still
held the first copy) is decided once; the other copies are *copies*
(:attr:`Admitted.copies`), which the caller never acknowledges either. Faust
would: one copy's acknowledgement marks the offset done for the consumer, so a
commit could pass the position while the kept copy still waits (held back as
ahead, or queued to be applied) and a crash then would lose it (issue 16).

A gap is skipped only on proof that it is real. Transaction markers make real
gaps in a topic that is not compacted (any producer may write transactionally
until ACLs forbid it: one commit marker would otherwise hold its partition for
good). Time is no proof: after a broker outage every gap is old. The proof is
the log itself: when a partition is sought back to the same offset twice, the
caller reads from that offset with a consumer of its own, and if the first
record there lies further on, the offsets between hold no record
(:meth:`LogOrder.skip_to`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from .records import SourceRecord, in_log_order

__all__ = ["Admitted", "LogOrder"]

Partition = tuple[str, int]


@dataclass
class Admitted:
    """One batch sorted out: what to decide now, what came ahead, where to seek."""

    ready: list[SourceRecord] = field(default_factory=list)
    ahead: list[SourceRecord] = field(default_factory=list)
    #: Partitions to seek back, and to which offset (the next one to decide).
    seek: dict[Partition, int] = field(default_factory=dict)
    #: Further copies of a position already in ``ready`` or ``ahead``: never to be
    #: acknowledged (the kept copy's acknowledgement, after its decision, covers them).
    copies: list[SourceRecord] = field(default_factory=list)


@dataclass
class LogOrder:
    """Per-partition next offset to decide (pure bookkeeping; the agent does the seeking).

    ``committed`` gives a partition's committed offset (the next one to
    process) when it is first seen after a :meth:`reset`; None for a
    partition never committed, whose first record is then taken as its start.
    """

    committed: Callable[[Partition], int | None]
    _next: dict[Partition, int] = field(default_factory=dict)

    def mark(self, tp: Partition) -> int | None:
        """The next offset to decide on this partition (None before its first record)."""
        return self._next.get(tp)

    def unknown(self, partitions: Iterable[Partition]) -> set[Partition]:
        """Of these partitions, those with no mark yet (their start gets looked up)."""
        return {tp for tp in partitions if tp not in self._next}

    def reset(self) -> None:
        """Forget every mark: the assignment changed, start again from the commits."""
        self._next.clear()

    def skip_to(self, tp: Partition, offset: int) -> None:
        """The partition's offsets below ``offset`` hold no record still to come (the log
        showed its first record at or after the mark is at ``offset``): move the mark."""
        self._next[tp] = max(self._next.get(tp, offset), offset)

    def admit(self, records: Sequence[SourceRecord]) -> Admitted:
        out = Admitted()
        kept = in_log_order(records)
        kept_ids = {id(r) for r in kept}
        out.copies = [r for r in records if id(r) not in kept_ids]
        for record in kept:
            tp = record.partition_key
            mark = self._next.get(tp)
            if mark is None:
                mark = self.committed(tp)
                if mark is None:
                    mark = record.offset
            if record.offset > mark:
                # Seek back on every batch that brings records ahead, however
                # recent the last seek: they may be the partition's last ones,
                # and without a seek nothing would come to fill the gap.
                out.ahead.append(record)
                out.seek[tp] = mark
            else:
                out.ready.append(record)
                if record.offset == mark:
                    mark += 1
            self._next[tp] = mark
        return out
