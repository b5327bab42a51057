"""The FastAPI application: routes, limits, metrics, the dashboard's static files.

Why FastAPI on uvicorn: the request models are the project's pydantic models
(the OpenAPI document at ``/docs`` shows ``VoteCast``'s schema as the workers
enforce it), everything is asyncio like the rest of ringtally (aiokafka,
redis.asyncio, asyncpg), and it is the ecosystem's usual choice.

Middleware order (outermost first): metrics, rate limit, body limit. The
last two answer before any route runs; metrics see every answer, the 413s
and 429s included.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

from streams.settings import Settings, get_settings

from .backends import Backends
from .limits import BodyLimit, RateLimit
from .metrics import GatewayMetrics, MetricsMiddleware
from .routes import router
from .settings import GatewaySettings
from .sse import Broadcaster

__all__ = ["STATIC", "create_app"]

STATIC = Path(__file__).parent / "static"


def create_app(settings: Settings | None = None, gateway: GatewaySettings | None = None) -> FastAPI:
    """A gateway app for ``settings`` (default: the environment's)."""
    settings = settings or get_settings()
    gateway = gateway or GatewaySettings()
    metrics = GatewayMetrics()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        backends = Backends(settings, gateway)
        broadcaster = Broadcaster(backends.redis, backends.store.channel, gateway.sse_queue)
        app.state.backends = backends
        app.state.broadcaster = broadcaster
        await broadcaster.start()
        warm = asyncio.create_task(backends.warm_up(), name="gateway-warm-up")
        try:
            yield
        finally:
            warm.cancel()
            await broadcaster.stop()
            await backends.close()

    app = FastAPI(
        title="ringtally gateway",
        version="1",
        summary="Anonymous ring-signed votes over HTTP; tallies, statistics and a live dashboard",
        lifespan=lifespan,
        docs_url="/docs" if gateway.docs else None,
        redoc_url="/redoc" if gateway.docs else None,
    )
    app.state.metrics = metrics
    app.state.stats_cache = {}
    app.include_router(router)

    @app.get("/", include_in_schema=False)
    async def dashboard() -> FileResponse:
        return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})

    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    # add_middleware wraps: the last added is the outermost, so metrics see the 413s and 429s
    app.add_middleware(BodyLimit, limit=gateway.max_body_bytes)
    app.add_middleware(RateLimit, rate=gateway.rate_limit, burst=gateway.rate_burst)
    fixed = {r.path for r in router.routes if "{" not in getattr(r, "path", "{")}
    app.add_middleware(MetricsMiddleware, metrics=metrics, fixed_paths=frozenset(fixed))
    return app
