"""The HTTP gateway against the real stack: a worker, the sink with its Redis read model,
and ``ringtally gateway`` as a process.

Each test registers its own ring and submissions (unique ids). What each check
catches: a gateway that published malformed bodies (the votes topic's end
offsets would move), that used another partitioner (the record's partition),
that decided outcomes itself or lost them (``?wait`` answers come from the
workers' ballots and rejections), that counted a re-post twice (Postgres rows),
whose reads disagreed with Postgres, whose SSE lagged, or that logged client
addresses or user agents.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import re
import socket
import struct
import time
import urllib.request
import uuid
from collections import Counter
from pathlib import Path

import asyncpg
import pytest
import redis
from confluent_kafka import Consumer, TopicPartition

import ringcrypto
from connectors.postgres.db import quote_ident
from connectors.sdk import Voter
from connectors.sdk.gateway import GatewayError, GatewayVoter
from streams.partitioner import partition_for_key
from tests.fixtures.gateway import GatewayProcess, gateway_stack, http_json  # noqa: F401
from tests.fixtures.ring_setup import RingSetup

pytestmark = pytest.mark.integration

UA = f"ringtally-test-agent/{uuid.uuid4().hex}"


@pytest.fixture(scope="module")
def stackup(gateway_stack):  # noqa: F811 - the imported fixture
    return gateway_stack


class Setup(RingSetup):
    """The shared ring setup (tests/fixtures/ring_setup.py), in epoch 9."""

    def __init__(self, settings, members: int = 3, votes_per_epoch: int = 4) -> None:
        super().__init__(settings, members, votes_per_epoch, epoch=9)


@pytest.fixture
def setup(stackup) -> Setup:
    return Setup(stackup[0])


def _post(gateway: GatewayProcess, body: bytes, query: str = "") -> tuple[int, dict]:
    request = urllib.request.Request(
        f"{gateway.url}/api/v1/votes{query}",
        data=body,
        method="POST",
        headers={"Content-Type": "application/json", "User-Agent": UA},
    )
    try:
        with urllib.request.urlopen(request, timeout=90) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")


async def _pg(settings, query: str, *args):
    conn = await asyncpg.connect(
        settings.postgres_dsn,
        server_settings={"search_path": quote_ident(settings.postgres_schema)},
    )
    try:
        return await conn.fetch(query, *args)
    except asyncpg.UndefinedTableError:
        return []
    finally:
        await conn.close()


def pg(settings, query: str, *args):
    return asyncio.run(_pg(settings, query, *args))


def _poll(check, timeout: float = 60.0, what: str = ""):
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


def test_a_valid_vote_is_counted_and_lands_on_its_murmur2_partition(stackup, setup) -> None:
    settings, gateway = stackup
    vote = setup.vote(setup.keys[0], setup.sub, slot=1)
    status, body = _post(gateway, vote.to_json(), "?wait=30")
    assert status == 200, body
    assert body == {
        "vote_id": str(vote.vote_id),
        "status": "counted",
        "submission_id": setup.sub,
        "vote_type": "approve",
        "supersedes": None,
    }
    # The record: keyed by the token id, on murmur2's partition, the vote's canonical bytes.
    topic = settings.topic("votes")
    consumer = Consumer(
        {"bootstrap.servers": settings.kafka_bootstrap, "group.id": f"t-{uuid.uuid4().hex[:8]}"}
    )
    try:
        parts = sorted(consumer.list_topics(topic, timeout=10).topics[topic].partitions)
        consumer.assign([TopicPartition(topic, p, 0) for p in parts])
        found = []
        deadline = time.monotonic() + 30
        while not found and time.monotonic() < deadline:
            for msg in consumer.consume(500, timeout=0.5):
                if msg.error() is None and msg.key() == vote.token_id.encode():
                    found.append(msg)
    finally:
        consumer.close()
    [record] = found
    assert record.partition() == partition_for_key(vote.token_id.encode(), len(parts))
    assert record.value() == vote.to_json()


def test_without_wait_a_vote_is_accepted_202_and_counted(stackup, setup) -> None:
    settings, gateway = stackup
    vote = setup.vote(setup.keys[2], setup.sub, slot=0, vote_type="reject")
    status, body = _post(gateway, vote.to_json())
    assert (status, body) == (202, {"vote_id": str(vote.vote_id), "status": "accepted"})
    rows = _poll(
        lambda: pg(settings, "SELECT vote_type FROM ballots WHERE vote_id = $1", vote.vote_id),
        what="the ballot in Postgres",
    )
    assert [r["vote_type"] for r in rows] == ["reject"]


def test_malformed_bodies_get_422_field_errors_and_nothing_is_published(stackup, setup) -> None:
    _, gateway = stackup
    vote = json.loads(setup.vote(setup.keys[0], setup.sub, slot=0).to_json())
    before = setup.votes_published()
    missing = {k: v for k, v in vote.items() if k != "signature"}
    status, body = _post(gateway, json.dumps(missing).encode(), "?wait=5")
    assert status == 422
    assert [e["loc"] for e in body["detail"]] == [["signature"]]
    assert "input" not in body["detail"][0]  # the body is never echoed back
    status, body = _post(gateway, json.dumps({**vote, "slot": "1"}).encode())
    assert status == 422 and [e["loc"] for e in body["detail"]] == [["slot"]]
    status, body = _post(gateway, json.dumps({**vote, "extra": 1}).encode())
    assert status == 422 and [e["loc"] for e in body["detail"]] == [["extra"]]
    status, body = _post(gateway, b"{not json")
    assert status == 422 and body["detail"][0]["type"] == "json_invalid"
    status, body = _post(gateway, b"x" * 300_000)
    assert status == 413
    status, body = _post(gateway, json.dumps(vote).encode(), "?wait=9999")
    assert status == 422
    # the gateway is still up and nothing reached the votes topic
    assert http_json("GET", gateway.url + "/health")[0] == 200
    time.sleep(1.0)  # a stray publish would be acknowledged by now
    assert setup.votes_published() == before


def test_a_forged_vote_is_rejected_by_the_workers_with_its_reason(stackup, setup) -> None:
    """The gateway does not verify signatures: the workers do, and ?wait reports it."""
    _, gateway = stackup
    good = json.loads(setup.vote(setup.keys[1], setup.sub, slot=3, vote_type="approve").to_json())
    forged = {**good, "vote_type": "reject"}  # the signature covers the vote type
    status, body = _post(gateway, json.dumps(forged).encode(), "?wait=30")
    assert status == 200, body
    assert body["status"] == "rejected" and body["reason"] == "bad_signature", body
    assert body["vote_id"] == good["vote_id"]


def test_a_double_post_is_one_vote_and_a_second_vote_is_a_duplicate(stackup, setup) -> None:
    settings, gateway = stackup
    vote = setup.vote(setup.keys[0], setup.sub, slot=2, vote_type="flag")
    first = _post(gateway, vote.to_json(), "?wait=30")
    again = _post(gateway, vote.to_json(), "?wait=30")
    assert first[0] == again[0] == 200
    assert first[1] == again[1] and first[1]["status"] == "counted"
    # the same reviewer, another slot, the same submission: one key image per submission
    second = setup.vote(setup.keys[0], setup.sub, slot=3, vote_type="approve")
    status, body = _post(gateway, second.to_json(), "?wait=30")
    assert (status, body["status"], body["reason"]) == (200, "rejected", "duplicate_key_image")
    # Postgres: one ballot, and the tally counts it once
    _poll(
        lambda: pg(
            settings,
            "SELECT 1 FROM rejections WHERE vote_id = $1 AND reason = $2",
            second.vote_id,
            "duplicate_key_image",
        ),
        what="the duplicate's rejection in Postgres",
    )
    rows = pg(settings, "SELECT vote_id FROM ballots WHERE submission_id = $1", setup.sub)
    assert [r["vote_id"] for r in rows] == [vote.vote_id]
    [tally] = _poll(
        lambda: pg(settings, "SELECT flag, total FROM tallies WHERE submission_id = $1", setup.sub),
        what="the tally in Postgres",
    )
    assert (tally["flag"], tally["total"]) == (1, 1)


def test_read_endpoints_agree_with_postgres(stackup, setup) -> None:
    settings, gateway = stackup
    subs = [setup.sub, setup.submission()]
    plan = [
        (0, subs[0], "approve"),
        (1, subs[0], "approve"),
        (2, subs[0], "reject"),
        (0, subs[1], "escalate"),
    ]
    for i, (k, sub, vote_type) in enumerate(plan):
        vote = setup.vote(setup.keys[k], sub, slot=i % 4, vote_type=vote_type)
        assert _post(gateway, vote.to_json(), "?wait=30")[1]["status"] == "counted"
    forged = json.loads(setup.vote(setup.keys[2], subs[1], slot=3).to_json())
    forged["signature"] = base64.b64encode(
        bytes(len(base64.b64decode(forged["signature"])))
    ).decode()
    refused = _post(gateway, json.dumps(forged).encode(), "?wait=30")[1]
    assert refused["status"] == "rejected", refused
    reason = refused["reason"]  # a zero signature does not even decode

    def tallies_in_pg():
        rows = pg(settings, "SELECT * FROM tallies WHERE submission_id = ANY($1::text[])", subs)
        return rows if sum(r["total"] for r in rows) == 4 else None

    by_sub = {r["submission_id"]: r for r in _poll(tallies_in_pg, what="tallies in Postgres")}
    _poll(
        lambda: pg(
            settings, "SELECT 1 FROM rejections WHERE vote_id = $1", uuid.UUID(forged["vote_id"])
        ),
        what="the forged vote's rejection in Postgres",
    )

    def agrees(api: dict, row) -> None:
        assert api["submission_id"] == row["submission_id"]
        assert api["counts"] == {k: row[k] for k in ("approve", "reject", "flag", "escalate")}
        assert (api["total"], api["decision"], api["version"]) == (
            row["total"],
            row["decision"],
            row["version"],
        )
        assert (api["genre"], api["epoch"]) == (setup.genre, setup.epoch)

    for sub in subs:  # Redis (once the read model has it), then Postgres when Redis lacks it
        status, api = _poll(
            lambda s=sub: (
                (r := http_json("GET", f"{gateway.url}/api/v1/tallies/{s}"))[0] == 200
                and r[1]["version"] == by_sub[s]["version"]
                and r
            ),
            what="the tally via the gateway",
        )
        assert api["source"] == "redis"
        agrees(api, by_sub[sub])
    r = redis.Redis.from_url(settings.redis_url)
    r.delete(f"{settings.topic_prefix}:tally:{subs[0]}")
    r.close()
    status, cold = http_json("GET", f"{gateway.url}/api/v1/tallies/{subs[0]}")
    assert status == 200 and cold["source"] == "postgres"
    agrees(cold, by_sub[subs[0]])

    status, listed = http_json("GET", f"{gateway.url}/api/v1/tallies?genre={setup.genre}")
    assert status == 200 and listed["next_offset"] is None
    assert sorted(t["submission_id"] for t in listed["items"]) == sorted(subs)
    for api in listed["items"]:
        agrees(api, by_sub[api["submission_id"]])
    decision = by_sub[subs[1]]["decision"]
    status, listed = http_json(
        "GET", f"{gateway.url}/api/v1/tallies?genre={setup.genre}&decision={decision}&limit=1"
    )
    assert [t["submission_id"] for t in listed["items"]] == [
        s for s in subs if by_sub[s]["decision"] == decision
    ][:1]

    status, sub = http_json("GET", f"{gateway.url}/api/v1/submissions/{subs[1]}")
    assert status == 200 and (sub["genre"], sub["epoch"]) == (setup.genre, setup.epoch)
    agrees(sub["tally"], by_sub[subs[1]])
    assert http_json("GET", f"{gateway.url}/api/v1/submissions/nope-{uuid.uuid4().hex}")[0] == 404

    status, ring = http_json("GET", f"{gateway.url}/api/v1/rings/{setup.ring_id}")
    assert status == 200 and ring["version_in_force"] == 1 and ring["genre"] == setup.genre
    assert ring["versions"][0]["public_keys"] == [k.public_key.hex() for k in setup.keys] or sorted(
        ring["versions"][0]["public_keys"]
    ) == sorted(k.public_key.hex() for k in setup.keys)

    status, rejections = http_json("GET", f"{gateway.url}/api/v1/rejections?reason={reason}")
    pg_rows = pg(
        settings,
        "SELECT id, vote_id FROM rejections WHERE reason = $1 ORDER BY id DESC LIMIT 100",
        reason,
    )
    assert [(x["id"], x["vote_id"]) for x in rejections["items"]] == [
        (row["id"], str(row["vote_id"])) for row in pg_rows
    ]
    assert forged["vote_id"] in {x["vote_id"] for x in rejections["items"]}
    assert http_json("GET", f"{gateway.url}/api/v1/rejections?reason=nonsense")[0] == 422

    status, stats = http_json("GET", f"{gateway.url}/api/v1/statistics")
    assert status == 200
    [group] = [g for g in stats["groups"] if g["genre"] == setup.genre]
    assert group["epoch"] == setup.epoch
    assert (group["votes"], group["ballots"]) == (5, 4)
    assert group["rejections"] == {reason: 1}
    decisions: dict[str, int] = {}
    for row in by_sub.values():
        decisions[row["decision"]] = decisions.get(row["decision"], 0) + 1
    assert group["decisions"] == decisions
    # nothing per reviewer: no key image, tag or vote id of ours appears in the statistics
    text = json.dumps(stats)
    images = pg(
        settings, "SELECT key_image FROM ballots WHERE submission_id = ANY($1::text[])", subs
    )
    assert images and not any(row["key_image"] in text for row in images)
    assert forged["token_id"] not in text and forged["vote_id"] not in text


def test_sse_delivers_a_tally_change_within_2_seconds(stackup, setup) -> None:
    settings, gateway = stackup
    from aiohttp import ClientSession, ClientTimeout

    vote = setup.vote(setup.keys[1], setup.sub, slot=0, vote_type="escalate")

    async def go() -> tuple[dict, str, float]:
        async with ClientSession(timeout=ClientTimeout(total=90)) as http:
            url = f"{gateway.url}/api/v1/tallies/stream?submission_id={setup.sub}"
            async with http.get(url) as response:
                assert response.status == 200
                assert response.headers["content-type"].startswith("text/event-stream")
                assert (await response.content.readline()).startswith(b": connected")
                loop = asyncio.get_running_loop()
                started = loop.time()
                status, body = await asyncio.to_thread(_post, gateway, vote.to_json(), "?wait=30")
                assert body["status"] == "counted", body
                decided = loop.time()
                event: dict[str, str] = {}
                while "data" not in event:
                    line = (await asyncio.wait_for(response.content.readline(), 30)).decode()
                    if line.startswith(("event:", "id:", "data:")):
                        name, _, value = line.partition(":")
                        event[name] = value.strip()
                return event, f"{decided - started:.2f}", loop.time() - decided

    event, decided_after, latency = asyncio.run(go())
    print(f"tally event {latency:.3f}s after the ballot (vote decided in {decided_after}s)")
    data = json.loads(event["data"])
    assert event["event"] == "tally" and event["id"] == str(data["version"])
    assert data["submission_id"] == setup.sub and data["counts"]["escalate"] == 1
    assert (data["genre"], data["epoch"]) == (setup.genre, setup.epoch)
    assert latency < 2.0, f"SSE event {latency:.2f}s after the ballot (decided in {decided_after}s)"

    # Resuming: Last-Event-ID at an older version gets the current tally at once.
    async def resume(last: str) -> str:
        async with ClientSession(timeout=ClientTimeout(total=30)) as http:
            url = f"{gateway.url}/api/v1/tallies/stream?submission_id={setup.sub}"
            async with http.get(url, headers={"Last-Event-ID": last}) as response:
                while True:
                    line = (await asyncio.wait_for(response.content.readline(), 10)).decode()
                    if line.startswith("id:"):
                        return line.split(":", 1)[1].strip()

    assert asyncio.run(resume(str(data["version"] - 1))) == str(data["version"])


def test_gateway_voter_signs_locally_and_refuses_an_unsigned_ring(stackup, setup) -> None:
    settings, gateway = stackup
    registrar = [bytes.fromhex(k) for k in settings.registrar_public_keys.split(",") if k] or None
    voter = GatewayVoter(gateway.url, Voter(setup.keys[2]), registrar_keys=registrar)
    outcome = voter.vote(setup.ring_id, submission_id=setup.sub, vote_type="flag", wait=30)
    assert outcome["status"] == "counted", outcome
    assert len(voter.voter.used_slots(setup.epoch)) == 1
    stranger = GatewayVoter(
        gateway.url,
        Voter(setup.keys[2]),
        registrar_keys=[ringcrypto.SecretKey.generate().public_key],
    )
    with pytest.raises(Exception, match="not signed by a trusted registrar key"):
        stranger.vote(setup.ring_id, submission_id=setup.sub, vote_type="flag")
    assert stranger.voter.used_slots(setup.epoch) == set()
    with pytest.raises(GatewayError, match="422"):
        voter.post(setup.vote(setup.keys[2], setup.sub, 0), wait=10_000)


def test_metrics_and_logs_name_routes_not_clients(stackup, setup) -> None:
    _, gateway = stackup
    vote = setup.vote(setup.keys[1], setup.sub, slot=2)
    assert _post(gateway, vote.to_json())[0] == 202
    assert http_json("GET", f"{gateway.url}/api/v1/tallies/{uuid.uuid4().hex}")[0] == 404
    assert _post(gateway, b"x" * 300_000)[0] == 413
    status, text = http_json("GET", gateway.url + "/metrics")
    assert status == 200
    assert re.search(
        r'ringtally_gateway_requests_total\{method="POST",route="/api/v1/votes",status="202"\} '
        r"[1-9]",
        text,
    ), text[:2000]
    assert 'route="/api/v1/tallies/{submission_id}",status="404"' in text
    assert 'route="/api/v1/votes",status="413"' in text  # refused before routing, still counted
    assert re.search(r"ringtally_gateway_votes_accepted_total [1-9]", text)
    assert 'ringtally_gateway_request_seconds_bucket{le="0.1",method="POST"' in text
    assert re.search(r'^ringtally_build_info\{.*version="[^"]+".*\} 1\.0$', text, re.M), text[:2000]
    with urllib.request.urlopen(gateway.url + "/metrics", timeout=10) as response:
        # the text format 0.0.4 is what it serves (prometheus-client's LATEST names 1.0.0)
        assert response.headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
    log = gateway.log_path.read_text()
    assert "POST /api/v1/votes 202" in log  # the access log is on in this module...
    assert UA not in log and "Mozilla" not in log
    assert not re.search(rf"127\.0\.0\.1:(?!{gateway.port}\b)\d+", log), log[-2000:]
    assert str(vote.vote_id) not in log and vote.token_id not in log


def _log_dirs(settings) -> list[Path]:
    """The broker's log directories, when this machine can read them (the local stack)."""
    from confluent_kafka.admin import AdminClient, ConfigResource, ResourceType

    admin = AdminClient({"bootstrap.servers": settings.kafka_bootstrap})
    brokers = admin.list_topics(timeout=10).brokers
    resource = ConfigResource(ResourceType.BROKER, str(next(iter(brokers))))
    configs = admin.describe_configs([resource])[resource].result(timeout=10)
    value = (configs.get("log.dirs") or configs.get("log.dir")).value or ""
    return [Path(d) for d in value.split(",") if d and Path(d).is_dir()]


