"""The tally's decision rules, one pure function (models.decision)."""

import pytest

from models.decision import RULES_ID, Decision, decide, rules_version


def _decide(approve=0, reject=0, flag=0, escalate=0, min_votes=3, flag_threshold=3):
    return decide(
        approve=approve,
        reject=reject,
        flag=flag,
        escalate=escalate,
        min_votes=min_votes,
        flag_threshold=flag_threshold,
    )


@pytest.mark.parametrize(
    ("counts", "expected"),
    [
        ({}, Decision.PENDING),
        ({"approve": 2}, Decision.PENDING),
        ({"approve": 3}, Decision.APPROVED),
        ({"reject": 3}, Decision.REJECTED),
        ({"approve": 2, "reject": 1}, Decision.APPROVED),
        ({"approve": 1, "reject": 2}, Decision.REJECTED),
        ({"approve": 2, "reject": 2}, Decision.ESCALATED),  # tie
        ({"flag": 3}, Decision.ESCALATED),  # flags reach the threshold
        ({"approve": 9, "flag": 3}, Decision.ESCALATED),  # flags win over a clear approve
        ({"approve": 9, "flag": 2}, Decision.APPROVED),
        ({"escalate": 3}, Decision.ESCALATED),
        ({"escalate": 2, "approve": 1, "reject": 1}, Decision.ESCALATED),
        ({"escalate": 2, "approve": 2}, Decision.APPROVED),  # escalate not more than approve
        ({"escalate": 1, "flag": 1, "approve": 1}, Decision.APPROVED),  # approve 1 > reject 0
        ({"escalate": 1, "flag": 1, "reject": 1}, Decision.REJECTED),
    ],
)
def test_decide_representative_mixes(counts, expected):
    assert _decide(**counts) is expected


def test_decide_respects_configured_thresholds():
    assert _decide(approve=1, min_votes=1) is Decision.APPROVED
    assert _decide(approve=4, flag=1, flag_threshold=1) is Decision.ESCALATED
    assert _decide(approve=4, flag=1, flag_threshold=2) is Decision.APPROVED


def test_decide_is_recomputed_not_frozen():
    """A later ballot can move a decided submission (the function has no memory)."""
    assert _decide(approve=3) is Decision.APPROVED
    assert _decide(approve=3, reject=4) is Decision.REJECTED


def test_decide_rejects_negative_counts():
    with pytest.raises(ValueError, match="negative"):
        _decide(approve=-1)


def test_rules_version_names_rules_and_thresholds():
    assert (
        rules_version(min_votes=3, flag_threshold=3) == f"{RULES_ID};min_votes=3;flag_threshold=3"
    )
