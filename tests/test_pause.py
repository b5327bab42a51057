"""A worker paused past its session timeout stops before it writes again (issue 16, zombies)."""

from __future__ import annotations

import os
import signal
import threading
import time

import pytest

from streams.pause import EXIT_PAUSED, PauseWatchdog, pause_limit


def test_pause_limit_leaves_room_for_the_last_heartbeat():
    assert pause_limit(10.0, 3.0) == 6.0  # the defaults: evicted 10 s after a heartbeat
    assert pause_limit(1.0, 0.33) == 0.5  # never below half a second


def test_only_a_gap_over_the_limit_is_a_pause():
    now = [100.0]
    watchdog = PauseWatchdog(6.0, on_pause=lambda s: None, clock=lambda: now[0])
    for step in (0.2, 0.3, 5.9):
        now[0] += step
        assert watchdog.observe() is None
    now[0] += 6.5
    assert watchdog.observe() == pytest.approx(6.5)
    now[0] += 0.2
    assert watchdog.observe() is None  # measured from the last tick, not the start


def test_a_stopped_process_is_seen_by_the_thread_when_it_resumes():
    """The thread's own sleep, not the event loop, measures the pause: a SIGSTOP of this
    process is simulated by a clock that jumps while the thread waits."""
    offset = [0.0]
    seen: list[float] = []
    done = threading.Event()

    def on_pause(paused: float) -> None:
        seen.append(paused)
        done.set()

    watchdog = PauseWatchdog(
        1.0, on_pause=on_pause, tick=0.05, clock=lambda: time.monotonic() + offset[0]
    ).start()
    try:
        time.sleep(0.2)
        assert not seen
        offset[0] += 30.0  # thirty seconds pass while the process is stopped
        assert done.wait(5.0)
        assert seen[0] >= 30.0
    finally:
        watchdog.stop()


@pytest.mark.integration
def test_a_worker_stopped_past_its_session_timeout_exits_when_it_resumes(stack, tmp_path):
    from connectors.sdk import ensure_topics
    from connectors.stack.harness import WorkerProcess
    from tests.fixtures.pipeline import pipeline_settings

    # The broker's smallest session timeout (group.min.session.timeout.ms, 6 s): a worker
    # asking for less never joins its group (InvalidSessionTimeoutError), which this test
    # did not see while /health said ok before the worker had joined (session 9).
    settings = pipeline_settings(stack, session_timeout=6.0)  # pauses over 3 s count
    ensure_topics(settings)
    worker = WorkerProcess(settings, tmp_path / "worker.log").start()
    try:
        assert worker.health()["votes_partitions"], worker.tail()  # in its group
        os.killpg(worker.proc.pid, signal.SIGSTOP)
        time.sleep(7.0)  # the fault itself: stopped past the 6 s session timeout
        os.killpg(worker.proc.pid, signal.SIGCONT)
        assert worker.proc.wait(60) == EXIT_PAUSED, worker.tail()
        assert "paused for" in worker.tail(50) and "stopping before it writes" in worker.tail(50)
    finally:
        worker.kill()
