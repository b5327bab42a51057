"""Refusals of well-formed votes are leaves of their submission's log (SPEC §14.1), end to end.

A small round with every attack (stolen tags, forged and transplanted
signatures, double votes) goes through a real worker, the sink and the
witness on real Kafka and Postgres. Then: rejections of well-formed votes
carry their leaf; a refused vote's receipt (``ringtally receipt show``) is of
its ``rejection`` leaf, names the reason and verifies offline under the signed
head, and a receipt edited to another reason does not; the witness co-signs
every latest head of logs holding rejection leaves, and a forged rejection
injected into the output topic is an alert; each submission's bulletin
recounts to its live tally, root included, the refusals counted as refusals.
Also, without Kafka: a redelivered refusal appends no second leaf.
"""

from __future__ import annotations

import asyncio
import json
import uuid

import pytest

from agents.records import SourceRecord
from agents.tally import TallyKeeper
from connectors.sdk.receipt import ReceiptInvalid, trusted_log_key, verify_receipt
from models.log import LeafKind, Receipt
from models.outputs import Rejection
from tests.fixtures.rounds import live_round
from tests.test_double_votes import SETTINGS, Store, _read_vote
from tests.test_log_live import _cli, _heads_stored
from tests.test_witness import _alerts, forge_and_wait_alert, wait_cosigned, witness_running

#: Reasons a refusal of a well-formed vote can have (SPEC §14.1).
LOGGED = {
    "token_spent",
    "unknown_ring",
    "ring_not_in_force",
    "inactive_ring",
    "ring_genre_mismatch",
    "epoch_mismatch",
    "slot_out_of_range",
    "bad_signature",
    "duplicate_key_image",
}


@pytest.mark.timeout(300)
def test_refusals_are_leaves_receipts_witness_and_recount_agree(stack, tmp_path):
    with live_round(stack, tmp_path, sink=True) as lr:
        settings, outputs = lr.settings, lr.outputs
        outputs.wait_for(lambda o: _heads_stored(settings, o), timeout=60, what="heads stored")
        env = settings.to_env()
        key = trusted_log_key(settings)

        # every refusal of a well-formed vote names its leaf; other rejections none
        leaves = [r for r in outputs.rejections if r.get("leaf_kind") == "rejection"]
        assert leaves, "no rejection carries a leaf: refusals are not in the logs"
        for r in outputs.rejections:
            if r.get("leaf_index") is None:
                assert r["reason"] not in LOGGED - {"duplicate_key_image"}, r
            else:
                assert r["submission_id"] and r["vote_digest"]
        assert {r["reason"] for r in leaves} >= {"bad_signature", "duplicate_key_image"}

        # a refused vote's receipt: its rejection leaf, its reason, verified offline
        counted = {b["vote_id"] for b in outputs.ballots}
        refused = next(
            r for r in leaves if r["reason"] == "bad_signature" and r["vote_id"] not in counted
        )
        shown = _cli(env, "receipt", "show", refused["vote_id"])
        assert shown.returncode == 0, shown.stderr
        receipt = Receipt.model_validate_json(shown.stdout)
        assert (receipt.kind.value, receipt.reason) == ("rejection", "bad_signature")
        assert receipt.leaf_index == refused["leaf_index"] < receipt.head.tree_size
        assert receipt.vote is not None and receipt.vote_digest == refused["vote_digest"]
        assert verify_receipt(receipt, key) == receipt.vote
        path = tmp_path / "refused.json"
        path.write_text(shown.stdout)
        ok = _cli(env, "receipt", "verify", str(path))
        assert ok.returncode == 0, ok.stderr
        assert "REFUSED (bad_signature" in ok.stdout and f"leaf {receipt.leaf_index}" in ok.stdout
        for forged in (
            receipt.model_copy(update={"reason": "token_spent"}),  # the reason is in the leaf
            receipt.model_copy(update={"kind": LeafKind.BALLOT, "reason": None}),  # "counted"
        ):
            with pytest.raises(ReceiptInvalid, match="inclusion proof fails"):
                verify_receipt(forged, key)
        with pytest.raises(ReceiptInvalid, match="malformed"):
            verify_receipt(receipt.model_copy(update={"reason": None}), key)

        # each bulletin recounts to the live tally and root; refusals counted as refusals
        offline = {**env, "RINGTALLY_KAFKA_BOOTSTRAP": "127.0.0.1:1"}
        per_sub: dict[str, dict[str, int]] = {}
        for r in leaves:
            mine = per_sub.setdefault(r["submission_id"], {})
            mine[r["reason"]] = mine.get(r["reason"], 0) + 1
        for sub in sorted({t["submission_id"] for t in outputs.tallies}):
            exported = _cli(env, "bulletin", "export", sub)
            assert exported.returncode == 0, exported.stderr
            bulletin = tmp_path / f"{sub}.jsonl"
            bulletin.write_text(exported.stdout)
            result = _cli(offline, "recount", str(bulletin))
            assert result.returncode == 0, result.stderr
            got, live = json.loads(result.stdout), outputs.latest_tally(sub)
            assert (got["counts"], got["decision"]) == (live["counts"], live["decision"])
            assert (got["log_size"], got["log_root"]) == (live["log_size"], live["log_root"])
            assert got["refused"] == per_sub.get(sub, {})
        assert sum(sum(v.values()) for v in per_sub.values()) == len(leaves)

        # the witness co-signs every latest head, then alerts on a forged rejection
        with witness_running(settings, tmp_path) as (proc, consumer, log_path):
            latest = {s: outputs.latest_tally(s)["log_size"] for s in per_sub}
            wait_cosigned(settings, consumer, proc, log_path, latest)
            assert _alerts(settings) == []
            real = leaves[0]
            other = "epoch_mismatch" if real["reason"] != "epoch_mismatch" else "inactive_ring"
            forged = {**real, "reason": other}
            alert = forge_and_wait_alert(settings, log_path, "rejections", real, forged)
            assert f"rejection ({other})" in alert["detail"]


