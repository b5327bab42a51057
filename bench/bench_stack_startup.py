"""How long ``stack up`` takes until Kafka, PostgreSQL and Redis are all healthy.

Runs the real CLI (``python -m connectors.cli stack up``) against a throw-away
stack (own data dir, own free ports), so the project's shared stack is not
touched, and writes ``bench/results/stack_startup.json``:

* ``cold_empty_maven_repo`` — nothing anywhere: Maven downloads its plugin and
  every Kafka jar from Maven Central into an empty local repository, then
  initdb, Kafka storage format, first start (what a brand-new machine sees);
* ``cold`` — no jar cache and no data dirs, but Maven's ~/.m2 already holds
  the artifacts (what a second checkout on the same machine sees);
* ``warm`` — jars cached, data formatted, processes stopped (every later
  ``make test``); median of several runs; ``warm_without_cds`` the same
  without the broker's class-data-sharing archive;
* ``already_running`` — ``up`` when everything is up (an idempotent check);
* ``down`` — stopping all three (the first stop also dumps the CDS archive).

Usage: ``python bench/bench_stack_startup.py [--warm-runs 3] [--skip-empty-repo]``
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from connectors.stack.kafka.jars import kafka_version  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "stack_startup.json"


def free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def run_cli(env: dict[str, str], *args: str) -> float:
    """Seconds for one CLI call; fails loudly (its output shown) if it fails."""
    t0 = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "connectors.cli", "stack", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=1800,
    )
    took = time.perf_counter() - t0
    if proc.returncode != 0:
        sys.stderr.write(proc.stdout + proc.stderr)
        raise SystemExit(f"stack {' '.join(args)} failed (exit {proc.returncode})")
    return took


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--warm-runs", type=int, default=3)
    ap.add_argument(
        "--skip-empty-repo",
        action="store_true",
        help="skip the run with an empty Maven repository (slow, needs the network)",
    )
    opts = ap.parse_args()

    work = Path(tempfile.mkdtemp(prefix="rt-bench-"))
    work.chmod(0o755)  # as root, PostgreSQL runs as 'postgres', who must enter it
    kafka, controller, pg, redis = free_ports(4)
    base_env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "RINGTALLY_KAFKA_BOOTSTRAP": f"127.0.0.1:{kafka}",
        "RINGTALLY_KAFKA_CONTROLLER_PORT": str(controller),
        "RINGTALLY_POSTGRES_DSN": f"postgresql://ringtally@127.0.0.1:{pg}/ringtally",
        "RINGTALLY_REDIS_URL": f"redis://127.0.0.1:{redis}/0",
    }
    results: dict[str, object] = {}
    envs: list[dict[str, str]] = []
    try:
        if not opts.skip_empty_repo:
            env = {
                **base_env,
                "RINGTALLY_DATA_DIR": str(work / "empty-repo"),
                "MAVEN_OPTS": f"-Dmaven.repo.local={work / 'm2'} " + base_env.get("MAVEN_OPTS", ""),
            }
            envs.append(env)
            results["cold_empty_maven_repo"] = round(run_cli(env, "up"), 2)
            run_cli(env, "down", "--purge")

        env = {**base_env, "RINGTALLY_DATA_DIR": str(work / "data")}
        envs.append(env)
        results["cold"] = round(run_cli(env, "up"), 2)
        results["already_running"] = round(run_cli(env, "up"), 2)
        # the first clean stop also dumps the broker's class-data-sharing archive
        results["first_down_with_cds_dump"] = round(run_cli(env, "down"), 2)
        warm, downs = [], []
        for _ in range(opts.warm_runs):
            warm.append(round(run_cli(env, "up"), 2))
            downs.append(round(run_cli(env, "down"), 2))
        results["warm_runs"] = warm
        results["warm"] = round(statistics.median(warm), 2)
        results["down"] = round(statistics.median(downs), 2)
        no_cds = {**env, "RINGTALLY_STACK_KAFKA_CDS": "0"}
        plain = []
        for _ in range(opts.warm_runs):
            plain.append(round(run_cli(no_cds, "up"), 2))
            run_cli(no_cds, "down")
        results["warm_without_cds_runs"] = plain
        results["warm_without_cds"] = round(statistics.median(plain), 2)
        libs = work / "data" / "cache" / f"kafka-{kafka_version()}" / "libs"
        jars = list(libs.iterdir())
        results["jar_count"] = len(jars)
        results["jar_dir_mib"] = round(sum(j.stat().st_size for j in jars) / (1 << 20), 1)
    finally:
        for env in envs:  # never leave a server behind, whatever failed
            subprocess.run(
                [sys.executable, "-m", "connectors.cli", "stack", "down"],
                cwd=ROOT,
                env=env,
                capture_output=True,
                timeout=300,
            )
        shutil.rmtree(work, ignore_errors=True)

    record = {
        "benchmark": "stack up until kafka, postgres and redis are healthy"
        " (seconds, CLI wall time)",
        "kafka_version": kafka_version(),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "load_avg_1m_at_end": round(os.getloadavg()[0], 2),
        },
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        **results,
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(record, indent=2) + "\n")
    for key in (
        "cold_empty_maven_repo",
        "cold",
        "warm",
        "warm_without_cds",
        "already_running",
        "first_down_with_cds_dump",
        "down",
    ):
        if key in results:
            print(f"{key:<22} {results[key]:>7.2f} s")
    print(f"jar dir: {results['jar_count']} jars, {results['jar_dir_mib']} MiB -> {RESULTS}")


if __name__ == "__main__":
    main()
