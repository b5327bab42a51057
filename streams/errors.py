"""The root of ringtally's own errors.

Every error a user can cause or fix (bad argument, unreachable service,
missing binary) is a :class:`RingtallyError`; the CLI prints it as one line
and exits with its ``exit_code``. Anything else reaching the CLI is a bug and
keeps its traceback.
"""

from __future__ import annotations

__all__ = [
    "KafkaUnavailable",
    "PostgresUnavailable",
    "RedisUnavailable",
    "RingtallyError",
    "ServiceUnavailable",
    "UsageProblem",
]


class RingtallyError(Exception):
    """An error with a one-line explanation and, where known, the fix."""

    exit_code = 1

    def __init__(self, message: str, *, fix: str | None = None) -> None:
        super().__init__(message)
        self.fix = fix

    def one_line(self) -> str:
        text = str(self).replace("\n", " ")
        return f"{text}; {self.fix}" if self.fix else text


class UsageProblem(RingtallyError):
    """The command line asked for something impossible (exit code 2, like click)."""

    exit_code = 2


class ServiceUnavailable(RingtallyError):
    """Kafka, Postgres or Redis did not answer (exit code 2: nothing was done)."""

    exit_code = 2


class KafkaUnavailable(ServiceUnavailable):
    """The Kafka bootstrap servers did not answer."""


class PostgresUnavailable(ServiceUnavailable):
    """Postgres did not answer (refused, timed out, shutting down)."""


class RedisUnavailable(ServiceUnavailable):
    """Redis did not answer."""
