"""The chaos harness's invariants: pure functions of the plan and of what was observed.

Kept apart from ``bench/chaos.py`` (which runs the stack and collects
:class:`Observed`) so that each check can be shown to fail: ``tests/test_chaos_checks.py``
feeds :func:`evaluate` the observation of a perfect run, then doctored ones.

Nothing here calls the pipeline's own logic: the expected tallies are counted
from the plan, the decisions come from :func:`rules_decision` (the rules as
docs/protocol.md and the Tally schema state them, written again here), the
winner of each double vote from the broker timestamps of the producer's delivery
reports, and the audit rows are counted against the plan, not against another
table of the same run.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from dataclasses import dataclass, field, replace
from typing import Any

__all__ = [
    "Check",
    "Observed",
    "Plan",
    "copy_expectation",
    "evaluate",
    "plan_copies",
    "producer_copies",
    "rules_decision",
]

DUPLICATE = "duplicate_key_image"
VOTE_TYPES = ("approve", "reject", "flag", "escalate")


@dataclass
class Check:
    name: str
    expected: Any
    got: Any
    ok: bool
    note: str = ""


@dataclass
class Plan:
    """The ground truth: what was published, and what must become of each record."""

    #: Planned votes-topic records (``connectors.demo.simulation.Planned``), in publishing order.
    votes: list[Any]
    #: Planned control records (rings, submissions); ``has_outcome`` ones must be rejected.
    control: list[Any]
    #: (first, second) vote ids of each double vote, in the order the plan appends them.
    pairs: list[tuple[str, str]]
    min_votes: int
    flag_threshold: int
    votes_topic: str


@dataclass
class Observed:
    """What the run produced: delivery reports, Postgres rows and output-topic records."""

    #: plan index -> (partition, offset) and broker timestamp (ms), from delivery reports
    positions: dict[int, tuple[int, int]]
    timestamps: dict[int, int]
    #: Postgres rows (as dicts)
    pg_ballots: list[dict[str, Any]]
    pg_rejections: list[dict[str, Any]]
    pg_tallies: dict[str, dict[str, Any]]
    pg_audit: list[dict[str, Any]]
    dead_letters: dict[str, int]
    #: raw values read from the output topics, in any order
    topic_ballots: list[bytes] = field(default_factory=list)
    topic_rejections: list[bytes] = field(default_factory=list)
    topic_tallies: list[bytes] = field(default_factory=list)
    topic_audit: list[bytes] = field(default_factory=list)
    #: (exit code, output) of ``ringtally audit verify``
    audit_verify: tuple[int, str] = (0, "")


def rules_decision(counts: dict[str, int], min_votes: int, flag_threshold: int) -> str:
    """The decision rules, written from their text (not ``models.decision.decide``).

    Too few ballots: PENDING. Enough flags: ESCALATED. Otherwise the largest of
    approve, reject and escalate wins; escalate must beat both others strictly;
    an approve/reject tie escalates.
    """
    total = sum(counts.get(t, 0) for t in VOTE_TYPES)
    if total < min_votes:
        return "PENDING"
    if counts.get("flag", 0) >= flag_threshold:
        return "ESCALATED"
    a, r, e = counts.get("approve", 0), counts.get("reject", 0), counts.get("escalate", 0)
    if e > max(a, r):
        return "ESCALATED"
    if a == r:
        return "ESCALATED"
    return "APPROVED" if a > r else "REJECTED"


def expected_tallies(plan: Plan) -> dict[str, dict[str, int]]:
    """Submission -> counts by vote type of the votes the plan says count."""
    out: dict[str, dict[str, int]] = defaultdict(lambda: dict.fromkeys(VOTE_TYPES, 0))
    for p in plan.votes:
        if p.expect == "ballot":
            out[p.submission_id][p.vote_type] += 1
    return dict(out)


def topic_outcomes(
    plan: Plan, obs: Observed
) -> tuple[dict[tuple[int, int], list[str]], set[str], dict[tuple[str, int, int], set[str]]]:
    """Votes-topic position -> its final outcomes on the output topics.

    An outcome is ``ballot:<vote id>`` for a ballot no later ballot supersedes,
    or a rejection's reason. A superseded (retracted) ballot is no outcome, but
    its position must then carry exactly one ``duplicate_key_image`` rejection.
    Also returns the superseded vote ids and the control-topic positions with their
    rejections' reasons. A copy at the same position with the same reason is one
    outcome, as on the votes topic: processing is at-least-once, and the watcher (a
    group with nothing committed) reads a topic again from the start when a broker
    fault moves its group (session 10's seed-1 run saw the one control rejection
    twice; every replica of the rejections topic holds it once).
    """
    ballots_at: dict[tuple[int, int], set[str]] = defaultdict(set)
    superseded: set[str] = set()
    for raw in obs.topic_ballots:
        b = json.loads(raw)
        ballots_at[(b["source_partition"], b["source_offset"])].add(b["vote_id"])
        if b.get("supersedes"):
            superseded.add(b["supersedes"])
    reasons_at: dict[tuple[int, int], set[str]] = defaultdict(set)
    control: dict[tuple[str, int, int], set[str]] = defaultdict(set)
    for raw in obs.topic_rejections:
        r = json.loads(raw)
        if r["source_topic"] == plan.votes_topic:
            reasons_at[(r["source_partition"], r["source_offset"])].add(r["reason"])
        else:
            control[(r["source_topic"], r["source_partition"], r["source_offset"])].add(r["reason"])
    out: dict[tuple[int, int], list[str]] = {}
    for pos in set(ballots_at) | set(reasons_at):
        live = [f"ballot:{v}" for v in sorted(ballots_at.get(pos, ())) if v not in superseded]
        outs = live + sorted(reasons_at.get(pos, ()))
        retracted = any(v in superseded for v in ballots_at.get(pos, ()))
        if retracted and outs != [DUPLICATE]:
            outs = [*outs, "retracted ballot without its duplicate_key_image"]
        out[pos] = outs
    return out, superseded, control


def evaluate(plan: Plan, obs: Observed) -> list[Check]:  # noqa: C901, PLR0912, PLR0915
    """Every invariant of the run, as checks that say expected vs got."""
    checks: list[Check] = []

    def check(name: str, expected: Any, got: Any, note: str = "", ok: bool | None = None) -> None:
        checks.append(Check(name, expected, got, (expected == got) if ok is None else ok, note))

    planned = plan.votes
    check(
        "every planned message was acknowledged by Kafka (position known)",
        len(planned),
        len(obs.positions),
    )
    by_pos = {obs.positions[i]: p for i, p in enumerate(planned) if i in obs.positions}
    index_of = {id(p): i for i, p in enumerate(planned)}
    # A vote id names a slot tag, so a slot reuse or a foreign-partition copy shares its
    # original's: each id maps to the record that may be counted (or a double vote's half).
    halves = {v for pair in plan.pairs for v in pair}
    by_vote = {p.vote_id: p for p in planned if p.expect == "ballot" or p.label == "double_vote"}
    for p in planned:
        if p.vote_id and p.vote_id not in halves:
            by_vote.setdefault(p.vote_id, p)

    # -- the double votes' ground truth, from the broker's timestamps (not the plan's word)
    pairs = plan.pairs
    ordered = 0
    for first, second in pairs:
        a, b = index_of[id(by_vote[first])], index_of[id(by_vote[second])]
        if a in obs.timestamps and b in obs.timestamps:
            ka = (obs.timestamps[a], *obs.positions[a])
            kb = (obs.timestamps[b], *obs.positions[b])
            ordered += ka < kb
    check(
        "double votes: the plan's counted half was appended first (broker time, partition, offset)",
        len(pairs),
        ordered,
    )
    same_type = [f for f, s in pairs if by_vote[f].vote_type == by_vote[s].vote_type]
    check(
        "double votes: the halves have different vote types (a wrong winner shows in the tally)",
        0,
        len(same_type),
    )

    # -- Postgres ballots: every valid vote exactly once
    expected_ballots = {p.vote_id for p in planned if p.expect == "ballot"}
    got_ids = [b["vote_id"] for b in obs.pg_ballots]
    got_set = set(got_ids)
    lost, extra = expected_ballots - got_set, got_set - expected_ballots
    check(
        "valid votes counted (Postgres ballots ⊇ expected)",
        len(expected_ballots),
        len(expected_ballots & got_set),
        f"lost: {sorted(lost)[:5]}" if lost else "",
    )
    check(
        "no ballot for a vote that must not count",
        0,
        len(extra),
        f"e.g. {sorted(extra)[:5]}" if extra else "",
    )
    check("no vote counted twice (ballot rows per vote_id)", len(got_set), len(got_ids))
    first_counted = sum(a in got_set and b not in got_set for a, b in pairs)
    check(
        "double votes: the half appended first counted, never the second", len(pairs), first_counted
    )
    wrong_pos = [
        b["vote_id"]
        for b in obs.pg_ballots
        if (pos := (b["source_partition"], b["source_offset"])) not in by_pos
        or by_pos[pos].vote_id != b["vote_id"]
    ]
    check("each ballot points at its own votes-topic position", 0, len(wrong_pos))
    wrong_type = [
        b["vote_id"]
        for b in obs.pg_ballots
        if b["vote_id"] in by_vote
        and b.get("vote_type", by_vote[b["vote_id"]].vote_type) != by_vote[b["vote_id"]].vote_type
    ]
    check("each ballot has its vote's type", 0, len(wrong_type))

    # -- Postgres rejections: each invalid message rejected once, with its reason
    rej_by_pos: dict[tuple[int, int], list[str]] = defaultdict(list)
    foreign = []
    for r in obs.pg_rejections:
        if r["source_topic"] != plan.votes_topic:
            foreign.append(r)
        else:
            rej_by_pos[(r["source_partition"], r["source_offset"])].append(r["reason"])
    wrong_reason: list[str] = []
    missing_rej: list[str] = []
    pair_dup_ok = 0
    seconds = {b for _, b in pairs}
    for pos, p in by_pos.items():
        got = rej_by_pos.get(pos, [])
        if p.expect == "ballot":
            if got:
                wrong_reason.append(f"{p.label}@{pos}: valid vote rejected as {got}")
        elif p.vote_id in seconds and p.label != "wrong_partition" and got == [DUPLICATE]:
            pair_dup_ok += 1
        elif not got:
            missing_rej.append(f"{p.label}@{pos} expected {p.expect}")
        elif got != [p.expect]:
            wrong_reason.append(f"{p.label}@{pos}: expected {p.expect}, got {got}")
    n_invalid = sum(p.expect != "ballot" for p in planned)
    check(
        "invalid messages rejected (matched by source partition/offset)",
        n_invalid,
        n_invalid - len(missing_rej),
        "; ".join(missing_rej[:3]),
    )
    check(
        "rejections with the wrong reason / valid votes rejected",
        0,
        len(wrong_reason),
        "; ".join(wrong_reason[:3]),
    )
    check("double votes' second halves rejected as duplicate_key_image", len(pairs), pair_dup_ok)
    unplanned = [pos for pos in rej_by_pos if pos not in by_pos]
    check("no rejection at an unplanned votes-topic position", 0, len(unplanned))
    check(
        "control records rejected: exactly the planned ones (an unsigned ring)",
        sum(p.has_outcome for p in plan.control),
        len(foreign),
    )
    exp_reasons = Counter(
        p.expect for p in [*plan.control, *planned] if p.expect not in ("ballot", "control")
    )
    got_reasons = Counter(r["reason"] for r in obs.pg_rejections)
    for reason in sorted(set(exp_reasons) | set(got_reasons)):
        check(f"rejections: {reason}", exp_reasons.get(reason, 0), got_reasons.get(reason, 0))
    pg_ballot_pos = {(b["source_partition"], b["source_offset"]) for b in obs.pg_ballots}
    every = sum(1 for pos in by_pos if (pos in pg_ballot_pos) + len(rej_by_pos.get(pos, ())) == 1)
    check(
        "Postgres: every planned message has exactly one outcome (ballot xor rejection)",
        len(by_pos),
        every,
    )

    # -- the output topics: one final outcome per position, the planned one
    outcomes, superseded, control_topic = topic_outcomes(plan, obs)
    conflicts = {pos: o for pos, o in outcomes.items() if len(o) != 1}
    check(
        "topics: no votes-topic position with two outcomes (ballot/rejection, two reasons)",
        0,
        len(conflicts),
        "; ".join(f"{pos}: {o}" for pos, o in list(conflicts.items())[:3]),
    )
    want = {
        pos: [f"ballot:{p.vote_id}"] if p.expect == "ballot" else [p.expect]
        for pos, p in by_pos.items()
    }
    differ = [
        f"{by_pos[pos].label}@{pos}: expected {w}, got {outcomes.get(pos, [])}"
        for pos, w in want.items()
        if outcomes.get(pos, []) != w
    ]
    check(
        "topics: every planned position has exactly its planned outcome",
        len(want),
        len(want) - len(differ),
        "; ".join(differ[:3]),
    )
    check(
        "topics: no outcome at an unplanned votes-topic position",
        0,
        len(set(outcomes) - set(want)),
    )
    check(
        "topics: control records rejected: exactly the planned ones (distinct positions)",
        sum(p.has_outcome for p in plan.control),
        len(control_topic),
    )
    two = {pos: r for pos, r in control_topic.items() if len(r) != 1}
    check(
        "topics: no control record with two rejection reasons",
        0,
        len(two),
        "; ".join(f"{pos}: {sorted(r)}" for pos, r in list(two.items())[:3]),
    )
    bad_retractions = superseded - seconds
    check(
        "topics: only double votes' second halves are ever retracted",
        0,
        len(bad_retractions),
    )

    # -- tallies: counts from the plan, decisions from the harness's own rules
    exp_tallies = expected_tallies(plan)
    exp_decisions = {
        sub: rules_decision(c, plan.min_votes, plan.flag_threshold)
        for sub, c in exp_tallies.items()
    }
    pg = obs.pg_tallies
    bad_pg = [
        sub
        for sub, c in exp_tallies.items()
        if sub not in pg or {t: pg[sub][t] for t in VOTE_TYPES} != c
    ]
    extra_pg = set(pg) - set(exp_tallies)
    check(
        "Postgres tallies equal the ground truth (per submission)",
        len(exp_tallies),
        len(exp_tallies) - len(bad_pg),
        f"wrong: {bad_pg[:3]}; extra: {sorted(extra_pg)[:3]}",
        ok=not bad_pg and not extra_pg,
    )
    bad_dec = [sub for sub, d in exp_decisions.items() if sub in pg and pg[sub]["decision"] != d]
    check(
        "Postgres decisions equal the harness's rules on the ground truth",
        len(exp_decisions),
        len(exp_decisions) - len(bad_dec),
        f"wrong: {bad_dec[:3]}",
    )
    doubles = Counter(by_vote[s].submission_id for _, s in pairs)
    bad_version = [
        sub
        for sub, r in pg.items()
        if not r["total"] <= r["version"] <= r["total"] + doubles.get(sub, 0)
    ]
    check(
        "tally version == total + retractions (one version per counted vote or retraction)",
        0,
        len(bad_version),
    )
    check(
        "tally totals equal the planned ballots per submission",
        0,
        sum(pg[sub]["total"] != sum(c.values()) for sub, c in exp_tallies.items() if sub in pg),
    )
    # A tally's position: its version (counted votes and retractions) and its log size
    # (a refused vote's leaf grows the log, not the version: issue 19).
    versions: dict[str, dict[tuple[int, int], set[bytes]]] = defaultdict(lambda: defaultdict(set))
    for raw in obs.topic_tallies:
        t = json.loads(raw)
        versions[t["submission_id"]][(t["version"], t.get("log_size") or 0)].add(raw)
    forks = sum(len(v) > 1 for vs in versions.values() for v in vs.values())
    latest = {sub: json.loads(next(iter(vs[max(vs)]))) for sub, vs in versions.items()}
    rules = f"ringtally-rules-v1;min_votes={plan.min_votes};flag_threshold={plan.flag_threshold}"
    bad_topic = [
        sub
        for sub, c in exp_tallies.items()
        if sub not in latest
        or latest[sub]["counts"] != c
        or latest[sub]["decision"] != exp_decisions[sub]
        or latest[sub]["rules_version"] != rules
    ]
    check(
        "tallies topic: latest tally per submission equals the ground truth and the rules",
        len(exp_tallies),
        len(exp_tallies) - len(bad_topic),
        f"wrong: {bad_topic[:3]}",
    )
    check("tallies topic: one content per (submission, version, log size)", 0, forks)
    by_ballot: dict[str, set[bytes]] = defaultdict(set)
    for raw in obs.topic_ballots:
        by_ballot[json.loads(raw)["vote_id"]].add(raw)
    check(
        "ballots topic: re-emitted ballots byte-identical",
        0,
        sum(len(v) > 1 for v in by_ballot.values()),
    )
    audit_topic: dict[tuple[str, int], set[str]] = defaultdict(set)
    for raw in obs.topic_audit:
        a = json.loads(raw)
        audit_topic[(a["chain"], a["sequence"])].add(a["hash"])
    check(
        "audit topic: one event per (chain, sequence)",
        0,
        sum(len(h) > 1 for h in audit_topic.values()),
    )

    # -- the audit log, against the plan
    kinds = Counter(r["kind"] for r in obs.pg_audit)
    audit_ballots = Counter(r["vote_id"] for r in obs.pg_audit if r["kind"] == "ballot")
    retracted = Counter(r["vote_id"] for r in obs.pg_audit if r["kind"] == "retraction")
    check(
        "audit_log: one ballot event for every planned ballot",
        len(expected_ballots),
        sum(audit_ballots.get(v) == 1 for v in expected_ballots),
    )
    check(
        "audit_log: retractions only of planned second halves, once each",
        0,
        sum(n for v, n in retracted.items() if v not in seconds or n > 1),
    )
    check(
        "audit_log: no ballot event for an unplanned vote (a retracted half has one)",
        0,
        sum(
            n
            for v, n in audit_ballots.items()
            if v not in expected_ballots and not (v in retracted and n == 1)
        ),
    )
    check(
        "audit_log: rows = planned ballots + 2 per retraction, no other kind",
        len(expected_ballots) + 2 * len(retracted),
        sum(kinds.values()),
        f"{dict(kinds)}",
        ok=sum(kinds.values()) == len(expected_ballots) + 2 * sum(retracted.values())
        and set(kinds) <= {"ballot", "retraction"}
        and kinds.get("ballot", 0) == len(expected_ballots) + sum(retracted.values()),
    )
    misplaced = [
        r
        for r in obs.pg_audit
        if r["kind"] == "ballot"
        and r["vote_id"] in by_vote
        and obs.positions.get(index_of[id(by_vote[r["vote_id"]])])
        != (r["source_partition"], r["source_offset"])
    ]
    check("audit_log: each event at its vote's votes-topic position", 0, len(misplaced))
    check(
        "sink dead letters",
        0,
        sum(obs.dead_letters.values()),
        ", ".join(f"{k}={v}" for k, v in obs.dead_letters.items()),
    )
    code, out = obs.audit_verify
    check("ringtally audit verify", "exit 0", f"exit {code}", out[-300:])
    return checks


def producer_copies(
    records: list[tuple[int, int, int, bytes]],
    positions: dict[int, tuple[int, int]],
    timestamps: dict[int, int],
    values: dict[int, bytes],
) -> list[tuple[int, tuple[int, int], int]]:
    """Every copy the producer wrote of a planned record beyond the one the plan holds,
    read back from the votes topic: ``(record index, position, broker time)``.

    The publisher's producer is idempotent, yet it can still write a record twice: its
    retry after a lost acknowledgement lands in a new producer session (librdkafka
    resets its producer id when the brokers forget it, e.g. across a restart of every
    broker), so the broker cannot tell it from a new record. The delivery report may
    name either copy (seed 8409: the first at votes[2]@44, the report naming @45).
    So, first, a record whose first byte-identical copy on its partition sits at an
    earlier offset no planned record was acknowledged at is moved there (the workers
    decide the first copy as the record; ``positions`` and ``timestamps`` are
    updated). Then every byte-identical copy at an offset no planned record holds,
    after a planned record with those bytes on that partition, is a re-send of the
    latest such record before it: a record of its own that :func:`plan_copies` plans.
    The same bytes on another partition are no re-send (a producer retries a batch on
    the partition it sent it to): they stay unplanned and fail the unplanned-position
    checks.
    """
    claimed = set(positions.values())
    copies: dict[tuple[int, bytes], list[tuple[int, int]]] = defaultdict(list)
    for partition, offset, ts, value in records:
        copies[(partition, value)].append((offset, ts))
    for found in copies.values():
        found.sort()
    for n, (partition, offset) in list(positions.items()):
        if n not in values:
            continue
        found = copies.get((partition, values[n]), [])
        if found and found[0][0] < offset and (partition, found[0][0]) not in claimed:
            positions[n], timestamps[n] = (partition, found[0][0]), found[0][1]
    claimed = set(positions.values())
    owners: dict[tuple[int, bytes], list[tuple[int, int]]] = defaultdict(list)
    for n, (partition, offset) in positions.items():
        if n in values:
            owners[(partition, values[n])].append((offset, n))
    resent: list[tuple[int, tuple[int, int], int]] = []
    for (partition, value), own in owners.items():
        own.sort()
        for offset, ts in copies.get((partition, value), []):
            before = [n for o, n in own if o < offset]
            if (partition, offset) not in claimed and before:
                resent.append((before[-1], (partition, offset), ts))
    return sorted(resent, key=lambda r: r[1])


def copy_expectation(original: Any) -> str:
    """What a later byte-identical copy of ``original`` (a planned votes-topic record, on
    the same partition) must become: ``duplicate_record`` when the original's signature
    spent its slot tag (it counted, or the tally stage refused it as a double vote);
    otherwise the copy is refused for the original's own reason (nothing was spent)."""
    return "duplicate_record" if original.expect in ("ballot", DUPLICATE) else original.expect


def plan_copies(
    votes: list[Any],
    positions: dict[int, tuple[int, int]],
    timestamps: dict[int, int],
    copied: list[tuple[int, tuple[int, int], int]],
) -> None:
    """Plan each copy :func:`producer_copies` found as a record of its own, at its own
    position (one outcome per votes-topic position), expecting :func:`copy_expectation`."""
    for n, where, ts in copied:
        original = votes[n]
        positions[len(votes)], timestamps[len(votes)] = where, ts
        votes.append(
            replace(original, expect=copy_expectation(original), label=f"copy_of_{original.label}")
        )
