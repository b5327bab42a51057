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


def _audit_json(**changes) -> bytes:
    """An audit event (the first of chain tally-0) with ``changes``, its hash computed."""
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
        **changes,
    }
    body = json.dumps(content, sort_keys=True, separators=(",", ":")).encode()
    digest = hashlib.sha256(bytes.fromhex(content["prev_hash"]) + body).hexdigest()
    return json.dumps({**content, "hash": digest}).encode()


def test_an_audit_event_with_a_field_added_later_still_checks():
    """The hash covers every field of the event, the new one too: an older reader keeps it."""
    value = _audit_json(**NEW)
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


# --- values added to an enumeration later (issue 18 review, finding 5) --------------------


def _with(model, **changes) -> bytes:
    return json.dumps({**json.loads(model.to_json()), **changes}).encode()


def test_an_output_with_a_code_added_later_is_kept_with_its_string():
    """Fails on the old code: "some_future_code" (and a new decision, a new audit kind)
    made the whole record invalid, so an older SDK or sink dropped it."""
    from connectors.postgres.decode import decode
    from models import Rejection, Tally
    from models.fields import UnknownCode

    rejection = Rejection.model_validate_json(_with(make_rejection(2), reason="some_future_code"))
    assert rejection.reason == "some_future_code" and isinstance(rejection.reason, UnknownCode)
    assert rejection.reason.value == "some_future_code"
    tally = Tally.model_validate_json(_with(make_tally("sub-1", 3, approve=3), decision="DEFERRED"))
    assert tally.decision.value == "DEFERRED"
    for kind, model in (("rejections", make_rejection(4)), ("tallies", make_tally("s", 1))):
        field = "reason" if kind == "rejections" else "decision"
        value = _with(model, **{field: "added_later"})
        assert isinstance(decode(kind, _record(f"ringtally.{kind}", value)), Decoded)


def test_known_codes_stay_typed():
    from models import Decision, ReasonCode, Rejection, Tally

    rejection = Rejection.model_validate_json(make_rejection(2).to_json())
    assert rejection.reason is ReasonCode.TOKEN_SPENT and rejection.reason.meaning
    assert Tally.model_validate_json(make_tally("s", 1).to_json()).decision is Decision.PENDING


def test_an_audit_event_of_a_kind_added_later_still_checks():
    value = _audit_json(kind="some_future_kind", reason="some_future_code", decision="DEFERRED")
    event = AuditEvent.model_validate_json(value)
    assert event.kind == "some_future_kind" and first_break([event]) is None


def test_ringtally_emits_only_codes_it_knows():
    """A worker building an output from an unknown string cannot publish it."""
    from models import Rejection

    unknown = Rejection.model_validate_json(_with(make_rejection(2), reason="not_ours"))
    with pytest.raises(ValueError, match="no code of this release"):
        unknown.to_json()


def test_the_published_schemas_say_the_lists_are_open_and_inputs_stay_closed():
    """Fails on the old code: the schemas listed closed enums for reason, decision, kind."""
    from jsonschema import Draft202012Validator

    from models.schema import schema_documents

    documents = schema_documents()
    audit = {
        "chain": "tally-0",
        "sequence": 1,
        "prev_hash": "0" * 64,
        "hash": "0" * 64,
        "kind": "ballot",
        "source_partition": 0,
        "source_offset": 1,
    }
    for name, record, field, value in (
        ("rejection", json.loads(make_rejection(2).to_json()), "reason", "some_future_code"),
        ("tally", json.loads(make_tally("s", 1).to_json()), "decision", "DEFERRED"),
        ("audit_event", audit, "kind", "some_future_kind"),
    ):
        validator = Draft202012Validator(documents[name])
        assert not list(validator.iter_errors(record)), name
        assert not list(validator.iter_errors({**record, field: value})), (name, field)
        assert list(validator.iter_errors({**record, field: "has space"})), (name, field)
    key = ringcrypto.SecretKey.generate()
    vote = json.loads(
        make_vote(key, ringcrypto.Ring([key.public_key]), submission_id="s1").to_json()
    )
    votes = Draft202012Validator(documents["votes"])
    assert not list(votes.iter_errors(vote))
    assert list(votes.iter_errors({**vote, "vote_type": "abstain"}))
    with pytest.raises(ValidationError):
        VoteCast.model_validate_json(json.dumps({**vote, "vote_type": "abstain"}))
