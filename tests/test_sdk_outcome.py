"""How a published vote is matched to its Ballot or Rejection (connectors.sdk.outcome), no I/O."""

from __future__ import annotations

import base64

from connectors.sdk.outcome import Tracker
from models import Ballot, Rejection
from models.internal import vote_id_for_token

VOTES, BALLOTS, REJECTIONS = "p.votes", "p.ballots", "p.rejections"


def tracker() -> Tracker:
    return Tracker(VOTES, BALLOTS, REJECTIONS)


def ballot(token: str, partition: int, offset: int) -> bytes:
    return Ballot.model_validate(
        {
            "vote_id": str(vote_id_for_token(token)),
            "submission_id": "s",
            "key_image": "ab" * 32,
            "vote_type": "approve",
            "ring_id": "r",
            "epoch": 1,
            "source_partition": partition,
            "source_offset": offset,
        },
        strict=False,
    ).to_json()


def rejection(
    token: str | None,
    partition: int,
    offset: int,
    *,
    with_vote_id: bool = True,
    reason: str = "token_spent",
    topic: str = VOTES,
) -> bytes:
    return Rejection.model_validate(
        {
            "vote_id": str(vote_id_for_token(token)) if with_vote_id and token else None,
            "token_id": token,
            "reason": reason,
            "detail": "d",
            "payload_b64": base64.b64encode(b"x").decode(),
            "source_topic": topic,
            "source_partition": partition,
            "source_offset": offset,
        },
        strict=False,
    ).to_json()


def pending(
    t: Tracker,
    token: str,
    start: int = 0,
    at: tuple[int, int] | None = (0, 5),
    payload: bytes = b"v",
):
    p = t.register(vote_id_for_token(token), token, payload)
    p.start = {(BALLOTS, 0): start, (REJECTIONS, 0): start}
    if at is not None:
        t.delivered(p, *at)
    return vote_id_for_token(token)


def test_a_ballot_matches_by_vote_id_and_source_position() -> None:
    t = tracker()
    vid = pending(t, "tok", at=(0, 5))
    t.offer(BALLOTS, 0, 0, ballot("tok", 0, 4))  # same token, another message: not ours
    assert t.take(vid) is None
    t.offer(BALLOTS, 0, 1, ballot("tok", 0, 5))
    found = t.take(vid)
    assert isinstance(found, Ballot) and found.source_offset == 5
    assert not t.knows(vid)


def test_a_rejection_without_vote_id_matches_by_token() -> None:
    t = tracker()
    vid = pending(t, "tok-2", at=(0, 9))
    t.offer(REJECTIONS, 0, 3, rejection("tok-2", 0, 9, with_vote_id=False, reason="malformed"))
    found = t.take(vid)
    assert isinstance(found, Rejection) and found.reason == "malformed"


def test_a_rejection_must_point_at_the_votes_topic_position() -> None:
    t = tracker()
    vid = pending(t, "tok", at=(1, 2))
    t.offer(REJECTIONS, 0, 0, rejection("tok", 1, 2, topic="other.votes"))
    t.offer(REJECTIONS, 0, 1, rejection("tok", 1, 3))
    assert t.take(vid) is None
    t.offer(REJECTIONS, 0, 2, rejection("tok", 1, 2))
    assert t.take(vid) is not None


def test_records_before_the_start_mark_are_not_ours() -> None:
    t = tracker()
    vid = pending(t, "tok", start=10, at=None)  # not yet acknowledged: vote id alone
    t.offer(BALLOTS, 0, 9, ballot("tok", 0, 0))
    assert t.take(vid) is None
    t.offer(BALLOTS, 0, 10, ballot("tok", 0, 0))
    assert t.take(vid) is not None


def test_a_resend_of_the_same_bytes_matches_the_original_ballot() -> None:
    t = tracker()
    first = pending(t, "tok", at=(0, 5), payload=b"same")
    t.offer(BALLOTS, 0, 0, ballot("tok", 0, 5))
    assert t.take(first) is not None
    again = pending(t, "tok", start=1, at=(0, 8), payload=b"same")
    t.offer(BALLOTS, 0, 1, ballot("tok", 0, 5))  # a worker before issue 16 re-emits the ballot
    assert t.take(again) is not None
    other = pending(t, "tok", start=2, at=(0, 9), payload=b"different")
    t.offer(BALLOTS, 0, 2, ballot("tok", 0, 5))  # not a resend of these bytes
    assert t.take(other) is None


def test_a_resends_duplicate_record_resolves_to_the_ballot_of_the_same_bytes() -> None:
    """Issue 16: a worker rejects the resent copy ``duplicate_record`` at its own position;
    the client that saw the first publish's Ballot answers with it (counted, once). Other
    bytes with that vote id (another vote on the tag) get the rejection as it is."""
    t = tracker()
    first = pending(t, "tok", at=(0, 5), payload=b"same")
    t.offer(BALLOTS, 0, 0, ballot("tok", 0, 5))
    counted = t.take(first)
    assert isinstance(counted, Ballot)
    again = pending(t, "tok", start=1, at=(0, 8), payload=b"same")
    t.offer(REJECTIONS, 0, 1, rejection("tok", 0, 8, reason="duplicate_record"))
    assert t.take(again) == counted
    other = pending(t, "tok", start=2, at=(0, 9), payload=b"different")
    t.offer(REJECTIONS, 0, 2, rejection("tok", 0, 9, reason="duplicate_record"))
    found = t.take(other)
    assert isinstance(found, Rejection) and found.reason == "duplicate_record"


def test_the_cursor_only_jumps_forward_to_the_earliest_waiting_start() -> None:
    t = tracker()
    a = pending(t, "a", start=5)
    pending(t, "b", start=7)
    assert t.seek_targets() == {(BALLOTS, 0): 5, (REJECTIONS, 0): 5}
    t.advance(t.seek_targets())
    t.offer(BALLOTS, 0, 5, ballot("a", 0, 5))
    assert t.take(a) is not None
    assert t.seek_targets() == {(BALLOTS, 0): 7, (REJECTIONS, 0): 7}
    t.advance(t.seek_targets())
    assert t.seek_targets() == {}


def test_unreadable_records_are_ignored() -> None:
    t = tracker()
    vid = pending(t, "tok")
    t.offer(BALLOTS, 0, 0, b"not json")
    t.offer(REJECTIONS, 0, 0, None)
    assert t.take(vid) is None and t.knows(vid)
