"""Shared bits of the atheris harnesses: repo on sys.path, seed inputs, the bounded-run flags."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
CORPUS = Path(__file__).resolve().parent / "corpus"


def seed_vote() -> bytes:
    """A valid VoteCast (ring of 4, batchable signature), deterministic keys."""
    import hashlib

    import ringcrypto
    from connectors.sdk.vote import build_vote

    keys = [
        ringcrypto.SecretKey.from_seed(hashlib.sha256(b"fuzz%d" % i).digest()) for i in range(4)
    ]
    ring = ringcrypto.Ring([k.public_key for k in keys])
    vote = build_vote(
        keys[1],
        ring,
        submission_id="s1",
        ring_id="r1",
        vote_type="approve",
        token_id="tok-1",
        epoch=1,
        batchable=True,
    )
    return vote.to_json()
