"""A seeded review round with its own ground truth: for the demo, benchmarks and tests.

:func:`build_round` makes genres, one registrar-signed ring per genre (version
1), submissions, and the votes of every reviewer, each on a slot of its own
(protocol v2, docs/protocol.md: nothing is issued; a vote's token is its slot
tag). With ``attacks`` it mixes in hostile traffic and records for every
planned record the one outcome the pipeline must reach:

- ``double_vote``: same reviewer and submission, another slot: the first appended
  counts, the second is ``duplicate_key_image``;
- ``slot_reuse``: a spent slot (the same tag) on another submission: ``token_spent``;
- ``quota``: slot ``k``, the vote after the k allowed ones: ``slot_out_of_range``;
- ``theft``: another reviewer's tag, signed with the thief's key: ``bad_signature``,
  and the owner's own vote with that tag, appended later, still counts;
- ``forged_signature`` (a key outside the ring) and ``transplanted_signature`` (a
  genuine signature moved to another submission): ``bad_signature``;
- ``wrong_partition``: a byte copy of a vote on a partition not its key's;
- ``malformed``: not a vote at all;
- ``unsigned_ring``: a ring version no registrar signed, on the rings topic:
  ``unauthorized_control_event``;
- ``revoked_reviewer``: after a rotation (ring version 2 without their key), their
  vote naming version 1 is ``ring_not_in_force``; one naming version 2 (which they
  cannot sign for) ``bad_signature``.

Order matters to three of them, and the round says so instead of hoping:
a record with :attr:`Planned.after` must be *appended* after that record
(the double vote's second half, a slot reuse, a theft victim's own vote);
:class:`Publisher` waits for the first one's broker timestamp to pass before
sending it. The rotation splits the round in two phases: :attr:`ReviewRound.votes`
go before it, :attr:`ReviewRound.late_votes` after it (docs/demo.md).

Everything but the signatures' hedged nonces follows from the seed, so two
rounds with one seed expect identical outcomes.
"""

from __future__ import annotations

import base64
import hashlib
import json
import random
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from models import Ring, Submission, VoteCast, VoteCounts, VoteType
from models.decision import Decision, decide
from models.encoding import epoch_bytes
from models.internal import vote_id_for_token
from models.reasons import ReasonCode
from streams.partitioner import partition_for_key

__all__ = ["Attack", "Planned", "Publisher", "ReviewRound", "build_round", "sign_vote_cast"]

VOTE_TYPES = (VoteType.APPROVE, VoteType.REJECT, VoteType.FLAG, VoteType.ESCALATE)
#: Slots each reviewer has beyond its honest votes (double votes, thefts, transplants).
SPARE_SLOTS = 4
#: When every version of the round's rings says it is valid from (its record's broker
#: time is later, so that is when it takes effect).
VALID_FROM = datetime(2026, 1, 1, tzinfo=UTC)


class Attack:
    """Kinds of hostile traffic the round can mix in (also the labels in reports)."""

    DOUBLE_VOTE = "double_vote"
    SLOT_REUSE = "slot_reuse"
    QUOTA = "quota"
    THEFT = "theft"
    FORGED = "forged_signature"
    TRANSPLANT = "transplanted_signature"
    WRONG_PARTITION = "wrong_partition"
    MALFORMED = "malformed"
    UNSIGNED_RING = "unsigned_ring"
    REVOKED = "revoked_reviewer"


@dataclass(slots=True)
class Planned:
    """One input record (a vote, or a control record) and what must become of it."""

    key: bytes
    value: bytes
    #: "ballot", a ReasonCode value, or "control" (a control record that counts: no outcome).
    expect: str
    label: str = "honest"
    vote_id: str | None = None
    submission_id: str | None = None
    vote_type: str | None = None
    #: Who cast it ("<genre>/<member>"): ground truth for the unlinkability test, never sent.
    reviewer: str | None = None
    #: Short topic name ("votes", "rings", "submissions").
    topic: str = "votes"
    #: Publish on a partition other than the key's murmur2 partition.
    wrong_partition: bool = False
    #: Identity within the round, and the record that must be appended before this one.
    ref: int = -1
    after: int | None = None

    @property
    def has_outcome(self) -> bool:
        """Does the pipeline publish a ballot or a rejection for this record?"""
        return self.expect != "control"


