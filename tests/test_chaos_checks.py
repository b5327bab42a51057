"""The chaos harness's checks can fail: each is fed a perfect run's observation, then doctored.

Pure and fast (no services): ``bench.chaos_checks.evaluate`` takes the plan and what
a run observed. A perfect pipeline (below) passes every check; each doctored
observation is a fault the pipeline could have, and the named checks must fail.
"""

from __future__ import annotations

import copy
import itertools
import json
import uuid

import pytest

from bench.chaos_checks import (
    Observed,
    Plan,
    copy_expectation,
    evaluate,
    plan_copies,
    producer_copies,
    rules_decision,
)
from connectors.demo.simulation import Planned
from models.decision import decide

VOTES = "t.votes"


def _vote(n: int, sub: str, vote_type: str, expect: str = "ballot", label: str = "honest"):
    return Planned(
        key=f"k{n}".encode(),
        value=b"{}",
        expect=expect,
        label=label,
        vote_id=str(uuid.UUID(int=n + 1)),
        submission_id=sub,
        vote_type=vote_type,
        ref=n,
    )


def _plan(second_type: str = "reject") -> Plan:
    votes = [
        _vote(0, "s1", "approve"),
        _vote(1, "s1", "approve"),
        _vote(2, "s1", "approve"),  # the double vote's first half: counts
        _vote(3, "s2", "reject"),
        _vote(4, "s2", "approve"),
        _vote(5, "s2", "flag"),
        _vote(6, "s2", "reject"),
        _vote(7, "s1", second_type, "duplicate_key_image", "double_vote"),  # second half
        _vote(8, "s1", "approve", "bad_signature", "forged_signature"),
        Planned(key=b"junk", value=b"x", expect="malformed", label="malformed", ref=9),
        # a slot reused on another submission: the same slot tag, so the same vote id
        _vote(10, "s2", "approve", "token_spent", "slot_reuse"),
    ]
    votes[10].vote_id = votes[0].vote_id
    control = [
        Planned(key=b"r", value=b"{}", expect="control", topic="rings", ref=10),
        Planned(key=b"r", value=b"{}", expect="unauthorized_control_event", topic="rings", ref=11),
    ]
    return Plan(
        votes=votes,
        control=control,
        pairs=[(votes[2].vote_id, votes[7].vote_id)],
        min_votes=3,
        flag_threshold=3,
        votes_topic=VOTES,
    )


def _perfect(plan: Plan, *, retract: bool = False, positions=None, timestamps=None) -> Observed:
    """What a correct pipeline and sink produce for ``plan`` (``retract``: the double vote's
    second half reached the tally first, was counted, then retracted in the open)."""
    pos = positions or {i: (i % 3, i) for i in range(len(plan.votes))}
    obs = Observed(
        positions=pos,
        timestamps=timestamps or {i: 1000 + i for i in pos},
        pg_ballots=[],
        pg_rejections=[],
        pg_tallies={},
        pg_audit=[],
        dead_letters={},
        audit_verify=(0, "ok"),
    )
    seq = itertools.count(1)
    first, second = plan.pairs[0]

    def ballot(i: int, supersedes: str | None = None) -> dict:
        p = plan.votes[i]
        row = dict(
            vote_id=p.vote_id,
            submission_id=p.submission_id,
            key_image="aa",
            vote_type=p.vote_type,
            source_partition=pos[i][0],
            source_offset=pos[i][1],
        )
        obs.topic_ballots.append(json.dumps({**row, "supersedes": supersedes}).encode())
        obs.topic_audit.append(
            json.dumps(dict(chain="c", sequence=next(seq), hash=p.vote_id)).encode()
        )
        audit("ballot", i)
        return row

    def audit(kind: str, i: int) -> None:
        partition, offset = pos[i]
        row = dict(kind=kind, vote_id=plan.votes[i].vote_id)
        obs.pg_audit.append({**row, "source_partition": partition, "source_offset": offset})

    def rejection(topic: str, partition: int, offset: int, reason: str, vote_id=None) -> dict:
        row = dict(
            vote_id=vote_id,
            reason=reason,
            source_topic=topic,
            source_partition=partition,
            source_offset=offset,
        )
        obs.topic_rejections.append(json.dumps(row).encode())
        return row

    counts: dict[str, dict[str, int]] = {}
    versions: dict[str, int] = {}
    for i, p in enumerate(plan.votes):
        if retract and p.vote_id == second:
            ballot(i)  # counted first, then retracted below
            audit("retraction", i)
            versions[p.submission_id] = versions.get(p.submission_id, 0) + 1
        if p.expect == "ballot":
            supersedes = second if retract and p.vote_id == first else None
            obs.pg_ballots.append(ballot(i, supersedes))
            c = counts.setdefault(p.submission_id, dict(approve=0, reject=0, flag=0, escalate=0))
            c[p.vote_type] += 1
            versions[p.submission_id] = versions.get(p.submission_id, 0) + 1
        else:
            obs.pg_rejections.append(rejection(VOTES, *pos[i], p.expect, p.vote_id))
    for n, p in enumerate(plan.control):
        if p.has_outcome:
            obs.pg_rejections.append(rejection("t.rings", 0, n, p.expect))
    rules = "ringtally-rules-v1;min_votes=3;flag_threshold=3"
    for sub, c in counts.items():
        decision = decide(**c, min_votes=3, flag_threshold=3).value
        total = sum(c.values())
        obs.pg_tallies[sub] = dict(**c, total=total, version=versions[sub], decision=decision)
        obs.topic_tallies.append(
            json.dumps(
                dict(
                    submission_id=sub,
                    counts=c,
                    total=total,
                    decision=decision,
                    rules_version=rules,
                    version=versions[sub],
                )
            ).encode()
        )
    return obs


