"""``ringtally witness`` on the plain stack: co-signs every head it recomputes, and a forged
ballot injected into the output topic is an alert (log line, metric, Postgres row).

Also the witness's pure core: a head waits for its leaves, a wrong root or a head
not signed by the log key is a disagreement.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import subprocess
import sys
import time
import urllib.request
import uuid

import pytest
from confluent_kafka import Consumer, Producer

from agents.loghead import LogSigner
from connectors.postgres.db import connect
from connectors.sdk.reader import consume_ready
from connectors.sdk.receipt import trusted_log_key
from connectors.stack.harness import free_port
from connectors.witness.core import Witness
from models.log import WITNESS_CONTEXT, LeafKind, WitnessCosignature, log_leaf_hash
from models.merkle import tree_hash
from models.outputs import Ballot
from tests.fixtures.rounds import live_round


def _ballot(sub: str, index: int, digest: str) -> Ballot:
    return Ballot.model_validate(
        {
            "vote_id": str(uuid.uuid4()),
            "submission_id": sub,
            "key_image": "ab" * 32,
            "vote_type": "approve",
            "ring_id": "r",
            "epoch": 1,
            "source_partition": 0,
            "source_offset": index,
            "vote_digest": digest,
            "leaf_index": index,
        },
        strict=False,
    )


def test_witness_core_waits_for_leaves_and_judges_each_head():
    import ringcrypto

    signer = LogSigner(ringcrypto.SecretKey.generate())
    other = LogSigner(ringcrypto.SecretKey.generate())
    witness = Witness(lambda h: h.log_key == signer.public_key.hex())
    digests = ["01" * 32, "02" * 32, "03" * 32]
    hashes = [log_leaf_hash(LeafKind.BALLOT, bytes.fromhex(d)) for d in digests]
    [head2] = signer.sign([("s", 2, tree_hash(hashes[:2]))])
    assert witness.head(head2) == ([], [])  # no leaves yet: it waits
    assert witness.ballot(_ballot("s", 1, digests[1])) == ([], [])
    agreed, disagreed = witness.ballot(_ballot("s", 0, digests[0]))
    assert (agreed, disagreed) == ([head2], [])
    [wrong] = signer.sign([("s", 3, tree_hash([hashes[0], hashes[1], hashes[1]]))])
    witness.ballot(_ballot("s", 2, digests[2]))
    agreed, [d] = witness.head(wrong)
    assert agreed == [] and d.reason == "root_mismatch"
    _, [d] = witness.head(other.sign([("s", 3, tree_hash(hashes))])[0])
    assert d.reason == "bad_signature"
    _, [d] = witness.ballot(_ballot("s", 1, "04" * 32))
    assert d.reason == "leaf_conflict"


def test_witness_core_holds_a_closed_log_to_its_final_head():
    """A closed submission's log has one final head and nothing after it. The review of
    issue 19 had the witness co-sign a final head at size 1, then an ordinary head at
    size 2, then a second final head at size 2, without a word; each is now a
    disagreement, and a final head below a size signed before is one too."""
    import ringcrypto

    signer = LogSigner(ringcrypto.SecretKey.generate())
    witness = Witness(lambda h: h.log_key == signer.public_key.hex())
    digests = ["01" * 32, "02" * 32]
    hashes = [log_leaf_hash(LeafKind.BALLOT, bytes.fromhex(d)) for d in digests]
    for i, d in enumerate(digests):
        witness.ballot(_ballot("s", i, d))
    [final1] = signer.sign([("s", 1, tree_hash(hashes[:1]), 12345)])
    assert witness.head(final1) == ([final1], [])
    assert witness.head(final1) == ([], [])  # the same final head again: nothing new
    _, [after] = witness.head(signer.sign([("s", 2, tree_hash(hashes))])[0])
    assert after.reason == "after_final"
    _, [second] = witness.head(signer.sign([("s", 2, tree_hash(hashes), 99999)])[0])
    assert second.reason == "final_conflict"
    # another log: an ordinary head of size 2, then a final one of size 1
    for i, d in enumerate(digests):
        witness.ballot(_ballot("t", i, d))
    [grown] = signer.sign([("t", 2, tree_hash(hashes))])
    assert witness.head(grown) == ([grown], [])
    _, [early] = witness.head(signer.sign([("t", 1, tree_hash(hashes[:1]), 5)])[0])
    assert early.reason == "final_conflict"


def _alerts(settings) -> list:
    async def go():
        conn = await connect(settings)
        try:
            return [dict(r) for r in await conn.fetch("SELECT * FROM log_alerts")]
        finally:
            await conn.close()

    return asyncio.run(go())


def _read_witness(settings, consumer, cosigned: dict) -> None:
    for msg in consume_ready(consumer, 0.5, 500):
        if msg.error() is None:
            c = WitnessCosignature.model_validate_json(msg.value())
            cosigned[(c.submission_id, c.tree_size)] = c


@contextlib.contextmanager
def witness_running(settings, tmp_path, **env: str):
    """``ringtally witness`` as a process (its output in ``witness.log``) and a consumer of
    its co-signatures: ``(process, consumer, log path)``, both stopped on leaving."""
    log_path = tmp_path / "witness.log"
    with log_path.open("w") as log_file:
        proc = subprocess.Popen(
            [sys.executable, "-m", "connectors.cli", "witness"],
            env={**os.environ, **settings.to_env(), **env},
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    consumer = Consumer(
        {
            "bootstrap.servers": settings.kafka_bootstrap,
            "group.id": f"test-witness-{uuid.uuid4().hex[:8]}",
            "auto.offset.reset": "earliest",
        }
    )
    try:
        consumer.subscribe([settings.topic("witness")])
        yield proc, consumer, log_path
    finally:
        consumer.close()
        proc.terminate()
        proc.wait(30)


def wait_cosigned(settings, consumer, proc, log_path, latest: dict[str, int]) -> dict:
    """The co-signatures read until each ``(submission, size)`` of ``latest`` has one."""
    cosigned: dict = {}
    deadline = time.monotonic() + 90
    while not all((s, n) in cosigned for s, n in latest.items()):
        assert proc.poll() is None, log_path.read_text()[-3000:]
        assert time.monotonic() < deadline, f"cosigned {len(cosigned)} heads"
        _read_witness(settings, consumer, cosigned)
    return cosigned


def forge_and_wait_alert(settings, log_path, topic: str, real: dict, forged: dict) -> dict:
    """Produce ``forged`` (the output record ``real`` altered, under its key); the one
    ``log_alerts`` row the witness then writes: a leaf conflict at ``real``'s index."""
    producer = Producer({"bootstrap.servers": settings.kafka_bootstrap})
    key = real["submission_id" if topic == "ballots" else "token_id"].encode()
    producer.produce(settings.topic(topic), key=key, value=json.dumps(forged).encode())
    producer.flush(30)
    deadline = time.monotonic() + 60
    while not _alerts(settings):
        assert time.monotonic() < deadline, log_path.read_text()[-3000:]
        time.sleep(0.2)
    [alert] = _alerts(settings)
    assert (alert["submission_id"], alert["reason"]) == (real["submission_id"], "leaf_conflict")
    assert f"index {real['leaf_index']}" in alert["detail"]
    return alert