@dataclass
class ReviewRound:
    seed: int
    epoch: int
    genres: list[str]
    #: genre -> the ring's first version (signed).
    rings: dict[str, Ring]
    submissions: dict[str, Submission]
    #: Rings and submissions (and hostile control records), published before any vote.
    control: list[Planned]
    #: Votes before the rotation.
    votes: list[Planned]
    #: Ring versions that revoke a reviewer (published after :attr:`votes`).
    rotation: list[Planned] = field(default_factory=list)
    #: Votes after the rotation.
    late_votes: list[Planned] = field(default_factory=list)
    #: (counted, rejected) vote ids of each double vote: the first appended counts.
    pairs: list[tuple[str, str]] = field(default_factory=list)
    votes_per_epoch: int = 0
    min_votes: int = 3
    flag_threshold: int = 3

    # --- ground truth --------------------------------------------------------

    def planned(self) -> Iterator[Planned]:
        """Every record of the round, in publishing order."""
        yield from self.control
        yield from self.votes
        yield from self.rotation
        yield from self.late_votes

    def all_votes(self) -> list[Planned]:
        return [*self.votes, *self.late_votes]

    def outcome_count(self) -> int:
        """Records that end in a ballot or a rejection (every vote, the rejected control ones)."""
        return sum(p.has_outcome for p in self.planned())

    def expected_ballots(self) -> set[str]:
        """Vote ids that must be counted, and nothing else."""
        return {p.vote_id for p in self.all_votes() if p.expect == "ballot" and p.vote_id}

    def expected_rejections(self) -> Counter[str]:
        """Reason -> count (control records' rejections included)."""
        return +Counter(p.expect for p in self.planned() if p.expect not in ("ballot", "control"))

    def double_votes_per_submission(self) -> Counter[str]:
        """Submission -> double votes on it. Each may retract a counted vote once (when its
        second half reaches the tally stage first), which costs the tally one more version."""
        return Counter(
            p.submission_id
            for p in self.all_votes()
            if p.label == Attack.DOUBLE_VOTE and p.submission_id
        )

    def expected_tallies(self) -> dict[str, VoteCounts]:
        counts: dict[str, VoteCounts] = {}
        for p in self.all_votes():
            if p.expect == "ballot":
                assert p.submission_id and p.vote_type
                counts[p.submission_id] = counts.get(p.submission_id, VoteCounts()).plus(
                    VoteType(p.vote_type)
                )
        return counts

    def expected_decisions(self) -> dict[str, Decision]:
        return {
            sub: decide(
                approve=c.approve,
                reject=c.reject,
                flag=c.flag,
                escalate=c.escalate,
                min_votes=self.min_votes,
                flag_threshold=self.flag_threshold,
            )
            for sub, c in self.expected_tallies().items()
        }

    def control_messages(self) -> Iterator[tuple[str, bytes, bytes]]:
        """(short topic, key, value) of the control records published before the votes."""
        for p in self.control:
            yield p.topic, p.key, p.value

    def attack_counts(self) -> Counter[str]:
        return Counter(p.label for p in self.planned() if p.has_outcome)


def seeded_key(seed: int, *parts: object) -> Any:
    """A ``ringcrypto.SecretKey`` that follows from the seed and ``parts``."""
    import ringcrypto

    material = hashlib.sha256(json.dumps([seed, *parts]).encode()).digest()
    return ringcrypto.SecretKey.from_seed(material)


