"""No decision depends on the producer's partitioner (DESIGN invariant 9, docs/protocol.md).

The same seeded round (every attack, a rotation) is published four times on
fresh topics: records placed by this test on their key's murmur2 partition;
by confluent-kafka's ``murmur2_random`` (what Java's default and aiokafka
compute); by confluent-kafka's *default* ``consistent_random`` (CRC32); and
on a random partition each. Every record must end exactly as in the first
run, or as ``wrong_partition`` naming the partition it belongs on, and
nothing misrouted is counted or spends a tag: the one outcome allowed to
change is that of a valid vote whose earlier record (the double vote's first
half, the slot's first use) was misrouted: it then counts.

Fails on v1: tokens issued with one partitioner and spent with another were
``unknown_token``, and a copy of a ``TokenIssued`` on a foreign partition
made a spent token spendable there.
"""

from __future__ import annotations

import dataclasses
import re

import pytest

from models.reasons import ReasonCode
from tests.fixtures.rounds import live_round

pytestmark = pytest.mark.integration

WRONG = ReasonCode.WRONG_PARTITION.value


def _outcomes(run) -> dict[int, tuple[str, str | None]]:
    """ref -> ("ballot", vote type) or ("rejection", reason), by the record's position."""
    by_position = {pos: ref for ref, pos in run.publisher.positions.items()}
    votes = run.settings.topic("votes")
    out: dict[int, tuple[str, str | None]] = {}
    for b in run.outputs.ballots:
        ref = by_position[(votes, b["source_partition"], b["source_offset"])]
        out[ref] = ("ballot", b["vote_type"])
    for r in run.outputs.rejections:
        ref = by_position.get((r["source_topic"], r["source_partition"], r["source_offset"]))
        if ref is not None:
            out[ref] = ("rejection", r["reason"])
    return out


def _details(run) -> dict[int, str]:
    by_position = {pos: ref for ref, pos in run.publisher.positions.items()}
    return {
        by_position[(r["source_topic"], r["source_partition"], r["source_offset"])]: r["detail"]
        for r in run.outputs.rejections
        if r["reason"] == WRONG
    }


def _tallies(run) -> dict[str, tuple]:
    return {
        sub: (tuple(sorted(t["counts"].items())), t["decision"])
        for sub in {t["submission_id"] for t in run.outputs.tallies}
        if (t := run.outputs.latest_tally(sub))
    }


@pytest.fixture(scope="module")
def reference(stack, tmp_path_factory):
    """The murmur2 run (placed explicitly), then byte copies of every counted vote on a
    foreign partition: they must change nothing."""
    with live_round(stack, tmp_path_factory.mktemp("murmur2")) as run:
        outcomes, tallies = _outcomes(run), _tallies(run)
        counted = [p for p in run.round.all_votes() if outcomes.get(p.ref, ("",))[0] == "ballot"]
        n_ballots, n_rejections = len(run.outputs.ballots), len(run.outputs.rejections)
        copies = []
        for p in counted:
            copy = dataclasses.replace(p, wrong_partition=True, after=None, ref=-p.ref - 1)
            copies.append(copy)
            run.publisher.send(copy)
        run.publisher.flush()
        run.outputs.wait_for(
            lambda o: len(o.rejections) >= n_rejections + len(copies), what="the copies' outcomes"
        )
        run.outputs.settle(1.0)
        assert len(run.outputs.ballots) == n_ballots, "a copy on a foreign partition counted"
        assert run.outputs.reasons()[WRONG] >= len(copies)
        assert _tallies(run) == tallies, "a copy on a foreign partition changed a tally"
        refs = {p.ref: p for p in run.round.planned()}
        yield outcomes, tallies, refs


def test_murmur2_run_matches_the_ground_truth(reference):
    outcomes, _, refs = reference
    for ref, planned in refs.items():
        if not planned.has_outcome:
            continue
        kind, what = outcomes[ref]
        assert (what if kind == "rejection" else "ballot") == planned.expect, planned.label


@pytest.mark.parametrize(
    ("placement", "config"),
    [
        ("producer", {"partitioner": "murmur2_random"}),
        ("producer", {"partitioner": "consistent_random"}),
        ("random", {}),
    ],
    ids=["murmur2_random", "consistent_random", "random-partition"],
)
def test_every_record_ends_as_with_murmur2_or_wrong_partition(
    reference, stack, tmp_path, placement, config
):
    ref_outcomes, ref_tallies, refs = reference
    with live_round(stack, tmp_path, publisher_config={"placement": placement, **config}) as run:
        outcomes, details = _outcomes(run), _details(run)
        misrouted = set()
        for ref, (_, partition, _) in run.publisher.positions.items():
            planned = refs[ref]
            if planned.topic == "votes" and partition != run.publisher.home_of(planned):
                misrouted.add(ref)
        for ref in misrouted:
            assert outcomes[ref] == ("rejection", WRONG), refs[ref].label
            home = run.publisher.home_of(refs[ref])
            assert re.search(rf"belongs on partition {home} of 4", details[ref]), details[ref]
            assert "murmur2" in details[ref]
        for ref, planned in refs.items():
            if not planned.has_outcome or ref in misrouted:
                continue
            if planned.after is not None and planned.after in misrouted:
                # its earlier record never counted nor spent: this valid vote counts
                assert outcomes[ref][0] == "ballot", planned.label
                continue
            assert outcomes[ref] == ref_outcomes[ref], planned.label
        if placement == "producer" and config["partitioner"] == "murmur2_random":
            assert not misrouted - {p.ref for p in refs.values() if p.wrong_partition}
            assert _tallies(run) == ref_tallies
        else:
            assert len(misrouted) > 3, "the placement misrouted (almost) nothing: no test"
        # the tallies count exactly the ballots that stand (none from a misrouted record)
        standing = {b["vote_id"] for b in run.outputs.ballots} - {
            b["supersedes"] for b in run.outputs.ballots if b.get("supersedes")
        }
        ballot_positions = {
            (b["source_partition"], b["source_offset"]) for b in run.outputs.ballots
        }
        assert not ballot_positions & {run.publisher.positions[r][1:] for r in misrouted}
        total = sum(sum(run.outputs.latest_tally(s)["counts"].values()) for s in _tallies(run))
        assert total == len(standing)


def test_publisher_places_murmur2_like_aiokafka():
    """The test's own murmur2 is the workers' (streams.partitioner): placement check."""
    from aiokafka.partitioner import DefaultPartitioner

    from streams.partitioner import partition_for_key

    for key in (b"a", b"token", bytes(range(32)).hex().encode()):
        assert partition_for_key(key, 4) == DefaultPartitioner()(key, [0, 1, 2, 3], [0, 1, 2, 3])