@pytest.mark.timeout(300)
def test_the_witness_cosigns_every_head_and_alerts_on_a_forged_ballot(stack, tmp_path):
    import ringcrypto

    with live_round(stack, tmp_path, sink=True) as lr:  # the sink migrates the schema
        settings, outputs = lr.settings, lr.outputs
        metrics_port = free_port()
        with witness_running(settings, tmp_path, RINGTALLY_METRICS_PORT=str(metrics_port)) as (
            proc,
            consumer,
            log_path,
        ):
            latest = {}
            for t in outputs.tallies:
                latest[t["submission_id"]] = max(latest.get(t["submission_id"], 0), t["log_size"])
            cosigned = wait_cosigned(settings, consumer, proc, log_path, latest)
            # each co-signature verifies under the witness key, over the log's own head
            roots = {(t["submission_id"], t["log_size"]): t["log_root"] for t in outputs.tallies}
            for key, c in cosigned.items():
                assert c.root_hash == roots[key]
                ringcrypto.verify(
                    ringcrypto.Ring([bytes.fromhex(c.witness_key)]),
                    WITNESS_CONTEXT,
                    c.head_bytes(),
                    base64.b64decode(c.signature),
                )
                assert c.log_key == trusted_log_key(settings).hex()
            assert _alerts(settings) == []

            # a forged ballot on the output topic: another vote digest at a used leaf index
            real = next(b for b in outputs.ballots if b["leaf_index"] is not None)
            forged = {**real, "vote_digest": "ee" * 32, "vote_id": str(uuid.uuid4())}
            forge_and_wait_alert(settings, log_path, "ballots", real, forged)
            assert "WITNESS DISAGREES" in log_path.read_text()
            with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics") as r:
                scraped = r.read().decode()
            assert 'ringtally_witness_disagreements_total{reason="leaf_conflict"} 1.0' in scraped
