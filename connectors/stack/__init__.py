"""The local service stack: real Kafka, PostgreSQL and Redis processes on loopback.

For development and tests on machines without a container engine::

    from connectors.stack import LocalStack
    stack = LocalStack()            # settings from streams.settings.get_settings()
    stack.up()                      # idempotent; raises StackError with a one-line reason
    stack.status()                  # [PieceStatus(piece, port, pid, state, detail, log_file)]
    stack.down()                    # stops only what it started

CLI: ``ringtally stack up|down|status|logs``.
"""

from __future__ import annotations

from .errors import StackError
from .kafka import (
    CONSOLE_CONSUMER,
    CONSOLE_PRODUCER,
    CONSUMER_GROUPS,
    kafka_version,
    run_kafka_tool,
)
from .manager import LocalStack
from .paths import ALL_PIECES, PIECES, SECURE, StackPaths
from .service import Health, PieceStatus, StartResult

__all__ = [
    "CONSOLE_CONSUMER",
    "CONSOLE_PRODUCER",
    "CONSUMER_GROUPS",
    "ALL_PIECES",
    "PIECES",
    "SECURE",
    "Health",
    "LocalStack",
    "PieceStatus",
    "StackError",
    "StackPaths",
    "StartResult",
    "kafka_version",
    "run_kafka_tool",
]
