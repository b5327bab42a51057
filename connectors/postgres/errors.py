"""The sink's errors: each says what went wrong in one line, and the fix where known.

All are :class:`streams.errors.RingtallyError` subclasses, so the ``ringtally``
CLI prints them as one line with a non-zero exit code, never a traceback.
"""

from __future__ import annotations

from streams.errors import RingtallyError, ServiceUnavailable

__all__ = [
    "AuditChainBroken",
    "KafkaUnavailable",
    "MigrationError",
    "MigrationMismatch",
    "PostgresUnavailable",
    "RedisUnavailable",
    "SchemaNotReady",
]


class PostgresUnavailable(ServiceUnavailable):
    """Postgres did not answer (refused, timed out, shutting down)."""


class KafkaUnavailable(ServiceUnavailable):
    """The Kafka bootstrap servers did not answer."""


class RedisUnavailable(ServiceUnavailable):
    """Redis did not answer."""


class MigrationError(RingtallyError):
    """A migration file or the migrations table is not what the runner expects."""


class MigrationMismatch(MigrationError):
    """An applied migration's file changed (or vanished) since it was applied."""


class SchemaNotReady(RingtallyError):
    """The schema lacks migrations the code needs (the sink never creates tables itself)."""


class AuditChainBroken(RingtallyError):
    """``audit verify`` found a broken link (exit code 1; the message names it)."""
