"""Hostile input: ≥100,000 crafted bad messages interleaved with valid votes, through a real worker.

    python bench/hostile.py   # 100,000 hostile + ~5,000 valid: bench/results/hostile.json
    python bench/hostile.py --hostile 5000       # smaller

Runs on a PRIVATE Kafka (free port, under ``.ringtally/hostile/<run>``) with one
``ringtally worker``; the shared stack is not touched (the huge payloads alone
are a few hundred MB of topic data, deleted afterwards).

Every message is planned with the outcomes it may reach, and matched to the
worker's output by its votes-topic (partition, offset) from the producer's
delivery report. Categories (``CATEGORIES``): broken JSON and random bytes,
wrong types, missing/extra fields, oversized and non-ASCII strings, huge
numbers, deep nesting, null values, key/token and vote-id/token mismatches,
non-canonical base64, and - on a valid vote's slot tag, before that vote -
signatures with non-canonical scalars, identity or invalid key images and
slot tags, invalid L/R/A points, wrong lengths and tags, bit flips, random
well-formed bytes, signatures made for another context, message or slot, an
outsider's signature carrying the member's tag (theft), ring-size-2000
lengths, unknown/inactive/wrong-genre/oversized rings, unknown submissions,
wrong epochs, slots beyond the ring's votes_per_epoch; copies of valid votes
on a foreign partition; a compact re-signature and a changed copy of an
already counted vote (its tag spent); payloads at the 256 KiB cap and over
it (up to 700 KB). Rings and submissions are registrar-signed (protocol v2).

Issue 16's re-run adds: a registered 1,024-member ring with invalid signatures
(``big:bad_signature``), forged control records on the rings and submissions
topics (``control:*``, matched by their control-topic position), honest votes
on closed submissions with a backdated or future CreateTime
(``backdated:closed_submission``), byte copies of counted votes
(``after:duplicate_record``); after the run, forged ballots, rejections and
heads on the output topics (``--forge-outputs``, judged by the witness's core)
and the workers' CPU per message by category (``--cost-block``, blocks of one
kind, /proc CPU time between blocks).

Expected: zero accepted forgeries (no ballot at a hostile position), every
hostile message exactly one rejection with an allowed reason, every valid vote
(including the ones whose tag was hammered first) a ballot, the worker
never restarted (exit 70 would be an agent bug), no Traceback in its log.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import os
import random
import shutil
import sys
import time
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from connectors.demo.simulation import VALID_FROM, sign_vote_cast  # noqa: E402
from connectors.sdk.registrar import load_registrar, pin_registrar  # noqa: E402
from connectors.stack.harness import WorkerProcess, free_port  # noqa: E402
from models import Ring, Submission, VoteCast  # noqa: E402
from models.control import SubmissionClosed  # noqa: E402
from models.fields import MAX_PAYLOAD_BYTES  # noqa: E402
from streams.partitioner import partition_for_key  # noqa: E402
from streams.settings import Settings, get_settings  # noqa: E402

__all__ = ["CATEGORIES", "HostilePlan", "Msg", "build_plan", "check", "main", "run_hostile"]

RESULTS = ROOT / "bench" / "results" / "hostile.json"
#: ristretto255 group order
ELL = 2**252 + 27742317777372353535851937790883648493
EPOCH = 1
#: votes_per_epoch of the attacked rings (each valid vote, backdated vote and cost-phase
#: vote uses a fresh slot of its member's; sig:other_slot uses the last four)
K = 256
#: members of the big ring (the model's cap): invalid signatures on it cost the most
BIG = 1024
#: largest over-cap payload in the default run (see finding F3)
OVER_CAP_MAX = 700_000
MAL = frozenset({"malformed"})
BAD = frozenset({"bad_signature"})
MAL_OR_BAD = frozenset({"malformed", "bad_signature"})
BALLOT = frozenset({"ballot"})

#: category -> (share of the hostile messages, allowed outcomes); "sig:" ones go on a valid
#: vote's tag before that vote, "after:" ones after it.
CATEGORIES: dict[str, tuple[float, frozenset[str]]] = {
    "random_bytes": (0.07, MAL),
    "truncated_json": (0.08, MAL),
    "invalid_json": (0.06, MAL),
    "wrong_types": (0.08, MAL),
    "missing_or_extra_fields": (0.05, MAL),
    "oversized_strings": (0.03, MAL),
    "non_ascii_or_bad_utf8": (0.03, MAL),
    "huge_numbers": (0.01, MAL),
    "deep_nesting": (0.005, MAL),
    "null_value": (0.01, MAL),
    "key_not_token": (0.02, MAL),
    "vote_id_not_token_bound": (0.02, MAL),
    "non_canonical_base64": (0.03, MAL),
    "sig:non_canonical_scalar": (0.05, MAL),
    "sig:identity_key_image": (0.02, MAL),
    "sig:identity_slot_tag": (0.01, MAL),
    "sig:invalid_key_image": (0.03, MAL),
    "sig:invalid_L_R_point": (0.03, MAL),
    "sig:identity_L_R": (0.01, BAD),
    "sig:wrong_length": (0.03, MAL),
    "sig:bad_tag": (0.02, MAL),
    "sig:ring_2000_length": (0.002, MAL),
    "sig:bit_flip": (0.05, MAL_OR_BAD),
    "sig:random_well_formed": (0.02, BAD),
    "sig:other_context": (0.03, BAD),
    "sig:other_ring": (0.03, BAD),
    "sig:other_message": (0.03, BAD),
    "sig:other_slot": (0.01, MAL_OR_BAD),
    "sig:stolen_tag": (0.01, BAD),
    "sig:unknown_ring": (0.01, frozenset({"unknown_ring"})),
    "sig:oversized_ring_registered": (0.005, frozenset({"unknown_ring"})),
    "sig:inactive_ring": (0.005, frozenset({"inactive_ring"})),
    "sig:ring_genre_mismatch": (0.01, frozenset({"ring_genre_mismatch"})),
    "sig:unknown_submission": (0.01, frozenset({"unknown_submission"})),
    "sig:epoch_mismatch": (0.01, frozenset({"epoch_mismatch"})),
    "sig:slot_out_of_range": (0.01, frozenset({"slot_out_of_range"})),
    "sig:unknown_ring_version": (0.01, frozenset({"unknown_ring"})),
    "foreign_partition": (0.02, frozenset({"wrong_partition"})),
    "after:compact_resigned": (0.01, frozenset({"token_spent"})),
    "after:token_replay": (0.01, frozenset({"token_spent"})),
    # a byte copy of a counted vote at a later position (a producer retry, a replay)
    "after:duplicate_record": (0.01, frozenset({"duplicate_record"})),
    # invalid signatures (one s_i replaced by another canonical scalar) on a registered
    # 1,024-member ring, on a valid ring-1,024 vote's tag before that vote
    "big:bad_signature": (0.005, BAD),
    # honest signatures on a closed submission, produced with a CreateTime before the closing
    # (or far in the future): the topic's LogAppendTime decides, so submission_closed
    "backdated:closed_submission": (0.01, frozenset({"submission_closed"})),
    # forged control records, interleaved with the votes (protocol v2: ring versions,
    # submissions, closings); accepted, each would change decisions the valid votes check
    "control:ring_unsigned": (0.003, frozenset({"unauthorized_control_event"})),
    "control:ring_rogue_key": (0.003, frozenset({"unauthorized_control_event"})),
    "control:ring_tampered": (0.003, frozenset({"unauthorized_control_event"})),
    "control:submission_rogue_key": (0.003, frozenset({"unauthorized_control_event"})),
    "control:closing_rogue_key": (0.003, frozenset({"unauthorized_control_event"})),
    "control:closing_unsigned": (0.003, frozenset({"unauthorized_control_event"})),
    "control:garbage": (0.002, MAL),
    "huge:at_cap": (0.002, MAL),
    "huge:over_cap": (0.002, MAL),
}


@dataclass(slots=True)
class Msg:
    key: bytes | None
    value: bytes | None
    category: str
    expect: frozenset[str]
    topic: str = "votes"
    #: put on a partition other than its key's murmur2 partition
    foreign: bool = False
    #: the producer's CreateTime (ms), when not "now" (backdated:*)
    timestamp_ms: int | None = None

    @property
    def valid(self) -> bool:
        return self.category.startswith("valid")


@dataclass
class HostilePlan:
    seed: int
    control: list[tuple[str, bytes, bytes | None]]
    messages: list[Msg]
    valid: int
    hostile: int
    by_category: Counter[str] = field(default_factory=Counter)
    #: the world the plan attacks (the cost phase signs more votes in it)
    world: Any = None


# --- the world the hostile messages attack ----------------------------------------------


class World:
    """Two genres, a ring of 16 per genre, submissions, and a signing helper (all seeded)."""

    def __init__(self, seed: int, rng: random.Random) -> None:
        import ringcrypto

        self.rc = ringcrypto
        self.rng = rng
        self.seed = seed

        def key(*parts: object) -> Any:
            return ringcrypto.SecretKey.from_seed(
                hashlib.sha256(json.dumps([seed, "hostile", *parts]).encode()).digest()
            )

        self.keys = {g: [key(g, i) for i in range(16)] for g in ("genre-0", "genre-1")}
        self.rings = {g: ringcrypto.Ring([k.public_key for k in ks]) for g, ks in self.keys.items()}
        self.ring_ids = {g: f"ring-{g}" for g in self.keys}
        self.outsider = key("outsider")
        self.other_ring = ringcrypto.Ring(
            [self.outsider.public_key, *self.rings["genre-0"].public_keys[1:]]
        )
        self.subs = {g: [f"sub-{g}-{i:03d}" for i in range(60)] for g in self.keys}
        #: registered, then closed before any vote (the backdated votes aim at them)
        self.closed_subs = {g: [f"sub-closed-{g}-{i}" for i in range(10)] for g in self.keys}
        #: registered for the CPU-cost blocks (fresh (member, submission) pairs)
        self.cost_subs = {g: [f"sub-cost-{g}-{i:02d}" for i in range(20)] for g in self.keys}
        self.big_keys = [key("big-ring", i) for i in range(BIG)]
        self.big_ring = ringcrypto.Ring([k.public_key for k in self.big_keys])
        self.big_ring_id = "ring-1024"
        #: the development registrar key, which pin_registrar makes the workers trust
        self.registrar = load_registrar(get_settings())
        #: a registrar key no worker trusts (forged control records)
        from connectors.sdk.registrar import Registrar

        self.rogue = Registrar(key("rogue-registrar"))
        self._slots: Counter[tuple[str, int]] = Counter()
        self._big_votes = 0

    def control(self) -> list[tuple[str, bytes, bytes | None]]:
        out: list[tuple[str, bytes, bytes | None]] = []

        def ring(ring_id: str, genre: str, members: Any, active: bool = True) -> Ring:
            return self.registrar.sign_ring(
                Ring(
                    ring_id=ring_id,
                    version=1,
                    genre=genre,
                    epoch=EPOCH,
                    public_keys=[pk.hex() for pk in members],
                    votes_per_epoch=K,
                    active=active,
                    valid_from=VALID_FROM,
                )
            )

        for g, members in self.rings.items():
            model = ring(self.ring_ids[g], g, members.public_keys)
            out.append(("rings", model.ring_id.encode(), model.to_json()))
            for sub in self.subs[g] + self.closed_subs[g] + self.cost_subs[g]:
                signed = self.registrar.sign_submission(
                    Submission(submission_id=sub, genre=g, epoch=EPOCH)
                )
                out.append(("submissions", sub.encode(), signed.to_json()))
            for sub in self.closed_subs[g]:
                closing = self.registrar.sign_closing(SubmissionClosed(submission_id=sub))
                out.append(("submissions", sub.encode(), closing.to_json()))
        big_ring = ring(self.big_ring_id, "genre-0", self.big_ring.public_keys)
        out.append(("rings", big_ring.ring_id.encode(), big_ring.to_json()))
        self.ring_models = {
            g: ring(self.ring_ids[g], g, m.public_keys) for g, m in self.rings.items()
        }
        inactive = ring("ring-inactive", "genre-0", self.rings["genre-0"].public_keys, False)
        out.append(("rings", b"ring-inactive", inactive.to_json()))
        # 1,025 members: over the model's cap, so the worker refuses the record (unknown_ring)
        members = [
            self.rc.SecretKey.from_seed(hashlib.sha256(b"big%d" % i).digest()).public_key.hex()
            for i in range(1025)
        ]
        big = json.loads(inactive.to_json())
        big.update(ring_id="ring-oversized", public_keys=members, active=True)
        out.append(("rings", b"ring-oversized", json.dumps(big).encode()))
        return out

    def big_vote(self, sub: str) -> VoteCast:
        """An honest vote of the next unused member of the 1,024-member ring (slot 0)."""
        member = self._big_votes
        self._big_votes += 1
        if member >= BIG:
            raise ValueError(f"at most {BIG} ring-1,024 votes")
        return self.vote(
            0,
            member,
            sub,
            "genre-0",
            ring_id=self.big_ring_id,
            ring=self.big_ring,
            key=self.big_keys[member],
        )

    def forged_control(self, kind: str, rng: random.Random) -> tuple[str, bytes, bytes]:
        """(topic, key, value) of one forged control record (``control:*``)."""
        g = rng.choice(sorted(self.keys))
        sub = rng.choice(self.subs[g])
        if kind == "control:garbage":
            topic = rng.choice(["rings", "submissions"])
            return topic, rng.choice([self.ring_ids[g], sub]).encode(), rng.randbytes(64)
        if kind.startswith("control:ring"):
            # version 2 of a ring the valid votes name: in force, every later vote naming
            # version 1 would be ring_not_in_force; with outsiders, forgeries would verify
            new = self.ring_models[g].model_copy(
                update={
                    "version": 2,
                    "public_keys": [self.outsider.public_key.hex()]
                    + self.ring_models[g].public_keys[1:],
                    "active": rng.random() < 0.5,
                    "registrar_signature": None,
                }
            )
            if kind == "control:ring_rogue_key":
                new = self.rogue.sign_ring(new)
            elif kind == "control:ring_tampered":
                # version 1's real signature on changed members (an outsider added)
                new = self.ring_models[g].model_copy(update={"public_keys": new.public_keys})
            return "rings", self.ring_ids[g].encode(), new.to_json()
        if kind == "control:submission_rogue_key":
            other = "genre-1" if g == "genre-0" else "genre-0"
            forged = self.rogue.sign_submission(
                Submission(submission_id=sub, genre=other, epoch=EPOCH)
            )
            return "submissions", sub.encode(), forged.to_json()
        closing = SubmissionClosed(submission_id=sub)
        if kind == "control:closing_rogue_key":
            closing = self.rogue.sign_closing(closing)
        return "submissions", sub.encode(), closing.to_json()

    def next_slot(self, genre: str, member: int) -> int:
        self._slots[(genre, member)] += 1
        return self._slots[(genre, member)] - 1

    def vote(
        self,
        slot: int,
        member: int,
        sub: str,
        genre: str = "genre-0",
        *,
        vote_type: str = "approve",
        ring_id: str | None = None,
        epoch: int = EPOCH,
        context: str | None = None,
        ring: Any = None,
        key: Any = None,
        tag: bytes | None = None,
        batchable: bool = True,
    ) -> VoteCast:
        """A vote whose signature is made over whatever the arguments say (honest by default).

        ``context``: sign for another submission than the vote names; ``tag``: carry
        another key's slot tag (theft)."""
        signer = key or self.keys[genre][member]
        vote = sign_vote_cast(
            signer,
            ring or self.rings[genre],
            submission_id=context or sub,
            ring_id=ring_id or self.ring_ids[genre],
            ring_version=1,
            vote_type=vote_type,
            epoch=epoch,
            slot=slot,
            batchable=batchable,
            tag=tag,
        )
        if context is not None:  # the message names ``sub``, the signature is for ``context``
            resigned = sign_vote_cast(
                signer,
                ring or self.rings[genre],
                submission_id=sub,
                ring_id=ring_id or self.ring_ids[genre],
                ring_version=1,
                vote_type=vote_type,
                epoch=epoch,
                slot=slot,
                batchable=batchable,
            )
            vote = resigned.model_copy(update={"signature": vote.signature})
        return vote


