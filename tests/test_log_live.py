"""The submission logs end to end: real worker, sink, Postgres; receipts, crash, recount.

A small round's votes go through a worker and the sink; every counted ballot
then has a receipt (built from Postgres) that verifies offline under the log
public key the worker left in the data dir; tampered receipts do not. The
worker is SIGKILLed and restarted (memory tables: its state comes back from
the changelog), the rest of the round follows, and each earlier receipt's
head is proved a prefix of the new head (consistency), so a receipt from
before the crash still stands after it. Last, every submission's bulletin
recounts, with no service reachable, to exactly its live tally and root.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys

import pytest

from connectors.postgres.db import connect
from connectors.postgres.receipts import build_receipt
from connectors.sdk.bulletin import BulletinInvalid, recount
from connectors.sdk.receipt import ReceiptInvalid, trusted_log_key, verify_receipt
from models.log import Receipt
from tests.fixtures.rounds import live_round, outcome_positions


def _heads_stored(settings, outputs) -> bool:
    """Every submission's latest log size is in log_heads and all its leaves in log_leaves."""
    want = {}
    for t in outputs.tallies:
        want[t["submission_id"]] = max(want.get(t["submission_id"], 0), t["log_size"])

    async def go():
        conn = await connect(settings)
        try:
            heads = dict(await conn.fetch("SELECT submission_id, tree_size FROM log_heads"))
            leaves = dict(
                await conn.fetch("SELECT submission_id, count(*) FROM log_leaves GROUP BY 1")
            )
        finally:
            await conn.close()
        return all(heads.get(s) == n and leaves.get(s) == n for s, n in want.items())

    return bool(want) and asyncio.run(go())


def _receipts(settings, vote_ids, since=None) -> dict[str, Receipt]:
    async def go():
        conn = await connect(settings)
        try:
            return {
                v: await build_receipt(conn, v, since=None if since is None else since[v])
                for v in vote_ids
            }
        finally:
            await conn.close()

    return asyncio.run(go())


def _counted(outputs) -> list[str]:
    """Vote ids of the ballots that count now (the last per key image)."""
    last = {}
    for b in outputs.ballots:
        last[(b["submission_id"], b["key_image"])] = b["vote_id"]
    return sorted(last.values())


def _publish_first_half(publisher, rnd):
    for phase in (rnd.control, rnd.votes):
        publisher.send_all(phase)
        publisher.flush()
        publisher.wait_clock_past(publisher.last_appended_ms())