def _failed(plan: Plan, obs: Observed) -> set[str]:
    return {c.name for c in evaluate(plan, obs) if not c.ok}


def _fails(plan: Plan, obs: Observed, *fragments: str) -> None:
    failed = _failed(plan, obs)
    for fragment in fragments:
        assert any(fragment in name for name in failed), (fragment, failed)


@pytest.mark.parametrize("retract", [False, True])
def test_a_perfect_run_passes_every_check(retract):
    plan = _plan()
    assert _failed(plan, _perfect(plan, retract=retract)) == set()


def test_the_wrong_half_of_a_double_vote_counted_shows_in_the_tally():
    plan = _plan()
    # A pipeline that keeps the half that arrived first at the tally stage: as if the
    # plan's second half were the first (its own observation, consistent everywhere).
    swapped = copy.deepcopy(plan)
    a, b = swapped.votes[2], swapped.votes[7]
    a.expect, b.expect = b.expect, a.expect
    swapped.pairs = [(b.vote_id, a.vote_id)]
    obs = _perfect(swapped)
    _fails(
        plan,
        obs,
        "the half appended first counted",
        "Postgres tallies equal the ground truth",
        "latest tally per submission",
        "exactly its planned outcome",
        "audit_log: one ballot event for every planned ballot",
    )


def test_halves_of_one_vote_type_are_refused_as_a_workload():
    plan = _plan(second_type="approve")
    _fails(plan, _perfect(plan), "different vote types")


def test_a_plan_whose_second_half_was_appended_first_is_caught():
    plan = _plan()
    obs = _perfect(plan)
    obs.timestamps[7] = obs.timestamps[2] - 1
    _fails(plan, obs, "counted half was appended first")


def _topic_rejection(obs: Observed, index: int, reason: str) -> None:
    """One more rejection on the rejections topic at plan record ``index``'s position."""
    p, o = obs.positions[index]
    row = dict(vote_id=None, reason=reason, source_topic=VOTES, source_partition=p, source_offset=o)
    obs.topic_rejections.append(json.dumps(row).encode())


def test_a_second_outcome_seen_only_on_the_topics_fails():
    """Postgres keeps one rejection per position; the topics show the conflict."""
    plan = _plan()
    obs = _perfect(plan)
    _topic_rejection(obs, 8, "ring_not_in_force")
    failed = _failed(plan, obs)
    assert not any(not name.startswith("topics") for name in failed), failed
    _fails(plan, obs, "two outcomes", "exactly its planned outcome")


def test_a_ballot_and_a_rejection_at_one_position_fails():
    plan = _plan()
    obs = _perfect(plan)
    _topic_rejection(obs, 0, "token_spent")
    _fails(plan, obs, "two outcomes")


def test_a_wrong_decision_fails_against_the_harness_rules():
    plan = _plan()
    obs = _perfect(plan)
    obs.pg_tallies["s2"]["decision"] = "APPROVED"  # s2 is a 2-2 approve/reject tie
    _fails(plan, obs, "Postgres decisions")


