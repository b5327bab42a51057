"""The sink's errors: each says what went wrong in one line, and the fix where known.

The services being down (``KafkaUnavailable``, ``PostgresUnavailable``,
``RedisUnavailable``) are :mod:`streams.errors`, shared with the read model.
All are :class:`streams.errors.RingtallyError` subclasses, so the ``ringtally``
CLI prints them as one line with a non-zero exit code, never a traceback.
"""

from __future__ import annotations

from streams.errors import RingtallyError

__all__ = [
    "AuditChainBroken",
    "MigrationError",
    "MigrationMismatch",
    "SchemaNotReady",
    "SinkGap",
]


class MigrationError(RingtallyError):
    """A migration file or the migrations table is not what the runner expects."""


class MigrationMismatch(MigrationError):
    """An applied migration's file changed (or vanished) since it was applied."""


class SchemaNotReady(RingtallyError):
    """The schema lacks migrations the code needs (the sink never creates tables itself)."""


class AuditChainBroken(RingtallyError):
    """``audit verify`` found a broken link (exit code 1; the message names it)."""


class SinkGap(RingtallyError):
    """Records the sink never stored are gone from the log (retention, deleteRecords):
    it stops rather than skip them; ``ringtally sink --accept-gap`` accepts the loss."""

    exit_code = 4
