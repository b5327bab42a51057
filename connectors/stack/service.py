"""What every piece of the stack has in common: start once, check, stop exactly it.

A :class:`Service` subclass says how to prepare its files, which argv to run,
which ports it binds and how to probe it. The life cycle here is shared:

``up``
    our PID file names a live process of ours → wait until it is healthy
    (already running, or half started by an interrupted ``up``); a stale PID
    file (dead PID, or a PID now used by another program) is deleted; a port
    held by a process whose argv carries our marker is adopted; a port held by
    anything else is an error naming it; then prepare, spawn, record, probe.
``down``
    signal only a process our PID file names *and* whose argv still carries our
    marker and start time; SIGKILL after a grace period.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import shutil
import signal
import subprocess
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar, Literal, TypeVar

from .errors import StackError
from .paths import StackPaths
from .process import (
    ProcessRecord,
    describe_pid,
    pid_running,
    port_free,
    port_owner,
    read_cmdline,
    read_record,
    reap,
    remove_record,
    spawn,
    stop_pid,
    tail_lines,
    write_record,
)

__all__ = ["Health", "PieceStatus", "Report", "Service", "StartResult", "run_async"]

#: Progress callback: (piece, message). The CLI renders it; library callers may ignore it.
Report = Callable[[str, str], None]

LOOPBACK = "127.0.0.1"
_LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1", "[::1]"}
_T = TypeVar("_T")


def _no_report(piece: str, message: str) -> None:
    return None


def run_async(make: Callable[[], Awaitable[_T]]) -> _T:
    """Run a coroutine from sync code, even when the caller is inside an event loop.

    Health probes use asyncio clients (aiokafka, asyncpg); ``LocalStack`` is
    called both from the CLI and from pytest fixtures that may run in a loop.
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(make())  # type: ignore[arg-type]
    box: dict[str, object] = {}

    def target() -> None:
        try:
            box["value"] = asyncio.run(make())  # type: ignore[arg-type]
        except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread
            box["error"] = exc

    t = threading.Thread(target=target, name="stack-probe", daemon=True)
    t.start()
    t.join()
    if "error" in box:
        raise box["error"]  # type: ignore[misc]
    return box["value"]  # type: ignore[return-value]


@dataclass(frozen=True)
class Health:
    """Result of one probe: ``detail`` says why not, in a few words."""

    ok: bool
    detail: str


@dataclass(frozen=True)
class PieceStatus:
    """One row of ``stack status``."""

    piece: str
    port: int
    pid: int | None
    state: Literal["healthy", "unhealthy", "stopped", "port taken"]
    detail: str
    log_file: Path

    @property
    def healthy(self) -> bool:
        return self.state == "healthy"


@dataclass(frozen=True)
class StartResult:
    """What ``up`` did for one piece."""

    piece: str
    pid: int
    action: Literal["started", "already running", "adopted"]
    seconds: float
    notes: tuple[str, ...] = field(default=())


