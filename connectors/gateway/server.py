"""Running the gateway on uvicorn, with logs that name no client.

uvicorn's access log prints ``client_addr`` on every line; the gateway turns
it off, or (``RINGTALLY_GATEWAY_ACCESS_LOG=1``) replaces it with a filter that
logs method, path and status only. Query strings are dropped too (a path of
the API never carries a vote; a query might carry anything).
"""

from __future__ import annotations

import logging
import socket

from streams.errors import UsageProblem
from streams.settings import Settings

from .settings import GatewaySettings

__all__ = ["serve", "uvicorn_config"]


class _NoClientAccessLog(logging.Filter):
    """Rewrites uvicorn's access record ``(client, method, path, version, status)``."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) == 5:
            _client, method, path, _version, status = args
            record.msg = "%s %s %s"
            record.args = (method, str(path).split("?", 1)[0], status)
        return True


def _log_config(access_log: bool) -> dict:
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"noclient": {"()": _NoClientAccessLog}},
        "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
        "handlers": {
            "stderr": {"class": "logging.StreamHandler", "formatter": "plain"},
            "access": {
                "class": "logging.StreamHandler",
                "formatter": "plain",
                "filters": ["noclient"],
            },
        },
        "loggers": {
            "uvicorn": {"handlers": ["stderr"], "level": "INFO", "propagate": False},
            "uvicorn.error": {"level": "INFO"},
            "uvicorn.access": {
                "handlers": ["access"] if access_log else [],
                "level": "INFO" if access_log else "WARNING",
                "propagate": False,
            },
            "ringtally": {"handlers": ["stderr"], "level": "INFO", "propagate": False},
            "aiokafka": {"handlers": ["stderr"], "level": "WARNING", "propagate": False},
        },
    }


def uvicorn_config(settings: Settings, gateway: GatewaySettings):  # noqa: ANN201
    import uvicorn

    from .app import create_app

    return uvicorn.Config(
        create_app(settings, gateway),
        host=gateway.host,
        port=gateway.port,
        access_log=gateway.access_log,
        log_config=_log_config(gateway.access_log),
        timeout_keep_alive=int(gateway.keep_alive),
        limit_concurrency=gateway.max_connections,
        timeout_graceful_shutdown=5,
        server_header=False,
        proxy_headers=False,
        h11_max_incomplete_event_size=64 * 1024,
    )


def _listen(host: str, port: int) -> socket.socket:
    """The listening socket, bound before anything starts: a port in use is one line."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise UsageProblem(
            f"cannot listen on {host}:{port}: {exc.strerror or exc}",
            fix="pick another --port (or RINGTALLY_GATEWAY_PORT) or --host",
        ) from None
    sock.set_inheritable(True)
    return sock


def serve(settings: Settings, gateway: GatewaySettings) -> None:
    """Run one gateway process until SIGINT/SIGTERM."""
    import uvicorn

    sock = _listen(gateway.host, gateway.port)
    uvicorn.Server(uvicorn_config(settings, gateway)).run(sockets=[sock])
