"""The vote pipeline end to end: a real `ringtally worker` on real Kafka.

Each test builds its own reviewers, rings, submissions and tokens (unique ids),
so the tests share one worker without seeing each other's votes.
"""

from __future__ import annotations

import base64
import json
import secrets
import time
import uuid

import pytest
from confluent_kafka import Consumer

import ringcrypto
from connectors.sdk import Admin, VoteClient, build_vote
from connectors.sdk.producer import SdkProducer
from models import VoteCast
from models.internal import vote_id_for_token
from tests.fixtures.pipeline import Outputs

pytestmark = pytest.mark.integration


class World:
    """Reviewers in one ring for one genre and epoch, and helpers to vote."""

    def __init__(self, settings, *, members: int = 4, genre: str | None = None, epoch: int = 1):
        self.settings = settings
        self.admin = Admin(settings)
        self.tag = uuid.uuid4().hex[:8]
        self.genre = genre or f"genre-{self.tag}"
        self.epoch = epoch
        self.keys = [ringcrypto.SecretKey.generate() for _ in range(members)]
        self.ring = ringcrypto.Ring([k.public_key for k in self.keys])
        self.ring_id = f"ring-{self.tag}"
        self.admin.register_ring(
            self.ring_id, genre=self.genre, epoch=epoch, public_keys=self.ring.public_keys
        )
        self.client = VoteClient(settings, self.keys[0])

    def submission(self, genre: str | None = None) -> str:
        submission_id = f"sub-{uuid.uuid4().hex[:10]}"
        self.admin.register_submission(submission_id, genre=genre or self.genre, epoch=self.epoch)
        return submission_id

    def tokens(self, count: int = 1, credential: str | None = None) -> list[str]:
        credential = credential or secrets.token_hex(32)
        return self.admin.issue_tokens(credential, epoch=self.epoch, count=count)

    def vote(
        self, member: int, submission_id: str, token_id: str, vote_type: str = "approve", **kw
    ) -> VoteCast:
        return build_vote(
            self.keys[member],
            self.ring,
            submission_id=submission_id,
            ring_id=kw.pop("ring_id", self.ring_id),
            vote_type=vote_type,
            token_id=token_id,
            epoch=kw.pop("epoch", self.epoch),
            batchable=kw.pop("batchable", True),
        )

    def publish(self, *votes: VoteCast) -> None:
        for v in votes:
            self.client.publish(v, flush=False)
        self.client.flush()


@pytest.fixture
def world(pipeline):
    settings, _ = pipeline
    return World(settings)


@pytest.fixture
def outputs(pipeline):
    out = Outputs(pipeline[0])
    yield out
    out.close()


def _only_outcome(outputs: Outputs, vote_id) -> tuple[str, dict]:
    found = outputs.outcome(str(vote_id))
    assert len({(kind, json.dumps(o, sort_keys=True)) for kind, o in found}) == 1, found
    return found[0]


def test_a_valid_vote_becomes_a_ballot_and_a_tally(world, outputs):
    sub = world.submission()
    [token] = world.tokens()
    vote = world.vote(1, sub, token)
    world.publish(vote)
    outputs.wait_for(lambda o: o.outcome(str(vote.vote_id)), what="the ballot")
    kind, ballot = _only_outcome(outputs, vote.vote_id)
    assert kind == "ballot"
    assert ballot["key_image"] == world.keys[1].key_image(sub.encode()).hex()
    outputs.wait_for(lambda o: o.latest_tally(sub), what="the tally")
    tally = outputs.latest_tally(sub)
    assert (tally["counts"]["approve"], tally["total"], tally["version"], tally["decision"]) == (
        1,
        1,
        1,
        "PENDING",
    )


def test_hundred_votes_racing_on_one_token_give_one_ballot(world, outputs):
    sub = world.submission()
    [token] = world.tokens()
    votes = [
        world.vote(i % 4, sub, token, vote_type=("approve", "reject")[i % 2]) for i in range(100)
    ]
    world.publish(*votes)
    outputs.wait_for(lambda o: len(o.outcome(str(votes[0].vote_id))) >= 100, what="100 outcomes")
    outputs.settle()
    found = outputs.outcome(str(votes[0].vote_id))
    kinds = [k for k, _ in found]
    assert kinds.count("ballot") == 1
    assert [r["reason"] for k, r in found if k == "rejection"] == ["token_spent"] * 99
    assert outputs.latest_tally(sub)["total"] == 1