def sign_vote_cast(
    key: Any,
    ring: Any,
    *,
    submission_id: str,
    ring_id: str,
    ring_version: int,
    vote_type: VoteType | str,
    epoch: int,
    slot: int,
    batchable: bool = True,
    tag: bytes | None = None,
) -> VoteCast:
    """A vote signed with ``ringcrypto.sign_vote`` (what ``connectors.sdk.build_vote`` does),
    plus one hostile option: ``tag`` claims another key's slot tag (theft), spliced into
    the signature where the signer's own tag is (``sig[33:65]``)."""
    import ringcrypto

    token = tag if tag is not None else key.slot_tag(epoch_bytes(epoch), slot)
    token_id = token.hex()
    unsigned = VoteCast.model_construct(
        vote_id=vote_id_for_token(token_id),
        submission_id=submission_id,
        ring_id=ring_id,
        ring_version=ring_version,
        vote_type=VoteType(vote_type),
        epoch=epoch,
        slot=slot,
        token_id=token_id,
    )
    signature = ringcrypto.sign_vote(
        key,
        ring,
        submission_id.encode("utf-8"),
        epoch_bytes(epoch),
        slot,
        unsigned.signing_bytes(),
        batchable=batchable,
    )
    if tag is not None:
        signature = signature[:33] + tag + signature[65:]
    return VoteCast(**unsigned.model_dump(), signature=base64.b64encode(signature).decode("ascii"))


