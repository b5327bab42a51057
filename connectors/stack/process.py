"""Processes, PID files and ports, Linux-style (through /proc).

The stack must stop exactly what it started and nothing else, even after a
reboot or a crash left PID files behind and the kernel handed the same PIDs to
other programs. So a PID file records three things: the PID, the process's
start time (``/proc/<pid>/stat`` field 22, which changes when a PID is reused)
and a *marker*, an absolute path unique to this stack's data dir that must
appear in the process's command line. A record that fails any of the three is
stale and is only ever deleted, never signalled.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

__all__ = [
    "ProcessRecord",
    "cpu_seconds",
    "describe_pid",
    "file_lock",
    "pid_running",
    "port_free",
    "port_owner",
    "read_cmdline",
    "read_record",
    "reap",
    "remove_record",
    "spawn",
    "start_ticks",
    "stop_pid",
    "tail_lines",
    "tcp_open",
    "wait_until",
    "write_record",
]


# --- /proc ---------------------------------------------------------------


def read_cmdline(pid: int) -> list[str] | None:
    """The argv of a live process, or None when it is gone (or a zombie)."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return None
    if not raw:  # zombies and kernel threads have an empty cmdline
        return None
    return [a.decode(errors="replace") for a in raw.rstrip(b"\0").split(b"\0")]


def _stat_fields(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # comm (field 2) may hold spaces and parentheses: split after the last ')'
    return raw[raw.rfind(")") + 2 :].split()


def cpu_seconds(pid: int) -> float | None:
    """CPU time the process has used so far (user + system), None if it is gone."""
    fields = _stat_fields(pid)
    if not fields or len(fields) <= 12:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def start_ticks(pid: int) -> int | None:
    """When the process started (clock ticks since boot): PID reuse changes it."""
    fields = _stat_fields(pid)
    return int(fields[19]) if fields and len(fields) > 19 else None


def pid_running(pid: int) -> bool:
    """True when ``pid`` exists and is not a zombie."""
    fields = _stat_fields(pid)
    return bool(fields) and fields[0] not in ("Z", "X")


def reap(pid: int) -> None:
    """Collect the exit status of our own child so it does not stay a zombie."""
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def describe_pid(pid: int) -> str:
    """``pid 123 (java -Xmx1g ...)`` for error messages, the argv shortened."""
    argv = read_cmdline(pid)
    if not argv:
        return f"pid {pid}"
    text = " ".join(argv)
    return f"pid {pid} ({text[:77] + '...' if len(text) > 80 else text})"


# --- PID files -----------------------------------------------------------


@dataclass(frozen=True)
class ProcessRecord:
    """What a PID file says about a process the stack started."""

    pid: int
    start_ticks: int | None
    marker: str
    #: Ports it was started on (None in records that predate the field).
    ports: tuple[int, ...] | None = None

    def matches(self, marker: str | None = None) -> bool:
        """Is this still our process: alive, same start time, marker in its argv?

        ``marker`` (the service's own) is checked on top of the recorded one,
        so a hand-written or foreign PID file can never name a process to kill.
        """
        if self.pid <= 0 or not pid_running(self.pid):
            return False
        if self.start_ticks is not None and start_ticks(self.pid) != self.start_ticks:
            return False
        argv = read_cmdline(self.pid)
        if argv is None:
            return False
        joined = " ".join(argv)
        return all(m in joined for m in (self.marker, marker or ""))


def write_record(
    path: Path, pid: int, marker: str, ports: Sequence[int] | None = None
) -> ProcessRecord:
    """Record a freshly started (or adopted) process; written atomically."""
    record = ProcessRecord(
        pid=pid,
        start_ticks=start_ticks(pid),
        marker=marker,
        ports=tuple(ports) if ports is not None else None,
    )
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(asdict(record)) + "\n")
    tmp.replace(path)
    return record


