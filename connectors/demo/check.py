"""The demo's check: every observed number against the simulation's ground truth.

:class:`Truth` is taken from a :class:`~connectors.demo.simulation.ReviewRound`;
:class:`Observed` is what one source (Postgres, or the output topics) holds;
:func:`check` compares them and returns one :class:`CheckLine` per number,
each MATCH or MISMATCH. Pure functions, no I/O: the unit test feeds it a
tampered count and expects MISMATCH.

What is compared (the truth only claims what does not depend on timing, see
:mod:`connectors.demo.simulation`):

- ballots: exactly the votes that must count, nothing else; of a double
  vote, the half appended first (the broker's order, LogAppendTime), never
  the second;
- rejections: the count per reason code;
- tallies: per submission, the counts of each vote type, the decision, and
  ``total <= version <= total + double votes on it`` (every counted ballot
  bumps the version by one, and so does each retraction: a double vote whose
  later-cast half arrived first); no tally for a submission nobody validly
  voted on, but one counting nothing (total 0) when its only votes were
  refused: each refusal is a leaf of its log (native/SPEC.md §14.1).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["CheckLine", "Observed", "TallyView", "Truth", "check", "all_match"]

VOTE_TYPES = ("approve", "reject", "flag", "escalate")
#: Mismatch details listed per line (the rest is summarised as "... N more").
MAX_DETAILS = 5


@dataclass(frozen=True, slots=True)
class TallyView:
    """A submission's tally as a source reports it."""

    counts: tuple[int, int, int, int]  # approve, reject, flag, escalate
    decision: str
    version: int

    @property
    def total(self) -> int:
        return sum(self.counts)

    @classmethod
    def from_dict(cls, counts: Mapping[str, int], decision: str, version: int) -> TallyView:
        return cls(tuple(int(counts.get(t, 0)) for t in VOTE_TYPES), str(decision), int(version))  # type: ignore[arg-type]

    def describe(self) -> str:
        a, r, f, e = self.counts
        return f"approve={a} reject={r} flag={f} escalate={e} -> {self.decision} (v{self.version})"


@dataclass(frozen=True)
class Truth:
    """What the pipeline must produce for a round."""

    ballots: frozenset[str]
    #: (counted, rejected) vote ids of each double vote.
    pairs: tuple[tuple[str, str], ...]
    rejections: Mapping[str, int]
    #: submission -> (counts, decision).
    tallies: Mapping[str, tuple[tuple[int, int, int, int], str]]
    #: submission -> double votes on it (each may retract once: one more version).
    double_votes: Mapping[str, int] = field(default_factory=dict)

    @classmethod
    def from_round(cls, round_: Any) -> Truth:
        counts = round_.expected_tallies()
        decisions = round_.expected_decisions()
        return cls(
            ballots=frozenset(round_.expected_ballots()),
            pairs=tuple(tuple(p) for p in round_.pairs),  # type: ignore[misc]
            rejections=dict(round_.expected_rejections()),
            tallies={
                sub: (tuple(getattr(c, t) for t in VOTE_TYPES), str(decisions[sub]))  # type: ignore[misc]
                for sub, c in counts.items()
            },
            double_votes=round_.double_votes_per_submission(),
        )

    @property
    def ballot_count(self) -> int:
        return len(self.ballots)


@dataclass
class Observed:
    """What one source holds; ``None`` for what it cannot tell."""

    source: str
    ballots: set[str] | None = None
    rejections: Counter[str] | None = None
    tallies: dict[str, TallyView] | None = None


@dataclass
class CheckLine:
    source: str
    what: str
    expected: str
    observed: str
    ok: bool
    details: list[str] = field(default_factory=list)

    @property
    def verdict(self) -> str:
        return "MATCH" if self.ok else "MISMATCH"


def all_match(lines: Iterable[CheckLine]) -> bool:
    return all(line.ok for line in lines)


def _limited(items: list[str]) -> list[str]:
    if len(items) <= MAX_DETAILS:
        return items
    return [*items[:MAX_DETAILS], f"... {len(items) - MAX_DETAILS} more"]