def _refusal(offset: int, reason: str = "bad_signature") -> SourceRecord:
    from models.internal import RefusedVote

    rejection = Rejection(
        vote_id=uuid.uuid4(),
        token_id="ab" * 32,
        reason=reason,
        detail="test",
        payload_b64="",
        source_topic=SETTINGS.topic("votes"),
        source_partition=2,
        source_offset=offset,
    )
    refusal = RefusedVote(submission_id="s1", vote_digest=f"{offset:064x}", rejection=rejection)
    return SourceRecord("accepted", 1, offset, b"s1", refusal.to_json())


def test_a_redelivered_refusal_appends_no_second_leaf_and_a_lost_one_is_repaired():
    """The tally stage keeps each refusal's leaf under its votes-topic position: coming again
    it appends nothing; coming again after a crash lost the tally write, it re-appends
    exactly its leaf, at its index."""
    store, state = Store(), {}
    keeper = TallyKeeper(settings=SETTINGS, state=state, outputs=store, read_vote=_read_vote)
    asyncio.run(keeper.process([_refusal(0), _refusal(1, "ring_not_in_force")]))
    first = store.tallies["s1"]
    assert first.log_size == 2 and first.version == 0
    assert [(r.leaf_index, r.reason) for r in store.rejections.values()] == [
        (0, "bad_signature"),
        (1, "ring_not_in_force"),
    ]
    asyncio.run(keeper.process([_refusal(1, "ring_not_in_force")]))  # redelivered
    assert (store.tallies["s1"].log_size, store.tallies["s1"].log_root) == (2, first.log_root)
    # a crash kept the refusal entries but the tally from before the second one
    state[b"t|s1"]["log"] = _frontier_after_first(state)
    again = Store()
    keeper = TallyKeeper(settings=SETTINGS, state=state, outputs=again, read_vote=_read_vote)
    asyncio.run(keeper.process([_refusal(1, "ring_not_in_force")]))
    assert (again.tallies["s1"].log_size, again.tallies["s1"].log_root) == (2, first.log_root)
    [r] = again.rejections.values()
    assert r.leaf_index == 1


def _frontier_after_first(state) -> dict:
    from models.merkle import Frontier

    frontier = Frontier()
    frontier.append(bytes.fromhex(state[b"r|s1|2|0"]["leaf"]))
    return frontier.to_json()
