"""Start, watch and kill ringtally's own processes: shared by tests, bench, demo and replay.

A worker or sink started here is exactly what an operator runs
(``ringtally worker``, ``ringtally sink``) with the given settings passed as
``RINGTALLY_*`` variables, so a SIGKILL from :meth:`WorkerProcess.kill` is a
real crash. The local services (Kafka, Postgres, Redis) are
:class:`~connectors.stack.LocalStack`'s.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from streams.settings import Settings

from .process import tail_lines

__all__ = [
    "HEALTH_POLL_S",
    "ROOT",
    "SinkProcess",
    "WorkerProcess",
    "free_port",
    "wait_group_settled",
]

#: The repository root: the child processes' working directory.
ROOT = Path(__file__).resolve().parents[2]
#: Seconds between two /health polls: a local GET is cheap, and every test and fault
#: that waits for a worker waits this long (half of it on average) past its readiness.
HEALTH_POLL_S = 0.1


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _popen(argv: list[str], env: dict[str, str], log_path: Path) -> subprocess.Popen:
    """``python -m <argv>`` in its own session, stdout and stderr appended to ``log_path``."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    log = log_path.open("ab")
    return subprocess.Popen(
        [sys.executable, "-m", *argv],
        cwd=ROOT,
        env={**os.environ, **env, "PYTHONUNBUFFERED": "1"},
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


@dataclass
class WorkerProcess:
    settings: Settings
    log_path: Path
    proc: subprocess.Popen | None = None
    command: tuple[str, ...] = ("worker", "--loglevel", "info")
    module: str = "connectors.cli"

    def start(self, *, ready_timeout: float = 90.0) -> WorkerProcess:
        self.launch()
        self.wait_ready(ready_timeout)
        return self

    def launch(self) -> WorkerProcess:
        """Start the process without waiting for it to be ready."""
        self.proc = _popen([self.module, *self.command], self.settings.to_env(), self.log_path)
        return self

    def wait_ready(self, timeout: float) -> None:
        """Poll the worker's /health until it says ok (raises with the log's tail otherwise)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"worker exited with {self.proc.returncode}; "
                    f"see {self.log_path}:\n{self.tail()}"
                )
            body = self.health()
            if body and body.get("status") == "ok":  # 200 exactly then (503 otherwise)
                return
            time.sleep(HEALTH_POLL_S)
        raise RuntimeError(
            f"worker not ready after {timeout}s; see {self.log_path}:\n{self.tail()}"
        )

    def health(self) -> dict | None:
        """The worker's /health body, or None if it does not answer."""
        url = f"http://127.0.0.1:{self.settings.web_port}/health"
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                return json.load(response)
        except urllib.error.HTTPError as exc:  # 503 while starting: the body still says why
            try:
                return json.load(exc)
            except ValueError:  # an error page, not the health body: not ready either
                return None
        except (OSError, ValueError):
            return None

    def tail(self, lines: int = 30) -> str:
        return "\n".join(tail_lines(self.log_path, lines))

    def kill(self) -> None:
        """SIGKILL: a crash at whatever point the worker is in."""
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(30)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.kill()

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


def wait_group_settled(workers: list[WorkerProcess], partitions: int, timeout: float) -> None:
    """Wait until these workers, all ready, own each votes partition exactly once
    (each some: so no more workers than partitions).

    A worker says ready after its own assignment; when a second one joins, the
    group rebalances again. Load sent before that settles meets table recovery
    and seeks back (docs/reliability.md), which is not what a benchmark measures.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        bodies = [w.health() for w in workers]
        # Each worker owning some partition: a worker that has not joined yet says
        # ok with none while the others still own everything.
        if all(b and b.get("status") == "ok" and b["votes_partitions"] for b in bodies):
            owned = sorted(p for b in bodies for p in b["votes_partitions"])
            if owned == list(range(partitions)):
                return
        time.sleep(HEALTH_POLL_S)
    raise RuntimeError(f"{len(workers)} worker(s) did not settle on {partitions} partitions")


@dataclass
class SinkProcess:
    """``ringtally sink …`` with ``settings`` as RINGTALLY_* variables.

    The worker's counterpart without the ``/health`` wait: the sink has no web
    page; it starts consuming from its Postgres offsets as soon as it is up.
    """

    settings: Settings
    log_path: Path
    args: tuple[str, ...] = ("--no-readmodel",)
    proc: subprocess.Popen | None = None
    extra_env: dict[str, str] = field(default_factory=dict)

    def start(self) -> SinkProcess:
        env = {**self.settings.to_env(), **self.extra_env}
        self.proc = _popen(["connectors.cli", "sink", *self.args], env, self.log_path)
        return self

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def tail(self, lines: int = 20) -> str:
        return "\n".join(tail_lines(self.log_path, lines))

    def stop(self, timeout: float = 30.0) -> int | None:
        """SIGTERM (the sink finishes its batch and exits), SIGKILL after ``timeout``."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(30)
        return self.proc.returncode
