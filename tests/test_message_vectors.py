"""native/message-vectors.json: ringtally's signed messages, re-derived from SPEC §13.

The signing bytes are rebuilt here from the layouts written in the SPEC, by an
encoder of this test's own (not models.encoding), so a change of the wire
encoding that the SPEC does not describe fails here; the file must also be
exactly what ``python -m tests.vectors.messages`` makes, and the verifier must
accept the vote and the registrar's records.
"""

from __future__ import annotations

import base64
import json
import struct
import uuid
from datetime import datetime
from pathlib import Path

from tests.vectors.messages import render

FILE = Path(__file__).resolve().parents[1] / "native" / "message-vectors.json"
VECTORS = json.loads(FILE.read_text())


def lp(data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + data


def test_the_file_is_what_the_generator_makes():
    assert FILE.read_text() == render(), "regenerate: python -m tests.vectors.messages"


def spec_vote_message(r: dict) -> bytes:
    """SPEC §13.1's message ``m`` of the vote record ``r`` (JSON), by this test's encoder."""
    return (
        lp(b"ringtally/vote/v2")
        + lp(uuid.UUID(r["vote_id"]).bytes)
        + lp(r["submission_id"].encode())
        + lp(r["ring_id"].encode())
        + struct.pack(">I", r["ring_version"])
        + lp(r["vote_type"].encode())
        + lp(r["token_id"].encode())
        + struct.pack(">Q", r["epoch"])
        + struct.pack(">I", r["slot"])
    )


def test_vote_signing_bytes_follow_the_spec_layout():
    r = VECTORS["vote"]["record"]
    assert VECTORS["vote"]["signing_bytes"] == spec_vote_message(r).hex()
    ns = uuid.UUID("d24b4bfc-31aa-5c5e-827f-955cf2a17a90")
    assert r["vote_id"] == str(uuid.uuid5(ns, r["token_id"]))
    assert VECTORS["vote"]["record_key"] == r["token_id"]


def test_registrar_signing_bytes_follow_the_spec_layout():
    ring = VECTORS["ring"]["record"]
    head = lp(b"ringtally/registrar/v2")
    valid_from = datetime.fromisoformat(ring["valid_from"].replace("Z", "+00:00"))
    micros = round(valid_from.timestamp() * 1_000_000)
    expected_ring = (
        head
        + lp(b"ring")
        + lp(ring["ring_id"].encode())
        + struct.pack(">I", ring["version"])
        + lp(ring["genre"].encode())
        + struct.pack(">Q", ring["epoch"])
        + struct.pack(">I", len(ring["public_keys"]))
        + b"".join(bytes.fromhex(k) for k in ring["public_keys"])
        + struct.pack(">I", ring["votes_per_epoch"])
        + (b"\x01" if ring["active"] else b"\x00")
        + struct.pack(">q", micros)
    )
    assert VECTORS["ring"]["signing_bytes"] == expected_ring.hex()
    sub = VECTORS["submission"]["record"]
    expected_sub = (
        head
        + lp(b"submission")
        + lp(sub["submission_id"].encode())
        + lp(sub["genre"].encode())
        + struct.pack(">Q", sub["epoch"])
    )
    assert VECTORS["submission"]["signing_bytes"] == expected_sub.hex()


def test_the_verifier_accepts_the_vectors():
    import ringcrypto

    v = VECTORS["vote"]
    r = v["record"]
    ring = ringcrypto.Ring(bytes.fromhex(k) for k in VECTORS["ring"]["record"]["public_keys"])
    key_image, tag = ringcrypto.verify_vote(
        ring,
        r["submission_id"].encode(),
        bytes.fromhex(v["epoch_bytes"]),
        r["slot"],
        bytes.fromhex(v["signing_bytes"]),
        base64.b64decode(r["signature"]),
    )
    assert (key_image.hex(), tag.hex()) == (v["key_image"], v["slot_tag"])
    registrar = ringcrypto.Ring([bytes.fromhex(VECTORS["registrar"]["public_key"])])
    for name in ("ring", "submission"):
        ringcrypto.verify(
            registrar,
            b"ringtally/v2/registrar",
            bytes.fromhex(VECTORS[name]["signing_bytes"]),
            base64.b64decode(VECTORS[name]["record"]["registrar_signature"]),
        )
