"""A submission's public bulletin (JSON Lines) and the recount that needs no service.

The bulletin is everything needed to recompute a submission's tally, decision
and log root from scratch: a header (the signed head and the rules version),
the registrar-signed submission record (and its closing, if any), every
version of every ring its votes name (registrar-signed records), and every
leaf of its log in order with the vote it is about, signature included; each
record with its broker append time (ms), which decides what was in force::

    {"type": "bulletin", "submission_id": ..., "rules_version": ..., "head": {SignedHead}}
    {"type": "submission", "record": {Submission}, "appended_ms": 1765...}
    {"type": "closing", "record": {SubmissionClosed}, "appended_ms": 1765...}   (if closed)
    {"type": "ring", "record": {Ring}, "appended_ms": 1765...}
    {"type": "leaf", "index": 0, "kind": "ballot", "vote": {VoteCast}, "appended_ms": ...}
    {"type": "leaf", "index": 1, "kind": "rejection", "reason": "bad_signature", "vote": ...}

:func:`recount` applies to each ballot the rules the workers apply
(:func:`streams.acceptance.vote_context`: the ring version in force at the
vote's broker time, active, genre, epoch, slot, submission open), re-verifies
every vote signature (ringcrypto, against that ring version), replays the
leaves (a ballot counts its vote, a retraction
withdraws the counted vote of its key image and must be followed by the
ballot of the vote that replaced it, a rejection counts nothing and must be a
refusal a worker makes: the reason the acceptance rule gives, a signature
that does not verify for ``bad_signature``, a key image already counted for
``duplicate_key_image``; ``token_spent`` is taken on trust, the tag may have
been spent on another submission), applies the decision rules, rebuilds
the RFC 9162 root, and checks it against the head, whose signature it checks
when a log key is given; rings' registrar signatures likewise. Publishing it
is only safe because nothing in a vote names its reviewer (protocol v2).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, NoReturn

from pydantic import ValidationError

from models.control import Ring, Submission, SubmissionClosed
from models.decision import Decision, decide, rules_version
from models.encoding import REGISTRAR_CONTEXT
from models.internal import vote_id_for_token
from models.log import LeafKind, SignedHead, log_leaf_hash, vote_digest
from models.merkle import Frontier
from models.outputs import VoteCounts
from models.reasons import ReasonCode
from models.votes import VoteCast
from streams.acceptance import Lookup, RingEntry, RingHistory, SubmissionEntry, vote_context
from streams.errors import RingtallyError

from .receipt import verify_head

__all__ = ["BulletinInvalid", "Recount", "bulletin_lines", "recount"]


class BulletinInvalid(RingtallyError):
    """A bulletin that does not recount: the message names the line and the check."""


def bulletin_lines(
    *,
    head: SignedHead,
    rules: str,
    submission: tuple[Submission, int],
    closing: tuple[SubmissionClosed, int] | None = None,
    rings: Iterable[tuple[Ring, int]],
    leaves: Iterable[tuple[int, LeafKind | str, VoteCast, int]],
    reasons: Mapping[int, str] | None = None,
) -> Iterator[str]:
    """The bulletin's lines (no newlines), header first; each record with its broker
    append time in ms (``(record, appended_ms)``; a leaf ``(index, kind, vote, ms)``);
    ``reasons``: the reason code of each ``rejection`` leaf, by index."""
    yield json.dumps(
        {
            "type": "bulletin",
            "submission_id": head.submission_id,
            "rules_version": rules,
            "head": head.model_dump(mode="json"),
        }
    )
    records = [("submission", *submission)]
    if closing is not None:
        records.append(("closing", *closing))
    records += [("ring", ring, at) for ring, at in rings]
    for kind, record, at in records:
        yield json.dumps(
            {"type": kind, "record": record.model_dump(mode="json"), "appended_ms": at}
        )
    for index, kind, vote, at in leaves:
        line: dict[str, Any] = {"type": "leaf", "index": index, "kind": LeafKind(kind).value}
        if line["kind"] == LeafKind.REJECTION:
            line["reason"] = (reasons or {})[index]
        if line.get("reason") == ReasonCode.TOKEN_SPENT.value:
            # Its slot tag is one the reviewer spent elsewhere: the vote would link this
            # submission's bulletin to that vote's (invariant 8). The digest is the leaf.
            line["vote_digest"] = vote_digest(vote.signing_bytes(), vote.signature_bytes()).hex()
        else:
            line["vote"] = vote.model_dump(mode="json")
        line["appended_ms"] = at
        yield json.dumps(line)


@dataclass
class Recount:
    submission_id: str
    counts: VoteCounts
    decision: Decision
    rules_version: str
    log_size: int
    log_root: str
    head_verified: bool
    rings_verified: bool
    counted: list[str] = field(default_factory=list)
    #: Rejection leaves (refused well-formed votes), by reason.
    refused: dict[str, int] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "submission_id": self.submission_id,
            "counts": self.counts.model_dump(),
            "total": self.counts.total,
            "decision": self.decision.value,
            "rules_version": self.rules_version,
            "log_size": self.log_size,
            "log_root": self.log_root,
            "head_verified": self.head_verified,
            "rings_verified": self.rings_verified,
            "refused": dict(sorted(self.refused.items())),
        }


def _index(value: Any) -> int:
    if type(value) is not int or value < 0:
        raise ValueError(f"a leaf index or time is an integer >= 0, got {value!r}")
    return value


def _digest(value: Any) -> bytes:
    """A vote digest: 64 lowercase hex digits."""
    if not isinstance(value, str) or len(value) != 64 or value != value.lower():
        raise ValueError("a vote digest is 64 lowercase hex digits")
    return bytes.fromhex(value)


def _model(model: Any) -> Any:
    """A parser of one JSON field into ``model`` (strict, as on the wire)."""
    return lambda value: model.model_validate_json(json.dumps(value))


def _field(number: int, item: dict[str, Any], key: str, parse: Any) -> Any:
    """``parse(item[key])``, or a one-line :class:`BulletinInvalid` naming the line when the
    line does not hold what it must (a missing key, a bad kind, an invalid record)."""
    try:
        return parse(item[key])
    except BulletinInvalid:
        raise
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ())) or exc.title
        raise BulletinInvalid(f"line {number}: invalid {where}: {first['msg']}") from None
    except KeyError:
        raise BulletinInvalid(f"line {number}: no {key!r} field") from None
    except (TypeError, ValueError) as exc:
        raise BulletinInvalid(f"line {number}: invalid {key!r}: {exc}") from None


def _rules(text: str) -> tuple[int, int]:
    """(min_votes, flag_threshold) of a rules version this code implements."""
    try:
        fields = dict(part.split("=", 1) for part in text.split(";")[1:])
        min_votes, flag_threshold = int(fields["min_votes"]), int(fields["flag_threshold"])
    except (KeyError, ValueError):
        raise BulletinInvalid(f"rules version {text!r} is not one this recount knows") from None
    if rules_version(min_votes=min_votes, flag_threshold=flag_threshold) != text:
        raise BulletinInvalid(f"rules version {text!r} is not one this recount knows")
    return min_votes, flag_threshold


def recount(
    lines: Iterable[str],
    *,
    log_key: bytes | None = None,
    registrar_keys: Iterable[bytes] = (),
) -> Recount:
    """Recount a bulletin (see the module docstring); raises :class:`BulletinInvalid`."""
    import ringcrypto

    registrars = [ringcrypto.Ring([k]) for k in registrar_keys]
    rings: dict[str, RingHistory] = {}
    submissions: dict[str, SubmissionEntry] = {}
    header: dict[str, Any] | None = None
    frontier = Frontier()
    counts = VoteCounts()
    counted: dict[str, tuple[bytes, VoteCast]] = {}  # key image -> (digest, vote)
    tags: set[str] = set()
    refused: dict[str, int] = {}
    replacing: str | None = None  # the key image whose retraction awaits its ballot
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
            kind = item["type"]
        except (ValueError, KeyError, TypeError):
            raise BulletinInvalid(f"line {number}: not a bulletin line") from None
        if header is None:
            if kind != "bulletin":
                raise BulletinInvalid("line 1: the bulletin header must come first")
            header = item
            head = _field(number, item, "head", _model(SignedHead))
            _field(number, item, "rules_version", _rules)
            continue
        if kind in ("ring", "submission", "closing"):
            model = {"ring": Ring, "submission": Submission, "closing": SubmissionClosed}[kind]
            record = _field(number, item, "record", _model(model))
            at = _field(number, item, "appended_ms", _index)
            if registrars and not _registrar_signed(record, registrars):
                raise BulletinInvalid(
                    f"line {number}: {kind} record is not signed by a trusted registrar key"
                )
            _control(number, record, at, rings, submissions, head)
            continue
        if kind != "leaf":
            raise BulletinInvalid(f"line {number}: unknown line type {kind!r}")
        leaf_kind = _field(number, item, "kind", LeafKind)
        index = _field(number, item, "index", _index)
        at = _field(number, item, "appended_ms", _index)
        if index != frontier.size:
            raise BulletinInvalid(
                f"line {number}: leaf {index!r} where leaf {frontier.size} comes next"
            )
        if leaf_kind is LeafKind.REJECTION and "vote" not in item:
            # A token_spent refusal's vote is not published (its tag links): its digest is
            # the leaf, taken as given like the refusal itself (_check_refusal).
            reason = _field(number, item, "reason", ReasonCode)
            if reason is not ReasonCode.TOKEN_SPENT:
                raise BulletinInvalid(f"line {number}: a {reason.value} leaf without its vote")
            if replacing is not None:
                raise BulletinInvalid(
                    f"line {number}: a retraction must be followed by the ballot of its key image"
                )
            digest = _field(number, item, "vote_digest", _digest)
            refused[reason.value] = refused.get(reason.value, 0) + 1
            frontier.append(log_leaf_hash(leaf_kind, digest, reason.value))
            continue
        vote = _field(number, item, "vote", _model(VoteCast))
        if vote.submission_id != head.submission_id:
            raise BulletinInvalid(f"line {number}: a vote on {vote.submission_id}")
        found = vote_context(
            submissions,
            rings,
            submission_id=vote.submission_id,
            ring_id=vote.ring_id,
            ring_version=vote.ring_version,
            epoch=vote.epoch,
            slot=vote.slot,
            timestamp_ms=at,
        )
        if leaf_kind is LeafKind.REJECTION:
            if replacing is not None:
                raise BulletinInvalid(
                    f"line {number}: a retraction must be followed by the ballot of its key image"
                )
            reason = _field(number, item, "reason", ReasonCode)
            digest = vote_digest(vote.signing_bytes(), vote.signature_bytes())
            _check_refusal(number, vote, reason, found, counted)
            refused[reason.value] = refused.get(reason.value, 0) + 1
            frontier.append(log_leaf_hash(leaf_kind, digest, reason.value))
            continue
        if found.reason is not None or found.ring is None:
            raise BulletinInvalid(
                f"line {number}: vote {vote.vote_id} is counted but a worker rejects it "
                f"{found.reason.value if found.reason else 'unknown_ring'}: {found.detail}"
            )
        key_image = _check_vote(vote, found.ring.crypto, number)
        digest = vote_digest(vote.signing_bytes(), vote.signature_bytes())
        if leaf_kind is LeafKind.RETRACTION:
            held = counted.get(key_image)
            if held is None or held[0] != digest or replacing is not None:
                raise BulletinInvalid(
                    f"line {number}: retracts vote {vote.vote_id}, which is not counted"
                )
            counts = counts.minus(vote.vote_type)
            del counted[key_image]
            replacing = key_image
        else:
            if key_image in counted:
                raise BulletinInvalid(
                    f"line {number}: vote {vote.vote_id} counted while another vote with its "
                    "key image counts (a double vote)"
                )
            if replacing is not None and replacing != key_image:
                raise BulletinInvalid(
                    f"line {number}: a retraction must be followed by the ballot of its key image"
                )
            if vote.token_id in tags:
                raise BulletinInvalid(f"line {number}: slot tag {vote.token_id} counted twice")
            tags.add(vote.token_id)
            counts = counts.plus(vote.vote_type)
            counted[key_image] = (digest, vote)
            replacing = None
        frontier.append(log_leaf_hash(leaf_kind, digest))
    if header is None:
        raise BulletinInvalid("empty bulletin: no header")
    if replacing is not None:
        raise BulletinInvalid("the bulletin ends with a retraction and no ballot after it")
    root = frontier.root()
    if (frontier.size, root.hex()) != (head.tree_size, head.root_hash):
        raise BulletinInvalid(
            f"the leaves give a log of size {frontier.size} and root {root.hex()}; the head "
            f"says size {head.tree_size}, root {head.root_hash}"
        )
    if log_key is not None:
        verify_head(head, log_key)
    min_votes, flag_threshold = _rules(header["rules_version"])
    decision = decide(**counts.model_dump(), min_votes=min_votes, flag_threshold=flag_threshold)
    return Recount(
        submission_id=head.submission_id,
        counts=counts,
        decision=decision,
        rules_version=header["rules_version"],
        log_size=frontier.size,
        log_root=root.hex(),
        head_verified=log_key is not None,
        rings_verified=bool(registrars),
        counted=sorted(str(v.vote_id) for _, v in counted.values()),
        refused=refused,
    )


def _check_refusal(
    number: int,
    vote: VoteCast,
    reason: ReasonCode,
    found: Lookup,
    counted: Mapping[str, tuple[bytes, VoteCast]],
) -> None:
    """A rejection leaf must be a refusal a worker makes (module docstring)."""

    def refuse(why: str) -> NoReturn:
        raise BulletinInvalid(f"line {number}: vote {vote.vote_id} refused {reason.value}, {why}")

    if not found.in_log:
        refuse(f"but a vote refused {found.reason} is in no log")
    if reason is ReasonCode.TOKEN_SPENT:
        return  # decided before the acceptance rule, on a tag this bulletin may not show
    if found.reason is not None or found.ring is None:
        if found.reason != reason:
            refuse(f"where the acceptance rule gives {found.reason}: {found.detail}")
        return
    if reason is ReasonCode.BAD_SIGNATURE:
        try:
            _check_vote(vote, found.ring.crypto, number)
        except BulletinInvalid:
            return
        refuse("but its signature verifies")
    if reason is ReasonCode.DUPLICATE_KEY_IMAGE:
        try:
            key_image = _check_vote(vote, found.ring.crypto, number)
        except BulletinInvalid:
            refuse("but its signature does not verify")
        if key_image not in counted:
            refuse("but no vote with its key image counts before it")
        return
    refuse("which no worker decides for a vote the acceptance rule admits")


def _control(
    number: int,
    record: Ring | Submission | SubmissionClosed,
    at: int,
    rings: dict[str, RingHistory],
    submissions: dict[str, SubmissionEntry],
    head: SignedHead,
) -> None:
    """Apply one control line as the workers apply its record (agents/control.py): ring
    versions 1, 2, ... in order; the submission once; its first closing after it."""
    import ringcrypto

    if isinstance(record, Ring):
        history = rings.setdefault(record.ring_id, RingHistory())
        if record.version != len(history.versions) + 1:
            raise BulletinInvalid(
                f"line {number}: ring {record.ring_id} version {record.version} where version "
                f"{len(history.versions) + 1} comes next"
            )
        effective = max(record.valid_from_ms(), at)
        crypto = ringcrypto.Ring(
            record.public_key_bytes(), max_size=max(len(record.public_keys), 1)
        )
        history.versions.append(RingEntry(record.ring_id, record, crypto, effective, at))
        return
    if record.submission_id != head.submission_id:
        raise BulletinInvalid(f"line {number}: a record of submission {record.submission_id}")
    known = submissions.get(record.submission_id)
    if isinstance(record, Submission):
        if known is not None:
            raise BulletinInvalid(f"line {number}: a second submission record")
        submissions[record.submission_id] = SubmissionEntry(record, at)
    elif known is None or known.closed_ms is not None or at < known.appended_ms:
        raise BulletinInvalid(f"line {number}: a closing with no open submission before it")
    else:
        submissions[record.submission_id] = replace(known, closed_ms=at)


def _check_vote(vote: VoteCast, ring: Any, number: int) -> str:
    """Verify the vote's signature against its ring version (a ``ringcrypto.Ring``); its
    key image (hex)."""
    import ringcrypto

    if vote.vote_id != vote_id_for_token(vote.token_id):
        raise BulletinInvalid(f"line {number}: vote id {vote.vote_id} is not its token's")
    try:
        key_image, tag = ringcrypto.verify_vote(
            ring,
            vote.context(),
            vote.epoch_bytes(),
            vote.slot,
            vote.signing_bytes(),
            vote.signature_bytes(),
        )
    except (ringcrypto.InvalidSignature, ringcrypto.MalformedInput) as exc:
        raise BulletinInvalid(
            f"line {number}: vote {vote.vote_id}: signature does not verify ({exc})"
        ) from None
    if tag.hex() != vote.token_id:
        raise BulletinInvalid(f"line {number}: vote {vote.vote_id}: token id is not its slot tag")
    return key_image.hex()


def _registrar_signed(record: Ring | Submission | SubmissionClosed, registrars: list[Any]) -> bool:
    import ringcrypto

    signature = record.registrar_signature_bytes()
    if signature is None:
        return False
    for registrar in registrars:
        try:
            ringcrypto.verify(registrar, REGISTRAR_CONTEXT, record.signing_bytes(), signature)
            return True
        except (ringcrypto.InvalidSignature, ringcrypto.MalformedInput):
            continue
    return False