def test_same_reviewer_twice_on_one_submission_is_a_duplicate_key_image(world, outputs):
    sub = world.submission()
    first, second = world.tokens(2)
    a, b = world.vote(2, sub, first), world.vote(2, sub, second, vote_type="reject")
    world.publish(a)
    outputs.wait_for(lambda o: o.outcome(str(a.vote_id)))
    world.publish(b)
    outputs.wait_for(lambda o: o.outcome(str(b.vote_id)))
    assert _only_outcome(outputs, a.vote_id)[0] == "ballot"
    kind, rejection = _only_outcome(outputs, b.vote_id)
    assert (kind, rejection["reason"]) == ("rejection", "duplicate_key_image")
    assert base64.b64decode(rejection["payload_b64"]) == b.to_json()
    assert rejection["source_topic"] == world.settings.topic("votes")


def test_a_double_vote_counts_the_half_cast_first_even_when_it_arrives_last(world, outputs):
    """DESIGN invariant 6: the record timestamps, not arrival order, pick the counted half."""
    sub = world.submission()
    first, second = world.tokens(2)
    cast_first = world.vote(3, sub, first, vote_type="flag")
    cast_later = world.vote(3, sub, second, vote_type="reject")
    producer = SdkProducer(world.settings)
    now = int(time.time() * 1000)
    votes = world.settings.topic("votes")
    producer.send(votes, second.encode(), cast_later.to_json(), timestamp_ms=now)
    producer.flush()
    outputs.wait_for(lambda o: o.outcome(str(cast_later.vote_id)), what="the later vote's ballot")
    assert _only_outcome(outputs, cast_later.vote_id)[0] == "ballot"
    producer.send(votes, first.encode(), cast_first.to_json(), timestamp_ms=now - 60_000)
    producer.flush()
    outputs.wait_for(
        lambda o: (
            o.outcome(str(cast_first.vote_id)) and len(o.outcome(str(cast_later.vote_id))) > 1
        ),
        what="the earlier vote's ballot and the retraction",
    )
    outputs.settle()
    kind, ballot = _only_outcome(outputs, cast_first.vote_id)
    assert kind == "ballot" and ballot["supersedes"] == str(cast_later.vote_id)
    later = outputs.outcome(str(cast_later.vote_id))
    assert [k for k, _ in later] == ["ballot", "rejection"]
    assert later[1][1]["reason"] == "duplicate_key_image"
    assert base64.b64decode(later[1][1]["payload_b64"]) == cast_later.to_json()
    tally = outputs.latest_tally(sub)
    assert (tally["counts"]["flag"], tally["counts"]["reject"], tally["total"]) == (1, 0, 1)
    assert tally["version"] == 2
    kinds = [e["kind"] for e in outputs.audit if e.get("submission_id") == sub]
    assert kinds == ["ballot", "retraction", "ballot"]


def test_one_reviewer_on_two_submissions_gives_unlinkable_ballots(world, outputs):
    subs = [world.submission(), world.submission()]
    tokens = world.tokens(2)
    votes = [world.vote(3, s, t) for s, t in zip(subs, tokens, strict=True)]
    world.publish(*votes)
    outputs.wait_for(lambda o: all(o.outcome(str(v.vote_id)) for v in votes))
    images = [_only_outcome(outputs, v.vote_id)[1]["key_image"] for v in votes]
    assert all(_only_outcome(outputs, v.vote_id)[0] == "ballot" for v in votes)
    assert images[0] != images[1]


