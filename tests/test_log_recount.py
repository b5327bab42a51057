"""``ringtally recount`` refuses what a worker refuses (the review's recount_attacks.py).

The bulletin carries the registrar-signed submission (and closing) and each record's
and vote's broker time; the recount applies the workers' own rule
(:func:`streams.acceptance.vote_context`): a vote by a member revoked in ring v2 but
signed against v1, a vote against an inactive version, a slot out of range, a vote
after the closing are refused. And the CLI exits 1 unless it knows the log and
registrar keys, or is told ``--unverified`` (and says so). No stack needed.
"""

from __future__ import annotations

import base64
import os
import subprocess
import sys
from datetime import UTC, datetime

import pytest

import ringcrypto
from agents.loghead import LogSigner
from connectors.sdk.bulletin import BulletinInvalid, bulletin_lines, recount
from connectors.sdk.vote import build_vote
from models.control import Ring, Submission, SubmissionClosed
from models.encoding import REGISTRAR_CONTEXT
from models.log import LeafKind, log_leaf_hash, vote_digest
from models.merkle import tree_hash

RULES = "ringtally-rules-v1;min_votes=3;flag_threshold=3"
REGISTRAR = ringcrypto.SecretKey.from_seed(bytes([9]) * 32)
LOG = LogSigner(ringcrypto.SecretKey.from_seed(bytes([8]) * 32))
MEMBERS = [ringcrypto.SecretKey.from_seed(bytes([i]) * 32) for i in (1, 2, 3)]


def _signed(record):
    ring = ringcrypto.Ring([REGISTRAR.public_key])
    sig = ringcrypto.sign(REGISTRAR, ring, REGISTRAR_CONTEXT, record.signing_bytes())
    return record.model_copy(update={"registrar_signature": base64.b64encode(sig).decode()})


def _ring(version, keys, active=True):
    return _signed(
        Ring(
            ring_id="r1", version=version, genre="poetry", epoch=1,
            public_keys=[k.public_key.hex() for k in keys], votes_per_epoch=1,
            active=active, valid_from=datetime(2026, 1, 1, tzinfo=UTC),
        )
    )  # fmt: skip


V1 = _ring(1, MEMBERS)  # appended at 1000
V2 = _ring(2, MEMBERS[:2], active=False)  # appended at 2000: member 3 revoked, inactive
T0 = V1.valid_from_ms()  # times below are ms after it
SUB = _signed(Submission(submission_id="sub-x", genre="poetry", epoch=1))


def _vote(member, ring, slot=0):
    return build_vote(
        MEMBERS[member], ringcrypto.Ring(ring.public_key_bytes()), submission_id="sub-x",
        ring_id="r1", ring_version=ring.version, vote_type="approve", epoch=1, slot=slot,
    )  # fmt: skip


def _bulletin(votes, *, closed_ms=None):
    """A bulletin whose head is really signed over ``votes`` ([(vote, broker ms after T0)])."""
    hashes = [
        log_leaf_hash("ballot", vote_digest(v.signing_bytes(), v.signature_bytes()))
        for v, _ in votes
    ]
    [head] = LOG.sign([("sub-x", len(hashes), tree_hash(hashes))])
    closing = None
    if closed_ms is not None:
        closing = (_signed(SubmissionClosed(submission_id="sub-x")), T0 + closed_ms)
    return list(
        bulletin_lines(
            head=head, rules=RULES, submission=(SUB, T0 + 500), closing=closing,
            rings=[(V1, T0 + 1000), (V2, T0 + 2000)],
            leaves=[(i, LeafKind.BALLOT, v, T0 + at) for i, (v, at) in enumerate(votes)],
        )
    )  # fmt: skip


def _recount(lines):
    return recount(lines, log_key=LOG.public_key, registrar_keys=[REGISTRAR.public_key])


def test_a_bulletin_of_votes_the_workers_accept_recounts():
    result = _recount(_bulletin([(_vote(0, V1), 1500), (_vote(2, V1), 1999)], closed_ms=2500))
    assert (result.counts.approve, result.head_verified, result.rings_verified) == (2, True, True)


@pytest.mark.parametrize(
    ("votes", "closed_ms", "reason"),
    [
        ([(_vote(2, V1), 3000)], None, "ring_not_in_force"),  # revoked in v2, signed for v1
        ([(_vote(1, V2), 3000)], None, "inactive_ring"),
        ([(_vote(0, V1, slot=1), 1500)], None, "slot_out_of_range"),
        ([(_vote(0, V1), 1500), (_vote(1, V1), 1800)], 1700, "submission_closed"),
        ([(_vote(0, V1), 400)], None, "unknown_submission"),
    ],
)
def test_recount_refuses_a_vote_a_worker_refuses(votes, closed_ms, reason):
    with pytest.raises(BulletinInvalid, match=f"a worker rejects it {reason}"):
        _recount(_bulletin(votes, closed_ms=closed_ms))


