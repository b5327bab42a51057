"""What a voter (a ring key and a producer credential) can write, and what it changes: votes only.

Protocol v2 (docs/protocol.md, DESIGN invariant 10): rings and submissions are
registrar-signed control records on their own topics, and nothing is issued
on the votes topic. Against a real worker, an attacker holding reviewer A's
key publishes:

* a ring version 2 that adds an outsider, signed with A's own key (a "registrar"
  the workers do not trust): ``unauthorized_control_event``, and the outsider's
  vote naming version 2 is ``unknown_ring`` (that version does not exist);
* the same record unsigned: ``unauthorized_control_event``;
* the genuine registrar signature of version 1 pasted onto that version 2:
  ``unauthorized_control_event`` (the signature covers every field);
* a submission signed with A's key: ``unauthorized_control_event``, and a vote on
  it is ``unknown_submission``;
* a registrar-signed version 1 with other members (a replay of a signed record
  under another content is impossible; a conflicting signed one is what an
  operator mistake looks like): ``control_conflict``, version 1 unchanged.

After all that, A's and B's genuine votes on version 1 count: nothing the
attacker wrote changed what the workers accept. (v1's equivalent was F5:
unsigned TokenIssued/TokenRevoked on the votes topic.)
"""

from __future__ import annotations

import hashlib

import pytest

import ringcrypto
from connectors.sdk.registrar import Registrar
from models import Ring, Submission
from tests.fixtures.pipeline import Outputs
from tests.fixtures.rounds import Scenario

pytestmark = pytest.mark.integration

CONTROL = "unauthorized_control_event"


def _key(name: str) -> ringcrypto.SecretKey:
    return ringcrypto.SecretKey.from_seed(hashlib.sha256(f"authz/{name}".encode()).digest())


def test_a_voter_can_change_no_ring_and_no_submission(pipeline):
    settings, worker = pipeline
    scenario = Scenario(settings, genre="authz")
    a, b, outsider = _key("a"), _key("b"), _key("outsider")
    v1 = scenario.ring("ring-authz", [a, b], k=4)
    scenario.submission("authz-1")
    voter_as_registrar = Registrar(a)  # the voter's own key; the workers trust another

    members = ringcrypto.Ring([a.public_key, b.public_key, outsider.public_key]).public_keys
    widened = Ring.model_validate(
        {**v1.model_dump(), "version": 2, "public_keys": [pk.hex() for pk in members]}
        | {"registrar_signature": None}
    )
    forged_records = [
        ("rings", b"ring-authz", voter_as_registrar.sign_ring(widened).to_json()),
        ("rings", b"ring-authz", widened.to_json()),
        (
            "rings",
            b"ring-authz",
            widened.model_copy(update={"registrar_signature": v1.registrar_signature}).to_json(),
        ),
        (
            "submissions",
            b"authz-forged",
            voter_as_registrar.sign_submission(
                Submission(submission_id="authz-forged", genre="authz", epoch=1)
            ).to_json(),
        ),
    ]
    positions = [scenario._send(topic, key, value)[:2] for topic, key, value in forged_records]
    conflicting = scenario.registrar.sign_ring(
        Ring.model_validate(
            {**v1.model_dump(), "public_keys": [outsider.public_key.hex()]}
            | {"registrar_signature": None}
        )
    )
    positions.append(scenario._send("rings", b"ring-authz", conflicting.to_json())[:2])

    outsider_vote, _ = scenario.vote(outsider, widened, "authz-1", slot=0)
    on_forged_sub, _ = scenario.vote(a, v1, "authz-forged", slot=0)
    genuine = [
        scenario.vote(a, v1, "authz-1", slot=1)[0],
        scenario.vote(b, v1, "authz-1", slot=0)[0],
    ]

    outputs = Outputs(settings)
    try:
        rings, subs = settings.topic("rings"), settings.topic("submissions")

        def control_rejections(o):
            return {
                (r["source_topic"], r["source_partition"], r["source_offset"]): r
                for r in o.rejections
                if r["source_topic"] in (rings, subs)
            }

        votes = [outsider_vote, on_forged_sub, *genuine]
        outputs.wait_for(
            lambda o: (
                len(control_rejections(o)) >= 5 and all(o.outcome(str(v.vote_id)) for v in votes)
            ),
            what="five control rejections and four votes' outcomes",
        )
        outputs.settle(1.0)
        found = control_rejections(outputs)
        topics = [rings, rings, rings, subs, rings]
        reasons = [found[(t, *pos)]["reason"] for t, pos in zip(topics, positions, strict=True)]
        assert reasons == [CONTROL, CONTROL, CONTROL, CONTROL, "control_conflict"]
        assert len(found) == 5
        assert [r["reason"] for _, r in outputs.outcome(str(outsider_vote.vote_id))] == [
            "unknown_ring"
        ]
        assert [r["reason"] for _, r in outputs.outcome(str(on_forged_sub.vote_id))] == [
            "unknown_submission"
        ]
        for vote in genuine:
            assert [k for k, _ in outputs.outcome(str(vote.vote_id))] == ["ballot"]
        assert outputs.latest_tally("authz-1")["total"] == 2
        assert worker.alive()
    finally:
        outputs.close()