def _producer_ids(log_dirs: list[Path], topic: str) -> list[int]:
    """The producer id of every record batch of ``topic`` (v2 batch header, byte 43)."""
    ids = []
    for log_dir in log_dirs:
        for segment in sorted(log_dir.glob(f"{topic}-*/*.log")):
            data = segment.read_bytes()
            pos = 0
            while pos + 61 <= len(data):
                (length,) = struct.unpack_from(">i", data, pos + 8)
                if length <= 0 or pos + 12 + length > len(data):
                    break
                (producer_id,) = struct.unpack_from(">q", data, pos + 43)
                ids.append(producer_id)
                pos += 12 + length
    return ids


def test_votes_from_many_clients_carry_the_gateways_one_producer_id(stackup, setup) -> None:
    """Read in the broker's own segment files: every batch of votes the gateway wrote has
    one producer id, whoever posted them; an SDK client publishing directly leaves its own
    (so the check does see producer ids)."""
    settings, gateway = stackup
    log_dirs = _log_dirs(settings)
    if not log_dirs:
        pytest.skip("the broker's log directories are not on this machine")
    topic = settings.topic("votes")
    before = Counter(_producer_ids(log_dirs, topic))
    subs = [setup.submission() for _ in range(3)]
    for i, sub in enumerate(subs):
        for k, key in enumerate(setup.keys):
            vote = setup.vote(key, sub, slot=i)
            # a fresh connection per vote (urllib does not keep connections alive)
            assert _post(gateway, vote.to_json())[0] == 202, (i, k)
    ours = Counter(_producer_ids(log_dirs, topic)) - before
    assert sum(ours.values()) >= 1 and len(ours) == 1, ours
    [gateway_pid] = ours
    assert gateway_pid >= 0  # an idempotent producer's id (-1: none)

    from connectors.sdk import VoteClient

    with VoteClient(settings, setup.keys[0]) as direct:
        direct.publish(setup.vote(setup.keys[0], subs[0], slot=3))
    direct_ids = Counter(_producer_ids(log_dirs, topic)) - before - ours
    assert direct_ids and gateway_pid not in direct_ids, direct_ids


