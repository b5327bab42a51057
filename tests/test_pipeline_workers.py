"""Two workers in one group: they split the partitions, and when one is killed
(SIGKILL, mid-stream) the other takes over with nothing lost and nothing counted twice."""

from __future__ import annotations

import json
import time
import urllib.request
from collections import Counter

import pytest

from connectors.sdk import ensure_topics
from connectors.stack.harness import WorkerProcess, free_port
from tests.fixtures.pipeline import Outputs, pipeline_settings
from tests.test_pipeline import World

pytestmark = pytest.mark.integration


def _health(worker: WorkerProcess) -> dict:
    with urllib.request.urlopen(
        f"http://127.0.0.1:{worker.settings.web_port}/health", timeout=5
    ) as r:
        return json.load(r)


def _wait_split(
    workers: list[WorkerProcess], partitions: int, timeout: float = 60.0
) -> list[list[int]]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            owned = [_health(w)["votes_partitions"] for w in workers]
        except OSError:
            owned = []
        if owned and all(owned) and sorted(p for o in owned for p in o) == list(range(partitions)):
            return owned
        time.sleep(0.5)
    raise AssertionError(f"partitions never split between the workers: {owned}")


def test_two_workers_split_partitions_and_survive_a_kill(stack, tmp_path):
    settings = pipeline_settings(stack, partitions=6)
    ensure_topics(settings)
    first = WorkerProcess(settings, tmp_path / "a.log").start()
    second = WorkerProcess(
        settings.model_copy(update={"web_port": free_port()}), tmp_path / "b.log"
    ).start()
    outputs = Outputs(settings)
    try:
        owned = _wait_split([first, second], 6)
        assert set(owned[0]).isdisjoint(owned[1])

        world = World(settings, members=8, k=12)
        submissions = [world.submission() for _ in range(12)]
        # every member on every submission once: 96 votes, one slot each
        unique = [
            world.vote(m, sub, vote_type=("approve", "reject", "flag")[(m + n) % 3])
            for n, sub in enumerate(submissions)
            for m in range(8)
        ]
        assert len(unique) == 96
        world.publish(*unique[:48])
        outputs.wait_for(lambda o: len({b["vote_id"] for b in o.ballots}) >= 48, what="first half")

        world.publish(*unique[48:])
        first.kill()  # mid-stream: the second half is in flight
        outputs.wait_for(
            lambda o: len({b["vote_id"] for b in o.ballots}) >= 96, timeout=120, what="all ballots"
        )
        outputs.settle()

        assert _health(second)["votes_partitions"] == list(range(6))
        ballots_by_vote = {b["vote_id"]: json.dumps(b, sort_keys=True) for b in outputs.ballots}
        assert set(ballots_by_vote) == {str(v.vote_id) for v in unique}
        # re-emitted ballots after the crash are byte-identical to the first emission
        assert all(
            len({json.dumps(b, sort_keys=True) for b in outputs.ballots if b["vote_id"] == vid})
            == 1
            for vid in ballots_by_vote
        )
        assert outputs.rejections == []
        expected = Counter(v.submission_id for v in unique)
        for submission_id, count in expected.items():
            assert outputs.latest_tally(submission_id)["version"] == count
            assert outputs.latest_tally(submission_id)["total"] == count
    finally:
        outputs.close()
        first.kill()
        second.stop()


def test_health_is_not_ok_before_the_worker_owns_its_partitions(stack, tmp_path):
    """A worker said ok before it had joined its group (nothing rebalancing yet, nothing
    recovering): ``make demo`` and the tests then published to a worker that owned no
    partition. Polled from the process start, the first ok must already show them."""
    settings = pipeline_settings(stack, partitions=2)
    ensure_topics(settings)
    worker = WorkerProcess(settings, tmp_path / "w.log").launch()
    try:
        deadline = time.monotonic() + 90
        body = None
        while time.monotonic() < deadline:
            assert worker.proc is not None and worker.proc.poll() is None, worker.tail()
            body = worker.health()
            if body and body.get("status") == "ok":
                break
            time.sleep(0.05)
        assert body and body["status"] == "ok", body
        assert body["votes_partitions"] == [0, 1], body
    finally:
        worker.stop()
