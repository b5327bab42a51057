"""The chaos harness, short: ~3,000 votes through workers, sink and Postgres under faults.

Runs ``bench/chaos.py --short`` in-process: a private Kafka and PostgreSQL (own
ports and data dir, so the broker and database restarts disturb no other test),
3 worker SIGKILLs, a second worker joining and leaving, a broker restart, a
Postgres restart and a sink SIGKILL mid-transaction; then every invariant is
checked against the workload's ground truth (see docs/reliability.md). The full
version is ``python bench/chaos.py --votes 50000 --seed 1``.
"""

from __future__ import annotations

import json

import pytest

from bench.chaos import ChaosConfig, run_chaos

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture
def local_binaries(stack):  # noqa: ANN001, ANN201
    if stack.kind != "local":
        pytest.skip("needs the local stack's binaries (a private Kafka and Postgres are started)")


@pytest.mark.timeout(1500)
def test_short_chaos_run_keeps_every_invariant(local_binaries, tmp_path):
    result = run_chaos(ChaosConfig.short_run(seed=1), results=tmp_path / "chaos-short.json")
    # No retry: F7 and F8 had one (a second seed on F7's symptom) until their cause was
    # found and fixed in session 3 (agents/order.py, docs/reliability.md).
    failed = [c for c in result.checks if not c.ok]
    assert not failed, json.dumps([c.__dict__ for c in failed], indent=1, default=str)
    kinds = [f.kind for f in result.faults if f.fired_at is not None]
    assert kinds.count("worker_kill") == 3 and "rebalance" in kinds and "sink_kill" in kinds, kinds
    assert all(f.error is None for f in result.faults), [f.error for f in result.faults]
