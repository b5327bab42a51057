"""Request limits: a body size cap and an optional per-client rate limit.

Both are pure ASGI middleware that answer before the request reaches a route,
so an oversized or abusive request costs little. The rate limiter keeps, in
memory only, a token bucket per client address (salted hash, never logged,
forgotten after a minute idle); behind a load balancer the address is the
balancer's, so rate-limit there instead. Off by default.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import time

__all__ = ["BodyLimit", "RateLimit"]


async def _reply(send, status: int, detail: str, headers: list | None = None) -> None:  # noqa: ANN001
    body = json.dumps({"detail": detail}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
                *(headers or []),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


class _TooLarge(Exception):
    pass


class BodyLimit:
    """413 for a body over ``limit`` bytes: by Content-Length before reading, or while
    reading a chunked body (the route never sees more than ``limit`` bytes)."""

    def __init__(self, app, limit: int) -> None:  # noqa: ANN001
        self.app = app
        self.limit = limit

    async def __call__(self, scope, receive, send) -> None:  # noqa: ANN001
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", ()):
            if name == b"content-length":
                try:
                    too_big = int(value) > self.limit
                except ValueError:
                    await _reply(send, 400, "bad Content-Length")
                    return
                if too_big:
                    await _reply(send, 413, f"body larger than {self.limit} bytes")
                    return
        seen = 0
        started = False

        async def limited_receive():  # noqa: ANN202
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    raise _TooLarge
            return message

        async def tracking_send(message) -> None:  # noqa: ANN001
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except _TooLarge:
            if not started:
                await _reply(send, 413, f"body larger than {self.limit} bytes")


class RateLimit:
    """429 when a client address exceeds ``rate`` requests/s (bucket of ``burst``)."""

    def __init__(self, app, rate: float, burst: int) -> None:  # noqa: ANN001
        self.app = app
        self.rate = rate
        self.burst = burst
        self._salt = secrets.token_bytes(16)
        self._buckets: dict[bytes, tuple[float, float]] = {}
        self._pruned = time.monotonic()

    def _allow(self, client: str) -> bool:
        now = time.monotonic()
        if now - self._pruned > 60:
            self._buckets = {k: v for k, v in self._buckets.items() if now - v[1] < 60}
            self._pruned = now
        key = hashlib.blake2b(client.encode(), key=self._salt, digest_size=16).digest()
        tokens, last = self._buckets.get(key, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + (now - last) * self.rate)
        if tokens < 1.0:
            self._buckets[key] = (tokens, now)
            return False
        self._buckets[key] = (tokens - 1.0, now)
        return True

    async def __call__(self, scope, receive, send) -> None:  # noqa: ANN001
        if scope["type"] == "http" and self.rate > 0:
            client = (scope.get("client") or ("?", 0))[0]
            if not self._allow(client):
                retry = max(1, int(1 / self.rate))
                await _reply(
                    send, 429, "rate limit exceeded", [(b"retry-after", str(retry).encode())]
                )
                return
        await self.app(scope, receive, send)
