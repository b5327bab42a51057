"""native/log-vectors.json: the submission log's bytes, re-derived from SPEC §14's text.

Every leaf, root, proof and head is recomputed here with hashlib and an
encoder of this test's own (not models.log / models.merkle), so a change of
the log's bytes that the SPEC does not describe fails here; the file must be
exactly what ``python -m tests.vectors.log`` makes, the proofs must verify
with models.merkle, and the head's signature with ringcrypto.
"""

from __future__ import annotations

import base64
import hashlib
import json
import struct
from pathlib import Path

import pytest

import ringcrypto
from models.merkle import verify_consistency, verify_inclusion
from tests.test_message_vectors import lp, spec_vote_message
from tests.vectors.log import render

FILE = Path(__file__).resolve().parents[1] / "native" / "log-vectors.json"
VECTORS = json.loads(FILE.read_text())


def sha(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def mth(hashes: list[bytes]) -> bytes:
    if not hashes:
        return sha(b"")
    if len(hashes) == 1:
        return hashes[0]
    k = 1 << ((len(hashes) - 1).bit_length() - 1)
    return sha(b"\x01" + mth(hashes[:k]) + mth(hashes[k:]))


def test_the_file_is_what_the_generator_makes():
    assert FILE.read_text() == render(), "regenerate: python -m tests.vectors.log"


def test_vote_digest_and_leaves_follow_the_spec_layout():
    r = VECTORS["vote"]["record"]
    m = spec_vote_message(r)
    signature = base64.b64decode(r["signature"])
    digest = sha(lp(b"ringtally/v2/vote-digest") + lp(m) + lp(signature))
    assert VECTORS["vote"]["vote_digest"] == digest.hex()
    leaves = VECTORS["leaves"]
    assert (leaves[0]["kind"], leaves[0]["vote_digest"]) == ("ballot", digest.hex())
    assert (leaves[-1]["kind"], leaves[-1]["vote_digest"]) == ("retraction", digest.hex())
    for i, leaf in enumerate(leaves[1:-1], start=1):
        assert leaf["vote_digest"] == sha(f"ringtally-v2 test digest {i}".encode()).hex()
    for leaf in leaves:
        expected = (
            lp(b"ringtally/v2/log-leaf")
            + lp(leaf["kind"].encode())
            + bytes.fromhex(leaf["vote_digest"])
        )
        assert leaf["leaf"] == expected.hex()
        assert leaf["leaf_hash"] == sha(b"\x00" + expected).hex()


def test_roots_and_proofs_follow_rfc_9162():
    hashes = [bytes.fromhex(leaf["leaf_hash"]) for leaf in VECTORS["leaves"]]
    roots = [bytes.fromhex(r) for r in VECTORS["roots"]]
    assert roots == [mth(hashes[:n]) for n in range(len(hashes) + 1)]
    n = len(hashes)
    for proof in VECTORS["inclusion_proofs"]:
        path = [bytes.fromhex(p) for p in proof["path"]]
        assert verify_inclusion(hashes[proof["index"]], proof["index"], n, path, roots[n])
    for proof in VECTORS["consistency_proofs"]:
        m, path = proof["first_size"], [bytes.fromhex(p) for p in proof["path"]]
        assert verify_consistency(m, n, roots[m], roots[n], path)


def test_the_heads_are_signed_together_by_the_log_key_under_its_own_context():
    heads = VECTORS["heads"]
    records = heads["records"]
    messages = [
        lp(b"ringtally/v2/log-head")
        + lp(r["submission_id"].encode())
        + struct.pack(">Q", r["tree_size"])
        + bytes.fromhex(r["root_hash"])
        for r in records
    ]
    assert heads["messages"] == [m.hex() for m in messages]
    roots = VECTORS["roots"]
    assert [(r["tree_size"], r["root_hash"]) for r in records] == [
        (7, roots[7]),
        (1, roots[1]),
        (3, roots[3]),
    ]
    batch_root = mth([sha(b"\x00" + m) for m in messages])
    assert heads["batch_root"] == batch_root.hex()
    signed = lp(b"ringtally/v2/log-heads") + struct.pack(">Q", len(records)) + batch_root
    assert heads["signing_bytes"] == signed.hex()
    for i, r in enumerate(records):  # each head's path leads to the signed batch root
        assert (r["batch_size"], r["batch_index"]) == (len(records), i)
        path = [bytes.fromhex(p) for p in r["batch_path"]]
        assert verify_inclusion(sha(b"\x00" + messages[i]), i, len(records), path, batch_root)
    ring = ringcrypto.Ring([bytes.fromhex(records[0]["log_key"])])
    signature = base64.b64decode(records[0]["signature"])
    ringcrypto.verify(ring, b"ringtally/v2/log-head", signed, signature)
    try:  # the registrar's context is another: the same signature is no registrar signature
        ringcrypto.verify(ring, b"ringtally/v2/registrar", signed, signature)
    except ringcrypto.InvalidSignature:
        pass
    else:
        raise AssertionError("a head signature verified under the registrar context")


def test_rejection_leaves_carry_their_reason_after_the_digest():
    """SPEC §14.1: a rejection leaf is lp(tag) || lp("rejection") || digest || lp(reason)."""
    r = VECTORS["vote"]["record"]
    digest = sha(
        lp(b"ringtally/v2/vote-digest")
        + lp(spec_vote_message(r))
        + lp(base64.b64decode(r["signature"]))
    )
    log = VECTORS["rejections"]
    expected = [
        ("rejection", digest, b"bad_signature"),
        ("ballot", sha(b"ringtally-v2 test digest 1"), None),
        ("rejection", sha(b"ringtally-v2 test digest 2"), b"duplicate_key_image"),
    ]
    hashes = []
    for leaf, (kind, d, reason) in zip(log["leaves"], expected, strict=True):
        raw = lp(b"ringtally/v2/log-leaf") + lp(kind.encode()) + d
        if reason is not None:
            raw += lp(reason)
            assert leaf["reason"] == reason.decode()
        else:
            assert "reason" not in leaf
        assert (leaf["kind"], leaf["vote_digest"]) == (kind, d.hex())
        assert leaf["leaf"] == raw.hex()
        assert leaf["leaf_hash"] == sha(b"\x00" + raw).hex()
        hashes.append(sha(b"\x00" + raw))
    assert log["root"] == mth(hashes).hex()
    # the reason is bound: another reason is another leaf, and no leaf of another kind
    other = lp(b"ringtally/v2/log-leaf") + lp(b"rejection") + digest + lp(b"token_spent")
    assert sha(b"\x00" + other).hex() not in {leaf["leaf_hash"] for leaf in log["leaves"]}


def test_a_final_head_binds_the_closing_time_under_its_own_tag():
    """SPEC §14.3: lp("ringtally/v2/log-final-head") || lp(id) || u64(size) || root ||
    i64(closed_ms), a leaf of its signed batch like any head; no ordinary head's bytes."""
    final = VECTORS["final_head"]
    r = final["record"]
    message = (
        lp(b"ringtally/v2/log-final-head")
        + lp(r["submission_id"].encode())
        + struct.pack(">Q", r["tree_size"])
        + bytes.fromhex(r["root_hash"])
        + struct.pack(">q", r["closed_ms"])
    )
    assert final["message"] == message.hex()
    assert (r["tree_size"], r["root_hash"]) == (7, VECTORS["roots"][7])
    assert (r["batch_size"], r["batch_index"], r["batch_path"]) == (1, 0, [])
    signed = lp(b"ringtally/v2/log-heads") + struct.pack(">Q", 1) + sha(b"\x00" + message)
    assert final["signing_bytes"] == signed.hex()
    ring = ringcrypto.Ring([bytes.fromhex(r["log_key"])])
    ringcrypto.verify(ring, b"ringtally/v2/log-head", signed, base64.b64decode(r["signature"]))
    assert message.hex() not in VECTORS["heads"]["messages"]
    from connectors.sdk.receipt import ReceiptInvalid, verify_head
    from models.log import SignedHead

    head = SignedHead.model_validate(r)
    verify_head(head, bytes.fromhex(r["log_key"]))
    for forged in ({"closed_ms": None}, {"closed_ms": r["closed_ms"] + 1}):
        with pytest.raises(ReceiptInvalid, match="signature invalid"):
            verify_head(head.model_copy(update=forged), bytes.fromhex(r["log_key"]))
