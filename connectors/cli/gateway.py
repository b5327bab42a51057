"""``ringtally gateway``: the HTTP gateway, read API and live dashboard (docs/gateway.md)."""

from __future__ import annotations

import click

from streams.errors import UsageProblem

from ._common import get_settings, one_line_errors

__all__ = ["gateway"]


@click.command("gateway")
@click.option(
    "--host", default=None, help="Address to listen on [RINGTALLY_GATEWAY_HOST, 127.0.0.1]."
)
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=None,
    help="TCP port [RINGTALLY_GATEWAY_PORT, 8080].",
)
@one_line_errors
def gateway(host: str | None, port: int | None) -> None:
    """Serve the HTTP API (POST votes, read tallies), /docs and the dashboard at /.

    Stateless: run several behind any load balancer. Voters need nothing but
    HTTP; the gateway publishes their signed votes with one shared producer.

    \b
    Example:
      ringtally gateway --port 8080
      curl -s localhost:8080/api/v1/statistics
    """
    from pydantic import ValidationError

    from connectors.gateway import GatewaySettings, serve
    from connectors.sdk.errors import NoTrustedRegistrar
    from connectors.sdk.reader import trusted_registrar_keys

    overrides = {k: v for k, v in (("host", host), ("port", port)) if v is not None}
    try:
        gateway_settings = GatewaySettings(**overrides)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = str(first["loc"][0]) if first.get("loc") else "?"
        raise UsageProblem(f"RINGTALLY_GATEWAY_{field.upper()}: {first['msg']}") from None
    settings = get_settings()
    if not trusted_registrar_keys(settings):  # before uvicorn starts: one line, exit 2
        raise NoTrustedRegistrar(
            "the gateway knows no registrar public key: it cannot tell genuine rings",
            fix="set RINGTALLY_REGISTRAR_PUBLIC_KEYS to the registrar's public key(s)",
        )
    serve(settings, gateway_settings)
