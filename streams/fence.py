"""The zombie fence's parts that are not the table itself: the epoch header, the
error a fenced batch raises, and the owner's watch of its changelog partitions.

Why (issue 16 item 2, docs/reliability.md "Zombie workers"): a worker paused
past its session timeout may resume and hand over changelog records for
partitions another worker now owns. Each record carries its writer's
ownership epoch (the consumer-group generation it was written under, raised
above any epoch the partition held when a reset group starts again from 1:
:func:`owner_epoch`), recovery skips a record older than its partition's largest epoch
(:meth:`streams.tables.BatchedTable.apply_changelog_batch`), and the owner
makes its own value the last one of every key a stale record lands on
(:class:`ChangelogWatch`), before compaction could drop the owner's record
(``min.compaction.lag.ms`` on the changelogs, :mod:`streams.topics`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from faust.types import TP

from .kafka_client import aiokafka_kwargs
from .settings import Settings

__all__ = [
    "EPOCH_HEADER",
    "ChangelogWatch",
    "Epoch",
    "OwnershipLost",
    "epoch_header",
    "epoch_of",
    "format_epoch",
    "owner_epoch",
    "parse_epoch",
]

log = logging.getLogger(__name__)

#: The changelog record header holding the writer's ownership epoch: ``E`` or ``E:G``
#: (decimal ASCII), :func:`format_epoch`.
EPOCH_HEADER = "ringtally-epoch"

#: An ownership epoch: (E, G), compared in that order. G is the group generation the
#: record was written under; E is G, or more after a group reset (:func:`owner_epoch`).
Epoch = tuple[int, int]


def owner_epoch(generation: int, floor: int) -> Epoch:
    """The epoch a worker in ``generation`` stamps on a changelog partition whose largest
    epoch, when its recovery of the partition completed, had E = ``floor - 1``.

    Generations only grow within one life of the consumer group; the coordinator
    forgets an empty group when its offsets expire (offsets.retention.minutes) or an
    operator deletes it, and the next one starts at 1 while the changelog holds, say,
    57. Stamped 1, every record of the new owner would be skipped by every later
    recovery: the partition's state frozen at the reset. E = max(G, floor) keeps the
    owner above all it read. A zombie stays below: it was in an older generation
    g < G of the same group life, and its E was max(g, its floor), its floor taken
    from a prefix of the log the owner read in full, so E_zombie <= E_owner, and on
    a tie G breaks it. (A worker paused across the reset itself is not covered: see
    docs/reliability.md.) A worker without a generation (-1: evicted) stamps (0, 0).
    """
    if generation < 1:
        return (0, 0)
    return (max(generation, floor), generation)


def format_epoch(epoch: Epoch) -> bytes:
    """``E`` when E is the generation (every record of a group that was never reset,
    and the form before resets were handled), else ``E:G``."""
    e, g = epoch
    return str(e).encode() if e == g else f"{e}:{g}".encode()


def parse_epoch(value: Any) -> Epoch | None:
    """The epoch :func:`format_epoch` wrote; None for anything else."""
    try:
        text = value.decode() if isinstance(value, bytes | bytearray) else str(value)
        e, _, g = text.partition(":")
        return (int(e), int(g or e))
    except (TypeError, ValueError, UnicodeDecodeError):
        return None


class OwnershipLost(Exception):
    """The group generation changed between a batch's first table write and its
    hand-over: this worker was evicted (paused past its session timeout) and its
    partitions may be another worker's. The batch's writes were dropped."""


def epoch_of(headers: Any) -> Epoch | None:
    """A changelog record's ownership epoch; None without the header (written before the
    fence, by hand, or by an older worker in a rolling upgrade): recovery applies such
    records as it always did."""
    items = headers.items() if hasattr(headers, "items") else headers or ()
    for name, value in items:
        if name == EPOCH_HEADER:
            return parse_epoch(value)
    return None


def epoch_header(epoch: Epoch) -> list[tuple[str, bytes]]:
    """The headers of a changelog record written under ``epoch``."""
    return [(EPOCH_HEADER, format_epoch(epoch))]


class ChangelogWatch:
    """Follows the changelog partitions a table owns, from where its recovery stopped,
    and has the table re-write (heal) each key a record with an older epoch lands on.

    Recovery skips such a record while the owner's newer one is still in the log;
    compaction would drop the owner's record (same key, earlier) and keep the stale
    one. The heal puts the owner's value after it. A plain consumer without a group:
    the owner's own records (its epoch) pass by unnoticed.
    """

    def __init__(
        self,
        settings: Settings,
        epoch: Callable[[int], Epoch | None],
        heal: Callable[[int, list[bytes]], Awaitable[None]],
        on_error: Callable[[BaseException], None],
    ) -> None:
        self._settings = settings
        self._epoch = epoch
        self._heal = heal
        self._on_error = on_error
        self._consumer: Any = None
        self._task: asyncio.Task | None = None

    async def follow(self, starts: dict[TP, int | None]) -> None:
        """Watch these changelog partitions from these offsets, None: from their end
        (replacing what was watched)."""
        await self.pause()
        if not starts:
            return
        from aiokafka import AIOKafkaConsumer, TopicPartition

        if self._consumer is None:
            self._consumer = AIOKafkaConsumer(
                **aiokafka_kwargs(self._settings, enable_auto_commit=False)
            )
            await self._consumer.start()
        starts_at = {TopicPartition(tp.topic, tp.partition): o for tp, o in starts.items()}
        self._consumer.assign(list(starts_at))
        for tp, offset in starts_at.items():
            if offset is None:
                await self._consumer.seek_to_end(tp)
            else:
                self._consumer.seek(tp, offset)
        self._task = asyncio.create_task(self._run(), name="changelog-watch")

    async def pause(self) -> None:
        """Stop watching (a rebalance: the partitions may not be ours any more)."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def stop(self) -> None:
        await self.pause()
        consumer, self._consumer = self._consumer, None
        if consumer is not None:
            await consumer.stop()

    async def _run(self) -> None:
        consumer = self._consumer
        try:
            while True:
                fetched = await consumer.getmany(timeout_ms=1000)
                for tp, records in fetched.items():
                    own = self._epoch(tp.partition)
                    if own is None:
                        continue
                    # Unstamped too: this owner stamps all it writes (an old worker's)
                    stale = [r.key for r in records if (epoch_of(r.headers) or (-1, -1)) < own]
                    if stale:
                        log.warning(
                            "changelog %s[%d]: %d record(s) written under an older "
                            "ownership epoch than this owner's (%s): a paused worker's "
                            "late writes; re-writing those keys with this worker's values",
                            tp.topic,
                            tp.partition,
                            len(stale),
                            format_epoch(own).decode(),
                        )
                        await self._heal(tp.partition, stale)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # OwnershipLost, or a bug: without the watch, no fence
            self._on_error(exc)
