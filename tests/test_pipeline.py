"""The vote pipeline end to end: a real `ringtally worker` on real Kafka.

Each test builds its own reviewers, rings and submissions (unique ids), and votes
on its reviewers' slots,
so the tests share one worker without seeing each other's votes.
"""

from __future__ import annotations

import base64
import json
import uuid

import pytest

import ringcrypto
from connectors.demo.simulation import sign_vote_cast
from connectors.sdk import Admin, VoteClient, build_vote
from models import VoteCast
from models.internal import vote_id_for_token
from tests.fixtures.pipeline import Outputs

pytestmark = pytest.mark.integration


class World:
    """Reviewers in one ring (version 1) for one genre and epoch, and helpers to vote."""

    def __init__(
        self, settings, *, members: int = 4, genre: str | None = None, epoch: int = 1, k: int = 8
    ):
        self.settings = settings
        self.admin = Admin(settings)
        self.tag = uuid.uuid4().hex[:8]
        self.genre = genre or f"genre-{self.tag}"
        self.epoch = epoch
        self.keys = [ringcrypto.SecretKey.generate() for _ in range(members)]
        self.ring = ringcrypto.Ring([k.public_key for k in self.keys])
        self.ring_id = f"ring-{self.tag}"
        self.version = self.admin.register_ring(
            self.ring_id,
            genre=self.genre,
            epoch=epoch,
            public_keys=self.ring.public_keys,
            votes_per_epoch=k,
        )
        self.client = VoteClient(settings, self.keys[0])
        self._next_slot = [0] * members

    def submission(self, genre: str | None = None) -> str:
        submission_id = f"sub-{uuid.uuid4().hex[:10]}"
        self.admin.register_submission(submission_id, genre=genre or self.genre, epoch=self.epoch)
        return submission_id

    def slot(self, member: int) -> int:
        """The member's next unused slot."""
        self._next_slot[member] += 1
        return self._next_slot[member] - 1

    def vote(
        self,
        member: int,
        submission_id: str,
        slot: int | None = None,
        vote_type: str = "approve",
        **kw,
    ) -> VoteCast:
        return build_vote(
            self.keys[member],
            kw.pop("ring", self.ring),
            submission_id=submission_id,
            ring_id=kw.pop("ring_id", self.ring_id),
            ring_version=kw.pop("ring_version", 1),
            vote_type=vote_type,
            epoch=kw.pop("epoch", self.epoch),
            slot=self.slot(member) if slot is None else slot,
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
    vote = world.vote(1, sub)
    world.publish(vote)
    outputs.wait_for(lambda o: o.outcome(str(vote.vote_id)), what="the ballot")
    kind, ballot = _only_outcome(outputs, vote.vote_id)
    assert kind == "ballot"
    assert ballot["key_image"] == world.keys[1].key_image(sub.encode()).hex()
    assert vote.token_id == world.keys[1].slot_tag((1).to_bytes(8, "big"), 0).hex()
    outputs.wait_for(lambda o: o.latest_tally(sub), what="the tally")
    tally = outputs.latest_tally(sub)
    assert (tally["counts"]["approve"], tally["total"], tally["version"], tally["decision"]) == (
        1,
        1,
        1,
        "PENDING",
    )


def test_hundred_votes_racing_on_one_slot_give_one_ballot(world, outputs):
    """One tag (key, epoch, slot), a hundred different valid votes with it: one counts."""
    sub = world.submission()
    votes = [world.vote(0, sub, slot=0, vote_type=("approve", "reject")[i % 2]) for i in range(100)]
    world.publish(*votes)
    outputs.wait_for(lambda o: len(o.outcome(str(votes[0].vote_id))) >= 100, what="100 outcomes")
    outputs.settle()
    found = outputs.outcome(str(votes[0].vote_id))  # one tag, one vote id
    kinds = [k for k, _ in found]
    assert kinds.count("ballot") == 1
    assert [r["reason"] for k, r in found if k == "rejection"] == ["token_spent"] * 99
    assert outputs.latest_tally(sub)["total"] == 1


def test_same_reviewer_twice_on_one_submission_is_a_duplicate_key_image(world, outputs):
    sub = world.submission()
    a, b = world.vote(2, sub), world.vote(2, sub, vote_type="reject")
    assert a.token_id != b.token_id  # two slots
    world.publish(a)
    outputs.wait_for(lambda o: o.outcome(str(a.vote_id)))
    world.publish(b)
    outputs.wait_for(lambda o: o.outcome(str(b.vote_id)))
    assert _only_outcome(outputs, a.vote_id)[0] == "ballot"
    kind, rejection = _only_outcome(outputs, b.vote_id)
    assert (kind, rejection["reason"]) == ("rejection", "duplicate_key_image")
    assert base64.b64decode(rejection["payload_b64"]) == b.to_json()
    assert rejection["source_topic"] == world.settings.topic("votes")


def test_one_reviewer_on_two_submissions_gives_unlinkable_ballots(world, outputs):
    subs = [world.submission(), world.submission()]
    votes = [world.vote(3, s) for s in subs]
    world.publish(*votes)
    outputs.wait_for(lambda o: all(o.outcome(str(v.vote_id)) for v in votes))
    ballots = [_only_outcome(outputs, v.vote_id) for v in votes]
    assert all(kind == "ballot" for kind, _ in ballots)
    assert ballots[0][1]["key_image"] != ballots[1][1]["key_image"]
    assert votes[0].token_id != votes[1].token_id and votes[0].vote_id != votes[1].vote_id


def test_a_rotation_without_a_key_refuses_its_later_votes(world, outputs):
    """Admin.rotate_ring publishes version 2 without member 0: its vote naming version 1
    after that is ring_not_in_force; member 1's vote naming version 2 counts."""
    sub = world.submission()
    first = world.vote(0, sub)
    world.publish(first)
    outputs.wait_for(lambda o: o.outcome(str(first.vote_id)))
    v2 = world.admin.rotate_ring(
        world.ring_id, public_keys=[key.public_key for key in world.keys[1:]]
    )
    remaining = ringcrypto.Ring(v2.public_key_bytes())
    assert v2.version == 2 and world.keys[0].public_key not in remaining
    late = world.vote(0, world.submission())
    other = world.vote(1, sub, ring=remaining, ring_version=2)
    world.publish(late, other)
    outputs.wait_for(lambda o: o.outcome(str(late.vote_id)) and o.outcome(str(other.vote_id)))
    kind, rejection = _only_outcome(outputs, late.vote_id)
    assert (kind, rejection["reason"]) == ("rejection", "ring_not_in_force")
    assert _only_outcome(outputs, other.vote_id)[0] == "ballot"
    assert _only_outcome(outputs, first.vote_id)[0] == "ballot"  # the earlier vote still counts
    # The Tally is on its own topic: it can be read after the ballot. Wait for it.
    outputs.wait_for(
        lambda o: (o.latest_tally(sub) or {}).get("version") == 2, what="the tally of both"
    )
    assert outputs.latest_tally(sub)["total"] == 2


def test_forged_and_transplanted_signatures_get_their_reasons(world, outputs):
    sub, other_sub = world.submission(), world.submission()
    outsider = ringcrypto.SecretKey.generate()
    outsider_ring = ringcrypto.Ring([outsider.public_key, *world.ring.public_keys[:3]])
    # an outsider's vote carrying member 3's next tag: garbage with a stolen tag
    stolen_slot = world.slot(3)
    forged = sign_vote_cast(
        outsider,
        outsider_ring,
        submission_id=sub,
        ring_id=world.ring_id,
        ring_version=1,
        vote_type="approve",
        epoch=world.epoch,
        slot=stolen_slot,
        tag=world.keys[3].slot_tag((world.epoch).to_bytes(8, "big"), stolen_slot),
    )
    good = world.vote(1, sub)
    spare = world.keys[1].slot_tag((world.epoch).to_bytes(8, "big"), world.slot(1)).hex()

    def transplant(**change):
        fields = json.loads(good.to_json())
        fields.update(change)
        if "token_id" in change:
            fields["vote_id"] = str(vote_id_for_token(change["token_id"]))
        return VoteCast.model_validate_json(json.dumps(fields))

    moved_submission = transplant(submission_id=other_sub)
    moved_type = transplant(vote_type="reject")
    moved_token = transplant(token_id=spare)
    wrong_genre_sub = world.submission(genre=f"other-{world.tag}")
    wrong_genre = world.vote(2, wrong_genre_sub)
    cases = {
        forged: "bad_signature",
        moved_submission: "bad_signature",
        moved_type: "bad_signature",
        moved_token: "malformed",  # not the tag the signature carries: refused before checking
        wrong_genre: "ring_genre_mismatch",
    }
    world.publish(*cases)
    outputs.wait_for(lambda o: all(o.outcome(str(v.vote_id)) for v in cases))
    for vote, reason in cases.items():  # three share good's tag and vote id: by payload
        payload = base64.b64encode(vote.to_json()).decode()
        found = [r["reason"] for r in outputs.rejections if r["payload_b64"] == payload]
        assert found == [reason], [
            r["detail"] for r in outputs.rejections if r["payload_b64"] == payload
        ]
    # The stolen tag burnt nothing: its owner's own vote with it still counts.
    retry = world.vote(3, sub, slot=stolen_slot)
    assert retry.token_id == forged.token_id
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
    votes = [world.vote(i, sub, vote_type=vt) for i, vt in enumerate(mix)]
    world.publish(*votes)
    outputs.wait_for(
        lambda o: (o.latest_tally(sub) or {}).get("version") == len(mix), what="final tally"
    )
    tally = outputs.latest_tally(sub)
    assert tally["decision"] == decision
    assert tally["rules_version"] == "ringtally-rules-v1;min_votes=3;flag_threshold=3"


def test_the_same_vote_at_a_second_position_gets_its_own_duplicate_record(world, outputs):
    """Issue 16: a byte-identical copy at another votes-topic position (a producer's retry,
    a replay of someone's vote) is a new record: it gets its own outcome, a
    ``duplicate_record`` rejection at its position, and the vote counts once. On the old
    code the copy re-emitted the first position's ballot and had no outcome of its own."""
    sub = world.submission()
    vote = world.vote(0, sub)
    key, payload = vote.token_id.encode(), vote.to_json()
    world.client.publish_raw(key, payload, flush=False)
    world.client.publish_raw(key, payload)  # same key: same partition, the next offset
    outputs.wait_for(lambda o: len(o.outcome(str(vote.vote_id))) >= 2, what="two outcomes")
    outputs.settle()
    found = outputs.outcome(str(vote.vote_id))
    assert sorted(kind for kind, _ in found) == ["ballot", "rejection"], found
    (ballot,) = [o for kind, o in found if kind == "ballot"]
    (copy,) = [o for kind, o in found if kind == "rejection"]
    assert copy["reason"] == "duplicate_record"
    assert copy["source_partition"] == ballot["source_partition"]
    assert copy["source_offset"] > ballot["source_offset"]
    assert base64.b64decode(copy["payload_b64"]) == payload
    assert copy.get("leaf_index") is None  # not a leaf of the submission's log
    tally = outputs.latest_tally(sub)
    assert (tally["total"], tally["version"], tally["log_size"]) == (1, 1, 1)


def test_malformed_payloads_become_rejections_and_the_worker_keeps_going(pipeline, world, outputs):
    _, worker = pipeline
    sub = world.submission()
    good = json.loads(world.vote(0, sub).to_json())  # a valid vote to mangle
    key = good["token_id"].encode()
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
    mine = lambda o: [r for r in o.rejections if r.get("token_id") == good["token_id"]]  # noqa: E731
    outputs.wait_for(lambda o: len(mine(o)) >= len(payloads), what="malformed rejections")
    assert {r["reason"] for r in mine(outputs)} == {"malformed"}
    assert all(r["detail"] for r in mine(outputs))
    # still alive and still counting
    vote = world.vote(1, sub)
    world.publish(vote)
    outputs.wait_for(lambda o: o.outcome(str(vote.vote_id)))
    assert _only_outcome(outputs, vote.vote_id)[0] == "ballot"
    assert worker.alive()


def test_unknown_ring_version_submission_and_slot_each_get_their_reason(world, outputs):
    sub = world.submission()
    cases = {
        world.vote(0, sub, ring_id="no-such-ring"): "unknown_ring",
        world.vote(1, sub, ring_version=2): "unknown_ring",
        world.vote(2, f"no-such-sub-{world.tag}"): "unknown_submission",
        world.vote(3, sub, slot=8): "slot_out_of_range",  # k = 8: slots 0..7
        world.vote(3, sub, epoch=2): "epoch_mismatch",
    }
    world.publish(*cases)
    outputs.wait_for(lambda o: all(o.outcome(str(v.vote_id)) for v in cases))
    for vote, reason in cases.items():
        assert _only_outcome(outputs, vote.vote_id)[1]["reason"] == reason
