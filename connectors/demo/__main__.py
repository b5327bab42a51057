"""``python -m connectors.demo [options]``: what ``make demo`` runs (exit 1 on a MISMATCH)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from rich.console import Console

from streams.errors import RingtallyError

from .run import DemoConfig, render, run_demo


def main(argv: list[str] | None = None) -> int:
    defaults = DemoConfig()
    parser = argparse.ArgumentParser(
        prog="python -m connectors.demo",
        description="Run a seeded review round through a worker and the sink and check every "
        "number "
        "against the simulation's ground truth.",
    )
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--genres", type=int, default=defaults.genres)
    parser.add_argument("--ring-size", type=int, default=defaults.ring_size)
    parser.add_argument("--submissions-per-genre", type=int, default=defaults.submissions_per_genre)
    parser.add_argument("--votes-per-reviewer", type=int, default=defaults.votes_per_reviewer)
    parser.add_argument(
        "--rate",
        type=float,
        default=defaults.rate,
        help="votes/s while publishing; 0 = as fast as possible (default %(default)s)",
    )
    parser.add_argument("--partitions", type=int, default=defaults.partitions)
    parser.add_argument("--store", choices=["rocksdb", "memory"], default=defaults.table_store)
    parser.add_argument(
        "--chart",
        type=Path,
        default=None,
        help="PNG path (default <data_dir>/demo/<prefix>.png, copied to latest.png)",
    )
    parser.add_argument("--no-chart", action="store_true")
    parser.add_argument(
        "--keep-old",
        action="store_true",
        help="keep earlier demo runs' topics and schemas (default: drop them)",
    )
    args = parser.parse_args(argv)
    config = DemoConfig(
        seed=args.seed,
        genres=args.genres,
        ring_size=args.ring_size,
        submissions_per_genre=args.submissions_per_genre,
        votes_per_reviewer=args.votes_per_reviewer,
        rate=args.rate,
        partitions=args.partitions,
        table_store=args.store,
        chart=args.chart,
        draw_chart=not args.no_chart,
        clean_old=not args.keep_old,
    )
    console = Console()
    try:
        result = run_demo(config, console)
    except RingtallyError as exc:
        console.print(f"[red]ringtally demo: error: {exc.one_line()}")
        return exc.exit_code
    except (TimeoutError, RuntimeError) as exc:
        console.print(f"[red]ringtally demo: {exc}")
        return 1
    render(result, console)
    return 0 if result.ok else 1


if __name__ == "__main__":
    sys.exit(main())
