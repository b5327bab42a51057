"""``ringtally produce``: publish votes from a JSON Lines file.

Each non-blank line (``#`` starts a comment line) is one of:

* a signed **VoteCast** as on the votes topic (it has a ``signature``): checked
  against the model, then published as it is; the workers verify it;
* an **unsigned vote spec** with a ``key_file``, signed here::

    {"key_file": "alice.key", "ring_id": "ring-poetry-7", "submission_id": "sub-42",
     "vote_type": "approve", "ring_version": 2, "slot": 3, "compact": false}

  ``ring_version`` defaults to the version in force now, ``slot`` to a random
  unused one (the key file's used slots are kept beside it, as ``ringtally
  vote`` does; a used slot is a bad line), ``compact`` to false (batchable),
  and a relative ``key_file`` is relative to the JSONL file's directory.

Bad lines: by default a bad line (not JSON, not a vote, a key file refused, a
ring unknown, a key not in its ring, a slot used or none left) is reported on
stderr with its line number and SKIPPED; the others are published and the
command exits 1 if any line was skipped. With ``--strict`` every line is
checked (and signed) before anything is published, and the first bad line
aborts with nothing published (exit 2; the slots it took are given back).

Exit codes: 0 all published; 1 some lines skipped; 2 bad usage (or --strict
found a bad line), or a service down; 3 with ``--wait``, some votes had no
outcome in time. Rejected votes do not change the exit code: the summary
counts them by reason.
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import click
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from models.fields import Identifier, Slot, VoteType
from models.votes import VoteCast
from streams.errors import RingtallyError, ServiceUnavailable, UsageProblem

from ._common import err, kafka_settings, one_line_errors

__all__ = ["produce"]


class VoteSpec(BaseModel):
    """An unsigned vote line: what to sign, and with which key file."""

    model_config = ConfigDict(extra="forbid", strict=True)

    key_file: str = Field(min_length=1)
    ring_id: Identifier
    submission_id: Identifier
    vote_type: VoteType
    ring_version: int | None = Field(default=None, ge=1, le=2**32 - 1)
    slot: Slot | None = None
    compact: bool = False


class _BadLine(Exception):
    pass


class _Signer:
    """Key files (as Voters: their used slots beside them) and ring versions, loaded once."""

    def __init__(self, settings: Any, base: Path) -> None:
        self.settings = settings
        self.base = base
        self._voters: dict[Path, Any] = {}
        self._history: dict[str, Any] | None = None
        self._crypto: dict[tuple[str, int], Any] = {}
        #: (voter, epoch, slot) taken by this run, given back if --strict aborts.
        self.taken: list[tuple[Any, int, int]] = []

    def _ring(self, spec: VoteSpec) -> Any:
        import time

        from connectors.sdk.reader import ring_history

        if self._history is None:
            self._history = ring_history(self.settings)
        versions = self._history.get(spec.ring_id)
        if not versions:
            raise _BadLine(f"no ring {spec.ring_id!r} is registered")
        if spec.ring_version is not None:
            if spec.ring_version > len(versions):
                raise _BadLine(f"ring {spec.ring_id!r} has no version {spec.ring_version}")
            return versions[spec.ring_version - 1].ring
        now_ms = int(time.time() * 1000)
        in_force = [v.ring for v in versions if v.effective_ms <= now_ms]
        return in_force[-1] if in_force else versions[-1].ring

    def sign(self, spec: VoteSpec) -> VoteCast:
        from connectors.sdk.vote import build_vote, resolve_ring
        from connectors.sdk.voter import Voter

        path = Path(spec.key_file)
        path = path if path.is_absolute() else self.base / path
        if path not in self._voters:
            self._voters[path] = Voter.from_key_file(path)  # KeyFileError: for this line
        voter = self._voters[path]
        ring = self._ring(spec)
        if voter.public_key.hex() not in ring.public_keys:
            raise _BadLine(
                f"the key in {spec.key_file} is not a member of ring {spec.ring_id} "
                f"version {ring.version}"
            )
        cache_key = (ring.ring_id, ring.version)
        if cache_key not in self._crypto:
            self._crypto[cache_key] = resolve_ring(ring, self.settings.max_ring_size)[0]
        slot = voter.take_slot(ring.epoch, ring.votes_per_epoch, spec.slot)  # SlotUsed: bad line
        self.taken.append((voter, ring.epoch, slot))
        return build_vote(
            voter.key,
            self._crypto[cache_key],
            submission_id=spec.submission_id,
            ring_id=ring.ring_id,
            ring_version=ring.version,
            vote_type=spec.vote_type,
            epoch=ring.epoch,
            slot=slot,
            batchable=not spec.compact,
        )

    def give_back(self) -> None:
        """Mark the slots this run took unused again (nothing of it was published)."""
        for voter, epoch, slot in self.taken:
            voter.release_slot(epoch, slot)
        self.taken.clear()


def _parse(line: str, signer: _Signer) -> VoteCast:
    try:
        data = json.loads(line)
    except ValueError as exc:
        raise _BadLine(f"not JSON ({exc})") from None
    if not isinstance(data, dict):
        raise _BadLine("not a JSON object")
    try:
        if "signature" in data:
            return VoteCast.model_validate_json(line)
        return signer.sign(VoteSpec.model_validate_json(line))
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ())) or "line"
        kind = "VoteCast" if "signature" in data else "vote spec"
        raise _BadLine(f"not a valid {kind}: {where}: {first['msg']}") from None
    except ServiceUnavailable:
        raise  # not the line's fault: abort
    except RingtallyError as exc:  # a key file refused, and the like
        raise _BadLine(exc.one_line()) from None


def _lines(path: str) -> list[tuple[int, str]]:
    try:
        text = sys.stdin.read() if path == "-" else Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise click.BadParameter(f"cannot read {path}: {exc}", param_hint="'FILE'") from None
    return [
        (n, line)
        for n, line in enumerate(text.splitlines(), 1)
        if line.strip() and not line.lstrip().startswith("#")
    ]


@click.command("produce")
@click.argument("file", metavar="FILE.jsonl")
@click.option(
    "--strict",
    is_flag=True,
    help="Check and sign every line first; any bad line aborts with nothing published.",
)
@click.option(
    "--wait",
    type=click.FloatRange(0, 3600, min_open=True),
    default=None,
    metavar="SECONDS",
    help="Then wait up to SECONDS for every outcome; print a summary.",
)
@click.option("--quiet", is_flag=True, help="No progress bar.")
@click.pass_context
@one_line_errors
def produce(ctx: click.Context, file: str, strict: bool, wait: float | None, quiet: bool) -> None:
    """Publish votes from a JSON Lines file ('-' for stdin): signed VoteCasts or specs to sign.

    A line is either a VoteCast as on the votes topic (with a signature) or an
    unsigned spec {"key_file", "ring_id", "submission_id", "vote_type",
    ["ring_version"], ["slot"], ["compact"]} signed here with the key file
    (slot: a random unused one by default, remembered beside the key file). A bad
    line is reported with its line number and skipped (exit 1 at the end);
    --strict checks every line first and publishes nothing if one is bad.

    \b
    Example:
      echo '{"key_file":"alice.key","ring_id":"ring-poetry-7","submission_id":"sub-42",
             "vote_type":"approve"}' > votes.jsonl
      ringtally produce votes.jsonl --wait 60
    """
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    from connectors.sdk.vote import VoteClient
    from models import Ballot

    settings = kafka_settings()
    lines = _lines(file)
    signer = _Signer(settings, Path(file).resolve().parent if file != "-" else Path.cwd())
    client = VoteClient(settings, None, timeout=settings.kafka_timeout)
    bad = 0
    published: list[Any] = []

    def report(number: int, problem: str) -> None:
        err(f"{file}:{number}: {problem}; skipped")

    try:
        if strict:
            votes = []
            for number, line in lines:
                try:
                    votes.append(_parse(line, signer))
                except _BadLine as exc:
                    signer.give_back()
                    raise UsageProblem(f"{file}:{number}: {exc}; nothing was published") from None
            todo: list[tuple[int, Any]] = list(enumerate(votes, 1))
        else:
            todo = list(lines)
        console = Console(stderr=True)
        with Progress(
            "[progress.description]{task.description}",
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
            transient=True,
            disable=quiet or not console.is_terminal,
        ) as bar:
            task = bar.add_task("publishing votes", total=len(todo))
            for number, item in todo:
                if isinstance(item, str):
                    try:
                        item = _parse(item, signer)
                    except _BadLine as exc:
                        report(number, str(exc))
                        bad += 1
                        bar.advance(task)
                        continue
                published.append(client.publish(item, flush=False, track=wait is not None))
                bar.advance(task)
            client.flush()
        summary = f"published {len(published)} vote(s) to {settings.topic('votes')}"
        if bad:
            summary += f"; skipped {bad} bad line(s)"
        click.echo(summary)
        missing = _summarise(client, published, wait, Ballot) if wait and published else 0
    finally:
        client.close()
    ctx.exit(1 if bad else 3 if missing else 0)


def _summarise(client: Any, vote_ids: list[Any], wait: float, ballot_type: type) -> int:
    """Wait for every outcome, print one summary line; returns how many had none in time."""
    import time

    from connectors.sdk.errors import OutcomeTimeout

    deadline = time.monotonic() + wait
    reasons: Counter[str] = Counter()
    ballots = missing = 0
    for vote_id in vote_ids:
        try:
            outcome = client.wait_outcome(vote_id, timeout=max(0.1, deadline - time.monotonic()))
        except OutcomeTimeout:
            missing += 1
            continue
        except KeyError:  # the same vote twice in the file: one outcome was returned already
            continue
        if isinstance(outcome, ballot_type):
            ballots += 1
        else:
            reasons[outcome.reason.value] += 1
    parts = [f"{ballots} ballot(s)", f"{sum(reasons.values())} rejection(s)"]
    if reasons:
        parts[-1] += " (" + ", ".join(f"{r}: {n}" for r, n in sorted(reasons.items())) + ")"
    if missing:
        parts.append(f"{missing} without an outcome after {wait:g}s")
    click.echo("outcomes: " + ", ".join(parts))
    return missing