class Service(ABC):
    """One server process of the local stack."""

    name: ClassVar[str]
    stop_signal: ClassVar[int] = signal.SIGTERM
    stop_timeout: ClassVar[float] = 30.0
    default_timeout: ClassVar[float] = 60.0
    #: The setting a person changes to move this piece to other ports.
    port_setting: ClassVar[str]

    def __init__(
        self, settings: object, paths: StackPaths, cancel: threading.Event | None = None
    ) -> None:
        self.settings = settings
        self.cancel = cancel or threading.Event()
        self.paths = paths
        self.dir = paths.piece_dir(self.name)
        self.log_file = paths.log_file(self.name)
        self.pid_file = paths.pid_file(self.name)

    # --- what subclasses say ------------------------------------------------

    @property
    @abstractmethod
    def ports(self) -> list[int]:
        """Ports this piece binds on 127.0.0.1; the first is the one clients use."""

    @property
    @abstractmethod
    def marker(self) -> str:
        """A string unique to this data dir that is in the server's argv."""

    @abstractmethod
    def check_binaries(self) -> None:
        """Raise StackError when a program this piece needs is missing."""

    @abstractmethod
    def prepare(self, report: Report) -> None:
        """Create config and data (once), validate what is there; may raise StackError."""

    @abstractmethod
    def argv(self) -> list[str]:
        """Command line of the server, run in the foreground."""

    @abstractmethod
    def probe(self, timeout: float = 3.0) -> Health:
        """Is the piece usable by clients right now?"""

    def startup_probe(self, timeout: float) -> Health:
        """Probe used while starting (before :meth:`after_start` ran)."""
        return self.probe(timeout)

    def after_start(self, report: Report) -> None:
        """One-time setup needing the running server (e.g. create the database)."""
        return None

    def run_as(self) -> str | None:
        """OS user to run the server as (None: as ourselves)."""
        return None

    def env(self) -> dict[str, str] | None:
        return None

    def orphan_pid(self) -> int | None:
        """A live server of ours without a PID file (e.g. the file was deleted)."""
        for port in self.ports:
            pid = port_owner(port)
            if pid is not None and self._owns(pid):
                return pid
        return None

    # --- shared life cycle ----------------------------------------------------

    def _owns(self, pid: int) -> bool:
        argv = read_cmdline(pid)
        return argv is not None and self.marker in " ".join(argv)

    def running_record(self) -> ProcessRecord | None:
        rec = read_record(self.pid_file)
        return rec if rec is not None and rec.matches(self.marker) else None

    def status(self) -> PieceStatus:
        """Current state, without changing anything."""
        rec = read_record(self.pid_file)
        pid = rec.pid if rec is not None and rec.matches(self.marker) else self.orphan_pid()
        if pid is not None:
            h = self.probe(timeout=3.0)
            detail = h.detail
            if rec is None or rec.pid != pid:
                detail += " (no PID file: 'up' adopts it)"
            elif rec.ports is not None and list(rec.ports) != self.ports:
                detail += f" (started on port {', '.join(map(str, rec.ports))})"
            return PieceStatus(
                self.name,
                self.ports[0],
                pid,
                "healthy" if h.ok else "unhealthy",
                detail,
                self.log_file,
            )
        for port in self.ports:
            if not port_free(LOOPBACK, port):
                owner = port_owner(port)
                who = describe_pid(owner) if owner else "another process"
                return PieceStatus(
                    self.name,
                    self.ports[0],
                    owner,
                    "port taken",
                    f"port {port} used by {who}",
                    self.log_file,
                )
        detail = "stale PID file" if rec is not None else "not running"
        return PieceStatus(self.name, self.ports[0], None, "stopped", detail, self.log_file)

    def up(self, report: Report = _no_report, timeout: float | None = None) -> StartResult:
        """Make this piece healthy, starting it only if it is not running."""
        timeout = self.default_timeout if timeout is None else timeout
        t0 = time.monotonic()
        notes: list[str] = []
        self.dir.mkdir(parents=True, exist_ok=True)

        rec = read_record(self.pid_file)
        if rec is not None:
            if rec.matches(self.marker):
                self._check_same_ports(rec)
                h = self.probe(timeout=3.0)
                if not h.ok:
                    report(self.name, f"pid {rec.pid} is starting; waiting until healthy")
                    self._wait_healthy(rec.pid, timeout, None)
                self.after_start(report)
                return StartResult(self.name, rec.pid, "already running", time.monotonic() - t0)
            remove_record(self.pid_file)
            note = f"removed stale PID file (pid {rec.pid} is not ours any more)"
            notes.append(note)
            report(self.name, note)

        orphan = self.orphan_pid()
        if orphan is not None:
            write_record(self.pid_file, orphan, self.marker, self.ports)
            report(self.name, f"adopted running server pid {orphan} (its PID file was missing)")
            self._wait_healthy(orphan, timeout, None)
            self.after_start(report)
            return StartResult(self.name, orphan, "adopted", time.monotonic() - t0, tuple(notes))

        for port in self.ports:
            if not port_free(LOOPBACK, port):
                owner = port_owner(port)
                who = describe_pid(owner) if owner else "another process"
                raise StackError(
                    self.name,
                    f"port {port} on {LOOPBACK} is already in use by {who}",
                    fix=f"stop that process, or move the stack with {self.port_setting}",
                )

        self.check_binaries()
        self._rotate_log()
        self.prepare(report)
        report(self.name, "starting")
        proc = spawn(
            self.argv(), log_file=self.log_file, cwd=self.dir, env=self.env(), user=self.run_as()
        )
        write_record(self.pid_file, proc.pid, self.marker, self.ports)
        self._wait_healthy(proc.pid, timeout, proc)  # the clock starts at spawn, not at a fetch
        self.after_start(report)
        return StartResult(self.name, proc.pid, "started", time.monotonic() - t0, tuple(notes))

    def _check_same_ports(self, rec: ProcessRecord) -> None:
        """A running server started on other ports than the settings now name."""
        if rec.ports is not None and list(rec.ports) != self.ports:
            was = ", ".join(map(str, rec.ports))
            now = ", ".join(map(str, self.ports))
            raise StackError(
                self.name,
                f"pid {rec.pid} runs on port {was} but the settings now say {now}",
                fix="'stack down' then 'stack up' moves it (or restore the old setting)",
            )

    def down(self, report: Report = _no_report) -> str:
        """Stop our server (only ours); returns what happened, for the CLI."""
        rec = read_record(self.pid_file)
        if rec is not None and rec.matches(self.marker):
            pid = rec.pid
        else:
            if rec is not None:
                remove_record(self.pid_file)
            pid = self.orphan_pid()
            if pid is None:
                return "not running" + (" (removed stale PID file)" if rec is not None else "")
        report(self.name, f"stopping pid {pid}")
        killed = stop_pid(pid, self.stop_signal, self.stop_timeout)
        remove_record(self.pid_file)
        self.after_stop(clean_exit=not killed)
        return f"stopped pid {pid}" + (
            f" (SIGKILL after {self.stop_timeout:.0f}s)" if killed else ""
        )

    def purge(self) -> None:
        """Delete this piece's dir (config, data, logs); follows a relocated dir's link."""
        if self.dir.is_symlink():
            target = self.dir.resolve()
            shutil.rmtree(target, ignore_errors=True)
            self.dir.unlink()
            if target.parent.name.startswith("ringtally-"):
                with contextlib.suppress(OSError):
                    target.parent.rmdir()  # the relocation's own parent, if now empty
        else:
            shutil.rmtree(self.dir, ignore_errors=True)

    def after_stop(self, *, clean_exit: bool) -> None:
        """Clean-up once the server is gone (``clean_exit``: it did not need SIGKILL)."""
        return None

    # --- helpers ------------------------------------------------------------

    def _wait_healthy(self, pid: int, timeout: float, proc: subprocess.Popen[bytes] | None) -> None:
        deadline = time.monotonic() + max(timeout, 1.0)
        last = Health(False, "not probed yet")
        while True:
            if self.cancel.is_set():  # Ctrl-C in the CLI: stop waiting, leave it starting
                raise StackError(
                    self.name,
                    f"interrupted while starting (pid {pid} keeps starting)",
                    fix="'stack up' waits for it again, 'stack down' stops it",
                )
            if not pid_running(pid):
                # Popen.poll() must reap it (a bare waitpid first would lose the exit code)
                code = proc.poll() if proc is not None else None
                reap(pid)
                remove_record(self.pid_file)
                how = f" (exit code {code})" if code is not None else ""
                hint = self.failure_hint()
                raise StackError(
                    self.name,
                    f"exited while starting{how}" + (f": {hint}" if hint else ""),
                    fix=self.crash_fix(),
                    log_file=self.log_file,
                )
            remaining = deadline - time.monotonic()
            last = self.startup_probe(timeout=max(0.5, min(3.0, remaining)))
            if last.ok:
                return
            if time.monotonic() >= deadline:
                raise StackError(
                    self.name,
                    f"not healthy after {timeout:.0f}s ({last.detail})",
                    fix=f"it is still running as pid {pid}: 'stack down' stops it",
                    log_file=self.log_file,
                )
            time.sleep(0.2)

    def crash_fix(self) -> str | None:
        return None

    _ERROR_LINE = re.compile(r"\b(ERROR|FATAL|PANIC|Exception|error:)", re.IGNORECASE)

    def failure_hint(self) -> str:
        """The last error-looking line of the log (plus its follow-up line), shortened.

        The follow-up matters for messages split over two lines, like the JVM's
        "Error occurred during initialization of VM" / "Too small maximum heap".
        """
        lines = tail_lines(self.log_file, 300)
        for i in range(len(lines) - 1, -1, -1):
            if self._ERROR_LINE.search(lines[i]):
                text = lines[i].strip()
                nxt = lines[i + 1].strip() if i + 1 < len(lines) else ""
                if nxt and not nxt.startswith("at ") and len(nxt) < 160:
                    text += f" / {nxt}"
                return text[:237] + "..." if len(text) > 240 else text
        return ""

    def _rotate_log(self) -> None:
        """Keep the previous run's log as <piece>.log.1; each start gets a fresh file."""
        if self.log_file.exists() and self.log_file.stat().st_size > 0:
            self.log_file.replace(self.log_file.with_name(self.log_file.name + ".1"))

    def _require_local(self, host: str | None, what: str) -> None:
        if host not in _LOCAL_HOSTS:
            raise StackError(
                self.name,
                f"{what} points at {host!r}, but the local stack only runs on {LOOPBACK}",
                fix=f"use {LOOPBACK} in {self.port_setting}, or unset it",
            )