def read_record(path: Path) -> ProcessRecord | None:
    """The record in a PID file; None when absent. Garbage reads as a dead record.

    A bare integer (a classic PID file) is accepted with no start time and an
    empty marker; callers pass their own marker to :meth:`ProcessRecord.matches`
    so such a file can never name a foreign process to signal.
    """
    try:
        text = path.read_text().strip()
    except FileNotFoundError:
        return None
    except OSError:
        return ProcessRecord(pid=0, start_ticks=None, marker="\0unreadable")
    try:
        data = json.loads(text)
        if isinstance(data, int):
            return ProcessRecord(pid=data, start_ticks=None, marker="")
        ports = data.get("ports")
        return ProcessRecord(
            pid=int(data["pid"]),
            start_ticks=None if data.get("start_ticks") is None else int(data["start_ticks"]),
            marker=str(data["marker"]),
            ports=tuple(int(p) for p in ports) if ports is not None else None,
        )
    except (ValueError, KeyError, TypeError):
        return ProcessRecord(pid=0, start_ticks=None, marker="\0garbage")


def remove_record(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()


# --- ports ---------------------------------------------------------------


def tcp_open(host: str, port: int, timeout: float = 0.5) -> bool:
    """Does something accept TCP connections on host:port right now?"""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def port_free(host: str, port: int) -> bool:
    """Could a server bind host:port now? (Catches 0.0.0.0 binds, not just listeners.)"""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError as exc:
            if exc.errno in (errno.EADDRINUSE, errno.EACCES):
                return False
            raise
    return True


def _listening_inodes(port: int) -> set[str]:
    inodes: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            cols = line.split()
            if len(cols) < 10:
                continue
            local, state, inode = cols[1], cols[3], cols[9]
            if state == "0A" and int(local.rsplit(":", 1)[1], 16) == port:  # 0A = LISTEN
                inodes.add(inode)
    return inodes


def port_owner(port: int) -> int | None:
    """PID of the process listening on ``port`` (any address), if we can see it."""
    inodes = _listening_inodes(port)
    if not inodes:
        return None
    wanted = {f"socket:[{i}]" for i in inodes}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            for fd in (entry / "fd").iterdir():
                with contextlib.suppress(OSError):
                    if os.readlink(fd) in wanted:
                        return int(entry.name)
        except OSError:
            continue
    return None


# --- starting and stopping -------------------------------------------------


def spawn(
    argv: Sequence[str],
    *,
    log_file: Path,
    cwd: Path,
    env: Mapping[str, str] | None = None,
    user: str | None = None,
) -> subprocess.Popen[bytes]:
    """Start a server detached from our terminal and session, output to ``log_file``.

    ``start_new_session`` keeps Ctrl-C in the CLI (or pytest ending) from
    killing the servers: they live until ``stack down``. ``user`` (root only)
    drops privileges in the child itself, so the PID we get is the server's,
    not a ``runuser`` wrapper's.
    """
    with open(log_file, "ab", buffering=0) as log:
        return subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=cwd,
            env=dict(env) if env is not None else None,
            start_new_session=True,
            close_fds=True,
            **_as_user(user),
        )


def _as_user(user: str | None) -> dict[str, object]:
    if user is None:
        return {}
    return {"user": user, "group": _primary_group(user), "extra_groups": []}


def _primary_group(user: str) -> int:
    import pwd

    return pwd.getpwnam(user).pw_gid


def stop_pid(pid: int, sig: int = signal.SIGTERM, timeout: float = 30.0) -> bool:
    """Send ``sig``, wait up to ``timeout`` s, then SIGKILL. True if it had to kill."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)
    if wait_gone([pid], timeout):
        return False
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    wait_gone([pid], 10.0)
    return True


def wait_gone(pids: Sequence[int], timeout: float) -> bool:
    """Wait until none of ``pids`` runs; reaps our own children on the way."""
    deadline = time.monotonic() + timeout
    while True:
        for pid in pids:
            reap(pid)
        if not any(pid_running(p) for p in pids):
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.1)


def wait_until(check: Callable[[], bool], timeout: float, interval: float = 0.25) -> bool:
    """Poll ``check`` until it is true or ``timeout`` seconds pass."""
    deadline = time.monotonic() + timeout
    while True:
        if check():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)


# --- files -----------------------------------------------------------------


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive flock: two ``stack up`` at once would both spawn servers."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def tail_lines(path: Path, n: int) -> list[str]:
    """The last ``n`` lines of a text file (reads at most the last 1 MiB)."""
    if n <= 0:
        return []
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - (1 << 20)))
            data = fh.read()
    except OSError:
        return []
    return data.decode(errors="replace").splitlines()[-n:]
