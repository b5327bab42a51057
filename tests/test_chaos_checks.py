"""The chaos harness's own checks can fail (issue 16): they are tried on outcomes that
break the invariants, and the decision rules they use are not the code under test."""

from __future__ import annotations

import itertools
import threading
from collections import defaultdict

import pytest

from bench.chaos import rules_decision, topic_outcomes
from connectors.demo.simulation import Planned
from models.decision import decide
from models.outputs import VoteCounts
from models.reasons import ReasonCode

VOTES = "chaos.votes"
DUP = ReasonCode.DUPLICATE_KEY_IMAGE.value


@pytest.mark.parametrize(
    ("counts", "decision"),
    [
        ((1, 1, 0, 0), "PENDING"),  # below the quorum of 3
        ((3, 0, 0, 0), "APPROVED"),
        ((0, 3, 0, 0), "REJECTED"),
        ((5, 0, 3, 0), "ESCALATED"),  # enough flags, whatever else
        ((1, 1, 0, 2), "ESCALATED"),  # escalate beats both
        ((2, 2, 0, 0), "ESCALATED"),  # a tie
        ((2, 1, 0, 2), "APPROVED"),  # escalate ties approve: not escalated
    ],
)
def test_the_harness_rules_give_the_documented_decisions(counts, decision):
    c = VoteCounts(approve=counts[0], reject=counts[1], flag=counts[2], escalate=counts[3])
    assert rules_decision(c, min_votes=3, flag_threshold=3) == decision


def test_the_harness_rules_and_the_pipelines_agree_on_every_small_tally():
    for a, r, f, e in itertools.product(range(5), repeat=4):
        c = VoteCounts(approve=a, reject=r, flag=f, escalate=e)
        ours = rules_decision(c, min_votes=3, flag_threshold=3)
        assert decide(approve=a, reject=r, flag=f, escalate=e, min_votes=3, flag_threshold=3) == (
            ours
        ), (a, r, f, e)


class _Seen:
    """What bench.chaos.Watcher indexes from the output topics."""

    votes_topic = VOTES

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.ballot_pos: dict[tuple[int, int], set[str]] = defaultdict(set)
        self.rejections: dict[tuple[str, int, int], set[str]] = defaultdict(set)

    def ballot(self, pos: tuple[int, int], vote_id: str) -> None:
        self.ballot_pos[pos].add(vote_id)

    def rejection(self, pos: tuple[int, int], reason: str) -> None:
        self.rejections[(VOTES, *pos)].add(reason)


PLAN = {
    (0, 0): Planned(b"k", b"v", "ballot", vote_id="v0"),
    (0, 1): Planned(b"k", b"v", "malformed", vote_id=None),
    (1, 0): Planned(b"k", b"v", DUP, label="double_vote", vote_id="v2"),  # a second half
}
SECONDS = {"v2"}


def _as_planned(seen: _Seen) -> None:
    seen.ballot((0, 0), "v0")
    seen.rejection((0, 1), "malformed")
    seen.rejection((1, 0), DUP)


def test_the_planned_outcomes_pass_and_a_retraction_is_one_outcome():
    seen = _Seen()
    _as_planned(seen)
    seen.ballot((1, 0), "v2")  # counted first, then retracted: ballot + duplicate_key_image
    seen.rejection((0, 1), "malformed")  # a byte-identical re-emission
    assert topic_outcomes(seen, PLAN, SECONDS) == ([], [])


@pytest.mark.parametrize(
    "spoil",
    [
        lambda s: s.rejection((0, 1), "bad_signature"),  # a second, different rejection
        lambda s: s.rejection((0, 0), "token_spent"),  # a counted vote rejected too
        lambda s: s.ballot((0, 1), "v1"),  # a rejected message counted too
        lambda s: s.ballot((0, 0), "other"),  # a second ballot at one position
        lambda s: s.rejections.pop((VOTES, 1, 0)),  # an outcome missing
    ],
)
def test_a_second_or_missing_outcome_on_the_topics_is_found(spoil):
    seen = _Seen()
    _as_planned(seen)
    spoil(seen)
    wrong, unplanned = topic_outcomes(seen, PLAN, SECONDS)
    assert len(wrong) == 1 and unplanned == []


def test_an_outcome_at_an_unplanned_position_is_found():
    seen = _Seen()
    _as_planned(seen)
    seen.rejection((5, 9), "malformed")
    assert topic_outcomes(seen, PLAN, SECONDS) == ([], ["(5, 9)"])
