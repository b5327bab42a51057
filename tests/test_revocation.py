"""Revoking a reviewer is a ring rotation, and a replay decides exactly as live did
(docs/protocol.md "Ring versions and revocation"; DESIGN invariant 6).

Ring version 1 has reviewers A, B, C; version 2 (published part-way) drops A.
After it: A's vote naming version 1 is ``ring_not_in_force`` (the detail
names version 1 and the version in force), A cannot even sign for version 2
(not a member), B's vote naming version 2 counts, and B's vote still naming
version 1 is refused too. A's vote from before the rotation stays counted.
Then ``ringtally replay`` rebuilds everything from the input topics into a
shadow and finds no difference. The quota test: with ``votes_per_epoch`` 2,
a reviewer's third vote of the epoch (slot 2) is ``slot_out_of_range``, and
reusing a spent slot on another submission is ``token_spent``.

Fail on v1: it had no ring versions (a revoked credential's token was
refused through a fan-out that a partitioner mismatch could skip, and a
replay had to rely on the fan-out's records), and no per-epoch quota but
issued tokens.
"""

from __future__ import annotations

import asyncio
import hashlib

import pytest

import ringcrypto
from connectors.stack.harness import SinkProcess
from tests.fixtures.pipeline import Outputs
from tests.fixtures.rounds import Scenario

pytestmark = pytest.mark.integration


def _key(name: str) -> ringcrypto.SecretKey:
    return ringcrypto.SecretKey.from_seed(hashlib.sha256(name.encode()).digest())


def _reason(outputs: Outputs, vote) -> tuple[str, dict]:
    [(kind, body)] = outputs.outcome(str(vote.vote_id))
    return (body["reason"] if kind == "rejection" else "ballot"), body


def test_rotation_revokes_a_key_and_replay_agrees(pipeline, tmp_path):
    from connectors.postgres.migrate import migrate
    from connectors.replay import ReplayConfig, run_replay

    settings, _worker = pipeline
    asyncio.run(migrate(settings))
    sink = SinkProcess(settings, tmp_path / "sink.log").start()
    scenario = Scenario(settings, genre="rev")
    a, b, c = (_key(f"revocation/{n}") for n in "abc")
    v1 = scenario.ring("ring-rev", [a, b, c], k=3)
    for sub in ("s1", "s2", "s3", "s4"):
        scenario.submission(sub)
    before, _ = scenario.vote(a, v1, "s1", slot=0)
    v2 = scenario.ring("ring-rev", [b, c], version=2, k=3)
    revoked, _ = scenario.vote(a, v1, "s2", slot=1)
    with pytest.raises(ringcrypto.MalformedInput):  # A is no member of version 2
        ringcrypto.sign_vote(a, ringcrypto.Ring(v2.public_key_bytes()), b"s2", bytes(8), 0, b"m")
    counted, _ = scenario.vote(b, v2, "s2", slot=0, vote_type="reject")
    stale, _ = scenario.vote(b, v1, "s3", slot=1)
    outputs = Outputs(settings)
    try:
        outputs.wait_for(
            lambda o: all(o.outcome(str(v.vote_id)) for v in (before, revoked, counted, stale)),
            what="the four votes' outcomes",
        )
        outputs.settle(1.0)
        assert _reason(outputs, before)[0] == "ballot"
        reason, body = _reason(outputs, revoked)
        assert reason == "ring_not_in_force"
        assert "version 1 was not in force" in body["detail"] and "version 2" in body["detail"]
        assert _reason(outputs, counted)[0] == "ballot"
        assert _reason(outputs, stale)[0] == "ring_not_in_force"
        assert outputs.latest_tally("s2")["counts"] == {
            "approve": 0,
            "reject": 1,
            "flag": 0,
            "escalate": 0,
        }
        # the sink has it all; then a replay from offset 0 into a shadow finds no difference
        from connectors.demo.observe import pg_counts, wait_until
        from connectors.postgres.db import connect

        async def stored() -> int:
            conn = await connect(settings)
            try:
                return (await pg_counts(conn)).outcomes
            finally:
                await conn.close()

        want = len(outputs.ballots) + len(outputs.rejections)
        assert wait_until(lambda: asyncio.run(stored()) >= want, 60), "the sink fell behind"
        result = run_replay(settings, ReplayConfig(live=False, stall_timeout=60))
        assert result.ok, [d.describe() for d in result.comparison.differences]
        assert result.comparison.counts["ballots"][0] == result.comparison.counts["ballots"][1]
    finally:
        outputs.close()
        sink.stop()


def test_vote_after_the_quota_is_slot_out_of_range(pipeline):
    settings, _worker = pipeline
    scenario = Scenario(settings, genre="quota")
    a, b = _key("quota/a"), _key("quota/b")
    ring = scenario.ring("ring-quota", [a, b], k=2)
    for sub in ("q1", "q2", "q3"):
        scenario.submission(sub)
    first, _ = scenario.vote(a, ring, "q1", slot=0)
    second, _ = scenario.vote(a, ring, "q2", slot=1)
    third, _ = scenario.vote(a, ring, "q3", slot=2)  # the k+1-th vote of the epoch
    reused, _ = scenario.vote(a, ring, "q3", slot=0)  # or a spent slot again
    outputs = Outputs(settings)
    try:
        votes = (first, second, third)
        outputs.wait_for(
            lambda o: (
                all(o.outcome(str(v.vote_id)) for v in votes)
                and any(r["reason"] == "token_spent" for r in o.rejections)
            ),
            what="the quota's outcomes",
        )
        counted = {b["vote_id"] for b in outputs.ballots}
        assert {str(first.vote_id), str(second.vote_id)} <= counted
        reason, body = _reason(outputs, third)
        assert reason == "slot_out_of_range"
        assert "allows 2 votes per epoch" in body["detail"]
        [spent] = [r for r in outputs.rejections if r["reason"] == "token_spent"]
        assert spent["vote_id"] == str(reused.vote_id) == str(first.vote_id)  # same tag
        # nothing counted on q3 (its two refusals are leaves of its log: a Tally of none)
        q3 = outputs.latest_tally("q3")
        assert q3 is None or (q3["total"], q3["version"]) == (0, 0)
    finally:
        outputs.close()