def _with_sig(vote: VoteCast, sig: bytes) -> bytes:
    body = json.loads(vote.to_json())
    body["signature"] = base64.b64encode(sig).decode()
    return json.dumps(body, separators=(",", ":")).encode()


def _sig(vote: VoteCast) -> bytes:
    return base64.b64decode(vote.signature)


# --- signature mutations (native/SPEC.md, batchable vote signature:
# tag ‖ I ‖ T ‖ A ‖ A' ‖ t ‖ c_0 ‖ s_0..s_{n-1} ‖ (L_i ‖ R_i)...) -----------------------------

#: offsets of the fixed part (SPEC §"Vote signature")
I_AT, T_AT, A_AT, A2_AT, T_SCALAR_AT, C0_AT, S_AT = 1, 33, 65, 97, 129, 161, 193


def _scalar_slots(n: int) -> list[int]:
    return [T_SCALAR_AT, C0_AT] + [S_AT + 32 * i for i in range(n)]


def _point_slots(n: int) -> list[int]:
    """A, A' and every L_i, R_i (not I and T: the dedup keys have categories of their own)."""
    return [A_AT, A2_AT] + [S_AT + 32 * n + 32 * j for j in range(2 * n)]


def mutate_signature(kind: str, sig: bytes, n: int, rng: random.Random) -> bytes:
    b = bytearray(sig)
    if kind == "sig:non_canonical_scalar":
        at = rng.choice(_scalar_slots(n))
        value = int.from_bytes(b[at : at + 32], "little")
        bad = rng.choice([value + ELL, ELL, 2**256 - 1, ELL + rng.randrange(2**200)])
        b[at : at + 32] = bad.to_bytes(32, "little")
    elif kind == "sig:identity_key_image":
        b[1:33] = bytes(32)
    elif kind == "sig:identity_slot_tag":
        b[33:65] = bytes(32)
    elif kind == "sig:invalid_key_image":
        b[1:33] = rng.choice(
            [
                b"\xff" * 32,
                (2**255 - 19).to_bytes(32, "little"),
                b"\x01" + bytes(31),
                _invalid_point(rng),
            ]
        )
    elif kind == "sig:invalid_L_R_point":
        at = rng.choice(_point_slots(n))
        b[at : at + 32] = rng.choice([b"\xff" * 32, b"\x01" + bytes(31), _invalid_point(rng)])
    elif kind == "sig:identity_L_R":
        at = rng.choice(_point_slots(n)[2:])
        b[at : at + 32] = bytes(32)
    elif kind == "sig:wrong_length":
        cut = rng.choice([1, 31, 32, 95, 96, len(b) - 1, -1, -32, -33])
        if cut > 0:
            b = b[:-cut] if cut < len(b) else b[:1]
        else:
            b = b + os.urandom(-cut) if rng.random() < 0.5 else b + bytes(-cut)
    elif kind == "sig:bad_tag":
        # 0x11 (compact vote) with the batchable length: tag mismatch; 0x01/0x02: plain
        b[0] = rng.choice([0x00, 0x01, 0x02, 0x11, 0x13, 0x7F, 0xFF])
    elif kind == "sig:ring_2000_length":
        # the compact vote length of a 2,000-member ring
        b = bytearray(b"\x11" + b[1:161] + os.urandom(32 * 2000))
    elif kind == "sig:bit_flip":
        for _ in range(rng.choice([1, 1, 1, 2, 8])):
            at = rng.randrange(1, len(b))
            b[at] ^= 1 << rng.randrange(8)
    elif kind == "sig:random_well_formed":
        import ringcrypto

        rand_key = ringcrypto.SecretKey.from_seed(rng.randbytes(32))
        b[1:33] = rand_key.key_image(b"x")
        b[A_AT : A_AT + 32] = rand_key.key_image(b"y")
        for at in _scalar_slots(n):
            b[at : at + 32] = rng.randrange(ELL).to_bytes(32, "little")
    else:
        raise ValueError(kind)
    return bytes(b)


