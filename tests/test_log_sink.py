"""The sink's log tables and the receipts built from them, with a retraction.

The tally stage (in process, with a real log signer) counts a vote, then
retracts it for one cast earlier with the same key image; its Ballots and
signed heads go to real topics and through the real sink into Postgres.
Each receipt then verifies: the retracted vote's is of its ``retraction``
leaf (it was counted, then withdrawn), not of its stale ``ballot`` leaf.
The leaves table is append-only, and a ballot that puts another leaf at a
stored index is dead-lettered ``log_conflict``.
"""

from __future__ import annotations

import uuid

import asyncpg
import pytest

import ringcrypto
from agents.loghead import LogSigner
from agents.records import SourceRecord
from agents.tally import TallyKeeper
from connectors.postgres.receipts import build_receipt
from connectors.postgres.sink import Sink
from connectors.sdk.receipt import verify_receipt
from models.log import LeafKind
from tests import test_sink
from tests.fixtures.accepted import accepted_vote
from tests.fixtures.sink_records import produce, produce_ballots

pytestmark = pytest.mark.integration
#: test_sink's fixture: the test's schema, migrated, and a connection on it.
pg = test_sink.pg

KEY_IMAGE, OTHER = "ab" * 32, "cd" * 32


class Collect:
    def __init__(self) -> None:
        self.ballots, self.heads = [], []

    async def ballot(self, b):  # noqa: ANN001, ANN201
        self.ballots.append(b)

    async def head(self, h):  # noqa: ANN001, ANN201
        self.heads.append(h)

    async def tally(self, t):  # noqa: ANN001, ANN201
        pass

    async def audit(self, e):  # noqa: ANN001, ANN201
        pass

    async def rejection(self, key, r):  # noqa: ANN001, ANN201
        pass


async def _read_vote(partition, offset):  # noqa: ANN001, ANN201
    return b"raw"


def _vote(ts: int, offset: int, key_image: str = KEY_IMAGE, vote_type: str = "approve"):  # noqa: ANN201
    return accepted_vote(
        uuid.uuid4(),
        "s1",
        key_image,
        vote_type,
        token=uuid.uuid4().hex * 2,
        partition=0,
        offset=offset,
        timestamp_ms=ts,
    )


async def test_receipts_from_the_sink_show_a_retracted_vote_as_retracted(settings, pg) -> None:
    later, bystander, earlier = _vote(200, 1), _vote(150, 2, OTHER, "reject"), _vote(100, 3)
    signer = LogSigner(ringcrypto.SecretKey.generate())
    settings = settings.model_copy(update={"log_public_key": signer.public_key.hex()})
    out = Collect()
    keeper = TallyKeeper(
        settings=settings, state={}, outputs=out, read_vote=_read_vote, sign_heads=signer.sign
    )
    for n, vote in enumerate((later, bystander, earlier)):  # one batch each: three heads
        record = SourceRecord("accepted", 0, n, b"s1", vote.to_json())
        await keeper.process([record])
    assert [h.tree_size for h in out.heads] == [1, 2, 4]  # the retraction adds two leaves
    await produce_ballots(settings, out.ballots)
    await produce(settings, "heads", [h.to_json() for h in out.heads], keys=[b"s1"] * 3)
    await Sink(settings, once=True).run()
    assert await pg.fetchval("SELECT tree_size FROM log_heads WHERE submission_id = 's1'") == 4
    kinds = [r["kind"] for r in await pg.fetch("SELECT kind FROM log_leaves ORDER BY leaf_index")]
    assert kinds == ["ballot", "ballot", "retraction", "ballot"]

    receipts = {v.vote_id: await build_receipt(pg, str(v.vote_id)) for v in (later, earlier)}
    for r in receipts.values():
        verify_receipt(r, signer.public_key)
    assert (receipts[later.vote_id].kind, receipts[later.vote_id].leaf_index) == (
        LeafKind.RETRACTION,
        2,
    )
    assert (receipts[earlier.vote_id].kind, receipts[earlier.vote_id].leaf_index) == (
        LeafKind.BALLOT,
        3,
    )
    by_key_image = await build_receipt(pg, OTHER)  # a counted vote's key image finds it too
    assert by_key_image.vote_id == bystander.vote_id

    with pytest.raises(asyncpg.InsufficientPrivilegeError, match="append-only"):
        await pg.execute("UPDATE log_leaves SET vote_digest = 'x' WHERE leaf_index = 0")

    forged = out.ballots[1].model_copy(update={"vote_digest": "ee" * 32})
    await produce_ballots(settings, [forged])
    await Sink(settings, once=True).run()
    reasons = [r["reason"] for r in await pg.fetch("SELECT reason FROM sink_dead_letters")]
    assert "log_conflict" in reasons
    assert await pg.fetchval("SELECT count(*) FROM log_leaves") == 4