@pytest.mark.parametrize(
    ("counts", "decision"),
    [
        ((1, 1, 0, 0), "PENDING"),
        ((2, 2, 0, 0), "ESCALATED"),
        ((3, 0, 3, 0), "ESCALATED"),
        ((1, 1, 0, 2), "ESCALATED"),
        ((2, 1, 0, 2), "APPROVED"),
        ((0, 3, 2, 0), "REJECTED"),
        ((0, 0, 0, 3), "ESCALATED"),
    ],
)
def test_the_harness_rules_from_their_text(counts, decision):
    c = dict(zip(("approve", "reject", "flag", "escalate"), counts, strict=True))
    assert rules_decision(c, 3, 3) == decision


def test_the_harness_rules_agree_with_the_pipelines_everywhere_small():
    for counts in itertools.product(range(5), repeat=4):
        c = dict(zip(("approve", "reject", "flag", "escalate"), counts, strict=True))
        assert rules_decision(c, 3, 3) == decide(**c, min_votes=3, flag_threshold=3).value, c


def test_a_lost_ballot_missing_from_the_audit_log_too_fails():
    """The old check (audit rows = ballot rows) passes when both tables lost the same vote."""
    plan = _plan()
    obs = _perfect(plan)
    lost = obs.pg_ballots.pop(0)["vote_id"]
    obs.pg_audit = [r for r in obs.pg_audit if r["vote_id"] != lost]
    _fails(plan, obs, "one ballot event for every planned ballot", "rows = planned ballots")


def test_an_audit_event_nobody_planned_fails():
    plan = _plan()
    obs = _perfect(plan)
    obs.pg_audit.append(
        dict(kind="retraction", vote_id=plan.votes[0].vote_id, source_partition=0, source_offset=0)
    )
    _fails(plan, obs, "retractions only of planned second halves", "rows = planned ballots")


def test_a_retraction_of_a_vote_that_is_not_a_double_vote_fails_on_the_topics():
    plan = _plan()
    obs = _perfect(plan)
    body = json.loads(obs.topic_ballots[1])
    body["supersedes"] = plan.votes[0].vote_id
    obs.topic_ballots[1] = json.dumps(body).encode()
    _fails(plan, obs, "only double votes' second halves", "exactly its planned outcome")


def test_a_record_the_producer_wrote_twice_is_planned_at_its_first_copy():
    """Seed 8409, three brokers: the publisher's record landed at votes[2]@44 before the
    cluster restart and again at @45 after; the delivery report said 45, the workers
    decided 44. The copy at 45 is then a re-send of its own; copies at offsets other
    planned records hold stay apart, and so do copies on another partition."""
    vote, junk, foreign = b"vote", b"{}", b"copy"
    records = [
        (2, 44, 1000, vote),  # the producer's first write, not acknowledged
        (2, 45, 2000, vote),
        (2, 46, 2100, junk),  # two planned records with the same bytes
        (2, 47, 2200, junk),
        (3, 9, 900, foreign),  # the same bytes on another partition
        (2, 48, 2300, foreign),
    ]
    positions = {0: (2, 45), 1: (2, 46), 2: (2, 47), 3: (3, 9), 4: (2, 48)}
    timestamps = {0: 2000, 1: 2100, 2: 2200, 3: 900, 4: 2300}
    values = {0: vote, 1: junk, 2: junk, 3: foreign, 4: foreign}
    assert producer_copies(records, positions, timestamps, values) == [(0, (2, 45), 2000)]
    assert positions == {0: (2, 44), 1: (2, 46), 2: (2, 47), 3: (3, 9), 4: (2, 48)}
    assert timestamps[0] == 1000


def _read_back(plan: Plan, positions, timestamps, *resent) -> list:
    """The votes topic of a run of ``plan`` (distinct bytes per record), plus re-sends."""
    for i, p in enumerate(plan.votes):
        p.value = f"value-{i}".encode()
    out = [(*positions[i], timestamps[i], plan.votes[i].value) for i in positions]
    return out + [
        (partition, offset, ts, plan.votes[i].value) for i, partition, offset, ts in resent
    ]


