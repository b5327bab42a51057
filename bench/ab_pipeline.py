"""This tree's pipeline against another commit's, alternating, in one run.

Protocol v2 asks for at least 90% of v1's votes/s (issue 14). A ratio is only
meaningful within one run on this shared machine, so the two trees take
turns: ``bench_pipeline.py --workers W --repeats 1`` in the baseline tree,
then in this one, ``--rounds`` times; each round gives one ratio, and the
medians are reported.

    python bench/ab_pipeline.py [--baseline-rev a3c7850] [--baseline-dir ../ringtally-ab]
                                [--rounds 4] [--votes 10240] [--workers 1]

The baseline is a git worktree of ``--baseline-rev`` with a virtualenv of its
own (its own Rust core: the crypto differs), made on first use (a release
build: several minutes). Writes bench/results/pipeline-ab.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "pipeline-ab.json"
#: The last commit of protocol v1 (before the layout move and v2).
V1 = "a3c7850"


def _ensure_baseline(rev: str, where: Path) -> Path:
    """A worktree of ``rev`` at ``where`` with ``.venv`` holding its build; its python."""
    python = where / ".venv" / "bin" / "python"
    if python.exists():
        return python
    if not where.exists():
        print(f"ab: git worktree {where} at {rev}", flush=True)
        subprocess.run(
            ["git", "worktree", "add", "--detach", str(where), rev], cwd=ROOT, check=True
        )
    print(f"ab: building {rev}'s virtualenv (release Rust build, a few minutes)", flush=True)
    subprocess.run([sys.executable, "-m", "venv", str(where / ".venv")], check=True)
    pip = [str(python), "-m", "pip", "install", "-q"]
    subprocess.run([*pip, "--upgrade", "pip"], check=True)
    subprocess.run([*pip, "-c", "constraints.txt", "-e", ".[test]"], cwd=where, check=True)
    return python


def _run(python: Path, tree: Path, votes: int, workers: int) -> dict:
    """One bench_pipeline run in ``tree``; its ringtally and passthrough rows."""
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as out:
        path = Path(out.name)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["PYTHONPATH"] = str(tree)
    subprocess.run(
        [
            str(python),
            "bench/bench_pipeline.py",
            "--votes",
            str(votes),
            "--workers",
            str(workers),
            "--repeats",
            "1",
            "--results",
            str(path),
        ],
        cwd=tree,
        env=env,
        check=True,
        stdout=subprocess.DEVNULL,
    )
    data = json.loads(path.read_text())
    path.unlink()
    rows = {r["kind"]: r for r in data["runs"]}
    return {"ringtally": rows["ringtally"], "passthrough": rows["passthrough"]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline-rev", default=V1)
    parser.add_argument("--baseline-dir", type=Path, default=ROOT.parent / "ringtally-ab")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--votes", type=int, default=10240)
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args()
    if args.rounds < 1 or args.votes < 64 or args.workers < 1:
        parser.error("--rounds and --workers must be at least 1, --votes at least 64")
    baseline_python = _ensure_baseline(args.baseline_rev, args.baseline_dir.resolve())
    here = Path(sys.executable)
    rounds = []
    for i in range(args.rounds):
        base = _run(baseline_python, args.baseline_dir.resolve(), args.votes, args.workers)
        this = _run(here, ROOT, args.votes, args.workers)
        ratio = this["ringtally"]["votes_per_s"] / base["ringtally"]["votes_per_s"]
        rounds.append({"round": i, "baseline": base, "this": this, "ratio": round(ratio, 3)})
        print(
            f"round {i + 1}: baseline {base['ringtally']['votes_per_s']:.0f} votes/s, "
            f"this {this['ringtally']['votes_per_s']:.0f} votes/s, ratio {ratio:.3f}",
            flush=True,
        )
    summary = {
        "baseline_rev": args.baseline_rev,
        "this_rev": subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
        ).stdout.strip(),
        "workers": args.workers,
        "votes": args.votes,
        "baseline_votes_per_s_median": statistics.median(
            r["baseline"]["ringtally"]["votes_per_s"] for r in rounds
        ),
        "this_votes_per_s_median": statistics.median(
            r["this"]["ringtally"]["votes_per_s"] for r in rounds
        ),
        "ratio_median": statistics.median(r["ratio"] for r in rounds),
        "ratios": [r["ratio"] for r in rounds],
        "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "rounds": rounds,
    }
    RESULTS.write_text(json.dumps(summary, indent=2) + "\n")
    print(
        f"median: baseline {summary['baseline_votes_per_s_median']:.0f} votes/s, "
        f"this {summary['this_votes_per_s_median']:.0f} votes/s, "
        f"ratio {summary['ratio_median']:.3f} (per round: {summary['ratios']}); "
        f"written to {RESULTS}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
