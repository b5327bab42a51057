"""Known-answer vectors for ringtally's signed messages (native/SPEC.md §13).

``python -m tests.vectors.messages > native/message-vectors.json`` writes them;
``tests/test_message_vectors.py`` checks that the file is what this script
makes, that every byte string in it follows from SPEC §13's layouts, and that
the verifier accepts the vote and the registrar records. Keys and randomness
follow SPEC §10's derivations, so the file can be re-derived from the text.
"""

from __future__ import annotations

import base64
import hashlib
import json
import sys
from datetime import UTC, datetime
from typing import Any

from models.control import Ring, Submission
from models.encoding import REGISTRAR_CONTEXT, epoch_bytes
from models.fields import VoteType
from models.internal import vote_id_for_token
from models.votes import VoteCast

VALID_FROM = datetime(2026, 12, 1, 0, 0, tzinfo=UTC)


def seed(k: int) -> bytes:
    """SPEC §10: seed_k = SHA512("ringtally-v2 test seed " || decimal(k))[0..32]."""
    return hashlib.sha512(f"ringtally-v2 test seed {k}".encode()).digest()[:32]


def randomness(label: str) -> bytes:
    """SPEC §10: z = SHA512("ringtally-v2 test z " || label)[0..32]."""
    return hashlib.sha512(f"ringtally-v2 test z {label}".encode()).digest()[:32]


def build() -> dict[str, Any]:
    import ringcrypto
    from ringcrypto import hazmat

    registrar = ringcrypto.SecretKey.from_seed(seed(0))
    members = [ringcrypto.SecretKey.from_seed(seed(k)) for k in (3, 4, 5)]
    signer = members[1]

    def registrar_sign(signed: bytes, label: str) -> str:
        signature = hazmat.sign_with_randomness(
            registrar,
            ringcrypto.Ring([registrar.public_key]),
            REGISTRAR_CONTEXT,
            signed,
            randomness(label),
        )
        return base64.b64encode(signature).decode("ascii")

    ring = Ring(
        ring_id="ring-poetry-7",
        version=1,
        genre="poetry",
        epoch=7,
        public_keys=[m.public_key.hex() for m in members],
        votes_per_epoch=10,
        valid_from=VALID_FROM,
    )
    ring = ring.model_copy(
        update={"registrar_signature": registrar_sign(ring.signing_bytes(), "message/ring")}
    )
    submission = Submission(submission_id="sub-0001", genre="poetry", epoch=7)
    submission = submission.model_copy(
        update={
            "registrar_signature": registrar_sign(submission.signing_bytes(), "message/submission")
        }
    )
    epoch, slot = 7, 2
    tag = signer.slot_tag(epoch_bytes(epoch), slot).hex()
    fields = dict(
        vote_id=vote_id_for_token(tag),
        submission_id="sub-0001",
        ring_id="ring-poetry-7",
        ring_version=1,
        vote_type=VoteType.APPROVE,
        epoch=epoch,
        slot=slot,
        token_id=tag,
    )
    unsigned = VoteCast.model_construct(**fields)
    signature = hazmat.sign_vote_with_randomness(
        signer,
        ringcrypto.Ring(ring.public_key_bytes()),
        b"sub-0001",
        epoch_bytes(epoch),
        slot,
        unsigned.signing_bytes(),
        randomness("message/vote"),
        batchable=True,
    )
    vote = VoteCast(**fields, signature=base64.b64encode(signature).decode("ascii"))
    return {
        "spec": "native/SPEC.md §13",
        "registrar": {"seed_index": 0, "public_key": registrar.public_key.hex()},
        "ring": {
            "record": json.loads(ring.to_json()),
            "signing_bytes": ring.signing_bytes().hex(),
            "randomness_label": "message/ring",
        },
        "submission": {
            "record": json.loads(submission.to_json()),
            "signing_bytes": submission.signing_bytes().hex(),
            "randomness_label": "message/submission",
        },
        "vote": {
            "signer_seed_index": 4,
            "epoch_bytes": epoch_bytes(epoch).hex(),
            "slot_tag": tag,
            "key_image": signer.key_image(b"sub-0001").hex(),
            "record": json.loads(vote.to_json()),
            "record_key": tag,
            "signing_bytes": vote.signing_bytes().hex(),
            "randomness_label": "message/vote",
        },
    }


def render() -> str:
    return json.dumps(build(), indent=2) + "\n"


if __name__ == "__main__":
    sys.stdout.write(render())