async def test_the_sink_stores_only_heads_the_log_key_signed(settings, pg) -> None:
    """The review's finding: a forged head with a huge size froze log_heads. Now a head
    the trusted log key did not sign is a dead letter ``bad_head_signature``; a second
    signed head of a stored size with another root is ``head_fork`` and a log_alerts
    row; with no log key at all, heads are ``unverified_head`` dead letters."""
    signer, forger = (LogSigner(ringcrypto.SecretKey.generate()) for _ in range(2))
    trusting = settings.model_copy(update={"log_public_key": signer.public_key.hex()})
    [real] = signer.sign([("s1", 3, b"\x01" * 32)])
    [forged] = forger.sign([("s1", 2**62, b"\x02" * 32)])  # another key, a huge size
    tampered = real.model_copy(update={"tree_size": 2**62})  # the real key's, edited
    await produce(
        settings, "heads", [h.to_json() for h in (real, forged, tampered)], keys=[b"s1"] * 3
    )
    await Sink(trusting, once=True).run()
    assert await pg.fetchval("SELECT tree_size FROM log_heads WHERE submission_id = 's1'") == 3
    reasons = [r["reason"] for r in await pg.fetch("SELECT reason FROM sink_dead_letters")]
    assert reasons.count("bad_head_signature") == 2

    [fork] = signer.sign([("s1", 3, b"\x03" * 32)])  # really signed: the log key forked
    await produce(settings, "heads", [fork.to_json()], keys=[b"s1"])
    await Sink(trusting, once=True).run()
    assert await pg.fetchval("SELECT root_hash FROM log_heads") == "01" * 32
    alerts = await pg.fetch("SELECT tree_size, root_hash, reason FROM log_alerts")
    assert [tuple(a) for a in alerts] == [(3, "03" * 32, "head_fork")]
    assert "head_fork" in [
        r["reason"] for r in await pg.fetch("SELECT reason FROM sink_dead_letters")
    ]

    [bigger] = signer.sign([("s1", 5, b"\x04" * 32)])
    await produce(settings, "heads", [bigger.to_json()], keys=[b"s1"])
    unkeyed = settings.model_copy(
        update={"log_public_key": "", "log_key_file": settings.data_dir / "no-such" / "log.key"}
    )
    await Sink(unkeyed, once=True).run()
    assert await pg.fetchval("SELECT tree_size FROM log_heads") == 3
    reasons = [r["reason"] for r in await pg.fetch("SELECT reason FROM sink_dead_letters")]
    assert "unverified_head" in reasons


async def test_altered_copies_of_a_refused_vote_make_its_id_ambiguous(pg) -> None:
    """A vote id is its slot tag's: a producer can resend a refused vote altered (another
    vote type), refused again under the same id. ``receipt show VOTE_ID`` returned the
    latest such leaf, the copy's (the review of issue 19); now it names the ambiguity,
    and the digest of the vote sent picks the voter's own leaf. On the code before, the
    copy's leaf came back."""
    from connectors.postgres.receipts import AmbiguousVote, NotInLog

    vote_id, mine, copy = uuid.uuid4(), "11" * 32, "22" * 32
    for index, digest, reason in ((0, mine, "bad_signature"), (1, copy, "ring_not_in_force")):
        await pg.execute(
            "INSERT INTO log_leaves (submission_id, leaf_index, kind, vote_digest, vote_id, "
            "source_partition, source_offset, reason) VALUES ('s9', $1, 'rejection', $2, $3, "
            "0, $1, $4)",
            index, digest, vote_id, reason,
        )  # fmt: skip
    with pytest.raises(AmbiguousVote, match="2 different refused votes"):
        await build_receipt(pg, str(vote_id))
    # by digest: the voter's own leaf (index 0), which no signed head covers here
    with pytest.raises(NotInLog, match="is leaf 0 of s9"):
        await build_receipt(pg, mine)


def test_the_sink_refuses_heads_that_rewrite_a_closed_log() -> None:
    """The sink replaced a stored final head by a larger ordinary one in silence (the
    review of issue 19). The rule it applies now, head by head: after the final head
    nothing larger and no other final head; no final head below a stored size."""
    from types import SimpleNamespace

    from models.log import final_head_problem

    def head(size, root="r", closed=None):  # noqa: ANN001, ANN202
        return SimpleNamespace(submission_id="s", tree_size=size, root_hash=root, closed_ms=closed)

    final = (3, "r", 100)
    assert final_head_problem(head(3, closed=100), final, 3) is None  # itself, redelivered
    assert final_head_problem(head(3), final, 3) is None  # the ordinary head of that size
    assert final_head_problem(head(4), final, 3)[0] == "after_final"
    assert final_head_problem(head(3, closed=200), final, 3)[0] == "final_conflict"
    assert final_head_problem(head(2, closed=100), None, 3)[0] == "final_conflict"
    assert final_head_problem(head(3, closed=100), None, 3) is None
    assert final_head_problem(head(5), None, 3) is None