def build_round(
    *,
    seed: int = 7,
    genres: int = 4,
    ring_size: int = 16,
    submissions_per_genre: int = 50,
    votes_per_reviewer: int = 10,
    attacks: bool = True,
    revocation: bool | None = None,
    epoch: int = 1,
    batchable: bool = True,
    threads: int = 2,
    registrar: Any | None = None,
) -> ReviewRound:
    """A round: every reviewer votes on ``votes_per_reviewer`` submissions of its genre.

    ``revocation`` (default: ``attacks``): revoke reviewer 0 of the first genre
    with a second ring version, part-way through; that genre's later votes
    name version 2. Rings and submissions are signed by ``registrar`` (default:
    the development registrar key of the process's settings, created on first
    use; the key a worker with default settings trusts).
    """
    import ringcrypto

    if registrar is None:
        from connectors.sdk.registrar import load_registrar
        from streams.settings import get_settings

        registrar = load_registrar(get_settings())
    revocation = attacks if revocation is None else revocation

    rng = random.Random(seed)
    k = votes_per_reviewer + SPARE_SLOTS
    genre_names = [f"genre-{g}" for g in range(genres)]
    rings: dict[str, Ring] = {}
    crypto_rings: dict[tuple[str, int], Any] = {}
    keys: dict[str, list[Any]] = {}
    submissions: dict[str, Submission] = {}
    by_genre: dict[str, list[str]] = {}
    quality: dict[str, list[float]] = {}
    refs = iter(range(1 << 30))
    control: list[Planned] = []

    def control_record(topic: str, key: str, model: Any, expect: str, label: str) -> Planned:
        return Planned(
            key=key.encode(),
            value=model.to_json(),
            expect=expect,
            label=label,
            topic=topic,
            ref=next(refs),
        )

    for g in genre_names:
        keys[g] = [seeded_key(seed, g, i) for i in range(ring_size)]
        crypto_rings[(g, 1)] = ringcrypto.Ring([key.public_key for key in keys[g]])
        rings[g] = registrar.sign_ring(
            Ring(
                ring_id=f"ring-{g}-e{epoch}",
                version=1,
                genre=g,
                epoch=epoch,
                public_keys=[pk.hex() for pk in crypto_rings[(g, 1)].public_keys],
                votes_per_epoch=k,
                valid_from=VALID_FROM,
            )
        )
        control.append(control_record("rings", rings[g].ring_id, rings[g], "control", "control"))
        by_genre[g] = []
        for s in range(submissions_per_genre):
            sub_id = f"sub-{g}-{s:04d}"
            submissions[sub_id] = registrar.sign_submission(
                Submission(submission_id=sub_id, genre=g, epoch=epoch)
            )
            control.append(
                control_record("submissions", sub_id, submissions[sub_id], "control", "control")
            )
            by_genre[g].append(sub_id)
            # Each submission has a "true" leaning the reviewers mostly follow.
            quality[sub_id] = rng.choice(
                [[0.7, 0.2, 0.05, 0.05], [0.2, 0.7, 0.05, 0.05], [0.3, 0.3, 0.3, 0.1]]
            )

    # Plan first (cheap), sign later in threads (signing releases the GIL).
    # A plan: genre, member, sub, slot, vote_type, version (signed against), expect, label,
    # phase (1: before the rotation, 2: after), and attack options.
    plans: list[dict[str, Any]] = []
    spare: dict[tuple[str, int], list[int]] = {}
    voted: dict[tuple[str, int], set[str]] = {}
    revoked = (genre_names[0], 0) if revocation else None
    for g in genre_names:
        for member in range(ring_size):
            slots = list(range(k))
            rng.shuffle(slots)
            chosen = rng.sample(by_genre[g], min(votes_per_reviewer, len(by_genre[g])))
            voted[(g, member)] = set(chosen)
            spare[(g, member)] = slots[len(chosen) :]
            for sub_id, slot in zip(chosen, slots, strict=False):
                # The rotated genre's votes: about a quarter after the rotation.
                late = revocation and g == genre_names[0] and rng.random() < 0.25
                plans.append(
                    dict(
                        genre=g,
                        member=member,
                        sub=sub_id,
                        slot=slot,
                        vote_type=rng.choices(VOTE_TYPES, weights=quality[sub_id])[0],
                        version=2 if late else 1,
                        expect="ballot",
                        label="honest",
                        phase=2 if late else 1,
                        ref=next(refs),
                    )
                )
    if revoked:
        for p in plans:
            if (p["genre"], p["member"]) == revoked and p["phase"] == 2:
                # Signed against the version they belong to, appended after it was replaced.
                p.update(version=1, expect=ReasonCode.RING_NOT_IN_FORCE.value)
                p["label"] = Attack.REVOKED

    rotation: list[Planned] = []
    pairs: list[tuple[str, str]] = []
    if revoked:
        g, member = revoked
        remaining = [key.public_key for i, key in enumerate(keys[g]) if i != member]
        crypto_rings[(g, 2)] = ringcrypto.Ring(remaining)
        version2 = registrar.sign_ring(
            rings[g].model_copy(
                update={
                    "version": 2,
                    "public_keys": [pk.hex() for pk in crypto_rings[(g, 2)].public_keys],
                    "registrar_signature": None,
                }
            )
        )
        rotation.append(control_record("rings", version2.ring_id, version2, "control", "control"))
        # Signing against version 2 is impossible for them (not a member): a vote naming
        # version 2, signed over its members with one swapped for their key, does not verify.
        unvoted = [s for s in by_genre[g] if s not in voted[revoked]]
        if unvoted and spare[revoked]:
            plans.append(
                dict(
                    genre=g,
                    member=member,
                    sub=unvoted[0],
                    slot=spare[revoked].pop(),
                    vote_type=VoteType.APPROVE,
                    version=2,
                    swap_in=True,
                    expect=ReasonCode.BAD_SIGNATURE.value,
                    label=Attack.REVOKED,
                    phase=2,
                    ref=next(refs),
                )
            )

    planned_extra: list[Planned] = []
    if attacks:
        honest = [p for p in plans if p["label"] == "honest" and p["expect"] == "ballot"]
        # disjoint victims, so that no record depends on two others
        pool = rng.sample(honest, len(honest))
        n = max(1, len(honest) // 50)
        originals, reused, victims, copied = (
            pool[:n],
            pool[n : 2 * n],
            pool[2 * n : 3 * n],
            pool[3 * n : 4 * n],
        )
        for original in originals:  # double votes: another slot, the same submission
            slots = spare[(original["genre"], original["member"])]
            if not slots:
                continue
            other_type = rng.choice([t for t in VOTE_TYPES if t != original["vote_type"]])
            twin = dict(
                original,
                slot=slots.pop(),
                vote_type=other_type,
                expect=ReasonCode.DUPLICATE_KEY_IMAGE.value,
                label=Attack.DOUBLE_VOTE,
                after=original["ref"],
                ref=next(refs),
            )
            plans.append(twin)
            pairs.append((original["ref"], twin["ref"]))
        for original in reused:  # a spent slot on another submission
            others = [s for s in by_genre[original["genre"]] if s != original["sub"]]
            plans.append(
                dict(
                    original,
                    sub=rng.choice(others),
                    expect=ReasonCode.TOKEN_SPENT.value,
                    label=Attack.SLOT_REUSE,
                    after=original["ref"],
                    ref=next(refs),
                )
            )
        for victim in victims:  # theft: the victim's tag, the thief's signature
            g = victim["genre"]
            thief = (victim["member"] + 1) % ring_size
            if (g, thief) == revoked:
                thief = (thief + 1) % ring_size
            theft = dict(
                victim,
                member=thief,
                steal_from=victim["member"],
                vote_type=VoteType.APPROVE,
                expect=ReasonCode.BAD_SIGNATURE.value,
                label=Attack.THEFT,
                ref=next(refs),
            )
            theft.pop("after", None)
            plans.append(theft)
            victim["after"] = theft["ref"]  # the owner's own vote comes after: still counts
        for original in copied:  # byte copies on a foreign partition
            plans.append(
                dict(
                    original,
                    expect=ReasonCode.WRONG_PARTITION.value,
                    label=Attack.WRONG_PARTITION,
                    copy_of=original["ref"],
                    ref=next(refs),
                )
            )
        for _ in range(max(1, len(honest) // 100)):
            g = rng.choice(genre_names)
            member = rng.randrange(ring_size)
            if (g, member) == revoked:
                member = (member + 1) % ring_size
            unvoted = [s for s in by_genre[g] if s not in voted[(g, member)]]
            sub = rng.choice(unvoted or by_genre[g])
            common = dict(genre=g, member=member, sub=sub, version=1, phase=1)
            common["vote_type"] = VoteType.APPROVE
            plans.append(  # the vote after the k allowed ones
                dict(
                    common,
                    slot=k,
                    expect=ReasonCode.SLOT_OUT_OF_RANGE.value,
                    label=Attack.QUOTA,
                    ref=next(refs),
                )
            )
            plans.append(  # a key outside the ring
                dict(
                    common,
                    slot=rng.randrange(k),
                    forge=True,
                    expect=ReasonCode.BAD_SIGNATURE.value,
                    label=Attack.FORGED,
                    ref=next(refs),
                )
            )
            if spare[(g, member)]:  # a genuine signature on the wrong submission
                plans.append(
                    dict(
                        common,
                        slot=spare[(g, member)].pop(),
                        transplant=True,
                        expect=ReasonCode.BAD_SIGNATURE.value,
                        label=Attack.TRANSPLANT,
                        ref=next(refs),
                    )
                )
        # A ring version that no registrar signed: outsiders' keys for the second genre.
        g = genre_names[-1]
        outsiders = ringcrypto.Ring(
            [seeded_key(seed, "outsider", g, i).public_key for i in range(3)]
        )
        unsigned = rings[g].model_copy(
            update={
                "version": 2,
                "public_keys": [pk.hex() for pk in outsiders.public_keys],
                "registrar_signature": None,
            }
        )
        control.append(
            control_record(
                "rings",
                unsigned.ring_id,
                unsigned,
                ReasonCode.UNAUTHORIZED_CONTROL_EVENT.value,
                Attack.UNSIGNED_RING,
            )
        )
        for i in range(max(2, len(plans) // 100)):
            planned_extra.append(
                Planned(
                    key=f"junk-{i}".encode(),
                    value=_JUNK[i % len(_JUNK)],
                    expect=ReasonCode.MALFORMED.value,
                    label=Attack.MALFORMED,
                    ref=next(refs),
                )
            )

    def sign(plan: dict[str, Any]) -> Planned:
        g = plan["genre"]
        key = keys[g][plan["member"]]
        ring = crypto_rings[(g, plan["version"])]
        tag = None
        if plan.get("swap_in"):
            ring = ringcrypto.Ring([key.public_key, *ring.public_keys[1:]])
        if plan.get("forge"):
            outsider = seeded_key(seed, "forger", g, plan["ref"])
            ring = ringcrypto.Ring([outsider.public_key, *ring.public_keys[1:]])
            key = outsider
        if "steal_from" in plan:
            victim = keys[g][plan["steal_from"]]
            tag = victim.slot_tag(epoch_bytes(epoch), plan["slot"])
        fields = dict(
            submission_id=plan["sub"],
            ring_id=rings[g].ring_id,
            ring_version=plan["version"],
            vote_type=plan["vote_type"],
            epoch=epoch,
            slot=plan["slot"],
            batchable=batchable,
        )
        vote = sign_vote_cast(key, ring, tag=tag, **fields)
        if plan.get("transplant"):
            decoy_sub = next(s for s in by_genre[g] if s != plan["sub"])
            decoy = sign_vote_cast(key, ring, **{**fields, "submission_id": decoy_sub})
            vote = vote.model_copy(update={"signature": decoy.signature})
        return Planned(
            key=vote.token_id.encode(),
            value=vote.to_json(),
            expect=plan["expect"],
            label=plan["label"],
            vote_id=str(vote.vote_id),
            submission_id=plan["sub"],
            vote_type=str(plan["vote_type"]),
            reviewer=None if plan.get("forge") else f"{g}/{plan['member']}",
            ref=plan["ref"],
            after=plan.get("after"),
        )

    originals = [p for p in plans if "copy_of" not in p]
    with ThreadPoolExecutor(threads) as pool:
        signed = {p.ref: p for p in pool.map(sign, originals)}
    for plan in plans:
        if "copy_of" in plan:
            source = signed[plan["copy_of"]]
            signed[plan["ref"]] = Planned(
                key=source.key,
                value=source.value,
                expect=plan["expect"],
                label=plan["label"],
                vote_id=source.vote_id,
                submission_id=source.submission_id,
                vote_type=source.vote_type,
                reviewer=source.reviewer,
                wrong_partition=True,
                ref=plan["ref"],
            )
    vote_id_of = {ref: p.vote_id for ref, p in signed.items()}
    phase1 = [signed[p["ref"]] for p in plans if p["phase"] == 1] + planned_extra
    phase2 = [signed[p["ref"]] for p in plans if p["phase"] == 2]
    return ReviewRound(
        seed=seed,
        epoch=epoch,
        genres=genre_names,
        rings=rings,
        submissions=submissions,
        control=control,
        votes=_publishing_order(phase1, rng),
        rotation=rotation,
        late_votes=_publishing_order(phase2, rng),
        pairs=[(str(vote_id_of[a]), str(vote_id_of[b])) for a, b in pairs],
        votes_per_epoch=k,
    )


_JUNK = (
    b"not json",
    b'{"type":"vote_cast"}',
    b"\x00" * 64,
    json.dumps({"type": "vote_cast", "epoch": "x"}).encode(),
)


def _publishing_order(records: list[Planned], rng: random.Random) -> list[Planned]:
    """Shuffled, except that a record comes after the record it must follow."""
    rank: dict[int, float] = {}
    by_ref = {p.ref: p for p in records}

    def rank_of(p: Planned) -> float:
        if p.ref not in rank:
            if p.after is None or p.after not in by_ref:
                rank[p.ref] = rng.random()
            else:
                first = rank_of(by_ref[p.after])
                rank[p.ref] = first + rng.random() * (1.0 - first)
        return rank[p.ref]

    for p in records:
        rank_of(p)
    return sorted(records, key=lambda p: rank[p.ref])


class Publisher:
    """Publishes planned records as the round requires (confluent-kafka, idempotent).

    Each record goes on the partition Kafka's default partitioner (murmur2)
    gives its key, or on the next one when it is planned on a wrong partition.
    A record with :attr:`Planned.after` is sent only once the record it
    follows was appended and the clock has passed that record's broker
    timestamp (LogAppendTime), so the broker orders the two as planned.
    """

    def __init__(
        self,
        settings: Any,
        *,
        placement: str = "murmur2",
        seed: int = 0,
        **config: object,
    ) -> None:
        """``placement``: ``murmur2`` (each record on its key's partition, set explicitly),
        ``producer`` (left to the producer's ``partitioner``, a config key), or ``random``
        (an explicit random partition). Records planned on a wrong partition go on one
        whatever the placement."""
        from confluent_kafka import Producer

        from streams.kafka_client import kafka_config

        if placement not in ("murmur2", "producer", "random"):
            raise ValueError(f"unknown placement {placement!r}")
        self.settings = settings
        self.placement = placement
        self._rng = random.Random(seed)
        self._producer = Producer(
            kafka_config(
                settings,
                **{
                    "enable.idempotence": True,
                    "acks": "all",
                    "linger.ms": 2,
                    "partitioner": "murmur2_random",
                    **config,
                },
            )
        )
        self._partitions: dict[str, int] = {}
        #: ref -> broker timestamp (ms) of records appended so far.
        self.appended: dict[int, int] = {}
        #: ref -> (topic, partition, offset) of records appended so far.
        self.positions: dict[int, tuple[str, int, int]] = {}
        self.errors: list[str] = []
        #: How long a record may wait for the one it must follow to be appended (s).
        self.append_timeout = 60.0

    def poll(self, timeout: float = 0.0) -> None:
        """Serve delivery reports (while the caller holds back)."""
        self._producer.poll(timeout)

    def partitions(self, topic: str) -> int:
        if topic not in self._partitions:
            meta = self._producer.list_topics(topic, timeout=10).topics[topic]
            if meta.error is not None or not meta.partitions:
                raise RuntimeError(f"topic {topic} is not there: {meta.error}")
            self._partitions[topic] = len(meta.partitions)
        return self._partitions[topic]

    def home_of(self, planned: Planned) -> int:
        """The partition the workers expect the record on (murmur2 of its key)."""
        return partition_for_key(planned.key, self.partitions(self.settings.topic(planned.topic)))

    def partition_of(self, planned: Planned) -> int | None:
        """Where to put the record (None: the producer's partitioner decides)."""
        n = self.partitions(self.settings.topic(planned.topic))
        home = self.home_of(planned)
        if planned.wrong_partition:
            return (home + 1) % n
        if planned.topic != "votes" or self.placement == "murmur2":
            return home
        if self.placement == "random":
            return self._rng.randrange(n)
        return None

    def send(self, planned: Planned) -> None:
        if planned.after is not None:
            self._wait_appended(planned.after)
        topic = self.settings.topic(planned.topic)
        ref = planned.ref

        def report(err: Any, msg: Any) -> None:
            if err is not None:
                self.errors.append(str(err))
            else:
                self.appended[ref] = msg.timestamp()[1]
                self.positions[ref] = (msg.topic(), msg.partition(), msg.offset())

        partition = self.partition_of(planned)
        where = {} if partition is None else {"partition": partition}
        while True:
            try:
                self._producer.produce(
                    topic, key=planned.key, value=planned.value, on_delivery=report, **where
                )
                break
            except BufferError:
                self._producer.poll(0.1)
        self._producer.poll(0)

    def send_all(self, records: Iterable[Planned]) -> int:
        n = 0
        for planned in records:
            self.send(planned)
            n += 1
        return n

    def _wait_appended(self, ref: int) -> None:
        deadline = time.monotonic() + self.append_timeout
        while ref not in self.appended:
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"record {ref} was not appended within {self.append_timeout:.0f} s"
                )
            self._producer.flush(1.0)
        while int(time.time() * 1000) <= self.appended[ref]:
            time.sleep(0.0005)

    def flush(self, timeout: float = 60.0) -> None:
        if self._producer.flush(timeout):
            raise TimeoutError(f"records not acknowledged after {timeout:.0f}s")
        if self.errors:
            raise RuntimeError(f"delivery failed: {self.errors[0]}")

    def last_appended_ms(self) -> int:
        return max(self.appended.values(), default=0)

    def wait_clock_past(self, timestamp_ms: int) -> None:
        """Return once the (broker's, here: this host's) clock is past ``timestamp_ms``."""
        while int(time.time() * 1000) <= timestamp_ms:
            time.sleep(0.0005)

    def publish_phases(self, round_: ReviewRound, *, between: Any = None) -> None:
        """Every record of the round: control, votes, rotation, late votes; each phase
        appended (and the clock past it) before the next starts."""
        for phase in (round_.control, round_.votes, round_.rotation, round_.late_votes):
            if not phase:
                continue
            self.send_all(phase)
            self.flush()
            self.wait_clock_past(self.last_appended_ms())
            if between is not None:
                between()
