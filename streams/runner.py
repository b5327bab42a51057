"""Start, watch and kill ringtally processes: what tests, benchmarks and the demo share.

A worker started here is exactly what an operator runs (``ringtally worker``)
with the given settings passed as ``RINGTALLY_*`` variables, so a SIGKILL
from :meth:`WorkerProcess.kill` is a real crash.
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
from dataclasses import dataclass
from pathlib import Path

from .settings import Settings

__all__ = ["WorkerProcess", "free_port"]

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class WorkerProcess:
    settings: Settings
    log_path: Path
    proc: subprocess.Popen | None = None
    command: tuple[str, ...] = ("worker", "--loglevel", "info")
    module: str = "connectors.cli"

    def start(self, *, ready_timeout: float = 90.0) -> WorkerProcess:
        env = {**os.environ, **self.settings.to_env(), "PYTHONUNBUFFERED": "1"}
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", self.module, *self.command],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.wait_ready(ready_timeout)
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
            time.sleep(0.5)
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
            return json.load(exc)
        except (OSError, ValueError):
            return None

    def tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

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
        time.sleep(0.5)
    raise RuntimeError(f"{len(workers)} worker(s) did not settle on {partitions} partitions")
