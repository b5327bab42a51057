"""A seeded review round with its own ground truth: for the demo, benchmarks and chaos tests.

:func:`build_round` makes genres, one ring of reviewers per genre, submissions,
credentials with tokens, honest votes and (optionally) attacks, and records for
every planned message the outcome the pipeline must reach. Everything but the
signatures' hedged nonces follows from the seed, so two rounds with one seed
expect identical outcomes.

Ground truth is only claimed where the pipeline's outcome does not depend on
timing. Example: a double vote goes out on two tokens, i.e. two partitions, so
which of the pair is counted depends on arrival order; the double vote
therefore repeats the original's vote type, and the truth records "one ballot
and one duplicate_key_image for this pair" and tallies that do not depend on
which one won.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from connectors.sdk.issuer import Issuer, load_issuer
from models import CredentialRevoked, Ring, Submission, TokenIssued, VoteCast, VoteCounts, VoteType
from models.decision import Decision, decide
from models.internal import vote_id_for_token
from models.reasons import ReasonCode

__all__ = ["Attack", "Planned", "ReviewRound", "build_round"]

VOTE_TYPES = (VoteType.APPROVE, VoteType.REJECT, VoteType.FLAG, VoteType.ESCALATE)


class Attack:
    """Kinds of hostile traffic the round can mix in (also the labels in reports)."""

    DOUBLE_VOTE = "double_vote"
    TOKEN_REPLAY = "token_replay"
    FORGED = "forged_signature"
    TRANSPLANT = "transplanted_signature"
    REVOKED = "revoked_reviewer"
    MALFORMED = "malformed"
    UNKNOWN_TOKEN = "unknown_token"


@dataclass(slots=True)
class Planned:
    """One votes-topic message and what must become of it."""

    key: bytes
    value: bytes
    #: "ballot", a ReasonCode value, or "pair" (one ballot + one duplicate_key_image).
    expect: str
    label: str = "honest"
    vote_id: str | None = None
    submission_id: str | None = None
    vote_type: str | None = None


@dataclass
class ReviewRound:
    seed: int
    epoch: int
    genres: list[str]
    rings: dict[str, Ring]
    submissions: dict[str, Submission]
    issuances: list[TokenIssued]
    revocations: list[CredentialRevoked]
    votes: list[Planned]
    #: vote-id pairs of double votes: exactly one of each pair is counted.
    pairs: list[tuple[str, str]] = field(default_factory=list)
    min_votes: int = 3
    flag_threshold: int = 3

    # --- ground truth --------------------------------------------------------

    def expected_ballots(self) -> set[str]:
        """Vote ids certain to be counted (a double-vote pair counts separately)."""
        return {p.vote_id for p in self.votes if p.expect == "ballot" and p.vote_id}

    def expected_rejections(self) -> Counter[str]:
        """Reason -> count, with each double-vote pair counted as one duplicate_key_image."""
        out: Counter[str] = Counter(
            p.expect for p in self.votes if p.expect not in ("ballot", "pair")
        )
        out[ReasonCode.DUPLICATE_KEY_IMAGE.value] += len(self.pairs)
        return +out

    def double_votes_per_submission(self) -> Counter[str]:
        """Submission -> double votes on it. Each may retract a counted vote once (when its
        later-cast half arrives first), which costs the tally one more version."""
        halves = Counter(
            p.submission_id for p in self.votes if p.expect == "pair" and p.submission_id
        )
        return Counter({sub: n // 2 for sub, n in halves.items()})

    def expected_tallies(self) -> dict[str, VoteCounts]:
        counts: dict[str, VoteCounts] = {}
        pair_members = {vid for pair in self.pairs for vid in pair}
        counted_pairs: set[str] = set()
        for p in self.votes:
            if p.expect == "ballot" or (p.expect == "pair" and p.vote_id in pair_members):
                if p.expect == "pair":
                    pair_key = next(a + b for a, b in self.pairs if p.vote_id in (a, b))
                    if pair_key in counted_pairs:
                        continue
                    counted_pairs.add(pair_key)
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
        """(short topic, key, value) for rings, submissions and token issuances."""
        for ring in self.rings.values():
            yield "rings", ring.ring_id.encode(), ring.to_json()
        for sub in self.submissions.values():
            yield "submissions", sub.submission_id.encode(), sub.to_json()
        for issued in self.issuances:
            yield "votes", issued.token_id.encode(), issued.to_json()

    def attack_counts(self) -> Counter[str]:
        return Counter(p.label for p in self.votes)


def _seeded_key(seed: int, *parts: object) -> Any:
    import ringcrypto

    material = hashlib.sha256(json.dumps([seed, *parts]).encode()).digest()
    return ringcrypto.SecretKey.from_seed(material)


def build_round(
    *,
    seed: int = 7,
    genres: int = 4,
    ring_size: int = 16,
    submissions_per_genre: int = 50,
    votes_per_reviewer: int = 10,
    attacks: bool = True,
    epoch: int = 1,
    batchable: bool = True,
    threads: int = 2,
    issuer: Issuer | None = None,
) -> ReviewRound:
    """A round: every reviewer votes on ``votes_per_reviewer`` submissions of its genre.

    Token issuances and credential revocations are signed by ``issuer``
    (default: the development issuer key of the process's settings, created on
    first use; the key a worker with default settings trusts).
    """
    import ringcrypto

    if issuer is None:
        from streams.settings import get_settings

        issuer = load_issuer(get_settings())

    rng = random.Random(seed)
    genre_names = [f"genre-{g}" for g in range(genres)]
    rings: dict[str, Ring] = {}
    crypto_rings: dict[str, Any] = {}
    keys: dict[str, list[Any]] = {}
    submissions: dict[str, Submission] = {}
    by_genre: dict[str, list[str]] = {}
    quality: dict[str, list[float]] = {}
    for g in genre_names:
        keys[g] = [_seeded_key(seed, g, i) for i in range(ring_size)]
        crypto_rings[g] = ringcrypto.Ring([k.public_key for k in keys[g]])
        ring_id = f"ring-{g}-e{epoch}"
        rings[g] = Ring(
            ring_id=ring_id,
            genre=g,
            epoch=epoch,
            public_keys=[pk.hex() for pk in crypto_rings[g].public_keys],
        )
        by_genre[g] = []
        for s in range(submissions_per_genre):
            sub_id = f"sub-{g}-{s:04d}"
            submissions[sub_id] = Submission(submission_id=sub_id, genre=g, epoch=epoch)
            by_genre[g].append(sub_id)
            # Each submission has a "true" leaning the reviewers mostly follow.
            quality[sub_id] = rng.choice(
                [[0.7, 0.2, 0.05, 0.05], [0.2, 0.7, 0.05, 0.05], [0.3, 0.3, 0.3, 0.1]]
            )

    issued_at = datetime(2026, 1, 1, tzinfo=UTC)
    issuances: list[TokenIssued] = []
    credential_of: dict[tuple[str, int], str] = {}
    token_pool: dict[tuple[str, int], list[str]] = {}

    def new_tokens(genre: str, member: int, count: int) -> list[str]:
        cred = credential_of.setdefault(
            (genre, member),
            hashlib.sha256(f"{seed}/{genre}/{member}/credential".encode()).hexdigest(),
        )
        out = []
        for _ in range(count):
            token_id = f"tok-{rng.getrandbits(96):024x}"
            issuances.append(
                issuer.token_issued(
                    token_id, credential_hash=cred, epoch=epoch, issued_at=issued_at
                )
            )
            out.append(token_id)
        return out

    # Plan first (cheap), sign later in threads (signing releases the GIL).
    plans: list[dict[str, Any]] = []
    for g in genre_names:
        for member in range(ring_size):
            chosen = rng.sample(by_genre[g], min(votes_per_reviewer, len(by_genre[g])))
            tokens = new_tokens(g, member, len(chosen) + 2)
            token_pool[(g, member)] = tokens[len(chosen) :]
            for sub_id, token in zip(chosen, tokens, strict=False):
                vote_type = rng.choices(VOTE_TYPES, weights=quality[sub_id])[0]
                plans.append(
                    dict(
                        genre=g,
                        member=member,
                        sub=sub_id,
                        token=token,
                        vote_type=vote_type,
                        expect="ballot",
                        label="honest",
                    )
                )

    revocations: list[CredentialRevoked] = []
    pairs: list[tuple[str, str]] = []
    if attacks:
        honest = list(plans)
        # Double votes: same reviewer, same submission, a second token, the same vote type.
        for original in rng.sample(honest, max(1, len(honest) // 50)):
            spare = token_pool[(original["genre"], original["member"])]
            if not spare:
                continue
            original["expect"] = "pair"
            twin = dict(original, token=spare.pop(), expect="pair", label=Attack.DOUBLE_VOTE)
            plans.append(twin)
            pairs.append(
                (str(vote_id_for_token(original["token"])), str(vote_id_for_token(twin["token"])))
            )
        # Token replays: a used token, another (valid) vote on another submission.
        for original in rng.sample(
            [p for p in honest if p["expect"] == "ballot"], max(1, len(honest) // 50)
        ):
            other = rng.choice([s for s in by_genre[original["genre"]] if s != original["sub"]])
            plans.append(
                dict(
                    original,
                    sub=other,
                    expect=ReasonCode.TOKEN_SPENT.value,
                    label=Attack.TOKEN_REPLAY,
                    after=original["token"],
                )
            )
        # Forged: signed in an outsider's ring; transplanted: a real signature moved to
        # another submission.
        for _ in range(max(1, len(honest) // 100)):
            g = rng.choice(genre_names)
            member = rng.randrange(ring_size)
            [token] = new_tokens(g, member, 1)
            plans.append(
                dict(
                    genre=g,
                    member=member,
                    sub=rng.choice(by_genre[g]),
                    token=token,
                    vote_type=VoteType.APPROVE,
                    expect=ReasonCode.BAD_SIGNATURE.value,
                    label=Attack.FORGED,
                    forge=True,
                )
            )
            [token] = new_tokens(g, member, 1)
            plans.append(
                dict(
                    genre=g,
                    member=member,
                    sub=rng.choice(by_genre[g]),
                    token=token,
                    vote_type=VoteType.APPROVE,
                    expect=ReasonCode.BAD_SIGNATURE.value,
                    label=Attack.TRANSPLANT,
                    transplant=True,
                )
            )
        # A revoked reviewer: its credential is revoked before it votes.
        g = genre_names[0]
        cred = credential_of[(g, 0)]
        revocations.append(issuer.credential_revoked(cred, "reviewer misconduct"))
        for p in plans:
            if p["genre"] == g and p["member"] == 0 and p["label"] == "honest":
                p["expect"], p["label"] = ReasonCode.TOKEN_REVOKED.value, Attack.REVOKED
        # A revoked reviewer's double votes and replays are refused as revoked too.
        for p in plans:
            if p["genre"] == g and p["member"] == 0 and p["label"] != Attack.REVOKED:
                p["expect"], p["label"] = ReasonCode.TOKEN_REVOKED.value, Attack.REVOKED
        pairs = [
            pair
            for pair in pairs
            if not any(
                str(vote_id_for_token(p["token"])) in pair and p["label"] == Attack.REVOKED
                for p in plans
            )
        ]
        for p in plans:  # a pair whose other half was revoked is a plain ballot now
            if p["expect"] == "pair" and not any(
                str(vote_id_for_token(p["token"])) in pair for pair in pairs
            ):
                p["expect"] = "ballot"

    def sign(plan: dict[str, Any]) -> Planned:
        g = plan["genre"]
        key = keys[g][plan["member"]]
        ring = crypto_rings[g]
        if plan.get("forge"):
            outsider = _seeded_key(seed, "outsider", plan["token"])
            ring = ringcrypto.Ring([outsider.public_key, *crypto_rings[g].public_keys[1:]])
            key = outsider
        vote = _signed_vote(key, ring, rings[g].ring_id, plan, epoch, batchable)
        if plan.get("transplant"):
            decoy = _signed_vote(
                keys[g][plan["member"]],
                crypto_rings[g],
                rings[g].ring_id,
                dict(plan, sub=by_genre[g][0] if plan["sub"] != by_genre[g][0] else by_genre[g][1]),
                epoch,
                batchable,
            )
            vote = vote.model_copy(update={"signature": decoy.signature})
        return Planned(
            key=plan["token"].encode(),
            value=vote.to_json(),
            expect=plan["expect"],
            label=plan["label"],
            vote_id=str(vote.vote_id),
            submission_id=plan["sub"],
            vote_type=str(plan["vote_type"]),
        )

    with ThreadPoolExecutor(threads) as pool:
        signed = list(pool.map(sign, plans))

    # Publish order: shuffled, except that a replay follows the vote it replays.
    order = list(range(len(signed)))
    rng.shuffle(order)
    position = {plans[i]["token"]: n for n, i in enumerate(order) if "after" not in plans[i]}
    order.sort(
        key=lambda i: (
            (position.get(plans[i].get("after"), -1) + 0.5)
            if "after" in plans[i]
            else position[plans[i]["token"]]
        )
    )
    votes = [signed[i] for i in order]

    if attacks:
        junk = [
            b"not json",
            b'{"type":"vote_cast"}',
            b"\x00" * 64,
            json.dumps({"type": "vote_cast", "epoch": "x"}).encode(),
        ]
        for i in range(max(2, len(votes) // 100)):
            votes.insert(
                rng.randrange(len(votes)),
                Planned(
                    key=f"junk-{i}".encode(),
                    value=junk[i % len(junk)],
                    expect=ReasonCode.MALFORMED.value,
                    label=Attack.MALFORMED,
                ),
            )
        g = genre_names[-1]
        for i in range(max(1, len(votes) // 200)):
            plan = dict(
                genre=g,
                member=1,
                sub=by_genre[g][0],
                token=f"never-issued-{seed}-{i}",
                vote_type=VoteType.APPROVE,
                expect=ReasonCode.UNKNOWN_TOKEN.value,
                label=Attack.UNKNOWN_TOKEN,
            )
            votes.insert(rng.randrange(len(votes)), sign(plan))

    return ReviewRound(
        seed=seed,
        epoch=epoch,
        genres=genre_names,
        rings=rings,
        submissions=submissions,
        issuances=issuances,
        revocations=revocations,
        votes=votes,
        pairs=pairs,
    )


def _signed_vote(
    key: Any, ring: Any, ring_id: str, plan: dict[str, Any], epoch: int, batchable: bool
) -> VoteCast:
    from connectors.sdk.vote import build_vote

    return build_vote(
        key,
        ring,
        submission_id=plan["sub"],
        ring_id=ring_id,
        vote_type=plan["vote_type"],
        token_id=plan["token"],
        epoch=epoch,
        batchable=batchable,
    )
