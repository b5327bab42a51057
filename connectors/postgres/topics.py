"""The sink's topics: the four output topics it reads, and the dead-letter topic it writes.

The sink creates any that are missing, with the layout ``streams.topics``
declares (same partitions, tallies compacted), so it can start before the
first worker has; creating an existing topic is a no-op.
"""

from __future__ import annotations

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError

from streams.settings import Settings
from streams.topics import topic_specs

from .errors import KafkaUnavailable

__all__ = ["DLQ", "OUTPUTS", "ensure_topics", "output_topics"]

#: The short names of the topics the sink consumes, in the order it reports them.
OUTPUTS: tuple[str, ...] = ("ballots", "tallies", "rejections", "audit")
DLQ = "sink-dlq"
_TOPIC_ALREADY_EXISTS = 36


def output_topics(settings: Settings) -> dict[str, str]:
    """Short kind -> full topic name."""
    return {kind: settings.topic(kind) for kind in OUTPUTS}


async def ensure_topics(settings: Settings, *, timeout: float = 30.0) -> None:
    """Create missing output topics and the DLQ topic; KafkaUnavailable when unreachable."""
    specs = topic_specs(settings)
    wanted: dict[str, NewTopic] = {}
    for kind in OUTPUTS:
        name, partitions, compacted = specs[kind]
        configs = {"cleanup.policy": "compact"} if compacted else {}
        wanted[name] = NewTopic(
            name, partitions, settings.replication_factor, topic_configs=configs
        )
    dlq = settings.topic(DLQ)
    wanted[dlq] = NewTopic(dlq, 1, settings.replication_factor)
    admin = AIOKafkaAdminClient(
        bootstrap_servers=settings.kafka_bootstrap, request_timeout_ms=int(timeout * 1000),
        client_id="ringtally-sink-admin",
    )
    try:
        await admin.start()
        existing = set(await admin.list_topics())
        missing = [t for name, t in wanted.items() if name not in existing]
        if missing:
            resp = await admin.create_topics(missing, timeout_ms=int(timeout * 1000))
            for name, code, *rest in resp.topic_errors:
                if code not in (0, _TOPIC_ALREADY_EXISTS):
                    raise KafkaUnavailable(
                        f"could not create topic {name}: error {code} {rest[0] if rest else ''}"
                    )
    except KafkaError as exc:
        raise KafkaUnavailable(
            f"kafka at {settings.kafka_bootstrap} is unavailable ({type(exc).__name__}: {exc})",
            fix="start it ('ringtally stack up') or set RINGTALLY_KAFKA_BOOTSTRAP",
        ) from None
    finally:
        await admin.close()
