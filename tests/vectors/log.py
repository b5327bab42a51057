"""Known-answer vectors for the submission log (native/SPEC.md §14).

``python -m tests.vectors.log > native/log-vectors.json`` writes them;
``tests/test_log_vectors.py`` checks that the file is what this script makes,
re-derives every byte from SPEC §14's text with an encoder of its own, and
verifies the proofs and the head's signature. The vote is §13's vector vote;
the other leaves' digests are ``SHA-256("ringtally-v2 test digest " ||
decimal(i))``; the log key is §10's key 1, which signs one batch of three
heads (this log at size 7, ``sub-0002`` at size 1, ``sub-0003`` at size 3 with
the roots of this log's first 1 and 3 leaves), randomness label ``log/heads``.
``rejections`` is a second, 3-leaf log with ``rejection`` leaves (§14.1): the
§13 vote refused ``bad_signature``, a ballot of digest 1, the vote of digest 2
refused ``duplicate_key_image``; each leaf's bytes and hash, and its root.
``final_head`` is a batch of one: the 7-leaf log's head at size 7 made final
by a closing at broker time ``CLOSED_MS`` (§14.3), signed by key 1 with the
randomness label ``log/final-head``.
"""

from __future__ import annotations

import base64
import hashlib
import json
import sys
from typing import Any

from models.log import (
    LOG_HEAD_CONTEXT,
    LeafKind,
    head_message,
    heads_signing_bytes,
    leaf_bytes,
    vote_digest,
)
from models.merkle import (
    consistency_proof,
    inclusion_proof,
    inclusion_proofs,
    leaf_hash,
    tree_hash,
)
from models.votes import VoteCast
from tests.vectors.messages import build as build_messages
from tests.vectors.messages import randomness, seed

SUBMISSION = "sub-0001"
TREE_SIZE = 7
CLOSED_MS = 1_765_432_100_000


def leaf_digest(i: int) -> bytes:
    return hashlib.sha256(f"ringtally-v2 test digest {i}".encode()).digest()


def build() -> dict[str, Any]:
    import ringcrypto
    from ringcrypto import hazmat

    vote = VoteCast.model_validate_json(json.dumps(build_messages()["vote"]["record"]))
    digest = vote_digest(vote.signing_bytes(), vote.signature_bytes())
    # leaf 0: the §13 vote counted; 1..5: other ballots; 6: the §13 vote retracted
    leaves = [(LeafKind.BALLOT, digest)]
    leaves += [(LeafKind.BALLOT, leaf_digest(i)) for i in range(1, TREE_SIZE - 1)]
    leaves += [(LeafKind.RETRACTION, digest)]
    raw = [leaf_bytes(kind, d) for kind, d in leaves]
    hashes = [leaf_hash(r) for r in raw]
    root, root3 = tree_hash(hashes), tree_hash(hashes[:3])
    key = ringcrypto.SecretKey.from_seed(seed(1))
    # one signed batch of three heads: this log at size 7, and two other submissions'
    heads = [(SUBMISSION, TREE_SIZE, root), ("sub-0002", 1, hashes[0]), ("sub-0003", 3, root3)]
    messages = [head_message(submission_id=s, tree_size=n, root=r) for s, n, r in heads]
    batch_root, paths = inclusion_proofs([leaf_hash(m) for m in messages])
    signed = heads_signing_bytes(count=len(heads), root=batch_root)
    signature = hazmat.sign_with_randomness(
        key, ringcrypto.Ring([key.public_key]), LOG_HEAD_CONTEXT, signed, randomness("log/heads")
    )
    final = head_message(
        submission_id=SUBMISSION, tree_size=TREE_SIZE, root=root, closed_ms=CLOSED_MS
    )
    final_root, [final_path] = inclusion_proofs([leaf_hash(final)])
    final_signed = heads_signing_bytes(count=1, root=final_root)
    final_signature = hazmat.sign_with_randomness(
        key,
        ringcrypto.Ring([key.public_key]),
        LOG_HEAD_CONTEXT,
        final_signed,
        randomness("log/final-head"),
    )
    refusals = [
        (LeafKind.REJECTION, digest, "bad_signature"),
        (LeafKind.BALLOT, leaf_digest(1), None),
        (LeafKind.REJECTION, leaf_digest(2), "duplicate_key_image"),
    ]
    refused_raw = [leaf_bytes(kind, d, reason) for kind, d, reason in refusals]
    refused_hashes = [leaf_hash(r) for r in refused_raw]
    return {
        "spec": "native/SPEC.md §14",
        "vote": {
            "record": json.loads(vote.to_json()),
            "vote_digest": digest.hex(),
        },
        "leaves": [
            {"kind": kind.value, "vote_digest": d.hex(), "leaf": r.hex(), "leaf_hash": h.hex()}
            for (kind, d), r, h in zip(leaves, raw, hashes, strict=True)
        ],
        "roots": [tree_hash(hashes[:n]).hex() for n in range(TREE_SIZE + 1)],
        "inclusion_proofs": [
            {"index": i, "path": [p.hex() for p in inclusion_proof(hashes, i)]}
            for i in range(TREE_SIZE)
        ],
        "consistency_proofs": [
            {"first_size": m, "path": [p.hex() for p in consistency_proof(hashes, m)]}
            for m in range(1, TREE_SIZE + 1)
        ],
        "heads": {
            "log_key_seed_index": 1,
            "messages": [m.hex() for m in messages],
            "batch_root": batch_root.hex(),
            "signing_bytes": signed.hex(),
            "randomness_label": "log/heads",
            "records": [
                {
                    "type": "log_head",
                    "submission_id": s,
                    "tree_size": n,
                    "root_hash": r.hex(),
                    "log_key": key.public_key.hex(),
                    "batch_size": len(heads),
                    "batch_index": i,
                    "batch_path": [p.hex() for p in path],
                    "signature": base64.b64encode(signature).decode("ascii"),
                }
                for i, ((s, n, r), path) in enumerate(zip(heads, paths, strict=True))
            ],
        },
        "final_head": {
            "message": final.hex(),
            "signing_bytes": final_signed.hex(),
            "randomness_label": "log/final-head",
            "record": {
                "type": "log_head",
                "submission_id": SUBMISSION,
                "tree_size": TREE_SIZE,
                "root_hash": root.hex(),
                "log_key": key.public_key.hex(),
                "batch_size": 1,
                "batch_index": 0,
                "batch_path": [p.hex() for p in final_path],
                "signature": base64.b64encode(final_signature).decode("ascii"),
                "closed_ms": CLOSED_MS,
            },
        },
        "rejections": {
            "leaves": [
                {
                    "kind": kind.value,
                    "vote_digest": d.hex(),
                    **({} if reason is None else {"reason": reason}),
                    "leaf": r.hex(),
                    "leaf_hash": h.hex(),
                }
                for (kind, d, reason), r, h in zip(
                    refusals, refused_raw, refused_hashes, strict=True
                )
            ],
            "root": tree_hash(refused_hashes).hex(),
        },
    }


def render() -> str:
    return json.dumps(build(), indent=2) + "\n"


if __name__ == "__main__":
    sys.stdout.write(render())
