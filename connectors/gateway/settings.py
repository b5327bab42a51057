"""The gateway's own settings: ``RINGTALLY_GATEWAY_*`` variables.

Kept beside the gateway rather than in :class:`streams.settings.Settings`
(the workers never need them); services (Kafka, Redis, Postgres, topic prefix)
come from the shared Settings as for every other ringtally process.
"""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["GatewaySettings"]


class GatewaySettings(BaseSettings):
    """Where the gateway listens and the limits it enforces."""

    model_config = SettingsConfigDict(
        env_prefix="RINGTALLY_GATEWAY_", frozen=True, extra="ignore", validate_default=True
    )

    host: str = Field("127.0.0.1", description="address to listen on")
    port: int = Field(8080, ge=0, le=65535, description="TCP port (0: any free port)")
    max_body_bytes: int = Field(
        262_144,
        ge=1024,
        le=16 * 1024 * 1024,
        description="largest request body; a batchable signature over a ring of 1024 "
        "members is ~131 KB of base64",
    )
    rate_limit: float = Field(
        0.0, ge=0, description="requests per second per client address; 0 = off (the default)"
    )
    rate_burst: int = Field(20, ge=1, description="bucket size of the per-client rate limit")
    max_wait: float = Field(
        30.0, gt=0, le=300, description="the most a POST may ask to wait for its outcome"
    )
    read_timeout: float = Field(
        10.0, gt=0, description="seconds a read endpoint may take before answering 503"
    )
    control_refresh: float = Field(
        2.0,
        ge=0.1,
        description="the longest a read of an unknown ring or submission waits for the "
        "control topics' tail to catch up (also its retry interval)",
    )
    sse_heartbeat: float = Field(15.0, gt=0, description="seconds between SSE keep-alive comments")
    sse_queue: int = Field(
        1000, ge=10, description="events buffered per SSE client before it is dropped"
    )
    max_connections: int = Field(
        2048, ge=1, description="concurrent connections and requests; more are answered 503"
    )
    body_timeout: float = Field(
        10.0, gt=0, description="seconds a client may take to send a request body (else 408)"
    )
    keep_alive: float = Field(5.0, gt=0, description="HTTP keep-alive timeout (seconds)")
    docs: bool = Field(
        True,
        description="serve /docs and /redoc (their pages load Swagger UI / ReDoc from a CDN in "
        "the reader's browser); /openapi.json is always served",
    )
    access_log: bool = Field(
        False,
        description="uvicorn's access log WITHOUT client addresses (method, path, status); "
        "off by default",
    )