def _invalid_point(rng: random.Random) -> bytes:
    """32 bytes that RFC 9496 DECODE refuses (odd, i.e. 'negative', field element)."""
    v = rng.randrange(2**254) | 1
    return v.to_bytes(32, "little")


# --- JSON-level mutations ------------------------------------------------------------------


def json_mutation(
    kind: str, base: dict[str, Any], rng: random.Random
) -> tuple[bytes | None, bytes | None]:
    """(key, value) of one malformed message derived from a valid vote ``base``."""
    key = base["token_id"].encode()
    raw = json.dumps(base).encode()
    if kind == "random_bytes":
        return rng.randbytes(rng.randrange(1, 8)), rng.randbytes(
            rng.choice([0, 1, 2, 17, 64, 512, 4096])
        )
    if kind == "truncated_json":
        return key, raw[: rng.randrange(0, len(raw) - 1)]
    if kind == "invalid_json":
        options = [
            raw.replace(b":", b"=", 1),
            raw + b"}",
            b"{" + raw,
            raw.replace(b'"', b"'"),
            raw[:-1] + b",}",
            b"\xef\xbb\xbf" + raw,
            raw.replace(b"{", b"[", 1),
            b"NaN",
            b"[]",
            b"{}",
            b'"vote"',
            b"null",
            b"1e999",
            raw.replace(b'"epoch": 1', b'"epoch": NaN'),
            raw.replace(b'"epoch": 1', b'"epoch": Infinity'),
            b"\x00" + raw,
            raw + b"\x00",
            raw.replace(b'"', b"", 2),
        ]
        return key, rng.choice(options)
    body = dict(base)
    if kind == "wrong_types":
        field_, bad = rng.choice(
            [
                ("epoch", "1"),
                ("epoch", 1.0),
                ("epoch", True),
                ("epoch", None),
                ("epoch", -1),
                ("epoch", 2**32),
                ("epoch", [1]),
                ("vote_id", 12345),
                ("vote_id", "not-a-uuid"),
                ("vote_id", None),
                ("submission_id", 7),
                ("submission_id", ["a"]),
                ("submission_id", {"$gt": ""}),
                ("vote_type", "APPROVE"),
                ("vote_type", "yes"),
                ("vote_type", 1),
                ("signature", 123),
                ("signature", None),
                ("signature", ["AA=="]),
                ("type", "vote"),
                ("type", None),
                ("ring_id", ""),
                ("token_id", 1),
                ("token_id", None),
            ]
        )
        body[field_] = bad
    elif kind == "missing_or_extra_fields":
        if rng.random() < 0.5:
            # not "type": its default makes the vote without it the very same vote
            body.pop(rng.choice(sorted(set(body) - {"type"})))
        else:
            body[rng.choice(["extra", "admin", "__proto__", "weight", "signed_message"])] = (
                rng.choice([1, "x", True])
            )
    elif kind == "oversized_strings":
        field_ = rng.choice(["submission_id", "ring_id", "token_id", "vote_type"])
        body[field_] = "A" * rng.choice([129, 1000, 100_000])
        if field_ == "token_id":
            key = body[field_].encode()
    elif kind == "non_ascii_or_bad_utf8":
        if rng.random() < 0.5:
            body[rng.choice(["submission_id", "ring_id"])] = rng.choice(
                ["sub-é", "ring\u200b", "a b", "\u0000x", "\ud800", "sub\n1"]
            )
        else:
            return key, raw.replace(b'"approve"', b'"appr\xff\xfeve"').replace(
                b'"reject"', b'"rej\xc3\x28"'
            )
    elif kind == "huge_numbers":
        text = raw.decode().replace(
            '"epoch": 1',
            '"epoch": '
            + rng.choice(["1" + "0" * 400, "1e400", "-1", "18446744073709551616", "1.5"]),
        )
        return key, text.encode()
    elif kind == "deep_nesting":
        depth = rng.choice([1000, 10_000, 60_000])
        return key, b'{"type":"vote_cast","epoch":' + b"[" * depth + b"]" * depth + b"}"
    elif kind == "null_value":
        return key, None
    elif kind == "key_not_token":
        return rng.choice([b"other-token", None, b"", key + b" "]), raw
    elif kind == "vote_id_not_token_bound":
        body["vote_id"] = str(uuid.UUID(int=rng.getrandbits(128)))
    elif kind == "non_canonical_base64":
        sig = body["signature"]
        body["signature"] = rng.choice(
            [
                sig.rstrip("=") if sig.endswith("=") else sig + "=",
                sig + "\n",
                sig.replace("+", "-").replace("/", "_")
                if ("+" in sig or "/" in sig)
                else " " + sig,
                sig[:-2] + "B=" if sig.endswith("A=") else "!" + sig[1:],
                "",
                "====",
            ]
        )
    else:
        raise ValueError(kind)
    return key, json.dumps(body).encode()


