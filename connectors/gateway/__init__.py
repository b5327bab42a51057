"""The HTTP gateway: votes in over HTTP, tallies and statistics out, a live dashboard.

Reviewers' browsers and mobile apps do not speak Kafka, and a voter publishing
with its own idempotent producer leaves that producer's id beside each of its
votes in the broker's log (docs/security.md). The gateway is the one principal
voters need: it validates a vote's shape against :class:`models.VoteCast`,
publishes it with ONE shared idempotent producer (murmur2 partitioner, key =
token_id, as the workers require), and reads outcomes and tallies back. It
decides nothing (signatures, tags, rings and double votes stay the agents'
business), stores nothing, and logs no client address or user agent.

* :func:`create_app` — the FastAPI application (routes in :mod:`.routes`);
* :class:`GatewaySettings` — host, port and limits (``RINGTALLY_GATEWAY_*``);
* :func:`serve` — run it on uvicorn (``ringtally gateway``).

See docs/gateway.md.
"""

from .app import create_app
from .server import serve
from .settings import GatewaySettings

__all__ = ["GatewaySettings", "create_app", "serve"]
