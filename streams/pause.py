"""A worker paused for longer than its group membership is sure stops before it writes again.

Issue 16, zombie workers: a worker stopped (SIGSTOP, a frozen VM) longer than
its session timeout has been evicted from the group, and its partitions given
to another worker; when it resumes, its event loop carries on where it
stopped (the verify applier applies the batch it had prepared, both agents
hand their changelog writes and outputs to the Kafka client) before any
heartbeat tells it so. Its stale changelog records then land after its
successor's and compaction keeps them (docs/reliability.md, "Zombie workers").

:class:`PauseWatchdog` is a thread, not a task: a paused event loop cannot
watch itself. It wakes every ``tick`` seconds; when its own sleep lasted
longer than ``limit`` (the process was stopped, or starved that long), the
worker's membership is in doubt, and it calls ``on_pause``, which exits the
process at once (:data:`EXIT_PAUSED`): the prepared batch is never applied,
and what the Kafka client still buffers dies with the process. The
supervisor restarts the worker; it rejoins and recovers (its RocksDB is never
ahead of the changelog: :mod:`streams.tables`).

It is not the fence: the ownership lease (:mod:`streams.lease`) holds every write
made in the milliseconds the event loop may run after the process resumes and
before this thread gets the GIL. This stops such a worker at once instead of
after its writes have waited out the lease.

The clock is CLOCK_BOOTTIME where the platform has it (it also counts a
suspended machine), else the monotonic clock.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable

__all__ = ["EXIT_PAUSED", "PauseWatchdog", "boottime", "exit_fenced", "pause_limit"]

log = logging.getLogger(__name__)

#: Exit status of a worker that found it had been paused (BSD's EX_TEMPFAIL: run it again).
EXIT_PAUSED = 75


def boottime() -> float:
    """CLOCK_BOOTTIME (counts a suspended machine too), else the monotonic clock."""
    clock_id = getattr(time, "CLOCK_BOOTTIME", None)
    return time.clock_gettime(clock_id) if clock_id is not None else time.monotonic()


def pause_limit(session_timeout: float, heartbeat_interval: float) -> float:
    """The longest pause after which the group surely still counts this worker a member.

    The coordinator evicts a member ``session_timeout`` after its last heartbeat,
    which may have been up to ``heartbeat_interval`` before the pause began; one
    second more for this thread's own tick and scheduling.
    """
    return max(0.5, session_timeout - heartbeat_interval - 1.0)


def exit_fenced(why: BaseException) -> None:
    """Stop a worker the changelog fence caught writing after it lost its partitions
    (streams.fence): like a pause, exit 75 and write nothing more."""
    log.critical("%s; stopping before it writes anything more (exit %d)", why, EXIT_PAUSED)
    logging.shutdown()
    os._exit(EXIT_PAUSED)


def _exit_paused(paused: float) -> None:
    log.critical(
        "this worker was paused for %.1f s, long enough to lose its partitions; stopping "
        "before it writes anything more (exit %d)",
        paused,
        EXIT_PAUSED,
    )
    logging.shutdown()
    os._exit(EXIT_PAUSED)


class PauseWatchdog:
    """Calls ``on_pause(seconds)`` when the process was paused for longer than ``limit``."""

    def __init__(
        self,
        limit: float,
        on_pause: Callable[[float], None] = _exit_paused,
        *,
        tick: float = 0.2,
        clock: Callable[[], float] = boottime,
    ) -> None:
        if not 0 < tick < limit:
            raise ValueError(f"tick must be above 0 and below the limit {limit}, got {tick}")
        self.limit = limit
        self.tick = tick
        self.on_pause = on_pause
        self.clock = clock
        self._last = clock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def observe(self) -> float | None:
        """One tick: how long the process was paused since the last, if over the limit."""
        now = self.clock()
        gap, self._last = now - self._last, now
        return gap if gap > self.limit else None

    def start(self) -> PauseWatchdog:
        self._last = self.clock()
        self._thread = threading.Thread(target=self._run, name="pause-watchdog", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        while not self._stop.wait(self.tick):
            paused = self.observe()
            if paused is not None:
                self.on_pause(paused)
