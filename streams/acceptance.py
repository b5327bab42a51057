"""Which ring version and submission a vote may name at its broker time: one pure rule.

The workers (:class:`agents.control.ControlState`, over the control topics) and
``ringtally recount`` (over a bulletin's registrar-signed records) both decide
with :func:`vote_context`, so a recount refuses exactly the votes a worker
refuses: unknown or closed submission, unknown ring version, a version not in
force at the vote's broker time, an inactive ring, another genre or epoch, a
slot beyond ``votes_per_epoch``. The signature is checked by the caller.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from models.control import Ring, Submission
from models.reasons import ReasonCode

__all__ = ["Lookup", "RingEntry", "RingHistory", "SubmissionEntry", "vote_context"]


@dataclass(frozen=True, slots=True)
class RingEntry:
    """One ring version: its message, its decoded ring, and when it takes effect."""

    ring_id: str
    model: Ring
    crypto: Any  # ringcrypto.Ring
    #: max(valid_from, its record's broker timestamp), in ms.
    effective_ms: int
    #: Its record's broker timestamp (ms): a vote stamped earlier cannot name it.
    appended_ms: int


@dataclass(slots=True)
class RingHistory:
    """Every version of one ring, in version order, with their start times."""

    versions: list[RingEntry] = field(default_factory=list)

    def in_force(self, t_ms: int) -> RingEntry | None:
        """The version in force at ``t_ms``: the highest version already effective.

        Broker timestamps are milliseconds: a vote stamped in the very millisecond a
        version takes effect is decided under that version (a rotation wins the tie).
        """
        best: RingEntry | None = None
        for entry in self.versions:
            if entry.effective_ms <= t_ms:
                best = entry
        return best


@dataclass(frozen=True, slots=True)
class SubmissionEntry:
    model: Submission
    #: Its record's broker timestamp: a vote stamped earlier does not know it.
    appended_ms: int
    #: The broker timestamp of its first signed closing: a vote stamped then or later is
    #: rejected ``submission_closed``. None: open.
    closed_ms: int | None = None


@dataclass(frozen=True, slots=True)
class Lookup:
    """The ring version and submission a vote names, or the reason they don't fit it."""

    ring: RingEntry | None = None
    submission: Submission | None = None
    reason: ReasonCode | None = None
    detail: str = ""

    @property
    def in_log(self) -> bool:
        """Whether a refusal of this vote is a leaf of its submission's log (native/SPEC.md
        §14.1): the submission was registered and still open at the vote's broker time.
        A vote naming no submission has no log to be in; one after the closing would
        change a log the closing made final."""
        return self.reason not in _OUTSIDE_THE_LOG


#: The reasons decided before a vote can reach any log (the submission check comes first).
_OUTSIDE_THE_LOG = frozenset({ReasonCode.UNKNOWN_SUBMISSION, ReasonCode.SUBMISSION_CLOSED})


def vote_context(
    submissions: Mapping[str, SubmissionEntry],
    rings: Mapping[str, RingHistory],
    *,
    submission_id: str,
    ring_id: str,
    ring_version: int,
    epoch: int,
    slot: int,
    timestamp_ms: int,
) -> Lookup:
    """Check a vote's submission and ring version at its broker time, in the documented
    order (docs/protocol.md).

    Only records appended up to ``timestamp_ms`` count, so the answer is the
    same whether this copy has read further (live, ahead of the votes; a
    replay, which reads the control topics to their end first) or not.
    """
    entry = submissions.get(submission_id)
    if entry is None or entry.appended_ms > timestamp_ms:
        return Lookup(
            reason=ReasonCode.UNKNOWN_SUBMISSION, detail=f"no submission {submission_id!r}"
        )
    if entry.closed_ms is not None and entry.closed_ms <= timestamp_ms:
        return Lookup(
            reason=ReasonCode.SUBMISSION_CLOSED,
            detail=f"submission {submission_id!r} was closed at {entry.closed_ms} ms, "
            f"the vote appended at {timestamp_ms} ms",
        )
    submission = entry.model
    history = rings.get(ring_id)
    if history is None or not history.versions:
        return Lookup(reason=ReasonCode.UNKNOWN_RING, detail=f"no ring {ring_id!r}")
    if (
        ring_version > len(history.versions)
        or history.versions[ring_version - 1].appended_ms > timestamp_ms
    ):
        known = sum(1 for v in history.versions if v.appended_ms <= timestamp_ms)
        return Lookup(
            reason=ReasonCode.UNKNOWN_RING,
            detail=f"ring {ring_id!r} had no version {ring_version} when the vote was "
            f"appended (latest then: {known})",
        )
    named = history.versions[ring_version - 1]
    current = history.in_force(timestamp_ms)
    if current is not named:
        now = (
            f"version {current.model.version} was in force"
            if current is not None
            else "no version was in force yet"
        )
        return Lookup(
            reason=ReasonCode.RING_NOT_IN_FORCE,
            detail=f"ring {ring_id!r} version {ring_version} was not in force when the "
            f"vote was appended ({timestamp_ms} ms); {now}: sign against it",
        )
    ring = named.model
    if not ring.active:
        return Lookup(
            reason=ReasonCode.INACTIVE_RING,
            detail=f"ring {ring_id!r} version {ring_version} is not active",
        )
    if ring.genre != submission.genre:
        return Lookup(
            reason=ReasonCode.RING_GENRE_MISMATCH,
            detail=f"ring {ring_id!r} is for genre {ring.genre!r}, "
            f"submission for {submission.genre!r}",
        )
    if not (ring.epoch == submission.epoch == epoch):
        return Lookup(
            reason=ReasonCode.EPOCH_MISMATCH,
            detail=f"vote epoch {epoch}, ring epoch {ring.epoch}, "
            f"submission epoch {submission.epoch}",
        )
    if slot >= ring.votes_per_epoch:
        return Lookup(
            reason=ReasonCode.SLOT_OUT_OF_RANGE,
            detail=f"slot {slot}: ring {ring_id!r} version {ring_version} allows "
            f"{ring.votes_per_epoch} votes per epoch (slots 0..{ring.votes_per_epoch - 1})",
        )
    return Lookup(ring=named, submission=submission)