def test_a_trickled_body_gets_408_and_the_gateway_keeps_serving(stackup) -> None:
    """A client that announces a body and never sends it is cut off after the body timeout
    (2 s in this module), instead of holding its connection and task forever."""
    _, gateway = stackup
    with socket.create_connection(("127.0.0.1", gateway.port), timeout=15) as conn:
        conn.sendall(
            b"POST /api/v1/votes HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b'Content-Length: 100\r\n\r\n{"vote_id"'
        )
        started = time.monotonic()
        answer = conn.recv(4096)
    assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
    assert 1.5 < time.monotonic() - started < 10
    assert http_json("GET", gateway.url + "/health")[0] == 200


def test_an_unfiltered_stream_resumes_with_the_latest_tallies(stackup, setup) -> None:
    """Reconnecting with any Last-Event-ID replays the latest state of recently changed
    tallies (ids ``<submission>:<version>``), so a client that missed events catches up."""
    settings, gateway = stackup
    vote = setup.vote(setup.keys[0], setup.sub, slot=0, vote_type="approve")
    assert _post(gateway, vote.to_json(), "?wait=30")[1]["status"] == "counted"
    _poll(
        lambda: pg(settings, "SELECT 1 FROM tallies WHERE submission_id = $1", setup.sub),
        what="the tally in Postgres",
    )
    from aiohttp import ClientSession, ClientTimeout

    async def ids(headers: dict) -> list[str]:
        found: list[str] = []
        async with ClientSession(timeout=ClientTimeout(total=30)) as http:
            async with http.get(f"{gateway.url}/api/v1/tallies/stream", headers=headers) as r:
                while True:
                    try:
                        line = await asyncio.wait_for(r.content.readline(), 2.0)
                    except TimeoutError:
                        return found  # the catch-up is over: only live events would follow
                    if line.startswith(b"id:"):
                        found.append(line.decode().split(":", 1)[1].strip())

    resumed = asyncio.run(ids({"Last-Event-ID": "anything:0"}))
    assert f"{setup.sub}:1" in resumed
    assert f"{setup.sub}:1" not in asyncio.run(ids({}))  # a fresh client gets live events only