def test_a_producers_later_copy_must_get_its_own_duplicate_record():
    """Issue 16: the later copy of a record the producer wrote twice is a record of its
    own, planned at the position its delivery report named; a run where it got no outcome
    (the old pipeline re-emitted the first copy's ballot) fails."""
    plan = _plan()
    n = len(plan.votes)
    positions = {i: (i % 3, i) for i in range(n)}
    timestamps = {i: 1000 + i for i in positions}
    positions[0] = (0, 99)  # the delivery report named the later copy
    records = [(0, 0, 900, b"v"), (0, 99, 1000, b"v")]
    copied = producer_copies(records, positions, timestamps, {0: b"v"})
    plan_copies(plan.votes, positions, timestamps, copied)
    assert (positions[0], positions[n]) == ((0, 0), (0, 99))
    assert (plan.votes[n].expect, plan.votes[n].label) == ("duplicate_record", "copy_of_honest")
    obs = _perfect(plan, positions=positions, timestamps=timestamps)
    assert _failed(plan, obs) == set()
    obs.pg_rejections = [r for r in obs.pg_rejections if r["reason"] != "duplicate_record"]
    obs.topic_rejections = [r for r in obs.topic_rejections if b"duplicate_record" not in r]
    _fails(plan, obs, "invalid messages rejected", "exactly its planned outcome")


def _resent_run(*resent: tuple[int, int, int, int]) -> tuple[Plan, dict, dict]:
    """A run of the plan in which the producer re-sent ``(vote, partition, offset, ts)``
    (the delivery report naming the first copy), planned from the votes topic read back."""
    plan = _plan()
    positions = {i: (i % 3, i) for i in range(len(plan.votes))}
    timestamps = {i: 1000 + i for i in positions}
    records = _read_back(plan, positions, timestamps, *resent)
    values = {i: p.value for i, p in enumerate(plan.votes)}
    plan_copies(
        plan.votes, positions, timestamps, producer_copies(records, positions, timestamps, values)
    )
    return plan, positions, timestamps


def test_a_re_send_acknowledged_at_its_first_copy_is_planned_from_the_topic():
    """Session 10's seed-3 run (3 brokers): Kafka held 2 more records than planned, the
    producer's re-sends of votes across a broker fault, each decided ``duplicate_record``.
    The plan read back from the topic expects exactly that (the old harness left a
    re-send whose first copy was acknowledged unplanned: "no rejection at an unplanned
    votes-topic position" failed), and a copy decided otherwise still fails."""
    # an honest vote, the double vote's second half and a malformed message, each re-sent
    plan, positions, timestamps = _resent_run((0, 0, 40, 1040), (7, 1, 41, 1041), (9, 0, 42, 1042))
    planned = {positions[i]: (p.label, p.expect) for i, p in enumerate(plan.votes) if i >= 11}
    assert planned == {
        (0, 40): ("copy_of_honest", "duplicate_record"),
        (1, 41): ("copy_of_double_vote", "duplicate_record"),
        (0, 42): ("copy_of_malformed", "malformed"),
    }
    assert positions[0] == (0, 0)  # the first copy stays the record
    obs = _perfect(plan, positions=positions, timestamps=timestamps)
    assert _failed(plan, obs) == set()

    # the pipeline counted the re-send: a ballot for it fails
    bad = copy.deepcopy(obs)
    bad.pg_rejections = [r for r in bad.pg_rejections if r["source_offset"] != 40]
    bad.topic_rejections = [r for r in bad.topic_rejections if b'"source_offset": 40' not in r]
    row = {**bad.pg_ballots[0], "source_offset": 40}
    bad.pg_ballots.append(row)
    bad.topic_ballots.append(json.dumps({**row, "supersedes": None}).encode())
    _fails(plan, bad, "no vote counted twice", "exactly its planned outcome")

    # the pipeline gave the re-send another reason: fails
    bad = copy.deepcopy(obs)
    bad.pg_rejections = [
        {**r, "reason": "token_spent"} if r["source_offset"] == 40 else r for r in bad.pg_rejections
    ]
    bad.topic_rejections = [
        r.replace(b"duplicate_record", b"token_spent") if b'"source_offset": 40' in r else r
        for r in bad.topic_rejections
    ]
    _fails(plan, bad, "rejections with the wrong reason", "exactly its planned outcome")


def test_the_same_bytes_on_another_partition_are_no_re_send_of_ours():
    """A copy is a re-send only on its record's own partition (the producer retries a
    batch where it sent it): the same bytes elsewhere stay unplanned, so an outcome
    there still fails the unplanned-position checks."""
    plan, positions, timestamps = _resent_run((3, 2, 50, 1050))  # vote 3 is on 0@3
    assert len(plan.votes) == 11 and positions[3] == (0, 3)
    obs = _perfect(plan, positions=positions, timestamps=timestamps)
    obs.topic_rejections.append(
        json.dumps(
            dict(
                vote_id=None,
                reason="duplicate_record",
                source_topic=VOTES,
                source_partition=2,
                source_offset=50,
            )
        ).encode()
    )
    _fails(plan, obs, "topics: no outcome at an unplanned votes-topic position")


