"""A transaction marker on the votes topic does not stop its partition (review finding).

Any producer may write transactionally (until ACLs forbid it): the commit
marker then takes an offset no consumer ever receives. The verify stage holds
a record ahead of a missing offset and seeks back (agents/order.py); before
this fix it did so for ever, so one transactional write stopped every later
vote on that partition. Now a gap sought twice is read from the log itself,
and skipped when the log shows no record there.

Fails on the previous code: the vote after the marker never gets an outcome.
"""

from __future__ import annotations

import hashlib

import pytest
from confluent_kafka import Producer

import ringcrypto
from streams.partitioner import partition_for_key
from tests.fixtures.pipeline import Outputs
from tests.fixtures.rounds import Scenario

pytestmark = pytest.mark.integration


def _key(name: str) -> ringcrypto.SecretKey:
    return ringcrypto.SecretKey.from_seed(hashlib.sha256(name.encode()).digest())


def test_a_commit_marker_does_not_hold_the_partition(pipeline):
    settings, _worker = pipeline
    scenario = Scenario(settings)
    keys = [_key(f"txn-gap/{i}") for i in range(4)]
    ring = scenario.ring("ring-txn", keys, k=8)
    scenario.submission("sub-txn-a")
    scenario.submission("sub-txn-b")
    # Two honest votes whose tags share a partition: the first written in a transaction.
    first = scenario.build_vote(keys[0], ring, "sub-txn-a", slot=0)
    home = partition_for_key(first.token_id.encode(), settings.partitions)
    second = next(
        vote
        for key in keys[1:]
        for slot in range(8)
        if partition_for_key(
            (vote := scenario.build_vote(key, ring, "sub-txn-b", slot=slot)).token_id.encode(),
            settings.partitions,
        )
        == home
    )
    producer = Producer(
        {
            "bootstrap.servers": settings.kafka_bootstrap,
            "transactional.id": f"{settings.topic_prefix}-txn",
            "partitioner": "murmur2_random",
        }
    )
    producer.init_transactions(30)
    producer.begin_transaction()
    producer.produce(settings.topic("votes"), key=first.token_id.encode(), value=first.to_json())
    producer.commit_transaction(30)  # a commit marker follows the record on its partition
    scenario.send_vote(second)

    outputs = Outputs(settings)
    try:
        outputs.wait_for(
            lambda o: o.outcome(str(first.vote_id)) and o.outcome(str(second.vote_id)),
            what="both votes' outcomes (the second sits after a commit marker)",
            timeout=60,
        )
        assert [kind for kind, _ in outputs.outcome(str(first.vote_id))] == ["ballot"]
        assert [kind for kind, _ in outputs.outcome(str(second.vote_id))] == ["ballot"]
    finally:
        outputs.close()
