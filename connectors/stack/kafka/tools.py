"""Run Kafka's own command-line tools from the stack's jars.

The replay feature (and the tests) drive ``kafka-console-producer``,
``kafka-consumer-groups`` and friends by main class, with the same jars and
Java as the broker, so there is no second Kafka install to keep in step.
"""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from pathlib import Path

from ..errors import StackError
from ..paths import StackPaths
from .broker import KafkaService

__all__ = ["CONSOLE_CONSUMER", "CONSOLE_PRODUCER", "CONSUMER_GROUPS", "run_kafka_tool"]

CONSOLE_PRODUCER = "org.apache.kafka.tools.ConsoleProducer"
CONSOLE_CONSUMER = "org.apache.kafka.tools.consumer.ConsoleConsumer"
CONSUMER_GROUPS = "org.apache.kafka.tools.consumer.group.ConsumerGroupCommand"


def run_kafka_tool(
    main_class: str,
    args: Sequence[str],
    input: bytes | None = None,  # noqa: A002 - mirrors subprocess.run
    timeout: float = 120.0,
    *,
    settings: object | None = None,
    cache_dir: Path | None = None,
    check: bool = False,
) -> subprocess.CompletedProcess[bytes]:
    """Run ``main_class`` (e.g. ``CONSOLE_PRODUCER``) with ``args``; output captured.

    Fetches the jars first if they are not cached. ``--bootstrap-server`` is
    not added for you: pass ``settings.kafka_bootstrap`` in ``args``. With
    ``check=True`` a non-zero exit raises StackError carrying stderr's last line.
    """
    if settings is None:
        from streams.settings import get_settings

        settings = get_settings()
    paths = StackPaths.for_data_dir(settings.data_dir, cache_dir)
    paths.ensure()
    argv = KafkaService(settings, paths).tool_argv(main_class, list(args))
    short = main_class.rsplit(".", 1)[-1]
    try:
        proc = subprocess.run(
            argv,
            input=input,
            capture_output=True,
            timeout=timeout,
            stdin=None if input is not None else subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired:
        raise StackError(
            "kafka",
            f"{short} did not finish within {timeout:.0f}s",
            fix="check that the broker is up ('stack status')",
        ) from None
    if check and proc.returncode != 0:
        last = (proc.stderr.decode(errors="replace").strip().splitlines() or [""])[-1]
        raise StackError("kafka", f"{short} exited with {proc.returncode}: {last[:200]}")
    return proc
