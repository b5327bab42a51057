"""The Redis read model: latest tally per submission, compare-and-set, pub/sub, rebuild."""

from __future__ import annotations

import asyncio
import json

import pytest
from redis.asyncio import Redis

from connectors.postgres.topics import ensure_topics
from connectors.readmodel.store import ReadModelStore
from connectors.readmodel.task import ReadModel
from models import Decision
from tests.fixtures.sink_records import make_tally, produce, wait_until

pytestmark = pytest.mark.integration


@pytest.fixture
async def redis(settings):  # noqa: ANN001, ANN201
    await ensure_topics(settings)
    r = Redis.from_url(settings.redis_url, decode_responses=True)
    yield r
    keys = [k async for k in r.scan_iter(match=f"{settings.topic_prefix}:*")]
    if keys:
        await r.delete(*keys)
    await r.aclose()


async def tallies(settings, *items) -> None:  # noqa: ANN001
    await produce(
        settings,
        "tallies",
        [t.to_json() for t in items],
        keys=[t.submission_id.encode() for t in items],
    )


async def test_latest_version_per_submission(settings, redis) -> None:
    await tallies(
        settings,
        *(make_tally("s1", v, approve=v) for v in (1, 2, 5, 3)),
        make_tally("s2", 3, reject=3, decision=Decision.REJECTED),
    )
    await ReadModel(settings, once=True).run()
    store = ReadModelStore(redis, settings.topic_prefix)
    s1 = await store.get("s1")
    assert s1 is not None
    assert (s1["version"], s1["counts"]["approve"], s1["total"]) == (5, 5, 5)
    assert s1["decision"] == "PENDING" and s1["rules_version"].startswith("ringtally-rules-v1")
    s2 = await store.get("s2")
    assert s2 is not None and (s2["version"], s2["decision"]) == (3, "REJECTED")
    assert await store.ready()
    # a later, lower version never overwrites
    await tallies(settings, make_tally("s1", 4, approve=4))
    await ReadModel(settings, once=True).run()
    s1 = await store.get("s1")
    assert s1 is not None and s1["version"] == 5


async def test_pubsub_announces_each_change(settings, redis) -> None:
    store = ReadModelStore(redis, settings.topic_prefix)
    stop = asyncio.Event()
    task = asyncio.create_task(ReadModel(settings, stop=stop).run())
    pubsub = redis.pubsub()
    try:
        await wait_until(store.ready, 30, what="the read model's marker")
        await pubsub.subscribe(store.channel)
        await pubsub.get_message(timeout=1)  # the subscribe confirmation
        await tallies(settings, make_tally("s9", 2, flag=2))
        msg = await pubsub.get_message(ignore_subscribe_messages=True, timeout=20)
        assert msg is not None, "no announcement"
        data = json.loads(msg["data"])
        assert data == {
            "type": "tally",
            "submission_id": "s9",
            "counts": {"approve": 0, "reject": 0, "flag": 2, "escalate": 0},
            "total": 2,
            "decision": "PENDING",
            "version": 2,
            "rules_version": "ringtally-rules-v1;min_votes=3;flag_threshold=3",
        }
        await tallies(settings, make_tally("s9", 1, flag=1))  # stale: no announcement
        await tallies(settings, make_tally("s9", 3, flag=3, decision=Decision.ESCALATED))
        msg = await pubsub.get_message(ignore_subscribe_messages=True, timeout=20)
        assert msg is not None and json.loads(msg["data"])["version"] == 3
    finally:
        stop.set()
        await task
        await pubsub.aclose()


async def test_a_flushed_read_model_comes_back_from_the_tallies_topic(settings, redis) -> None:
    await tallies(
        settings, *(make_tally(f"s{i}", v, approve=v) for i in range(20) for v in (1, 3, 2))
    )
    store = ReadModelStore(redis, settings.topic_prefix)
    stop = asyncio.Event()
    rm = ReadModel(settings, stop=stop, marker_check=0.2)
    task = asyncio.create_task(rm.run())
    try:
        await wait_until(store.ready, 30, what="the read model's marker")
        await wait_until(lambda: _version(store, "s19", 3), 30, what="s19 at v3")
        # Redis loses everything of ours (what FLUSHALL or an empty restart does to it)
        keys = [k async for k in redis.scan_iter(match=f"{settings.topic_prefix}:*")]
        await redis.delete(*keys)
        assert not await store.ready()
        await wait_until(store.ready, 30, what="the rebuilt marker")
        for i in range(20):
            got = await store.get(f"s{i}")
            assert got is not None and got["version"] == 3, (i, got)
        assert rm.rebuilds >= 2  # the cold start and the flush
        offsets = await store.offsets()
        assert sum(offsets.values()) == 60
        # live updates continue after the rebuild
        await tallies(settings, make_tally("s0", 9, approve=9))
        await wait_until(lambda: _version(store, "s0", 9), 30, what="s0 at v9")
    finally:
        stop.set()
        await task


async def _version(store: ReadModelStore, sub: str, version: int) -> bool:
    got = await store.get(sub)
    return got is not None and got["version"] == version


async def test_ringtally_sink_runs_the_read_model_too(settings, redis) -> None:
    """The CLI's default: Postgres and Redis end up with the same latest tallies."""
    import subprocess
    import sys
    from pathlib import Path

    import asyncpg

    from connectors.postgres.migrate import migrate
    from tests.fixtures.sink_records import drop_schema, settings_env

    await migrate(settings)
    try:
        await tallies(
            settings, *(make_tally(f"s{i}", v, approve=v) for i in range(10) for v in (2, 7, 5))
        )
        out = subprocess.run(
            [sys.executable, "-c", "from connectors.cli import main; main()", "sink", "--once"],
            cwd=Path(__file__).resolve().parents[1],
            env=settings_env(settings),
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert out.returncode == 0, out.stderr[-3000:]
        conn = await asyncpg.connect(settings.postgres_dsn)
        try:
            rows = await conn.fetch(
                f'SELECT submission_id, version FROM "{settings.postgres_schema}".tallies'
            )
        finally:
            await conn.close()
        store = ReadModelStore(redis, settings.topic_prefix)
        assert len(rows) == 10
        for r in rows:
            got = await store.get(r["submission_id"])
            assert got is not None and got["version"] == r["version"] == 7
    finally:
        await drop_schema(settings)
