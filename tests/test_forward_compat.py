"""Output messages are forward-compatible for readers; inputs stay strict.

A field added to a ballot, tally, rejection or audit event by a later release
must not make an older SDK, sink or read model drop the record; a vote or
control record with a field the workers do not know is still ``malformed``.
"""

from __future__ import annotations

import hashlib
import json
import uuid

import pytest
from pydantic import ValidationError

import ringcrypto
from connectors.postgres.decode import Decoded, Record, decode
from connectors.sdk.outcome import Tracker
from models import AuditEvent, Ring, Submission, VoteCast, first_break, genesis_hash
from tests.fixtures.sink_records import make_ballot, make_rejection, make_tally
from tests.fixtures.votes import make_vote

NEW = {"added_in_a_later_release": {"nested": [1, 2]}}


def _with_new_field(model) -> bytes:
    return json.dumps({**json.loads(model.to_json()), **NEW}).encode()


def _record(topic: str, value: bytes) -> Record:
    return Record(topic, 0, 7, 1_000, b"k", value)


@pytest.mark.parametrize(
    ("kind", "model"),
    [
        ("ballots", make_ballot(1)),
        ("tallies", make_tally("sub-1", 3, approve=2, reject=1)),
        ("rejections", make_rejection(2)),
    ],
)
def test_the_sink_reads_an_output_with_a_field_added_later(kind, model):
    decoded = decode(kind, _record(f"ringtally.{kind}", _with_new_field(model)))
    assert isinstance(decoded, Decoded), decoded
    assert decoded.model == model


def test_the_sdk_finds_a_ballot_with_a_field_added_later():
    """The producer SDK's outcome tracker (what Voter.cast(wait=...) reads) finds the ballot."""
    ballot = make_ballot(3)
    tracker = Tracker("ringtally.votes", "ringtally.ballots", "ringtally.rejections")
    tracker.register(ballot.vote_id, "tag")
    tracker.offer("ringtally.ballots", 0, 5, _with_new_field(ballot))
    assert tracker.take(ballot.vote_id) == ballot


def test_an_audit_event_with_a_field_added_later_still_checks():
    """The hash covers every field of the event, the new one too: an older reader keeps it."""
    chain = "tally-0"
    content = {
        "chain": chain,
        "sequence": 1,
        "prev_hash": genesis_hash(chain),
        "kind": "ballot",
        "vote_id": str(uuid.uuid4()),
        "submission_id": "sub-1",
        "key_image": "ab" * 32,
        "reason": None,
        "decision": "PENDING",
        "source_partition": 0,
        "source_offset": 4,
        **NEW,
    }
    body = json.dumps(content, sort_keys=True, separators=(",", ":")).encode()
    digest = hashlib.sha256(bytes.fromhex(content["prev_hash"]) + body).hexdigest()
    value = json.dumps({**content, "hash": digest}).encode()
    event = AuditEvent.model_validate_json(value)
    assert first_break([event]) is None
    assert isinstance(decode("audit", _record("ringtally.audit", value)), Decoded)
    tampered = json.loads(value)
    tampered["added_in_a_later_release"]["nested"] = [1, 3]
    assert (
        first_break([AuditEvent.model_validate_json(json.dumps(tampered))]).problem
        == "content altered"
    )


def test_inputs_stay_strict_an_unknown_field_is_refused():
    key = ringcrypto.SecretKey.generate()
    vote = make_vote(key, ringcrypto.Ring([key.public_key]), submission_id="s1")
    with pytest.raises(ValidationError, match="added_in_a_later_release"):
        VoteCast.model_validate_json(_with_new_field(vote))
    submission = Submission(submission_id="s1", genre="g", epoch=1)
    with pytest.raises(ValidationError, match="added_in_a_later_release"):
        Submission.model_validate_json(_with_new_field(submission))
    assert Ring.model_config["extra"] == "forbid"
