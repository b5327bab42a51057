"""The yardstick for bench_pipeline: a Faust agent that forwards each vote unchanged.

Same broker, topic, partitions and Faust settings as the real worker, and no
work per message: what Faust alone costs on this machine.
Run as ``python -m bench.passthrough_app worker``.
"""

from __future__ import annotations

import faust

from streams.settings import get_settings

settings = get_settings()
app = faust.App(
    f"{settings.group_id}-passthrough",
    broker=[f"kafka://{h}" for h in settings.kafka_bootstrap.split(",")],
    store="memory://",
    # Under the data dir like the real worker's (Faust's default is the cwd).
    datadir=str(settings.data_dir / "workers" / f"{settings.group_id}-passthrough"),
    key_serializer="raw",
    value_serializer="raw",
    topic_partitions=settings.partitions,
    consumer_auto_offset_reset="earliest",
    producer_acks=-1,
    web_host=settings.web_host,
    web_port=settings.web_port,
    autodiscover=False,
    origin="bench",
)
source = app.topic(settings.topic("votes"), key_type=bytes, value_type=bytes)
sink = app.topic(
    settings.topic("passthrough"),
    key_type=bytes,
    value_type=bytes,
    partitions=settings.partitions,
    internal=True,
)


@app.agent(source)
async def passthrough(stream: faust.StreamT) -> None:
    async for event in stream.events():
        await sink.send(key=event.key, value=event.value)


@app.page("/health")
async def health(web: faust.web.Web, request: faust.web.Request) -> faust.web.Response:
    # The same readiness as the worker's (streams/app.py), so the benchmark waits alike.
    ready = bool(app.producer.started) and not app.rebalancing and not app.in_recovery
    votes = settings.topic("votes")
    return web.json(
        {
            "status": "ok" if ready else "starting",
            "votes_partitions": sorted(
                tp.partition for tp in app.consumer.assignment() if tp.topic == votes
            ),
        },
        status=200 if ready else 503,
    )


if __name__ == "__main__":
    app.main()
