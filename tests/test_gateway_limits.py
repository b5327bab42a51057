"""The gateway's limits, log filter and OpenAPI document, without services (ASGI level).

Each is driven the way uvicorn drives it (ASGI ``scope``/``receive``/``send``,
a ``logging.LogRecord`` with uvicorn's access-log arguments), so a limit that
let a body through, a rate limiter that never said 429 or a filter that kept
the client address fails here.
"""

from __future__ import annotations

import asyncio
import logging

from connectors.gateway.limits import BodyLimit, RateLimit
from connectors.gateway.server import _log_config, _NoClientAccessLog
from connectors.gateway.settings import GatewaySettings


def _scope(headers: list[tuple[bytes, bytes]] = (), client=("203.0.113.7", 50123)) -> dict:
    return {
        "type": "http",
        "method": "POST",
        "path": "/api/v1/votes",
        "headers": list(headers),
        "client": client,
    }


async def _run(app, scope: dict, chunks: list[bytes]) -> tuple[int, bytes, int]:
    """(status, body, bytes the inner app read) of one request."""
    messages = [
        {"type": "http.request", "body": c, "more_body": i < len(chunks) - 1}
        for i, c in enumerate(chunks)
    ]
    sent: list[dict] = []

    async def receive() -> dict:
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    async def send(message: dict) -> None:
        sent.append(message)

    await app(scope, receive, send)
    status = next(m["status"] for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return status, body, getattr(app, "read", 0)


class Echo:
    """An inner app that reads the whole body and answers 200."""

    def __init__(self) -> None:
        self.read = 0

    async def __call__(self, scope, receive, send) -> None:
        while True:
            message = await receive()
            self.read += len(message.get("body", b""))
            if not message.get("more_body"):
                break
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})


def test_body_limit_by_content_length_and_while_streaming() -> None:
    inner = Echo()
    app = BodyLimit(inner, limit=1000)
    status, _, _ = asyncio.run(_run(app, _scope([(b"content-length", b"5000")]), [b"x" * 5000]))
    assert status == 413 and inner.read == 0  # refused before reading
    status, body, _ = asyncio.run(_run(app, _scope(), [b"x" * 600, b"x" * 600, b"x" * 600]))
    assert status == 413 and b"larger than 1000" in body
    assert inner.read <= 600  # the chunk that crossed the limit never reached the app
    status, _, _ = asyncio.run(_run(app, _scope([(b"content-length", b"abc")]), [b""]))
    assert status == 400
    inner.read = 0
    status, body, _ = asyncio.run(_run(app, _scope(), [b"x" * 500, b"x" * 500]))
    assert (status, body, inner.read) == (200, b"ok", 1000)


def test_rate_limit_per_client_and_off_by_default() -> None:
    assert GatewaySettings().rate_limit == 0
    limited = RateLimit(Echo(), rate=1.0, burst=3)
    statuses = [asyncio.run(_run(limited, _scope(), [b""]))[0] for _ in range(5)]
    assert statuses == [200, 200, 200, 429, 429]
    other = _scope(client=("198.51.100.2", 1))
    assert asyncio.run(_run(limited, other, [b""]))[0] == 200  # another client has its own bucket
    unlimited = RateLimit(Echo(), rate=0.0, burst=1)
    assert {asyncio.run(_run(unlimited, _scope(), [b""]))[0] for _ in range(20)} == {200}


def test_access_log_lines_carry_no_client_address_or_query() -> None:
    record = logging.LogRecord(
        "uvicorn.access",
        logging.INFO,
        __file__,
        1,
        '%s - "%s %s HTTP/%s" %d',
        ("203.0.113.7:50123", "POST", "/api/v1/votes?wait=5&x=secret", "1.1", 202),
        None,
    )
    assert _NoClientAccessLog().filter(record)
    line = record.getMessage()
    assert line == "POST /api/v1/votes 202"
    assert "203.0.113.7" not in line and "secret" not in line
    config = _log_config(access_log=False)
    assert config["loggers"]["uvicorn.access"]["handlers"] == []
    assert _log_config(access_log=True)["handlers"]["access"]["filters"] == ["noclient"]


def test_openapi_documents_the_vote_body_and_docs_can_be_turned_off() -> None:
    """/docs shows the VoteCast schema the workers enforce (the route reads the raw body, so
    FastAPI would not know it by itself)."""
    from connectors.gateway import create_app
    from models.votes import VoteCast

    app = create_app(gateway=GatewaySettings())
    spec = app.openapi()
    body = spec["paths"]["/api/v1/votes"]["post"]["requestBody"]["content"]["application/json"]
    assert body["schema"]["properties"].keys() == VoteCast.model_json_schema()["properties"].keys()
    assert {"422", "413", "202", "200"} <= spec["paths"]["/api/v1/votes"]["post"][
        "responses"
    ].keys()
    assert app.docs_url == "/docs"
    assert create_app(gateway=GatewaySettings(docs=False)).docs_url is None
