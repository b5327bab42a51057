"""The sink's topics: the five output topics it reads, and the dead-letter topic it writes.

The sink creates any that are missing, with the layout ``streams.topics``
declares (same partitions, tallies compacted), so it can start before the
first worker has; creating an existing topic is a no-op.
"""

from __future__ import annotations

import asyncio

from streams.errors import KafkaUnavailable, ServiceUnavailable
from streams.settings import Settings
from streams.topics import ensure_topics as create_topics

__all__ = ["DLQ", "OUTPUTS", "ensure_topics", "output_topics"]

#: The short names of the topics the sink consumes, in the order it reports them.
OUTPUTS: tuple[str, ...] = ("ballots", "tallies", "rejections", "audit", "heads")
DLQ = "sink-dlq"


def output_topics(settings: Settings) -> dict[str, str]:
    """Short kind -> full topic name."""
    return {kind: settings.topic(kind) for kind in OUTPUTS}


async def ensure_topics(settings: Settings, *, timeout: float = 30.0) -> None:
    """Create missing output topics and the DLQ topic; KafkaUnavailable when unreachable.

    The layout and the creation live in :func:`streams.topics.ensure_topics`;
    this runs it off the event loop and names the failure as the sink's.
    """
    try:
        await asyncio.to_thread(create_topics, settings, [*OUTPUTS, DLQ], timeout=timeout)
    except ServiceUnavailable as exc:
        raise KafkaUnavailable(str(exc), fix=exc.fix) from None