# --- the plan ---------------------------------------------------------------------------------


def build_plan(
    hostile: int = 100_000,
    valid: int = 5000,
    *,
    seed: int = 3,
    huge: bool = True,
    big_valid: int = 10,
) -> HostilePlan:
    """Valid votes and ``hostile`` hostile messages, interleaved (per-tag order kept)."""
    rng = random.Random(seed)
    world = World(seed, rng)
    control = world.control()
    groups: list[
        list[Msg]
    ] = []  # each group: messages of one key, in the order they must be published
    counts = {c: max(1, round(share * hostile)) for c, (share, _) in CATEGORIES.items()}
    if not huge:
        counts["huge:at_cap"] = counts["huge:over_cap"] = 0
    if not big_valid:
        counts["big:bad_signature"] = 0
    # trim/extend the largest category so the total is exactly `hostile`
    counts["truncated_json"] += hostile - sum(counts.values())
    by_category: Counter[str] = Counter()

    # valid votes: a unique (member, submission) per vote, both genres
    pairs = [(g, m, s) for g in ("genre-0", "genre-1") for s in world.subs[g] for m in range(16)]
    rng.shuffle(pairs)
    if valid > len(pairs):
        raise ValueError(f"at most {len(pairs)} valid votes")
    sig_kinds = [c for c in CATEGORIES if c.startswith("sig:")]
    sig_queue = [k for k in sig_kinds for _ in range(counts[k])]
    rng.shuffle(sig_queue)
    after_queue = [k for k in CATEGORIES if k.startswith("after:") for _ in range(counts[k])]
    per_token = -(
        -len(sig_queue) // valid
    )  # hostile messages hammered on each valid vote's token first
    valid_votes: list[VoteCast] = []
    for g, member, sub in pairs[:valid]:
        vote = world.vote(world.next_slot(g, member), member, sub, g)
        valid_votes.append(vote)
        group = [_sig_attack(k, world, vote, g, member, sub, rng) for k in sig_queue[:per_token]]
        del sig_queue[:per_token]
        group.append(Msg(vote.token_id.encode(), vote.to_json(), "valid", BALLOT))
        groups.append(group)
    # honest ring-1,024 votes, each after invalid signatures on its tag
    big_queue = ["big:bad_signature"] * counts["big:bad_signature"]
    per_big = -(-len(big_queue) // max(1, big_valid)) if big_valid else 0
    for _ in range(big_valid):
        vote = world.big_vote(rng.choice(world.subs["genre-0"]))
        group = [
            Msg(
                vote.token_id.encode(),
                _with_sig(vote, _bad_scalar(_sig(vote), BIG, rng)),
                kind,
                CATEGORIES[kind][1],
            )
            for kind in big_queue[:per_big]
        ]
        del big_queue[:per_big]
        group.append(Msg(vote.token_id.encode(), vote.to_json(), "valid_ring1024", BALLOT))
        groups.append(group)
    # after the real vote (its tag spent): round-robin over the tags
    for i, kind in enumerate(after_queue):
        n = i % len(valid_votes)
        groups[n].append(_after_attack(kind, world, valid_votes[n], pairs[n]))
    now_ms = int(time.time() * 1000)
    by_category.update(m.category for grp in groups for m in grp)

    def single(m: Msg) -> None:
        groups.append([m])
        by_category[m.category] += 1

    for kind in CATEGORIES:
        if kind.startswith(("sig:", "after:", "big:")):
            continue
        for _ in range(counts[kind]):
            if kind.startswith("control:"):
                topic, key, value = world.forged_control(kind, rng)
                single(Msg(key, value, kind, CATEGORIES[kind][1], topic=topic))
                continue
            if kind == "backdated:closed_submission":
                g = rng.choice(sorted(world.keys))
                member = rng.randrange(16)
                vote = world.vote(
                    world.next_slot(g, member), member, rng.choice(world.closed_subs[g]), g
                )
                m = Msg(vote.token_id.encode(), vote.to_json(), kind, CATEGORIES[kind][1])
                # the epoch's first ms, a year ago, a second ago, a year and ten years ahead
                m.timestamp_ms = rng.choice(
                    [
                        1,
                        now_ms - 365 * 86_400_000,
                        now_ms - 1000,
                        now_ms + 365 * 86_400_000,
                        now_ms + 3650 * 86_400_000,
                    ]
                )
                single(m)
                continue
            base = json.loads(rng.choice(valid_votes).to_json())
            if kind == "foreign_partition":  # a byte copy of a valid vote, elsewhere
                m = Msg(
                    base["token_id"].encode(), json.dumps(base).encode(), kind, CATEGORIES[kind][1]
                )
                m.foreign = True
                single(m)
            elif kind == "huge:at_cap":
                body = dict(base, signature="A" * 8)
                text = json.dumps(body)
                pad = MAX_PAYLOAD_BYTES - len(text) - rng.choice([0, 1, 100])
                body["signature"] = (
                    "QUFB" * (pad // 4) + "A" * 8
                )  # far over the signature's max length
                value = json.dumps(body).encode()[:MAX_PAYLOAD_BYTES]
                single(Msg(base["token_id"].encode(), value, kind, MAL))
            elif kind == "huge:over_cap":
                # up to 700 KB: from ~745 KB the rejection itself was over the producer's
                # 1,000,000-byte cap (F3,
                # tests/test_hostile.py), which kills the worker; --over-cap-max raises the limit
                size = rng.choice([MAX_PAYLOAD_BYTES + 1, 300_000, 500_000, 700_000, OVER_CAP_MAX])
                value = json.dumps(base).encode()
                value = value[:-1] + b"," + b'"pad":"' + b"x" * (size - len(value) - 9) + b'"}'
                single(Msg(base["token_id"].encode(), value, kind, MAL))
            else:
                key, value = json_mutation(kind, base, rng)
                single(Msg(key, value, kind, CATEGORIES[kind][1]))

    # interleave: a random order of groups, each group's messages kept in order
    tickets = [gi for gi, grp in enumerate(groups) for _ in grp]
    rng.shuffle(tickets)
    cursor = [0] * len(groups)
    messages = []
    for gi in tickets:
        messages.append(groups[gi][cursor[gi]])
        cursor[gi] += 1
    n_valid = sum(m.valid for m in messages)
    return HostilePlan(
        seed=seed,
        control=control,
        messages=messages,
        valid=n_valid,
        hostile=len(messages) - n_valid,
        by_category=by_category,
        world=world,
    )


def _sig_attack(
    kind: str, world: World, vote: VoteCast, genre: str, member: int, sub: str, rng: random.Random
) -> Msg:
    key = vote.token_id.encode()
    slot = vote.slot
    expect = CATEGORIES[kind][1]
    n = 16
    if kind in (
        "sig:other_context",
        "sig:other_ring",
        "sig:other_message",
        "sig:other_slot",
        "sig:stolen_tag",
    ):
        other_sub = rng.choice([s for s in world.subs[genre] if s != sub])
        if kind == "sig:other_context":
            forged = world.vote(slot, member, sub, genre, context=other_sub)
        elif kind in ("sig:other_ring", "sig:stolen_tag"):
            # an outsider (sig:other_ring) or another member signs, carrying this member's tag
            thief = world.outsider if kind == "sig:other_ring" else None
            forged = world.vote(
                slot,
                (member + 1) % 16,
                sub,
                genre,
                ring=world.other_ring if thief else None,
                key=thief,
                tag=bytes.fromhex(vote.token_id),
            )
        elif kind == "sig:other_message":
            changed = world.vote(
                slot, member, sub, genre, vote_type=rng.choice(["reject", "flag", "escalate"])
            )
            forged = vote.model_copy(
                update={"signature": changed.signature}
            )  # signature of another vote type
        else:  # the member's signature for another slot (another tag inside)
            theirs = world.vote(K - 1 - slot % 4, member, sub, genre)
            forged = vote.model_copy(update={"signature": theirs.signature})
        return Msg(key, forged.to_json(), kind, expect)
    if kind in (
        "sig:unknown_ring",
        "sig:oversized_ring_registered",
        "sig:inactive_ring",
        "sig:ring_genre_mismatch",
        "sig:unknown_submission",
        "sig:epoch_mismatch",
        "sig:slot_out_of_range",
        "sig:unknown_ring_version",
    ):
        body = json.loads(vote.to_json())
        if kind == "sig:unknown_ring":
            body["ring_id"] = f"no-such-ring-{rng.randrange(10**6)}"
        elif kind == "sig:oversized_ring_registered":
            body["ring_id"] = "ring-oversized"
        elif kind == "sig:inactive_ring":
            body["ring_id"] = "ring-inactive"
        elif kind == "sig:ring_genre_mismatch":
            body["ring_id"] = world.ring_ids["genre-1" if genre == "genre-0" else "genre-0"]
        elif kind == "sig:unknown_submission":
            body["submission_id"] = f"no-such-sub-{rng.randrange(10**6)}"
        elif kind == "sig:slot_out_of_range":
            body["slot"] = K + rng.randrange(3)
        elif kind == "sig:unknown_ring_version":
            body["ring_version"] = rng.choice([2, 7, 2**32 - 1])
        else:
            body["epoch"] = EPOCH + rng.choice([1, 7, 2**32 - 2])
        return Msg(key, json.dumps(body).encode(), kind, expect)
    return Msg(key, _with_sig(vote, mutate_signature(kind, _sig(vote), n, rng)), kind, expect)


def _bad_scalar(sig: bytes, n: int, rng: random.Random) -> bytes:
    """``sig`` with one response scalar s_i replaced by another canonical scalar: well
    formed, so only the ring equation can refuse it (bad_signature, the costly path)."""
    b = bytearray(sig)
    at = S_AT + 32 * rng.randrange(n)
    b[at : at + 32] = rng.randrange(ELL).to_bytes(32, "little")
    return bytes(b)


def _after_attack(kind: str, world: World, vote: VoteCast, where: tuple[str, int, str]) -> Msg:
    genre, member, sub = where
    if kind == "after:duplicate_record":
        return Msg(vote.token_id.encode(), vote.to_json(), kind, CATEGORIES[kind][1])
    if kind == "after:compact_resigned":
        # the very same vote, signed again in the compact format: another valid signature
        # of the tag, which its first vote spent
        again = world.vote(vote.slot, member, sub, genre, batchable=False)
        return Msg(vote.token_id.encode(), again.to_json(), kind, CATEGORIES[kind][1])
    body = json.loads(vote.to_json())
    body["vote_type"] = (
        "reject"  # a different vote on the spent tag (signature irrelevant: spent first)
    )
    return Msg(vote.token_id.encode(), json.dumps(body).encode(), kind, CATEGORIES[kind][1])


# --- CPU per message, by category ------------------------------------------------------------


def cost_blocks(world: World, n: int, n_big: int, seed: int) -> list[tuple[str, list[Msg]]]:
    """Blocks of fresh messages, one kind each, for :func:`measure_cost`: honest and
    invalid-signature votes on rings of 16 and 1,024 (issue 16 item 5: a hostile message
    may cost at most 3x a valid one of the same ring size), and a few cheap categories."""
    rng = random.Random(seed + 1)
    pairs = [(g, m, s) for g in sorted(world.keys) for s in world.cost_subs[g] for m in range(16)]
    rng.shuffle(pairs)
    n = min(n, len(pairs))

    def fresh(g: str, member: int) -> VoteCast:
        return world.vote(world.next_slot(g, member), member, rng.choice(world.cost_subs[g]), g)

    def fresh16() -> VoteCast:
        return fresh(rng.choice(sorted(world.keys)), rng.randrange(16))

    def msg(vote: VoteCast, value: bytes, category: str, expect: frozenset[str]) -> Msg:
        return Msg(vote.token_id.encode(), value, category, expect)

    blocks: list[tuple[str, list[Msg]]] = []
    valid16 = [world.vote(world.next_slot(g, m), m, s, g) for g, m, s in pairs[:n]]
    blocks.append(("valid, ring 16", [msg(v, v.to_json(), "valid", BALLOT) for v in valid16]))
    bad16 = [fresh16() for _ in range(n)]
    blocks.append(
        (
            "bad_signature, ring 16",
            [msg(v, _with_sig(v, _bad_scalar(_sig(v), 16, rng)), "cost", BAD) for v in bad16],
        )
    )
    subs0 = world.cost_subs["genre-0"]
    big_valid = [world.big_vote(rng.choice(subs0)) for _ in range(n_big)]
    blocks.append(("valid, ring 1,024", [msg(v, v.to_json(), "valid", BALLOT) for v in big_valid]))
    big_bad = [world.big_vote(rng.choice(subs0)) for _ in range(n_big)]
    blocks.append(
        (
            "bad_signature, ring 1,024",
            [msg(v, _with_sig(v, _bad_scalar(_sig(v), BIG, rng)), "cost", BAD) for v in big_bad],
        )
    )
    for kind in ("sig:non_canonical_scalar", "sig:random_well_formed", "sig:stolen_tag"):
        out = []
        for _ in range(n):
            g, member = rng.choice(sorted(world.keys)), rng.randrange(16)
            v = fresh(g, member)
            out.append(_sig_attack(kind, world, v, g, member, v.submission_id, rng))
        blocks.append((kind, out))
    for kind in ("random_bytes", "truncated_json", "wrong_types"):
        base = json.loads(fresh16().to_json())
        out = []
        for _ in range(n):
            key, value = json_mutation(kind, base, rng)
            out.append(Msg(key, value, kind, MAL))
        blocks.append((kind, out))
    return blocks


def _cpu_seconds(pid: int) -> float:
    """User + system CPU of ``pid`` and its live children (every thread counts)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            fields = (proc / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        # fields[1] is ppid; utime, stime are the 12th and 13th after the name
        if int(proc.name) == pid or int(fields[1]) == pid:
            total += (int(fields[11]) + int(fields[12])) / tick
    return total


def measure_cost(
    settings: Settings,
    blocks: list[tuple[str, list[Msg]]],
    pool: list[Any],
    watcher: Any,
    console: Console,
    *,
    idle_s: float = 5.0,
    timeout: float = 300.0,
) -> list[dict[str, Any]]:
    """Publish each block alone and read the workers' CPU time (/proc) before and after
    it: CPU per message = (delta - idle rate x wall) / messages. The idle rate (timers,
    polls, heartbeats) is measured first, over ``idle_s`` with nothing to do."""

    def cpu() -> float:
        return sum(_cpu_seconds(w.proc.pid) for w in pool if w.proc is not None)

    c0, t0 = cpu(), time.monotonic()
    time.sleep(idle_s)
    idle_rate = (cpu() - c0) / (time.monotonic() - t0)
    rows = []
    for name, msgs in blocks:
        plan = HostilePlan(seed=0, control=[], messages=msgs, valid=0, hostile=len(msgs))
        c0, t0 = cpu(), time.monotonic()
        positions = publish(settings, plan, console)
        wanted = set(positions.values())
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with watcher.lock:
                if wanted <= watcher.positions:
                    break
            time.sleep(0.05)
        c1, t1 = cpu(), time.monotonic()
        with watcher.lock:
            outcomes: Counter[str] = Counter()
            for i in range(len(msgs)):
                pos = positions.get(i)
                got = (
                    sorted(watcher.rejections.get((settings.topic("votes"), *pos), set()))
                    if pos
                    else []
                )
                if pos and watcher.ballot_pos.get(pos):
                    got.append("ballot")
                outcomes[",".join(got) or "none"] += 1
        expected = sum(n for o, n in outcomes.items() if o in msgs[0].expect)
        net = (c1 - c0) - idle_rate * (t1 - t0)
        rows.append(
            {
                "block": name,
                "messages": len(msgs),
                "outcomes": dict(outcomes),
                "as_expected": expected,
                "wall_s": round(t1 - t0, 2),
                "cpu_s": round(c1 - c0, 3),
                "cpu_net_s": round(net, 3),
                "cpu_ms_per_message": round(1000 * net / len(msgs), 3),
                "idle_rate_cores": round(idle_rate, 4),
                "load_avg": [round(x, 2) for x in os.getloadavg()],
            }
        )
        console.print(
            f"  cost {name}: {len(msgs)} msgs, {rows[-1]['cpu_ms_per_message']} ms CPU each "
            f"({rows[-1]['wall_s']} s wall, {dict(outcomes)})"
        )
    return rows


def cost_ratios(rows: list[dict[str, Any]]) -> dict[str, float | None]:
    """Hostile / valid CPU per message, per ring size (the issue's limit: 3)."""
    per = {r["block"]: r["cpu_ms_per_message"] for r in rows}
    out: dict[str, float | None] = {}
    for size in ("16", "1,024"):
        valid, bad = per.get(f"valid, ring {size}"), per.get(f"bad_signature, ring {size}")
        out[f"ring {size}"] = round(bad / valid, 2) if valid and bad is not None else None
    return out


# --- forged output-topic records, judged by the witness ------------------------------------


def _read_topic(settings: Settings, short: str) -> list[tuple[int, int, bytes | None, bytes]]:
    """Every committed record of one topic: (partition, offset, key, value), in offset order."""
    from confluent_kafka import Consumer, TopicPartition

    topic = settings.topic(short)
    consumer = Consumer(
        {
            "bootstrap.servers": settings.kafka_bootstrap,
            "group.id": f"hostile-{uuid.uuid4().hex}",
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "isolation.level": "read_committed",
            "log_level": 2,
        }
    )
    out: list[tuple[int, int, bytes | None, bytes]] = []
    try:
        parts = consumer.list_topics(topic, timeout=30).topics[topic].partitions
        remaining, start = {}, {}
        for p in parts:
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=30)
            if high > low:
                remaining[p], start[p] = high, low
        consumer.assign([TopicPartition(topic, p, low) for p, low in start.items()])
        # a transaction's commit marker can be a partition's last offset: no record reaches
        # high - 1 there, so a partition also ends when nothing came for a few seconds
        idle_since, deadline = time.monotonic(), time.monotonic() + 300
        while remaining and time.monotonic() < deadline and time.monotonic() - idle_since < 10:
            for msg in consumer.consume(5000, timeout=0.5):
                if msg.error() is not None:
                    continue
                idle_since = time.monotonic()
                if msg.value() is not None:
                    out.append((msg.partition(), msg.offset(), msg.key(), msg.value()))
                if msg.offset() + 1 >= remaining.get(msg.partition(), 0):
                    remaining.pop(msg.partition(), None)
    finally:
        consumer.close()
    return out


def _witness_verdicts(settings: Settings) -> list[Any]:
    """What ``ringtally witness`` would alert on: every ballot and rejection (the log's
    leaves), then every head, through its pure core, with the workers' log key."""
    from connectors.sdk.receipt import ReceiptInvalid, trusted_log_key, verify_head
    from connectors.witness.core import Witness
    from models.log import SignedHead
    from models.outputs import Ballot, Rejection

    log_key = trusted_log_key(settings)

    def signed(head: SignedHead) -> bool:
        try:
            verify_head(head, log_key)
        except ReceiptInvalid:
            return False
        return True

    witness = Witness(signed)
    found = []
    for short, model, feed in (
        ("ballots", Ballot, witness.ballot),
        ("rejections", Rejection, witness.rejection),
        ("heads", SignedHead, witness.head),
    ):
        for *_, value in _read_topic(settings, short):
            found += feed(model.model_validate_json(value))[1]
    return found


def forge_outputs(settings: Settings, n: int, rng: random.Random) -> list[dict[str, Any]]:
    """Forged records on the output topics, as an attacker with a producer credential
    would write them (they bypass the workers); returns their checks.

    Each is a copy of a real record with another leaf at the real one's place
    (ballot: another vote digest and vote id; rejection: another digest), or a
    head with another root under the real head's signature, appended on the real
    record's partition after it. "Exactly one rejection" for a forged output record
    means exactly one witness disagreement naming its submission (``leaf_conflict``
    for a leaf, ``bad_signature`` for a head), and none where nothing was forged.
    """
    from confluent_kafka import Producer

    baseline = _witness_verdicts(settings)
    real = {short: _read_topic(settings, short) for short in ("ballots", "rejections", "heads")}
    pick: dict[str, list[tuple[int, int, bytes | None, bytes]]] = {}
    for short, records in real.items():
        usable = [r for r in records if json.loads(r[3]).get("leaf_index") is not None]
        if short == "heads":
            usable = records
        # one forgery per submission, so each alert names exactly one forged record
        by_sub = {}
        for r in usable:
            by_sub.setdefault(json.loads(r[3])["submission_id"], r)
        subs = sorted(by_sub)
        rng.shuffle(subs)
        pick[short] = [by_sub[sub] for sub in subs]
    taken: set[str] = set()
    # (topic, expected disagreement, submission, partition, key, value)
    forged: list[tuple[str, str, str, int, bytes | None, bytes]] = []
    for short in ("ballots", "rejections", "heads"):
        count = 0
        for p, _, key, value in pick[short]:
            body = json.loads(value)
            sub = body["submission_id"]
            if sub in taken or count >= n:
                continue
            taken.add(sub)
            count += 1
            if short == "heads":
                body["root_hash"] = rng.randbytes(32).hex()
                expect = "bad_signature"
            else:
                body["vote_digest"] = rng.randbytes(32).hex()
                if short == "ballots":
                    body["vote_id"] = str(uuid.UUID(int=rng.getrandbits(128)))
                expect = "leaf_conflict"
            forged.append((short, expect, sub, p, key, json.dumps(body).encode()))
    producer = Producer({"bootstrap.servers": settings.kafka_bootstrap, "log_level": 2})
    for short, _, _, p, key, value in forged:
        producer.produce(settings.topic(short), key=key, value=value, partition=p)
    if producer.flush(60):
        raise RuntimeError("forged output records not acknowledged")
    after = _witness_verdicts(settings)
    new = Counter((d.submission_id, d.reason) for d in after) - Counter(
        (d.submission_id, d.reason) for d in baseline
    )
    wanted = Counter((sub, expect) for _, expect, sub, *_ in forged)
    by_kind = Counter(short for short, *_ in forged)
    return [
        {
            "name": "witness disagreements before any forged output record",
            "expected": 0,
            "got": len(baseline),
            "ok": not baseline,
            "note": str([(d.submission_id, d.reason, d.detail) for d in baseline[:3]]),
        },
        {
            "name": f"forged output records ({dict(by_kind)}) each flagged exactly once "
            "by the witness, on its submission",
            "expected": len(forged),
            "got": sum(min(n, new.get(k, 0)) for k, n in wanted.items()),
            "ok": new == wanted,
            "note": f"unexpected: {list((new - wanted).items())[:3]}; "
            f"missing: {list((wanted - new).items())[:3]}",
        },
    ]


# --- running it ---------------------------------------------------------------------------------


@dataclass
class HostileOutcome:
    checks: list[dict[str, Any]]
    reasons: dict[str, int]
    by_category: dict[str, dict[str, int]]
    worker_exits: list[dict[str, Any]]
    logs: dict[str, Any]
    timings: dict[str, float]
    #: CPU per message by category (:func:`measure_cost`), when measured
    cost: list[dict[str, Any]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(c["ok"] for c in self.checks)


def publish(settings: Settings, plan: HostilePlan, console: Console) -> dict[int, tuple[int, int]]:
    """Control records, then the messages; returns message index -> (partition, offset).

    Each message goes on its key's murmur2 partition (the workers' partitioner,
    as librdkafka's ``murmur2_random``), a ``foreign`` one on the next partition.
    """
    from confluent_kafka import Producer

    producer = Producer(
        {
            "bootstrap.servers": settings.kafka_bootstrap,
            "enable.idempotence": True,
            "acks": "all",
            "partitioner": "murmur2_random",
            "linger.ms": 20,
            "message.max.bytes": 1_000_000,
            "log_level": 2,
            "message.timeout.ms": 300_000,
        }
    )
    for short, key, value in plan.control:
        producer.produce(settings.topic(short), key=key, value=value)
    if producer.flush(120):
        raise RuntimeError("control records not acknowledged")
    partitions = settings.partitions
    positions: dict[int, tuple[int, int]] = {}
    for i, m in enumerate(plan.messages):
        where: dict[str, int] = {}
        if m.foreign and m.key:
            where["partition"] = (partition_for_key(m.key, partitions) + 1) % partitions
        if m.timestamp_ms is not None:
            where["timestamp"] = m.timestamp_ms
        producer.produce(
            settings.topic(m.topic),
            key=m.key,
            value=m.value,
            on_delivery=lambda err, msg, i=i: (
                positions.__setitem__(i, (msg.partition(), msg.offset())) if err is None else None
            ),
            **where,
        )
        if i % 1000 == 0:
            producer.poll(0)
        while len(producer) > 50_000:
            producer.poll(0.05)
    producer.flush(300)
    return positions


def check(
    plan: HostilePlan,
    positions: dict[int, tuple[int, int]],
    watcher: Any,
    worker_exits: list[dict[str, Any]],
    logs: dict[str, Any],
    settings: Settings,
) -> HostileOutcome:
    rejections = watcher.rejections  # (topic, partition, offset) -> set of reasons
    ballot_pos = watcher.ballot_pos  # (partition, offset) -> vote ids
    checks: list[dict[str, Any]] = []

    def add(name: str, expected: Any, got: Any, note: str = "") -> None:
        checks.append(
            {"name": name, "expected": expected, "got": got, "ok": expected == got, "note": note}
        )

    add("every message acknowledged by Kafka", len(plan.messages), len(positions))
    forgeries, missing, wrong, double, lost_valid = [], [], [], [], []
    per_cat: dict[str, Counter[str]] = defaultdict(Counter)
    reasons: Counter[str] = Counter()
    for i, m in enumerate(plan.messages):
        pos = positions.get(i)
        if pos is None:
            continue
        got_rej = rejections.get((settings.topic(m.topic), *pos), set())
        got_ballot = m.topic == "votes" and bool(ballot_pos.get(pos))
        outcome = sorted(got_rej) + (["ballot"] if got_ballot else [])
        per_cat[m.category][",".join(outcome) or "none"] += 1
        reasons.update(got_rej)
        if m.valid:
            if not got_ballot:
                lost_valid.append((pos, outcome))
            continue
        if got_ballot:
            forgeries.append((m.category, pos))
        if not outcome:
            missing.append((m.category, pos))
        elif len(outcome) > 1:
            double.append((m.category, pos, outcome))
        elif outcome[0] not in m.expect:
            wrong.append((m.category, pos, outcome[0]))
    add(
        "accepted forgeries (a ballot at a hostile message's position)",
        0,
        len(forgeries),
        str(forgeries[:3]),
    )
    add("hostile messages with no outcome", 0, len(missing), str(missing[:3]))
    add("hostile messages with more than one outcome", 0, len(double), str(double[:3]))
    add("hostile messages rejected with an unexpected reason", 0, len(wrong), str(wrong[:5]))
    add(
        "valid votes counted (incl. those whose tag was hammered first)",
        plan.valid,
        plan.valid - len(lost_valid),
        str(lost_valid[:3]),
    )
    add(
        "worker exits (70 = agent bug)",
        0,
        len(worker_exits),
        "; ".join(f"exit {e['code']}" for e in worker_exits),
    )
    add(
        "Traceback / CRITICAL in the worker log",
        0,
        logs["tracebacks"] + logs["critical"],
        logs.get("first") or "",
    )
    return HostileOutcome(
        checks=checks,
        reasons=dict(reasons.most_common()),
        by_category={k: dict(v) for k, v in sorted(per_cat.items())},
        worker_exits=worker_exits,
        logs=logs,
        timings={},
    )


def run_hostile(
    settings: Settings,
    plan: HostilePlan,
    log_dir: Path,
    console: Console,
    timeout: float = 1800.0,
    workers: int = 1,
    cost: tuple[int, int] | None = None,
    forge: int = 0,
) -> HostileOutcome:
    """Start ``workers`` workers on ``settings`` (one group: they split the partitions),
    publish ``plan``, wait for every outcome, check."""
    from bench.chaos import Watcher, scan_logs
    from streams.topics import ensure_topics

    ensure_topics(settings, internal=True)
    timings: dict[str, float] = {}
    t = time.monotonic()
    each = [
        settings if n == 0 else settings.model_copy(update={"web_port": free_port()})
        for n in range(workers)
    ]
    logs_of = [log_dir / ("worker.log" if n == 0 else f"worker{n}.log") for n in range(workers)]
    pool = [WorkerProcess(s, path).launch() for s, path in zip(each, logs_of, strict=True)]
    for worker in pool:
        worker.wait_ready(180)
    timings["worker_ready_s"] = round(time.monotonic() - t, 1)
    watcher = Watcher(settings).start()
    exits: list[dict[str, Any]] = []
    try:
        t = time.monotonic()
        positions = publish(settings, plan, console)
        timings["publish_s"] = round(time.monotonic() - t, 1)
        console.print(f"published {len(plan.messages)} messages in {timings['publish_s']}s")
        wanted = {p for i, p in positions.items() if plan.messages[i].topic == "votes"}
        wanted_control = {
            (settings.topic(plan.messages[i].topic), *p)
            for i, p in positions.items()
            if plan.messages[i].topic != "votes"
        }
        deadline = time.monotonic() + timeout
        last, last_change, last_report = -1, time.monotonic(), 0.0
        while time.monotonic() < deadline:
            with watcher.lock:
                done = len(watcher.positions & wanted) + len(
                    wanted_control & watcher.rejections.keys()
                )
            if done >= len(wanted) + len(wanted_control):
                break
            if done != last:
                last, last_change = done, time.monotonic()
            elif time.monotonic() - last_change > 120:
                console.print(f"[red]no new outcome for 120 s at {done}/{len(positions)}[/]")
                break
            for n, worker in enumerate(pool):
                if worker.proc is None or worker.proc.poll() is None:
                    continue
                exits.append(
                    {
                        "code": worker.proc.returncode,
                        "at": round(time.monotonic() - t, 1),
                        "tail": worker.tail(20),
                    }
                )
                console.print(f"[red]worker exited with {worker.proc.returncode}; restarting[/]")
                pool[n] = WorkerProcess(each[n], logs_of[n]).start(ready_timeout=180)
            if time.monotonic() - last_report > 15:
                last_report = time.monotonic()
                console.print(f"  outcomes {done}/{len(positions)}")
            time.sleep(0.5)
        timings["processing_s"] = round(time.monotonic() - t, 1)
        cost_rows: list[dict[str, Any]] = []
        if cost and plan.world is not None:
            t = time.monotonic()
            blocks = cost_blocks(plan.world, *cost, plan.seed)
            timings["cost_build_s"] = round(time.monotonic() - t, 1)
            t = time.monotonic()
            cost_rows = measure_cost(settings, blocks, pool, watcher, console)
            timings["cost_s"] = round(time.monotonic() - t, 1)
        time.sleep(2)
        alive = all(worker.alive() for worker in pool)
    finally:
        watcher.stop()
        for worker in pool:
            worker.stop()
    logs = scan_logs(log_dir)
    outcome = check(plan, positions, watcher, exits, logs, settings)
    if forge:
        t = time.monotonic()
        outcome.checks += forge_outputs(settings, forge, random.Random(plan.seed + 2))
        timings["forge_outputs_s"] = round(time.monotonic() - t, 1)
    outcome.checks.append(
        {"name": "worker alive at the end", "expected": True, "got": alive, "ok": alive, "note": ""}
    )
    outcome.timings = timings
    outcome.cost = cost_rows
    return outcome


def checks_table(checks: list[dict]) -> Table:
    """The checks of a run (dicts: name, expected, got, ok, note), one row each."""
    table = Table(title="checks")
    for col in ("check", "expected", "got", "result", "note"):
        table.add_column(col)
    for c in checks:
        table.add_row(
            c["name"],
            str(c["expected"]),
            str(c["got"]),
            "[green]PASS[/]" if c["ok"] else "[red]FAIL[/]",
            c["note"][:150],
        )
    return table


def report(plan: HostilePlan, out: HostileOutcome, console: Console) -> None:
    table = Table(title=f"hostile input: {plan.hostile} hostile + {plan.valid} valid messages")
    for col in ("category", "sent", "allowed", "outcomes seen"):
        table.add_column(col)
    for cat, outcomes in out.by_category.items():
        allowed = "ballot" if cat.startswith("valid") else ",".join(sorted(CATEGORIES[cat][1]))
        table.add_row(
            cat,
            str(plan.by_category.get(cat, sum(outcomes.values()))),
            allowed,
            ", ".join(f"{k}={v}" for k, v in outcomes.items()),
        )
    console.print(table)
    reasons = Table(title="rejections by reason")
    reasons.add_column("reason")
    reasons.add_column("count", justify="right")
    for r, n in out.reasons.items():
        reasons.add_row(r, str(n))
    console.print(reasons)
    console.print(checks_table(out.checks))
    if out.cost:
        cost = Table(title="worker CPU per message, by category (blocks of one kind)")
        for col in ("block", "messages", "CPU ms / message", "wall s", "outcomes"):
            cost.add_column(col)
        for r in out.cost:
            cost.add_row(
                r["block"],
                str(r["messages"]),
                str(r["cpu_ms_per_message"]),
                str(r["wall_s"]),
                ", ".join(f"{k}={v}" for k, v in r["outcomes"].items()),
            )
        console.print(cost)
        console.print(f"hostile / valid CPU per message: {cost_ratios(out.cost)} (limit 3)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hostile", type=int, default=100_000)
    parser.add_argument("--valid", type=int, default=1920)
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument(
        "--no-huge", action="store_true", help="leave out the 256 KiB..900 KB payloads"
    )
    parser.add_argument("--results", type=Path, default=RESULTS)
    parser.add_argument("--keep", action="store_true")
    parser.add_argument("--workers", type=int, default=1, help="workers in the group")
    parser.add_argument(
        "--big-valid", type=int, default=100, help="honest votes on the 1,024-member ring"
    )
    parser.add_argument(
        "--cost-block",
        type=int,
        default=200,
        help="messages per CPU-cost block after the run (0: no cost phase)",
    )
    parser.add_argument(
        "--forge-outputs",
        type=int,
        default=20,
        help="forged ballots, rejections and heads (each) written after the run, for the "
        "witness to flag (0: none)",
    )
    parser.add_argument(
        "--cost-big", type=int, default=40, help="messages per ring-1,024 cost block"
    )
    parser.add_argument(
        "--table-store", choices=("memory", "rocksdb"), default="memory", help="tables' store"
    )
    args = parser.parse_args(argv)
    console = Console()
    import signal

    from bench.chaos import _sigterm

    signal.signal(signal.SIGTERM, _sigterm)
    t = time.monotonic()
    plan = build_plan(
        args.hostile, args.valid, seed=args.seed, huge=not args.no_huge, big_valid=args.big_valid
    )
    build_s = round(time.monotonic() - t, 1)
    console.print(
        f"plan: {plan.hostile} hostile, {plan.valid} valid, {len(plan.control)} control records "
        f"({build_s}s)"
    )
    from connectors.stack import LocalStack

    run_dir = (
        ROOT / ".ringtally" / "hostile" / f"{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:4]}"
    )
    settings = pin_registrar(  # the development registrar key, not one per run dir
        Settings(
            topic_prefix="hostile",
            data_dir=run_dir / "data",
            kafka_bootstrap=f"127.0.0.1:{free_port()}",
            kafka_controller_port=free_port(),
            partitions=12,
            table_store=args.table_store,
            web_port=free_port(),
        )
    )
    stack = LocalStack(settings, cache_dir=ROOT / ".ringtally" / "cache")
    try:
        stack.up(["kafka"], timeout=120)
        out = run_hostile(
            settings,
            plan,
            run_dir / "logs",
            console,
            workers=args.workers,
            cost=(args.cost_block, args.cost_big) if args.cost_block else None,
            forge=args.forge_outputs,
        )
    finally:
        stack.down(["kafka"])
        if not args.keep:
            shutil.rmtree(run_dir / "data", ignore_errors=True)
    out.timings["build_s"] = build_s
    report(plan, out, console)
    payload = {
        "ok": out.ok,
        "command": " ".join(sys.argv),
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "seed": args.seed,
        "hostile": plan.hostile,
        "valid": plan.valid,
        "workers": args.workers,
        "table_store": args.table_store,
        "sent_by_category": dict(sorted(plan.by_category.items())),
        "outcomes_by_category": out.by_category,
        "rejections_by_reason": out.reasons,
        "checks": out.checks,
        "worker_exits": out.worker_exits,
        "log_scan": {k: v for k, v in out.logs.items() if k != "by_file"},
        "timings": out.timings,
        "cost_per_message": out.cost,
        "cost_ratio_hostile_to_valid": cost_ratios(out.cost) if out.cost else None,
        "logs": str(run_dir / "logs"),
        "machine": {"cpus": os.cpu_count(), "load_avg": [round(x, 2) for x in os.getloadavg()]},
    }
    args.results.parent.mkdir(parents=True, exist_ok=True)
    args.results.write_text(json.dumps(payload, indent=2, default=str) + "\n")
    console.print(f"wrote {args.results}")
    return 0 if out.ok else 1


if __name__ == "__main__":
    sys.exit(main())
