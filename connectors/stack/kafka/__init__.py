"""Kafka for the local stack: jars from Maven Central, a KRaft broker, its tools."""

from __future__ import annotations

from .broker import KafkaService, parse_bootstrap
from .jars import ensure_libs, kafka_version, libs_dir, libs_ready
from .tools import CONSOLE_CONSUMER, CONSOLE_PRODUCER, CONSUMER_GROUPS, run_kafka_tool

__all__ = [
    "CONSOLE_CONSUMER",
    "CONSOLE_PRODUCER",
    "CONSUMER_GROUPS",
    "KafkaService",
    "ensure_libs",
    "kafka_version",
    "libs_dir",
    "libs_ready",
    "parse_bootstrap",
    "run_kafka_tool",
]