def check(truth: Truth, observed: Observed) -> list[CheckLine]:
    """One line per number: the ballot set, each reason's count, the tallies."""
    lines: list[CheckLine] = []
    src = observed.source
    if observed.ballots is not None:
        lines.append(_check_ballots(truth, observed.ballots, src))
    if observed.rejections is not None:
        for reason in sorted(set(truth.rejections) | set(observed.rejections)):
            want, got = truth.rejections.get(reason, 0), observed.rejections.get(reason, 0)
            lines.append(CheckLine(src, f"rejected: {reason}", str(want), str(got), want == got))
        want_all, got_all = sum(truth.rejections.values()), sum(observed.rejections.values())
        lines.append(
            CheckLine(
                src, "rejected: all reasons", str(want_all), str(got_all), want_all == got_all
            )
        )
    if observed.tallies is not None:
        lines.extend(_check_tallies(truth, observed.tallies, src))
    return lines


def _check_ballots(truth: Truth, ballots: set[str], src: str) -> CheckLine:
    details: list[str] = []
    missing = sorted(truth.ballots - ballots)
    unexpected = sorted(ballots - truth.ballots)
    seconds = {second: first for first, second in truth.pairs}
    details += [
        f"double vote: {v} was appended second but counted (first: {seconds[v]})"
        if v in seconds
        else f"unexpected ballot {v}"
        for v in unexpected
    ]
    details += [f"missing ballot {v}" for v in missing]
    ok = not (missing or unexpected)
    expected = f"{truth.ballot_count} (incl. the first of {len(truth.pairs)} double votes)"
    return CheckLine(src, "ballots (vote ids)", expected, str(len(ballots)), ok, _limited(details))


def _check_tallies(truth: Truth, tallies: Mapping[str, TallyView], src: str) -> list[CheckLine]:
    count_bad: list[str] = []
    decision_bad: list[str] = []
    version_bad: list[str] = []
    for sub, (counts, decision) in sorted(truth.tallies.items()):
        seen = tallies.get(sub)
        if seen is None:
            count_bad.append(
                f"{sub}: no tally (expected {dict(zip(VOTE_TYPES, counts, strict=True))})"
            )
            continue
        if seen.counts != counts:
            want = " ".join(f"{t}={n}" for t, n in zip(VOTE_TYPES, counts, strict=True))
            count_bad.append(f"{sub}: expected {want}, got {seen.describe()}")
        if seen.decision != decision:
            decision_bad.append(f"{sub}: expected {decision}, got {seen.decision}")
        retractions = truth.double_votes.get(sub, 0)
        if not seen.total <= seen.version <= seen.total + retractions:
            version_bad.append(
                f"{sub}: version {seen.version} but total {seen.total} "
                f"(+ at most {retractions} retractions)"
            )
    n = len(truth.tallies)
    exact = n - len(count_bad)
    # a submission whose votes were all refused has a Tally of none (its log's refusals)
    extra = sorted(s for s in set(tallies) - set(truth.tallies) if tallies[s].total)
    count_bad += [f"{sub}: unexpected tally {tallies[sub].describe()}" for sub in extra]
    empty = [s for s in set(tallies) - set(truth.tallies) if not tallies[s].total]
    counted = sum(sum(c) for c, _ in truth.tallies.values())
    got_counted = sum(t.total for t in tallies.values())
    return [
        CheckLine(
            src,
            "tallies: submissions",
            str(n),
            str(len(tallies) - len(empty)),
            len(tallies) - len(empty) == n and not extra,
        ),
        CheckLine(
            src,
            "tallies: counts",
            f"{n} exact",
            f"{exact} exact" + (f", {len(extra)} unexpected" if extra else ""),
            not count_bad,
            _limited(count_bad),
        ),
        CheckLine(
            src, "tallies: sum of totals", str(counted), str(got_counted), counted == got_counted
        ),
        CheckLine(
            src,
            "tallies: decisions",
            f"{n} exact",
            f"{n - len(decision_bad)} exact",
            not decision_bad,
            _limited(decision_bad),
        ),
        CheckLine(
            src,
            "tallies: version = total + retractions",
            f"{len(tallies)} of {len(tallies)}",
            f"{len(tallies) - len(version_bad)} of {len(tallies)}",
            not version_bad,
            _limited(version_bad),
        ),
    ]


def tallies_from_records(records: Iterable[Mapping[str, Any]]) -> dict[str, TallyView]:
    """Latest (highest version) tally per submission from Tally messages."""
    best: dict[str, Mapping[str, Any]] = {}
    for t in records:
        sub = t["submission_id"]
        if sub not in best or t["version"] > best[sub]["version"]:
            best[sub] = t
    return {
        sub: TallyView.from_dict(t["counts"], t["decision"], t["version"])
        for sub, t in best.items()
    }
