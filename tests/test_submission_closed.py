"""SubmissionClosed: the registrar closes a submission; votes appended at or after the
closing's broker time are rejected ``submission_closed``, so the submission's log is final.

The control state's rules without Kafka (by broker time, like ring versions: a copy
that has read further decides alike), then a real worker: a vote before the closing
counts, one after it is refused, and the submission's last signed head stays the
log's final one.
"""

from __future__ import annotations

import asyncio
import struct

import pytest

import ringcrypto
from agents.control import ControlState
from models.control import Submission, SubmissionClosed
from models.reasons import ReasonCode
from tests.fixtures.pipeline import Outputs
from tests.fixtures.rounds import Scenario
from tests.fixtures.votes import REGISTRAR_KEY, registrar_keys, signed
from tests.test_control import _record
from tests.test_control import _ring as control_ring
from tests.test_control import _state as control_state

KEYS = [ringcrypto.SecretKey.from_seed(bytes([i]) * 32) for i in range(1, 4)]


def _state() -> ControlState:
    """test_control's: submission s1 (appended at 10 ms), and ring r1 version 1 at 1000 ms."""
    return control_state((control_ring(1), 1000))


def _reason(state: ControlState, t: int) -> ReasonCode | None:
    return state.lookup(
        submission_id="s1", ring_id="r1", ring_version=1, epoch=1, slot=0, timestamp_ms=t
    ).reason


def test_votes_at_or_after_the_closing_are_refused_by_broker_time():
    state = _state()
    assert state.apply(_record(signed(SubmissionClosed(submission_id="s1")), 5000)) is None
    assert _reason(state, 4999) is None  # appended before: counts, live and in a replay
    assert _reason(state, 5000) is ReasonCode.SUBMISSION_CLOSED
    assert _reason(state, 9000) is ReasonCode.SUBMISSION_CLOSED
    # closing again (even later) and re-publishing the submission change nothing
    assert state.apply(_record(signed(SubmissionClosed(submission_id="s1")), 7000)) is None
    sub = Submission(submission_id="s1", genre="g", epoch=1)
    assert state.apply(_record(signed(sub), 8000)) is None
    assert state.submissions["s1"].closed_ms == 5000 and _reason(state, 4999) is None


@pytest.mark.parametrize("batched", [False, True], ids=["apply", "apply_batch"])
def test_a_closing_the_registrar_did_not_sign_closes_nothing(batched):
    state = _state()
    forged = [
        SubmissionClosed(submission_id="s1"),  # unsigned
        signed(SubmissionClosed(submission_id="s1"), KEYS[0]),  # a key no worker trusts
        signed(SubmissionClosed(submission_id="s2")).model_copy(update={"submission_id": "s1"}),
    ]
    records = [_record(f, 2000) for f in forged]
    if batched:
        asyncio.run(state.apply_batch(records))
        verdicts = [state.verdicts.get((r.topic, r.partition, r.offset)) for r in records]
    else:
        verdicts = [state.apply(r) for r in records]
    assert [v.reason for v in verdicts] == [ReasonCode.UNAUTHORIZED_CONTROL_EVENT] * 3
    assert _reason(state, 3000) is None


def test_closing_an_unregistered_submission_is_a_conflict():
    state = _state()
    verdict = state.apply(_record(signed(SubmissionClosed(submission_id="nope")), 2000))
    assert verdict.reason is ReasonCode.CONTROL_CONFLICT and "not registered" in verdict.detail


def test_the_closing_signs_its_own_bytes_per_the_spec():
    """SPEC §13.2: lp("ringtally/registrar/v2") || lp("submission_closed") || lp(id); a
    submission's signature is never a closing's."""

    def lp(b: bytes) -> bytes:
        return struct.pack(">I", len(b)) + b

    closing = SubmissionClosed(submission_id="sub-0001")
    assert closing.signing_bytes() == (
        lp(b"ringtally/registrar/v2") + lp(b"submission_closed") + lp(b"sub-0001")
    )
    sub = signed(Submission(submission_id="sub-0001", genre="g", epoch=1))
    reused = closing.model_copy(update={"registrar_signature": sub.registrar_signature})
    assert registrar_keys().check(reused) is not None
    assert registrar_keys().check(signed(closing, REGISTRAR_KEY)) is None


@pytest.mark.integration
def test_a_worker_refuses_votes_after_the_closing_and_the_log_stays_final(pipeline):
    from connectors.sdk import Admin

    settings, _worker = pipeline
    scenario = Scenario(settings, genre="closing")
    keys, ring = scenario.seeded("closing")
    before, _ = scenario.vote(keys[0], ring, "s-closing", slot=0)
    outputs = Outputs(settings)
    try:
        outputs.wait_for(lambda o: o.outcome(str(before.vote_id)), what="the first vote")
        Admin(settings).close_submission("s-closing")
        after, _ = scenario.vote(keys[1], ring, "s-closing", slot=0)
        outputs.wait_for(lambda o: o.outcome(str(after.vote_id)), what="the late vote")
        outputs.settle(1.0)
        [(kind, _)] = outputs.outcome(str(before.vote_id))
        assert kind == "ballot"
        [(kind, body)] = outputs.outcome(str(after.vote_id))
        assert (kind, body["reason"]) == ("rejection", "submission_closed")
        assert outputs.latest_tally("s-closing")["log_size"] == 1  # the log is final
    finally:
        outputs.close()
