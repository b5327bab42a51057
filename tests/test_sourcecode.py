"""The linters as a test (asyncpg's tests/test__sourcecode.py does the same).

ruff's rules are configured in pyproject.toml; this fails with ruff's own
report when any file breaks them, so style drift shows up in `make test`.
"""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _ruff() -> str:
    found = shutil.which("ruff", path=str(Path(sys.executable).parent)) or shutil.which("ruff")
    if found is None:
        pytest.fail(
            "ruff is not installed: it is part of the [test] extra (pip install -e '.[test]')"
        )
    return found


def test_ruff_check_passes():
    result = subprocess.run(
        [_ruff(), "check", "--output-format", "concise", "."],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
