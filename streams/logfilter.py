"""Rate-limited logging for the Kafka client's retry loops (finding F4).

During a broker outage aiokafka retries its connection and metadata requests
in a tight loop and logs an ERROR for each attempt: ~56,000 lines (6 MB) in an
11 s outage of the full chaos run. :class:`RepeatFilter` lets the first record
of each kind through, drops the repeats for ``every`` seconds, and says how
many it dropped on the next record of that kind it lets through.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

__all__ = ["KAFKA_CLIENT_LOGGERS", "RepeatFilter", "install"]

#: The loggers of aiokafka's retry loops (a filter applies to its own logger only).
KAFKA_CLIENT_LOGGERS = (
    "aiokafka",  # aiokafka/client.py logs here: connect and metadata retries
    "aiokafka.conn",
    "aiokafka.consumer.fetcher",
    "aiokafka.consumer.group_coordinator",
    "aiokafka.producer.sender",
)


class RepeatFilter(logging.Filter):
    """Pass one record per (logger, message template, level) every ``every`` seconds."""

    def __init__(self, every: float = 5.0, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self.every = every
        self.clock = clock
        #: kind -> (when last let through, repeats dropped since)
        self._seen: dict[tuple[str, str, int], tuple[float, int]] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        kind = (record.name, str(record.msg), record.levelno)
        now = self.clock()
        seen = self._seen.get(kind)
        if seen is not None and now - seen[0] < self.every:
            self._seen[kind] = (seen[0], seen[1] + 1)
            return False
        dropped = seen[1] if seen is not None else 0
        self._seen[kind] = (now, 0)
        if dropped:
            record.msg = f"{record.msg} [{dropped} more like this in the last {self.every:g}+ s]"
        return True


def install(every: float = 5.0) -> RepeatFilter:
    """Put one :class:`RepeatFilter` on each of :data:`KAFKA_CLIENT_LOGGERS` (idempotent)."""
    for name in KAFKA_CLIENT_LOGGERS:
        logger = logging.getLogger(name)
        for existing in logger.filters:
            if isinstance(existing, RepeatFilter):
                return existing
    shared = RepeatFilter(every)
    for name in KAFKA_CLIENT_LOGGERS:
        logging.getLogger(name).addFilter(shared)
    return shared
