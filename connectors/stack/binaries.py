"""Finding the programs the stack runs, with an install hint when one is missing.

Each can be pinned by an environment variable (``RINGTALLY_STACK_JAVA``,
``..._MVN``, ``..._REDIS_SERVER``, ``..._PG_BINDIR``), which is also how the
tests simulate a machine without one.
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import subprocess
from pathlib import Path

from .errors import StackError

__all__ = [
    "find_java",
    "find_mvn",
    "find_pg_bindir",
    "find_redis_server",
    "java_major",
    "java_version",
]

_MAKE_DEPS = "(make deps does this)"


def _resolve(piece: str, name: str, env_var: str, install: str, extra: list[Path]) -> Path:
    pinned = os.environ.get(env_var)
    if pinned:
        path = Path(pinned)
        if path.is_file() and os.access(path, os.X_OK):
            return path
        raise StackError(
            piece,
            f"{env_var}={pinned} is not an executable file",
            fix=f"point it at {name} or unset it",
        )
    found = shutil.which(name)
    if found:
        return Path(found)
    for candidate in extra:
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    raise StackError(piece, f"{name} not found", fix=f"install it with '{install}' {_MAKE_DEPS}")


def find_java() -> Path:
    """The ``java`` to run Kafka with (RINGTALLY_STACK_JAVA, PATH, then JAVA_HOME)."""
    extra = []
    if os.environ.get("JAVA_HOME"):
        extra.append(Path(os.environ["JAVA_HOME"]) / "bin" / "java")
    return _resolve(
        "kafka", "java", "RINGTALLY_STACK_JAVA", "apt-get install openjdk-17-jre-headless", extra
    )


@functools.lru_cache(maxsize=8)
def java_version(java: Path) -> str:
    """What ``java -version`` prints (its build identifies CDS archives too)."""
    try:
        return subprocess.run(
            [str(java), "-version"], capture_output=True, text=True, timeout=30
        ).stderr.strip()
    except (OSError, subprocess.TimeoutExpired):
        return ""


def java_major(java: Path) -> int | None:
    """Major version of a ``java`` binary (None if it would not say)."""
    m = re.search(r'version "(\d+)(?:\.(\d+))?', java_version(java))
    if not m:
        return None
    major = int(m.group(1))
    return int(m.group(2) or 0) if major == 1 else major


def find_mvn() -> Path:
    """``mvn``, needed only while the Kafka jars are not cached yet."""
    return _resolve("kafka", "mvn", "RINGTALLY_STACK_MVN", "apt-get install maven", [])


def find_redis_server() -> Path:
    return _resolve(
        "redis", "redis-server", "RINGTALLY_STACK_REDIS_SERVER", "apt-get install redis-server", []
    )


def find_pg_bindir() -> Path:
    """A PostgreSQL server bin dir holding ``initdb`` and ``postgres``.

    Debian keeps them off PATH in /usr/lib/postgresql/<major>/bin; ``pg_config
    --bindir`` names it when it matches the installed server, else the newest
    major there wins.
    """
    pinned = os.environ.get("RINGTALLY_STACK_PG_BINDIR")
    candidates: list[Path] = []
    if pinned:
        candidates.append(Path(pinned))
    else:
        pg_config = shutil.which("pg_config")
        if pg_config:
            try:
                out = subprocess.run(
                    [pg_config, "--bindir"], capture_output=True, text=True, timeout=10
                ).stdout.strip()
                if out:
                    candidates.append(Path(out))
            except (OSError, subprocess.TimeoutExpired):
                pass
        root = Path("/usr/lib/postgresql")
        if root.is_dir():
            majors = sorted(
                (p for p in root.iterdir() if p.name.isdigit()),
                key=lambda p: int(p.name),
                reverse=True,
            )
            candidates += [p / "bin" for p in majors]
        on_path = shutil.which("initdb")
        if on_path:
            candidates.append(Path(on_path).parent)
    for d in candidates:
        if all(os.access(d / exe, os.X_OK) for exe in ("initdb", "postgres")):
            return d
    if pinned:
        raise StackError(
            "postgres",
            f"RINGTALLY_STACK_PG_BINDIR={pinned} holds no initdb and postgres",
            fix="point it at a PostgreSQL bin dir or unset it",
        )
    raise StackError(
        "postgres",
        "PostgreSQL server binaries (initdb, postgres) not found",
        fix=f"install them with 'apt-get install postgresql-15' {_MAKE_DEPS}",
    )
