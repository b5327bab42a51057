"""The demo's ground-truth check: a shortened demo on real services, and the checker itself.

``test_small_demo_matches_ground_truth`` is ``make demo`` in small (2 genres,
rings of 16, 20 submissions, ~300 records with every kind of attack, a
ring rotation that revokes a reviewer part-way): a real
worker and sink as subprocesses, then every number from Postgres and from
the output topics against the simulation's ground truth. The other tests
feed the checker doctored observations and expect MISMATCH.
"""

from __future__ import annotations

import uuid
from collections import Counter

import pytest

from connectors.demo import DemoConfig, Observed, TallyView, Truth, all_match, check, run_demo
from connectors.demo.simulation import build_round


def _truth() -> Truth:
    return Truth(
        ballots=frozenset({"v1", "v2", "v3", "p1"}),
        pairs=(("p1", "p2"),),
        rejections={"bad_signature": 2, "duplicate_key_image": 1},
        tallies={"s1": ((2, 0, 0, 0), "PENDING"), "s2": ((1, 1, 0, 1), "ESCALATED")},
    )


def _faithful() -> Observed:
    return Observed(
        source="test",
        ballots={"v1", "v2", "v3", "p1"},
        rejections=Counter({"bad_signature": 2, "duplicate_key_image": 1}),
        tallies={
            "s1": TallyView((2, 0, 0, 0), "PENDING", 2),
            "s2": TallyView((1, 1, 0, 1), "ESCALATED", 3),
        },
    )


def test_checker_matches_a_faithful_observation():
    lines = check(_truth(), _faithful())
    assert all_match(lines), [line for line in lines if not line.ok]
    assert {line.verdict for line in lines} == {"MATCH"}


@pytest.mark.parametrize(
    ("tamper", "failing"),
    [
        (lambda o: o.rejections.update({"bad_signature": 1}), "rejected: bad_signature"),
        (lambda o: o.rejections.update({"token_spent": 1}), "rejected: token_spent"),
        (lambda o: o.ballots.discard("v2"), "ballots (vote ids)"),
        (lambda o: o.ballots.add("p2"), "ballots (vote ids)"),  # a double vote's second half
        (lambda o: o.ballots.discard("p1"), "ballots (vote ids)"),  # its first half lost
        (lambda o: o.ballots.add("stray"), "ballots (vote ids)"),
        (
            lambda o: o.tallies.update({"s1": TallyView((3, 0, 0, 0), "APPROVED", 3)}),
            "tallies: counts",
        ),
        (
            lambda o: o.tallies.update({"s2": TallyView((1, 1, 0, 1), "APPROVED", 3)}),
            "tallies: decisions",
        ),
        (
            lambda o: o.tallies.update({"s2": TallyView((1, 1, 0, 1), "ESCALATED", 4)}),
            "tallies: version = total + retractions",
        ),
        (lambda o: o.tallies.pop("s2"), "tallies: submissions"),
    ],
)
def test_checker_reports_mismatch_on_a_tampered_number(tamper, failing):
    observed = _faithful()
    tamper(observed)
    lines = check(_truth(), observed)
    assert not all_match(lines)
    bad = {line.what for line in lines if not line.ok}
    assert failing in bad, bad
    assert all(line.verdict == "MISMATCH" for line in lines if line.what in bad)


def test_truth_from_a_round_checks_against_itself():
    round_ = build_round(
        seed=3, genres=1, ring_size=16, submissions_per_genre=4, votes_per_reviewer=3, attacks=True
    )
    truth = Truth.from_round(round_)
    assert truth.rejections and truth.tallies
    assert truth.pairs and {a for a, _ in truth.pairs} <= truth.ballots
    observed = Observed(
        "synthetic",
        ballots=set(truth.ballots),
        rejections=Counter(truth.rejections),
        tallies={
            sub: TallyView(counts, decision, sum(counts))
            for sub, (counts, decision) in truth.tallies.items()
        },
    )
    assert all_match(check(truth, observed))
    sub = next(iter(observed.tallies))
    c = observed.tallies[sub]
    observed.tallies[sub] = TallyView((c.counts[0] + 1, *c.counts[1:]), c.decision, c.version + 1)
    assert not all_match(check(truth, observed))


@pytest.mark.integration
def test_small_demo_matches_ground_truth(stack, tmp_path):
    from tests.fixtures.stack import make_settings

    prefix = f"t-{uuid.uuid4().hex[:8]}"
    # make_settings registers the prefix: its topics and schema are dropped at session end
    base = make_settings(stack, prefix, data_dir=tmp_path)
    config = DemoConfig(
        genres=2,
        ring_size=16,
        submissions_per_genre=10,
        votes_per_reviewer=8,
        rate=0,
        partitions=4,
        table_store="memory",
        prefix=prefix,
        chart=tmp_path / "demo.png",
        clean_old=False,
        live=False,
        base=base,
        stall_timeout=45,
    )
    result = run_demo(config)
    bad = [
        (line.source, line.what, line.expected, line.observed, line.details)
        for line in result.lines
        if not line.ok
    ]
    assert result.ok, (bad, result.notes)
    assert {line.source for line in result.lines} == {"postgres", "topics"}
    assert result.votes > 250
    assert result.chart is not None and result.chart.stat().st_size > 10_000
    assert result.metrics.get("worker:ringtally_votes_in_total", 0) >= result.votes
    assert result.metrics.get("sink:ringtally_sink_rows_total", 0) > 0
