"""bench/soak.py's pure parts: the plateau criterion, RSS windows, the log classification,
the rotation's members and the hostile plan (issue 16's soak). No services."""

from __future__ import annotations

import random
from pathlib import Path

from bench.soak import (
    RING,
    Hostile,
    Voters,
    classify_logs,
    plateau,
    rotation_members,
    windows,
)

STARTUP_ERROR = (
    "[2026-12-07 07:10:47,153] [1] [ERROR] Group Coordinator Request failed: [Error 15] "
    "GroupCoordinatorNotAvailableError"
)
READY = "[2026-12-07 07:10:59,000] [1] [INFO] [^Worker]: Ready"


def test_plateau_needs_the_last_two_windows_within_five_percent() -> None:
    assert plateau([300.0, 400.0, 410.0])["reached"] is True
    assert plateau([300.0, 400.0, 430.0])["reached"] is False  # +7.5 %
    assert plateau([400.0, 370.0])["reached"] is False  # shrinking 7.5 % is no plateau either
    assert plateau([400.0])["reached"] is None


def test_windows_are_medians_and_drop_a_short_last_window() -> None:
    samples = [{"t": float(t), "rss": 1024 * (100 + t)} for t in range(0, 130, 10)]
    # [0, 60): 100..150 -> median 125; [60, 120): 160..210 -> 185; [120, 180) has one
    # sample at 120 and ends before half of it: left out
    assert windows(samples, "rss", 60) == [125.0, 185.0]


def test_startup_lines_are_expected_only_before_the_worker_is_ready(tmp_path: Path) -> None:
    (tmp_path / "worker-0.log").write_text(
        "\n".join([STARTUP_ERROR, READY, STARTUP_ERROR, "Traceback (most recent call last):"])
    )
    (tmp_path / "sink.log").write_text(STARTUP_ERROR + "\n")
    out = classify_logs(tmp_path)
    assert out["expected"] == {"coordinator_not_yet_available": 1}
    assert out["unexpected"] == 3  # after Ready, the traceback, and in the sink's log
    assert any("Traceback" in line for line in out["unexpected_lines"])


def test_a_rotation_revokes_the_oldest_member_and_adds_one() -> None:
    v1, v2 = set(rotation_members(1)), set(rotation_members(2))
    assert len(v1) == len(v2) == RING
    assert v1 - v2 == {0} and v2 - v1 == {RING}


def test_hostile_plan_orders_and_reasons() -> None:
    voters = Voters(seed=7, pool=RING + 2)
    hostile = Hostile(random.Random(1), voters)
    reject = voters.honest(1, 2)  # n % 4 == 1: a "reject" vote on version 2
    assert reject.vote_type == "reject" and reject.ring_version == 2
    before, after = hostile.plan("token_replay", reject, 2)
    # replaying a "reject" vote as "reject" is its very bytes: planned as a duplicate
    assert before == [] and [(m.category, set(m.expect)) for m in after] == [
        ("duplicate", {"duplicate_record"})
    ]
    approve = voters.honest(0, 2)
    before, after = hostile.plan("token_replay", approve, 2)
    assert [(m.category, set(m.expect)) for m in after] == [("token_replay", {"token_spent"})]
    assert after[0].value != approve.to_json()
    before, after = hostile.plan("stale_ring_version", approve, 2)
    assert after == [] and before[0].expect == {"ring_not_in_force"}
    assert b'"ring_version":1' in before[0].value.replace(b" ", b"")
    before, _ = hostile.plan("bad_signature", approve, 2)
    assert before[0].key == approve.token_id.encode() and before[0].value != approve.to_json()
    _, after = hostile.plan("foreign_partition", approve, 2)
    assert after[0].foreign and after[0].value == approve.to_json()


def test_no_malformed_message_is_the_honest_vote_itself() -> None:
    """json_mutation's bad-UTF-8 branch rewrites only "approve"/"reject": on a "flag" vote
    it returned the vote unchanged, which the worker rightly counted (soak-s10)."""
    import json

    voters = Voters(seed=7, pool=RING)
    hostile = Hostile(random.Random(3), voters)
    for n in (2, 3):  # a "flag" and an "escalate" vote
        vote = voters.honest(n, 1)
        honest = json.loads(vote.to_json())
        for _ in range(300):
            (msg,), _after = hostile.plan("malformed", vote, 1)
            try:
                body = json.loads(msg.value) if msg.value is not None else None
            except ValueError:
                continue
            assert body != honest, msg.category
