"""Shared bits of the atheris harnesses: repo on sys.path, seed inputs, the bounded-run flags."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
CORPUS = Path(__file__).resolve().parent / "corpus"


def fuzz_keys(n: int = 4) -> list:
    """Deterministic ring keys, so that corpus inputs keep their meaning between runs."""
    import hashlib

    import ringcrypto

    return [
        ringcrypto.SecretKey.from_seed(hashlib.sha256(b"fuzz%d" % i).digest()) for i in range(n)
    ]


def seed_vote() -> bytes:
    """A valid v2 VoteCast (ring of 4, batchable signature), deterministic keys."""
    import ringcrypto
    from tests.fixtures.votes import make_vote

    keys = fuzz_keys()
    ring = ringcrypto.Ring([k.public_key for k in keys])
    return make_vote(keys[1], ring, submission_id="s1", slot=0, batchable=True).to_json()