def test_the_workload_checks_against_the_plan_with_its_re_sends():
    """The seed-3 run's miss: ``run_chaos`` planned the re-sends on its list of votes,
    then checked against the round rebuilt without them (expected 50,066 acknowledged,
    got 50,068). The plan handed to :func:`verify` is the list read back."""
    from types import SimpleNamespace

    from bench.chaos import Workload

    base = _plan()
    rnd = SimpleNamespace(control=base.control, pairs=base.pairs, min_votes=3, flag_threshold=3)
    work = Workload(rnd, [("votes", list(base.votes))])
    votes = work.votes
    positions = {i: (i % 3, i) for i in range(len(votes))}
    timestamps = {i: 1000 + i for i in positions}
    plan = Plan(votes, base.control, base.pairs, 3, 3, VOTES)
    records = _read_back(plan, positions, timestamps, (0, 0, 40, 1040))
    values = {i: p.value for i, p in enumerate(votes)}
    plan_copies(
        votes, positions, timestamps, producer_copies(records, positions, timestamps, values)
    )
    checked = work.plan(VOTES, votes)
    assert len(checked.votes) == len(positions) == 12
    assert _failed(checked, _perfect(checked, positions=positions, timestamps=timestamps)) == set()


def test_a_copy_is_a_duplicate_record_only_of_a_vote_that_spent_its_tag():
    plan = _plan()
    honest, second_half, forged, junk = (plan.votes[i] for i in (0, 7, 8, 9))
    assert copy_expectation(honest) == copy_expectation(second_half) == "duplicate_record"
    assert (copy_expectation(forged), copy_expectation(junk)) == ("bad_signature", "malformed")
    foreign = Planned(key=b"k", value=b"{}", expect="wrong_partition", wrong_partition=True)
    assert copy_expectation(foreign) == "wrong_partition"  # decided before any tag state


def _control_rejection(obs: Observed, offset: int, reason: str) -> None:
    row = dict(
        vote_id=None,
        reason=reason,
        source_topic="t.rings",
        source_partition=0,
        source_offset=offset,
    )
    obs.topic_rejections.append(json.dumps(row).encode())


def test_a_control_rejection_published_again_is_one_outcome():
    """A control rejection read twice (the watcher re-reading after a broker fault, as in
    session 10 seed 1, or a re-publish after a crash): one position, one reason."""
    plan = _plan()
    obs = _perfect(plan)
    _control_rejection(obs, 1, "unauthorized_control_event")
    assert _failed(plan, obs) == set()


def test_a_control_record_with_two_reasons_or_an_unplanned_one_fails():
    plan = _plan()
    obs = _perfect(plan)
    _control_rejection(obs, 1, "control_conflict")
    _fails(plan, obs, "control record with two rejection reasons")
    obs = _perfect(plan)
    _control_rejection(obs, 0, "unauthorized_control_event")
    _fails(plan, obs, "control records rejected: exactly the planned ones (distinct")


def test_liveness_after_a_broker_fault_counts_from_kafka_serving_again():
    """Session 10, seed 3: the whole cluster took 47.8 s to answer and 96.3 s to the first
    outcome. A broker fault is measured from when Kafka serves every partition again
    (``flowing_s``); a slow worker after that, a stall, or a fault that never recovered
    (Kafka not serving within the bound) still fails."""
    from bench.chaos import LIVENESS_S, Fault, liveness

    def fault(kind: str, flowing: float | None, error: str | None = None) -> Fault:
        f = Fault(kind=kind, at_fraction=0.5, jitter=0.0, fired_at=100.0, flowing_s=flowing)
        f.detail["flowing_from_fault_s"] = None if flowing is None else flowing + 95.0
        f.error = error
        return f

    ok = [fault("broker_restart", 4.7), fault("worker_kill", 30.0), fault("rebalance", None)]
    assert liveness(ok).ok
    for bad in (
        fault("broker_restart", LIVENESS_S + 1),  # the workers slow once Kafka serves
        fault("worker_kill", 240.0),  # stalled
        fault("broker_restart", None, "TimeoutError: Kafka not serving after 300s"),
    ):
        check = liveness([*ok, bad])
        assert (check.ok, check.got) == (False, 1), check
