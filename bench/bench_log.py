"""What the submission log costs the tally stage, in process (CPU time, no Kafka).

The pipeline benchmark's votes/s on this shared machine moves by ±30% from
run to run under other people's load, more than the log costs; CPU time of
the tally stage's own code does not. This runs :class:`agents.tally.TallyKeeper`
over accepted votes (every vote of a batch on another submission: the most
heads per vote) with in-memory state and outputs that only serialise: with
the log off (``bench/nolog_worker.py``'s :func:`log_off`, as bench_pipeline's
log-off worker), with the log but no signed heads, and with the whole log,
alternating; and the log's Merkle work alone (a leaf hash, an append and a
root per vote). Producing the heads records to Kafka is not in these figures.

    python bench/bench_log.py [--votes 6000] [--submissions 300] [--batch 64] [--rounds 3]
                              [--results PATH]

Prints µs per vote (medians) and writes bench/results/log.json.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import statistics
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import ringcrypto  # noqa: E402
from agents.loghead import LogSigner  # noqa: E402
from agents.records import SourceRecord  # noqa: E402
from agents.tally import TallyKeeper  # noqa: E402
from bench.nolog_worker import log_off  # noqa: E402
from models.internal import AcceptedVote  # noqa: E402
from models.log import LeafKind, log_leaf_hash  # noqa: E402
from models.merkle import Frontier  # noqa: E402
from streams.settings import Settings  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "log.json"


class _Outputs:
    """Serialises what the tally stage emits, as the producer would, and drops it."""

    async def ballot(self, b):  # noqa: ANN001, ANN201
        b.to_json()

    async def tally(self, t):  # noqa: ANN001, ANN201
        t.to_json()

    async def audit(self, e):  # noqa: ANN001, ANN201
        e.to_json()

    async def head(self, h):  # noqa: ANN001, ANN201
        h.to_json()

    async def rejection(self, key, r):  # noqa: ANN001, ANN201
        r.to_json()


async def _no_read(partition: int, offset: int) -> bytes | None:
    return None


def _records(votes: int, submissions: int) -> list[SourceRecord]:
    out = []
    for i in range(votes):
        h = hashlib.sha256(str(i).encode()).hexdigest()
        token = hashlib.sha256(f"tag {i}".encode()).hexdigest()
        vote = AcceptedVote.model_validate(
            {
                "vote_id": str(uuid.uuid5(uuid.NAMESPACE_OID, token)),
                "submission_id": f"s{i % submissions}",
                "key_image": h,
                "vote_type": "approve",
                "ring_id": "r1",
                "ring_version": 1,
                "epoch": 1,
                "token_id": token,
                "vote_digest": hashlib.sha256(token.encode()).hexdigest(),
                "source_partition": 0,
                "source_offset": i,
                "source_timestamp_ms": 1_000 + i,
            },
            strict=False,
        )
        out.append(SourceRecord("accepted", 0, i, vote.submission_id.encode(), vote.to_json()))
    return out


def _tally_us(records: list[SourceRecord], batch: int, signer: LogSigner | None) -> float:
    keeper = TallyKeeper(
        settings=Settings(topic_prefix="bench-log", partitions=12),
        state={},
        outputs=_Outputs(),
        read_vote=_no_read,
        sign_heads=None if signer is None else signer.sign,
    )
    start = time.process_time()
    for i in range(0, len(records), batch):
        asyncio.run(keeper.process(records[i : i + batch]))
    return (time.process_time() - start) / len(records) * 1e6


def _merkle_us(votes: int) -> float:
    frontier = Frontier()
    digests = [hashlib.sha256(str(i).encode()).digest() for i in range(votes)]
    start = time.process_time()
    for d in digests:
        frontier.append(log_leaf_hash(LeafKind.BALLOT, d))
        frontier.root()
    return (time.process_time() - start) / votes * 1e6


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--votes", type=int, default=6000)
    parser.add_argument("--submissions", type=int, default=300)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--results", type=Path, default=RESULTS, help="where to write the JSON")
    args = parser.parse_args()
    records = _records(args.votes, args.submissions)
    signer = LogSigner(ringcrypto.SecretKey.generate())
    runs: dict[str, list[float]] = {
        "log_off": [],
        "without_heads": [],
        "with_heads": [],
        "merkle_only": [],
    }
    for _ in range(args.rounds):
        with log_off():
            runs["log_off"].append(_tally_us(records, args.batch, None))
        runs["without_heads"].append(_tally_us(records, args.batch, None))
        runs["with_heads"].append(_tally_us(records, args.batch, signer))
        runs["merkle_only"].append(_merkle_us(args.votes))
    medians = {k: round(statistics.median(v), 1) for k, v in runs.items()}
    for k, v in medians.items():
        print(f"{k:>14}: {v:6.1f} µs/vote  (runs: {', '.join(f'{x:.1f}' for x in runs[k])})")
    added = round(medians["with_heads"] - medians["log_off"], 1)
    print(f"the log adds {added} µs/vote to the tally stage's own code")
    args.results.parent.mkdir(exist_ok=True)
    args.results.write_text(
        json.dumps(
            {
                "command": " ".join(sys.argv),
                "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
                "medians": medians,
                "log_adds_us_per_vote": added,
                "runs": runs,
            },
            indent=2,
        )
        + "\n"
    )
    print(f"wrote {args.results}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
