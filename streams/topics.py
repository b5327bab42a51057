"""Topic names and layouts: one place that says which topic holds what.

Names are ``<prefix>.<name>``; the prefix is a setting so tests and replays
can run side by side on one broker. ``key`` documents what each topic is
keyed by; every value is JSON (see :mod:`models`).
"""

from __future__ import annotations

from dataclasses import dataclass

from .settings import Settings

__all__ = ["TOPICS", "TopicSpec", "topic_specs"]


@dataclass(frozen=True, slots=True)
class TopicSpec:
    name: str
    key: str
    compacted: bool
    #: None: the settings' partition count (co-partitioned with votes).
    partitions: int | None
    holds: str


TOPICS: tuple[TopicSpec, ...] = (
    TopicSpec("votes", "token_id", False, None, "VoteCast, TokenIssued, TokenRevoked"),
    TopicSpec("rings", "ring_id", True, 1, "Ring"),
    TopicSpec("submissions", "submission_id", True, 1, "Submission"),
    TopicSpec("revocations", "credential_hash", False, None, "CredentialRevoked"),
    TopicSpec("ballots", "submission_id", False, None, "Ballot"),
    TopicSpec("tallies", "submission_id", True, None, "Tally"),
    TopicSpec("rejections", "token_id or source key", False, None, "Rejection"),
    TopicSpec("audit", "chain", False, None, "AuditEvent"),
)


def topic_specs(settings: Settings) -> dict[str, tuple[str, int, bool]]:
    """Short name -> (full name, partitions, compacted) under these settings."""
    return {
        t.name: (settings.topic(t.name), t.partitions or settings.partitions, t.compacted)
        for t in TOPICS
    }
