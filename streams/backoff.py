"""Capped exponential backoff that logs once per state change, not once per attempt.

An outage of a minute must not print sixty lines: the first failure logs
"<what> unavailable (<error>); ... retrying", every later failure is silent
(debug only), and the first success after it logs "<what> back after 12.3 s".
"""

from __future__ import annotations

import logging
import random
import time

__all__ = ["Outage"]


class Outage:
    """The up/down state of one dependency, and how long to wait before the next try."""

    def __init__(
        self,
        what: str,
        log: logging.Logger,
        *,
        base: float = 0.1,
        cap: float = 5.0,
        doing: str = "pausing consumption",
    ) -> None:
        self.what, self.log, self.base, self.cap, self.doing = what, log, base, cap, doing
        self.down_since: float | None = None
        self.attempts = 0

    @property
    def down(self) -> bool:
        return self.down_since is not None

    def failed(self, exc: BaseException) -> float:
        """Record a failed attempt; returns the seconds to wait before the next one."""
        self.attempts += 1
        if self.down_since is None:
            self.down_since = time.monotonic()
            self.log.warning(
                "%s unavailable (%s: %s); %s, retrying with backoff up to %.0f s",
                self.what,
                type(exc).__name__,
                str(exc).replace("\n", " ")[:200],
                self.doing,
                self.cap,
            )
        else:
            self.log.debug("%s still unavailable (%s)", self.what, type(exc).__name__)
        delay = min(self.cap, self.base * 2 ** min(self.attempts - 1, 20))
        return delay * random.uniform(0.8, 1.0)

    def stopped(self) -> None:
        """The dependent task gave up (an error no retry fixes): down from now on, no log
        line here (the caller says why)."""
        if self.down_since is None:
            self.down_since = time.monotonic()

    def ok(self) -> float | None:
        """Record a success; returns the outage's length when one just ended."""
        self.attempts = 0
        if self.down_since is None:
            return None
        seconds = time.monotonic() - self.down_since
        self.down_since = None
        self.log.warning("%s back after %.1f s", self.what, seconds)
        return seconds
