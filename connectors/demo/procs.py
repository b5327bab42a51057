"""The sink as a subprocess, exactly as an operator runs it (``ringtally sink``).

Workers are started with :class:`streams.runner.WorkerProcess`; this is its
counterpart for the sink, without the ``/health`` wait (the sink has no web
page; it starts consuming from its Postgres offsets as soon as it is up).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from streams.runner import ROOT
from streams.settings import Settings

__all__ = ["SinkProcess"]


@dataclass
class SinkProcess:
    """``python -m connectors.cli sink …`` with ``settings`` as RINGTALLY_* variables."""

    settings: Settings
    log_path: Path
    args: tuple[str, ...] = ("--no-readmodel",)
    proc: subprocess.Popen | None = None
    extra_env: dict[str, str] = field(default_factory=dict)

    def start(self) -> SinkProcess:
        env = {**os.environ, **self.settings.to_env(), **self.extra_env, "PYTHONUNBUFFERED": "1"}
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "connectors.cli", "sink", *self.args],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        return self

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

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