def test_a_port_in_use_is_one_line_and_exit_2(stackup) -> None:
    settings, gateway = stackup
    import subprocess
    import sys

    result = subprocess.run(
        [sys.executable, "-m", "connectors.cli", "gateway", "--port", str(gateway.port)],
        env={**os.environ, **settings.to_env()},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"ringtally: error: cannot listen on 127.0.0.1:{gateway.port}: Address already in use; "
        "pick another --port (or RINGTALLY_GATEWAY_PORT) or --host"
    ]


def test_a_re_post_to_another_gateway_instance_is_the_same_counted_vote(
    stackup, setup, tmp_path
) -> None:
    """Gateways are stateless: the second instance knows nothing of the first post, yet the
    same vote posted there answers ``counted`` (from the stored ballot), and counts once."""
    settings, first = stackup
    second = GatewayProcess(settings, tmp_path / "second.log").start()
    try:
        vote = setup.vote(setup.keys[2], setup.sub, slot=1, vote_type="reject")
        assert _post(first, vote.to_json(), "?wait=30")[1]["status"] == "counted"
        started = time.monotonic()
        status, body = _post(second, vote.to_json(), "?wait=30")
        assert (status, body["status"], body["vote_id"]) == (200, "counted", str(vote.vote_id))
        assert time.monotonic() - started < 15, "answered only by running out of time"
        # another key's vote on the same tag id is impossible; another vote of this key on
        # the same submission is a duplicate, not "counted" by this rule
        other = setup.vote(setup.keys[2], setup.sub, slot=2, vote_type="reject")
        status, body = _post(second, other.to_json(), "?wait=30")
        assert (body["status"], body.get("reason")) == ("rejected", "duplicate_key_image")
    finally:
        second.stop()
    rows = pg(settings, "SELECT vote_id FROM ballots WHERE submission_id = $1", setup.sub)
    assert [r["vote_id"] for r in rows] == [vote.vote_id]
