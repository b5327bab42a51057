"""Redis from the distribution's ``redis-server``: loopback, no persistence.

The read model is rebuilt from Kafka, so nothing is saved (``--save ""``,
no AOF). Redis rewrites its process title, which would drop our argv marker;
``proc-title-template`` puts the stack's dir back into the title so PID
checks keep working.
"""

from __future__ import annotations

import socket
from pathlib import Path
from typing import ClassVar
from urllib.parse import unquote, urlsplit

from .binaries import find_redis_server
from .errors import StackError
from .service import LOOPBACK, Health, Report, Service

__all__ = ["RedisService", "parse_redis_url"]


def parse_redis_url(url: str) -> tuple[str | None, int, str | None]:
    """(host, port, password) of a ``redis://`` URL."""
    parts = urlsplit(url)
    if parts.scheme != "redis":
        raise StackError(
            "redis",
            f"redis_url must be a redis:// URL, got scheme {parts.scheme!r}",
            fix="set RINGTALLY_REDIS_URL like redis://127.0.0.1:16379/0",
        )
    try:
        port = parts.port or 6379
    except ValueError:
        raise StackError(
            "redis",
            f"redis_url has a bad port: {parts.netloc.rpartition('@')[2]!r}",  # no password
            fix="set RINGTALLY_REDIS_URL like redis://127.0.0.1:16379/0",
        ) from None
    password = unquote(parts.password) if parts.password else None
    return parts.hostname, port, password


def _resp(*args: str) -> bytes:
    out = f"*{len(args)}\r\n".encode()
    for a in args:
        b = a.encode()
        out += b"$" + str(len(b)).encode() + b"\r\n" + b + b"\r\n"
    return out


def redis_ping(host: str, port: int, password: str | None, timeout: float) -> Health:
    """PING over a raw socket (no client library needed just to check)."""
    try:
        with socket.create_connection((host, port), timeout=timeout) as s:
            s.settimeout(timeout)
            if password:
                s.sendall(_resp("AUTH", password))
                reply = s.recv(256)
                if not reply.startswith(b"+OK"):
                    return Health(False, f"AUTH refused: {reply[:60].decode(errors='replace')}")
            s.sendall(_resp("PING"))
            reply = s.recv(256)
    except OSError as exc:
        return Health(
            False,
            f"port {port} closed"
            if isinstance(exc, ConnectionRefusedError)
            else f"{type(exc).__name__}: {exc}",
        )
    if reply.startswith(b"+PONG"):
        return Health(True, "PONG")
    return Health(False, reply[:80].decode(errors="replace").strip())


class RedisService(Service):
    """``redis-server`` in the foreground, bound to 127.0.0.1."""

    name: ClassVar[str] = "redis"
    port_setting: ClassVar[str] = "RINGTALLY_REDIS_URL"
    stop_timeout: ClassVar[float] = 15.0
    default_timeout: ClassVar[float] = 30.0

    @property
    def _url(self) -> tuple[str | None, int, str | None]:
        host, port, password = parse_redis_url(self.settings.redis_url)
        self._require_local(host, "redis_url")
        return host, port, password

    @property
    def ports(self) -> list[int]:
        return [self._url[1]]

    @property
    def marker(self) -> str:
        return str(self.dir)

    def check_binaries(self) -> None:
        self._binary: Path = find_redis_server()

    def prepare(self, report: Report) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)

    def argv(self) -> list[str]:
        _, port, password = self._url
        argv = [
            str(self._binary),
            "--bind",
            LOOPBACK,
            "--port",
            str(port),
            "--protected-mode",
            "no",
            "--save",
            "",
            "--appendonly",
            "no",
            "--daemonize",
            "no",
            "--dir",
            str(self.dir),
            "--logfile",
            "",
            "--proc-title-template",
            f"{{title}} {{listen-addr}} {self.marker}",
        ]
        if password:
            argv += ["--requirepass", password]
        return argv

    def probe(self, timeout: float = 3.0) -> Health:
        _, port, password = self._url
        return redis_ping(LOOPBACK, port, password, timeout)