@pytest.mark.timeout(300)
def test_receipts_survive_a_worker_crash_and_bulletins_recount_to_the_live_tally(stack, tmp_path):
    first_outcomes = None

    def first_half_outcomes(rnd):
        return sum(p.has_outcome for p in (*rnd.control, *rnd.votes))

    from tests.fixtures.rounds import small_round

    def round_(settings):
        nonlocal first_outcomes
        rnd = small_round(settings)
        first_outcomes = first_half_outcomes(rnd)
        return rnd

    # expected_outcomes is read after round_ ran: a callable would be nicer; count lazily
    with live_round(
        stack,
        tmp_path,
        round_=round_,
        sink=True,
        publish=_publish_first_half,
        expected_outcomes=0,
    ) as lr:
        settings, outputs = lr.settings, lr.outputs
        outputs.wait_for(
            lambda o: len(outcome_positions(o)) >= first_outcomes, timeout=90, what="first half"
        )
        outputs.settle(1.0)
        outputs.wait_for(lambda o: _heads_stored(settings, o), timeout=60, what="heads stored")
        key = trusted_log_key(settings)
        before = _receipts(settings, _counted(outputs))
        assert before
        for r in before.values():
            verify_receipt(r, key)

        # tampered receipts fail: another digest (a stored ballot changed), another index
        # (leaves reordered), a path from a log without the leaf (a vote dropped)
        r = next(iter(before.values()))
        forged = r.model_copy(update={"vote_digest": "00" * 32})
        with pytest.raises(ReceiptInvalid, match="inclusion proof fails"):
            verify_receipt(forged, key)
        if r.head.tree_size > 1:
            moved = r.model_copy(update={"leaf_index": (r.leaf_index + 1) % r.head.tree_size})
            with pytest.raises(ReceiptInvalid, match="inclusion proof fails"):
                verify_receipt(moved, key)
        with pytest.raises(ReceiptInvalid, match="not the trusted"):
            verify_receipt(r, b"\x01" * 32)

        # the CLI: show, then verify offline (one line, exit 0; a forged file exits 1)
        env_settings = settings.to_env()
        receipt_file, forged_file = tmp_path / "receipt.json", tmp_path / "forged.json"
        shown = _cli(env_settings, "receipt", "show", str(r.vote_id))
        assert shown.returncode == 0, shown.stderr
        receipt_file.write_text(shown.stdout)
        shown_receipt = Receipt.model_validate_json(shown.stdout)
        assert shown_receipt.vote is not None and shown_receipt.vote.vote_id == r.vote_id
        assert shown_receipt.model_copy(update={"vote": None}) == r
        ok = _cli(env_settings, "receipt", "verify", str(receipt_file))
        assert ok.returncode == 0 and ok.stdout.startswith(f"ok: vote {r.vote_id} is leaf"), (
            ok.stderr
        )
        forged_file.write_text(forged.model_dump_json())
        bad = _cli(env_settings, "receipt", "verify", str(forged_file))
        assert bad.returncode == 1 and "inclusion proof fails" in bad.stderr
        assert "Traceback" not in bad.stderr and len(bad.stderr.strip().splitlines()) <= 2

        # crash the worker, restart it on its changelogs, publish the rest of the round
        lr.worker.kill()
        lr.worker.start()
        for phase in (lr.round.rotation, lr.round.late_votes):
            lr.publisher.send_all(phase)
            lr.publisher.flush()
            lr.publisher.wait_clock_past(lr.publisher.last_appended_ms())
        want = lr.round.outcome_count()
        outputs.wait_for(lambda o: len(outcome_positions(o)) >= want, timeout=90, what="all")
        outputs.settle(1.0)
        outputs.wait_for(lambda o: _heads_stored(settings, o), timeout=60, what="heads stored")
        still_counted = [v for v in before if v in set(_counted(outputs))]
        after = _receipts(settings, still_counted, since=before)
        grew = 0
        for v in still_counted:
            old, new = before[v], after[v]
            assert new.leaf_index == old.leaf_index  # the crash moved no leaf
            verify_receipt(new, key, earlier=old)
            grew += new.head.tree_size > old.head.tree_size
        assert grew, "no log grew after the restart: the test proved nothing"
        # a head that does not extend the earlier one is refused
        v = next(v for v in still_counted if after[v].consistency is not None)
        other = after[v].model_copy(
            update={"consistency": after[v].consistency.model_copy(update={"path": []})}
        )
        with pytest.raises(ReceiptInvalid, match="consistency proof fails"):
            verify_receipt(other, key, earlier=before[v])

        # the bulletin of every submission recounts, with no service reachable, to its live
        # tally: counts, decision, log size and root (and the head's signature checks)
        offline = {
            **env_settings,
            "RINGTALLY_KAFKA_BOOTSTRAP": "127.0.0.1:1",
            "RINGTALLY_POSTGRES_DSN": "postgresql://nobody@127.0.0.1:1/none",
            "RINGTALLY_REDIS_URL": "redis://127.0.0.1:1/0",
        }
        submissions = sorted({t["submission_id"] for t in outputs.tallies})
        assert len(submissions) >= 4
        bulletins = {}
        for sub in submissions:
            exported = _cli(env_settings, "bulletin", "export", sub)
            assert exported.returncode == 0, exported.stderr
            path = tmp_path / f"{sub}.jsonl"
            path.write_text(exported.stdout)
            bulletins[sub] = exported.stdout.splitlines()
            counted = _cli(offline, "recount", str(path))
            assert counted.returncode == 0, counted.stderr
            result, live = json.loads(counted.stdout), outputs.latest_tally(sub)
            assert (result["counts"], result["decision"]) == (live["counts"], live["decision"])
            assert (result["log_size"], result["log_root"]) == (live["log_size"], live["log_root"])
            assert result["head_verified"] and result["rings_verified"]

        # a bulletin with a leaf dropped, two leaves swapped or a vote altered does not recount
        sub = max(bulletins, key=lambda s: len(bulletins[s]))
        lines = bulletins[sub]
        leaves = [i for i, line in enumerate(lines) if json.loads(line)["type"] == "leaf"]
        assert len(leaves) >= 2
        first, second = leaves[0], leaves[1]
        dropped = [line for i, line in enumerate(lines) if i != leaves[-1]]
        with pytest.raises(BulletinInvalid, match="the head says size"):
            recount(dropped, log_key=key)
        swapped = list(lines)
        a, b = json.loads(lines[first]), json.loads(lines[second])
        a["index"], b["index"] = b["index"], a["index"]
        swapped[first], swapped[second] = json.dumps(b), json.dumps(a)
        with pytest.raises(BulletinInvalid, match="the head says size|retraction|refused"):
            recount(swapped, log_key=key)
        # an altered counted vote fails its signature; an altered refused one (its signature
        # is not what refused it) changes its leaf, so the root (the CI failure of session 10
        # altered whichever leaf came first, a rejection on some runs)
        for kind, refusal in (("ballot", "signature does not verify"), ("rejection", None)):
            parsed = {i: json.loads(lines[i]) for i in leaves}
            of_kind = [i for i in leaves if parsed[i]["kind"] == kind and "vote" in parsed[i]]
            at = of_kind[0] if of_kind else None
            if at is None:
                assert kind == "rejection", "no counted vote in the largest bulletin"
                continue
            altered = list(lines)
            c = json.loads(lines[at])
            c["vote"]["vote_type"] = "flag" if c["vote"]["vote_type"] != "flag" else "approve"
            altered[at] = json.dumps(c)
            with pytest.raises(BulletinInvalid, match=refusal or "the head says size|refused"):
                recount(altered, log_key=key)


def _cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    import os

    return subprocess.run(
        [sys.executable, "-m", "connectors.cli", *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_receipt_json_round_trips():
    """The receipt's JSON is what ``receipt show`` prints and ``verify`` reads."""
    r = {
        "type": "receipt",
        "submission_id": "s",
        "vote_id": "00000000-0000-0000-0000-000000000000",
        "vote": None,
        "kind": "ballot",
        "reason": None,
        "vote_digest": "00" * 32,
        "leaf_index": 0,
        "inclusion_path": [],
        "head": {
            "type": "log_head",
            "submission_id": "s",
            "tree_size": 1,
            "root_hash": "11" * 32,
            "log_key": "22" * 32,
            "batch_size": 2,
            "batch_index": 1,
            "batch_path": ["33" * 32],
            "signature": "AAAA",
            "closed_ms": None,
        },
        "consistency": None,
    }
    assert json.loads(Receipt.model_validate_json(json.dumps(r)).model_dump_json()) == r