def test_records_not_signed_by_the_registrar_are_refused():
    lines = _bulletin([(_vote(0, V1), 1500)])
    bad = [ln.replace('"genre": "poetry"', '"genre": "other"', 1) if i == 1 else ln
           for i, ln in enumerate(lines)]  # fmt: skip
    with pytest.raises(BulletinInvalid, match="line 2: submission record is not signed"):
        _recount(bad)


def _cli(tmp_path, *args, env=()):
    path = tmp_path / "b.jsonl"
    path.write_text("\n".join(_bulletin([(_vote(0, V1), 1500)])) + "\n")
    clean = {k: v for k, v in os.environ.items() if not k.startswith("RINGTALLY_")}
    return subprocess.run(
        [sys.executable, "-m", "connectors.cli", "recount", str(path), *args],
        env={**clean, "RINGTALLY_DATA_DIR": str(tmp_path / "data"), **dict(env)},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_recount_exits_1_unless_it_can_check_the_signatures(tmp_path):
    keys = {
        "RINGTALLY_LOG_PUBLIC_KEY": LOG.public_key.hex(),
        "RINGTALLY_REGISTRAR_PUBLIC_KEYS": REGISTRAR.public_key.hex(),
    }
    nothing = _cli(tmp_path)
    assert nothing.returncode == 1 and "Traceback" not in nothing.stderr
    no_registrar = _cli(tmp_path, env={"RINGTALLY_LOG_PUBLIC_KEY": LOG.public_key.hex()})
    assert no_registrar.returncode == 1 and "--unverified" in no_registrar.stderr
    loud = _cli(tmp_path, "--unverified")
    assert loud.returncode == 0 and "UNVERIFIED" in loud.stderr
    assert '"head_verified": false' in loud.stdout
    verified = _cli(tmp_path, env=keys)
    assert verified.returncode == 0 and "UNVERIFIED" not in verified.stderr
    assert '"head_verified": true' in verified.stdout


def test_a_token_spent_refusal_publishes_no_vote_and_still_recounts():
    """A reused slot's refusal: its slot tag is the tag of the reviewer's vote on another
    submission, so the vote in this bulletin would link the two (the review of issue 19's
    rejection leaves). The bulletin carries its digest only; the recount takes it as the
    leaf. On the code before the vote (tag included) was in the bulletin."""
    counted, reused = _vote(0, V1), _vote(1, V1)
    digest = vote_digest(reused.signing_bytes(), reused.signature_bytes())
    hashes = [
        log_leaf_hash("ballot", vote_digest(counted.signing_bytes(), counted.signature_bytes())),
        log_leaf_hash("rejection", digest, "token_spent"),
    ]
    [head] = LOG.sign([("sub-x", 2, tree_hash(hashes))])
    lines = list(
        bulletin_lines(
            head=head, rules=RULES, submission=(SUB, T0 + 500), rings=[(V1, T0 + 1000)],
            leaves=[(0, LeafKind.BALLOT, counted, T0 + 1500),
                    (1, LeafKind.REJECTION, reused, T0 + 1600)],
            reasons={1: "token_spent"},
        )
    )  # fmt: skip
    assert reused.token_id not in "".join(lines)
    assert counted.token_id in "".join(lines)  # a counted vote's tag is published
    result = _recount(lines)
    assert (result.counts.approve, result.refused, result.log_size) == (1, {"token_spent": 1}, 2)
    # the digest is the leaf: another one no longer matches the signed head
    forged = [ln.replace(digest.hex(), "00" * 32) for ln in lines]
    with pytest.raises(BulletinInvalid, match="the head says"):
        _recount(forged)
    # any other refusal without its vote is refused
    other = [ln.replace('"token_spent"', '"bad_signature"') for ln in lines]
    with pytest.raises(BulletinInvalid, match="bad_signature leaf without its vote"):
        _recount(other)


def test_a_bad_bulletin_line_is_named_in_words():
    lines = _bulletin([(_vote(0, V1), 1500)])
    broken = [ln.replace('"appended_ms"', '"when"') if '"leaf"' in ln else ln for ln in lines]
    with pytest.raises(BulletinInvalid, match="line 5: no 'appended_ms' field"):
        _recount(broken)
