"""The tally's decision rules: one pure function, versioned.

The decision is recomputed from the counts on every ballot and never frozen,
so a late vote can still move it. Every Tally carries :func:`rules_version`
so a consumer can tell which rules (and thresholds) produced it.
"""

from __future__ import annotations

from enum import StrEnum

__all__ = ["RULES_ID", "Decision", "decide", "rules_version"]

RULES_ID = "ringtally-rules-v1"


class Decision(StrEnum):
    PENDING = "PENDING"
    APPROVED = "APPROVED"
    REJECTED = "REJECTED"
    ESCALATED = "ESCALATED"


def rules_version(*, min_votes: int, flag_threshold: int) -> str:
    """E.g. ``ringtally-rules-v1;min_votes=3;flag_threshold=3``."""
    return f"{RULES_ID};min_votes={min_votes};flag_threshold={flag_threshold}"


def decide(
    *, approve: int, reject: int, flag: int, escalate: int, min_votes: int, flag_threshold: int
) -> Decision:
    """Apply the rules in order; the first that matches wins.

    1. fewer than ``min_votes`` ballots          -> PENDING
    2. flags >= ``flag_threshold``               -> ESCALATED
    3. escalate > approve and escalate > reject  -> ESCALATED
    4. approve > reject                          -> APPROVED
    5. reject > approve                          -> REJECTED
    6. otherwise (a tie)                         -> ESCALATED
    """
    if min(approve, reject, flag, escalate) < 0:
        raise ValueError("vote counts cannot be negative")
    if approve + reject + flag + escalate < min_votes:
        return Decision.PENDING
    if flag >= flag_threshold:
        return Decision.ESCALATED
    if escalate > approve and escalate > reject:
        return Decision.ESCALATED
    if approve > reject:
        return Decision.APPROVED
    if reject > approve:
        return Decision.REJECTED
    return Decision.ESCALATED