def test_a_revoked_credentials_later_votes_are_token_revoked(world, outputs):
    credential = secrets.token_hex(32)
    sub = world.submission()
    spent, unused = world.tokens(2, credential=credential)
    first = world.vote(0, sub, spent)
    world.publish(first)
    outputs.wait_for(lambda o: o.outcome(str(first.vote_id)))
    world.admin.revoke_credential(credential, "credential leaked")
    # The fan-out puts a TokenRevoked on each token's own log; a vote published
    # after that record is refused.
    revoked = _wait_for_token_revoked(world.settings, {spent, unused})
    assert revoked == {spent, unused}
    late = world.vote(1, sub, unused)
    world.publish(late)
    outputs.wait_for(lambda o: o.outcome(str(late.vote_id)), what="the late vote")
    kind, rejection = _only_outcome(outputs, late.vote_id)
    assert (kind, rejection["reason"]) == ("rejection", "token_revoked")
    assert "credential leaked" in rejection["detail"]
    assert _only_outcome(outputs, first.vote_id)[0] == "ballot"  # the earlier vote still counts
    assert outputs.latest_tally(sub)["total"] == 1


def _wait_for_token_revoked(settings, tokens: set[str], timeout: float = 60.0) -> set[str]:
    """Read the votes topic until a TokenRevoked for each token has appeared."""
    consumer = Consumer(
        {
            "bootstrap.servers": settings.kafka_bootstrap,
            "group.id": f"t-{uuid.uuid4().hex}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    consumer.subscribe([settings.topic("votes")])
    seen: set[str] = set()
    deadline = time.monotonic() + timeout
    try:
        while seen != tokens and time.monotonic() < deadline:
            for msg in consumer.consume(500, timeout=0.5):
                if msg.error() is None and msg.key().decode() in tokens:
                    body = json.loads(msg.value())
                    if body.get("type") == "token_revoked":
                        seen.add(body["token_id"])
    finally:
        consumer.close()
    return seen


def test_forged_and_transplanted_signatures_get_their_reasons(world, outputs):
    sub, other_sub = world.submission(), world.submission()
    tokens = world.tokens(6)
    outsider = ringcrypto.SecretKey.generate()
    outsider_ring = ringcrypto.Ring([outsider.public_key, *world.ring.public_keys[:3]])
    forged = build_vote(
        outsider,
        outsider_ring,
        submission_id=sub,
        ring_id=world.ring_id,
        vote_type="approve",
        token_id=tokens[0],
        epoch=world.epoch,
    )
    good = world.vote(1, sub, tokens[1])

    def transplant(**change):
        fields = json.loads(good.to_json())
        fields.update(change)
        return VoteCast.model_validate_json(json.dumps(fields))

    moved_submission = transplant(
        submission_id=other_sub, token_id=tokens[2], vote_id=str(vote_id_for_token(tokens[2]))
    )
    moved_type = transplant(
        vote_type="reject", token_id=tokens[3], vote_id=str(vote_id_for_token(tokens[3]))
    )
    moved_token = transplant(token_id=tokens[4], vote_id=str(vote_id_for_token(tokens[4])))
    wrong_genre_sub = world.submission(genre=f"other-{world.tag}")
    wrong_genre = world.vote(2, wrong_genre_sub, tokens[5])
    cases = {
        forged: "bad_signature",
        moved_submission: "bad_signature",
        moved_type: "bad_signature",
        moved_token: "bad_signature",
        wrong_genre: "ring_genre_mismatch",
    }
    world.publish(*cases)
    outputs.wait_for(lambda o: all(o.outcome(str(v.vote_id)) for v in cases))
    for vote, reason in cases.items():
        kind, rejection = _only_outcome(outputs, vote.vote_id)
        assert (kind, rejection["reason"]) == ("rejection", reason), vote.token_id
    # Garbage sent with a stolen token id burns nothing: the real vote still counts.
    retry = world.vote(3, sub, tokens[0])
    world.publish(retry)
    outputs.wait_for(lambda o: len(o.outcome(str(retry.vote_id))) >= 2)
    assert [k for k, _ in outputs.outcome(str(retry.vote_id))].count("ballot") == 1


@pytest.mark.parametrize(
    ("mix", "decision"),
    [
        (["approve", "approve", "reject"], "APPROVED"),
        (["reject", "reject", "approve"], "REJECTED"),
        (["approve", "reject", "flag", "escalate"], "ESCALATED"),  # tie
        (["flag", "flag", "flag", "approve"], "ESCALATED"),
        (["approve", "reject"], "PENDING"),
    ],
)
def test_decision_rules_on_representative_mixes(pipeline, outputs, mix, decision):
    world = World(pipeline[0], members=len(mix))
    sub = world.submission()
    tokens = world.tokens(len(mix))
    votes = [
        world.vote(i, sub, t, vote_type=vt)
        for i, (t, vt) in enumerate(zip(tokens, mix, strict=True))
    ]
    world.publish(*votes)
    outputs.wait_for(
        lambda o: (o.latest_tally(sub) or {}).get("version") == len(mix), what="final tally"
    )
    tally = outputs.latest_tally(sub)
    assert tally["decision"] == decision
    assert tally["rules_version"] == "ringtally-rules-v1;min_votes=3;flag_threshold=3"


def test_the_same_message_delivered_twice_changes_nothing(world, outputs):
    sub = world.submission()
    [token] = world.tokens()
    vote = world.vote(0, sub, token)
    world.publish(vote)
    outputs.wait_for(lambda o: o.outcome(str(vote.vote_id)))
    world.publish(vote)  # the very same bytes again, at a new offset
    outputs.wait_for(lambda o: len(o.outcome(str(vote.vote_id))) >= 2)
    outputs.settle()
    kinds = {k for k, _ in outputs.outcome(str(vote.vote_id))}
    assert kinds == {"ballot"}  # re-emitted identically; no token_spent for a redelivery
    assert len({json.dumps(b, sort_keys=True) for k, b in outputs.outcome(str(vote.vote_id))}) == 1
    assert outputs.latest_tally(sub)["version"] == 1


def test_malformed_payloads_become_rejections_and_the_worker_keeps_going(pipeline, world, outputs):
    _, worker = pipeline
    sub = world.submission()
    tokens = world.tokens(2)
    good = json.loads(world.vote(0, sub, tokens[1]).to_json())  # a valid vote to mangle
    key = tokens[1].encode()
    payloads = [
        b"not json at all",
        b'{"type": "vote_cast"}',
        json.dumps({**good, "epoch": "1"}).encode(),  # wrong type
        json.dumps({**good, "submission_id": "x" * 100_000}).encode(),  # huge string
        json.dumps({**good, "signature": base64.b64encode(b"\x02" + bytes(100)).decode()}).encode(),
        b"\xff" * (300 * 1024),  # over the payload cap
        # decodes as a vote, but its signature is for a ring of 2,000 members
        json.dumps(
            {**good, "signature": base64.b64encode(bytes(1 + 64 + 32 * 2000)).decode()}
        ).encode(),
    ]
    for payload in payloads:
        world.client.publish_raw(key, payload, flush=False)
    world.client.flush()
    mine = lambda o: [r for r in o.rejections if r.get("token_id") == tokens[1]]  # noqa: E731
    outputs.wait_for(lambda o: len(mine(o)) >= len(payloads), what="malformed rejections")
    assert {r["reason"] for r in mine(outputs)} == {"malformed"}
    assert all(r["detail"] for r in mine(outputs))
    # still alive and still counting
    vote = world.vote(1, sub, tokens[0])
    world.publish(vote)
    outputs.wait_for(lambda o: o.outcome(str(vote.vote_id)))
    assert _only_outcome(outputs, vote.vote_id)[0] == "ballot"
    assert worker.alive()


def test_unknown_token_ring_and_submission_each_get_their_reason(world, outputs):
    sub = world.submission()
    [token_a, token_b] = world.tokens(2)
    never_issued = f"never-{uuid.uuid4().hex}"
    cases = {
        world.vote(0, sub, never_issued): "unknown_token",
        world.vote(1, sub, token_a, ring_id="no-such-ring"): "unknown_ring",
        world.vote(2, f"no-such-sub-{world.tag}", token_b): "unknown_submission",
    }
    world.publish(*cases)
    outputs.wait_for(lambda o: all(o.outcome(str(v.vote_id)) for v in cases))
    for vote, reason in cases.items():
        assert _only_outcome(outputs, vote.vote_id)[1]["reason"] == reason
