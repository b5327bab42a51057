"""Which of a reviewer's two votes on one submission counts is the broker's call, not the
producer's (DESIGN invariant 9; docs/protocol.md "Broker-ordered").

The votes topic is ``LogAppendTime``: the broker stamps each record when it
appends it, whatever timestamp the producer set. So a second vote (the same
key image, another slot), produced after the first but with an earlier
CreateTime, even 0, is stamped later and loses: the first appended counts.

Fails on v1: the topic kept producer timestamps and the tally stage counted
the vote with the earliest one, so a backdated second vote displaced the
first (a retraction) and a reviewer could revise after seeing the tally.
"""

from __future__ import annotations

import hashlib
import time

import pytest
from confluent_kafka import TIMESTAMP_LOG_APPEND_TIME

import ringcrypto
from tests.fixtures.pipeline import Outputs
from tests.fixtures.rounds import Scenario

pytestmark = pytest.mark.integration


def _key(name: str) -> ringcrypto.SecretKey:
    return ringcrypto.SecretKey.from_seed(hashlib.sha256(name.encode()).digest())


@pytest.mark.parametrize("backdate", ["zero", "one-hour-earlier"])
def test_a_backdated_second_vote_does_not_displace_the_first(pipeline, backdate):
    settings, _worker = pipeline
    scenario = Scenario(settings)
    keys = [_key(f"broker-order/{backdate}/{i}") for i in range(3)]
    ring = scenario.ring(f"ring-{backdate}", keys, k=3)
    sub = f"sub-{backdate}"
    scenario.submission(sub)
    first, (_, _, (first_type, first_ts)) = scenario.vote(keys[0], ring, sub, slot=0)
    assert first_type == TIMESTAMP_LOG_APPEND_TIME  # ensure_topics set it: the broker stamps
    earlier = 0 if backdate == "zero" else int(time.time() * 1000) - 3_600_000
    second, (_, _, (kind, stamped)) = scenario.vote(
        keys[0], ring, sub, slot=1, vote_type="reject", timestamp_ms=earlier
    )
    assert kind == TIMESTAMP_LOG_APPEND_TIME and stamped >= first_ts and stamped != earlier
    other, _ = scenario.vote(keys[1], ring, sub, slot=2, vote_type="approve")

    outputs = Outputs(settings)
    try:
        outputs.wait_for(
            lambda o: o.outcome(str(second.vote_id)) and len(o.outcome(str(other.vote_id))),
            what="both votes' outcomes",
        )
        outputs.settle(1.5)
        # The second may reach the tally stage first (another partition) and be counted,
        # then retracted: what stands at the end is what the broker's order says.
        mine = [b for b in outputs.ballots if b["submission_id"] == sub]
        standing = {b["vote_id"] for b in mine} - {b["supersedes"] for b in mine}
        assert str(first.vote_id) in standing and str(second.vote_id) not in standing
        [rejection] = [r for r in outputs.rejections if r.get("vote_id") == str(second.vote_id)]
        assert rejection["reason"] == "duplicate_key_image"
        assert not any(r.get("vote_id") == str(first.vote_id) for r in outputs.rejections)
        tally = outputs.latest_tally(sub)
        assert tally["counts"]["approve"] == 2 and tally["counts"]["reject"] == 0
    finally:
        outputs.close()
