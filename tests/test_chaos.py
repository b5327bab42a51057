"""The chaos harness, short: ~3,000 votes through workers, sink and Postgres under faults.

Runs ``bench/chaos.py --short`` in-process: a private Kafka and PostgreSQL (own
ports and data dir, so the broker and database restarts disturb no other test),
3 worker SIGKILLs, a worker SIGSTOPped past the session timeout while a second
one takes over, a worker restarted on an empty data dir, a second worker joining
and leaving, a broker restart, a Postgres restart and a sink SIGKILL
mid-transaction, plus a ring rotation and a ring deactivation each published
during a fault; then every invariant is checked against the workload's ground
truth (see docs/reliability.md). The full version is
``python bench/chaos.py --votes 50000 --seed 1``.

The seed rotates (a new one every run, from the clock) so that runs explore
different schedules; it is printed and written into every failure message, and
``RINGTALLY_CHAOS_SEED=N`` pins it to reproduce a failure.
"""

from __future__ import annotations

import json
import os
import time

import pytest

from bench.chaos import ChaosConfig, run_chaos

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture
def local_binaries():  # noqa: ANN201
    """Java, PostgreSQL and the Kafka jars: the harness starts its own private Kafka and
    PostgreSQL on free ports, so it needs the binaries, not the session's stack."""
    from bench.chaos import ROOT
    from connectors.stack import StackError
    from connectors.stack.binaries import find_java, find_pg_bindir
    from connectors.stack.kafka import libs_ready

    try:
        find_java()
        find_pg_bindir()
    except StackError as exc:
        pytest.skip(f"needs the local stack's binaries: {exc}")
    if not libs_ready(ROOT / ".ringtally" / "cache"):
        pytest.skip("needs the Kafka jars in .ringtally/cache (make deps)")


def chaos_seed() -> int:
    """``RINGTALLY_CHAOS_SEED`` when set, else a new seed from the clock (printed)."""
    pinned = os.environ.get("RINGTALLY_CHAOS_SEED", "").strip()
    return int(pinned) if pinned else int(time.time()) % 100_000


@pytest.mark.timeout(1500)
def test_short_chaos_run_keeps_every_invariant(local_binaries, tmp_path):
    seed = chaos_seed()
    print(f"chaos seed {seed} (reproduce: RINGTALLY_CHAOS_SEED={seed})", flush=True)
    again = f"seed {seed}: reproduce with RINGTALLY_CHAOS_SEED={seed}"
    result = run_chaos(ChaosConfig.short_run(seed=seed), results=tmp_path / "chaos-short.json")
    # No retry: F7 and F8 had one (a second seed on F7's symptom) until their cause was
    # found and fixed in session 3 (agents/order.py, docs/reliability.md).
    failed = [c for c in result.checks if not c.ok]
    assert not failed, (
        again + "\n" + json.dumps([c.__dict__ for c in failed], indent=1, default=str)
    )
    kinds = [f.kind for f in result.faults if f.fired_at is not None]
    for kind in ("rebalance", "sink_kill", "worker_pause", "worker_wipe"):
        assert kind in kinds, (again, kinds)
    assert kinds.count("worker_kill") == 3, (again, kinds)
    changes = [k for k in kinds if "_during_" in k]
    assert len(changes) == len(result.workload["control_changes"]) == 2, (again, kinds)
    assert all(f.error is None for f in result.faults), (again, [f.error for f in result.faults])
