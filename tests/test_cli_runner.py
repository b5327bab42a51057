"""Running ``ringtally`` as a user does: a subprocess with the test's RINGTALLY_* environment.

Helpers for test_cli*.py; no tests here.
"""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from tests.fixtures.sink_records import settings_env

ROOT = Path(__file__).resolve().parents[1]
_SCRIPT = Path(sys.executable).with_name("ringtally")
RINGTALLY = [str(_SCRIPT)] if _SCRIPT.exists() else [sys.executable, "-m", "connectors.cli"]


@dataclass
class Result:
    args: tuple[str, ...]
    code: int
    out: str
    err: str

    def __str__(self) -> str:
        return (
            f"ringtally {' '.join(self.args)} -> {self.code}\n"
            f"stdout:\n{self.out}\nstderr:\n{self.err}"
        )


def ringtally(
    settings, *args: str, cwd: Path | None = None, env: dict | None = None, timeout: float = 180
) -> Result:
    environment = settings_env(settings) if settings is not None else {}
    environment.update(env or {})
    proc = subprocess.run(
        [*RINGTALLY, *args],
        cwd=cwd or ROOT,
        env=environment or None,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    return Result(tuple(args), proc.returncode, proc.stdout, proc.stderr)
