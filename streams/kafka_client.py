"""How every Kafka client of ringtally connects: the one home of its configuration.

Three client libraries are in play (aiokafka in the sink, read model, gateway
and control readers; Faust's aiokafka driver in the worker; confluent-kafka
in the SDK, replay and admin code), each spelling the same settings its own
way. Every construction site takes its connection settings from here, so a
secured cluster (``RINGTALLY_KAFKA_SECURITY_PROTOCOL`` and friends,
docs/security.md) reaches every client or none; ``tests/test_kafka_client.py``
fails if a site builds a client without it.

The password leaves :class:`~pydantic.SecretStr` only inside the dicts built
here, which are handed straight to a client and never logged.
"""

from __future__ import annotations

import json
import logging
import ssl
import time
from collections.abc import Callable
from typing import Any

from .backoff import Outage
from .errors import RingtallyError, UsageProblem
from .settings import Settings

__all__ = [
    "AIOKAFKA_PASSTHROUGH",
    "KafkaConfigProblem",
    "KafkaRefused",
    "aiokafka_kwargs",
    "auth_fix",
    "faust_broker_credentials",
    "java_client_properties",
    "kafka_config",
    "probe",
    "ssl_context",
    "wait_until_admitted",
]

#: librdkafka property -> aiokafka keyword, for the passthrough
#: (``RINGTALLY_KAFKA_CLIENT_CONFIG``); other properties reach confluent-kafka clients only.
AIOKAFKA_PASSTHROUGH: dict[str, tuple[str, type]] = {
    "client.id": ("client_id", str),
    "request.timeout.ms": ("request_timeout_ms", int),
    "metadata.max.age.ms": ("metadata_max_age_ms", int),
    "connections.max.idle.ms": ("connections_max_idle_ms", int),
    "retry.backoff.ms": ("retry_backoff_ms", int),
}


#: librdkafka's own log lines of the probe: dropped, the probe's answer says what matters
#: (one line instead of a FAIL line per connection attempt).
_LOG = logging.getLogger("ringtally.kafka.probe")
_LOG.addHandler(logging.NullHandler())
_LOG.propagate = False


class KafkaConfigProblem(UsageProblem):
    """A Kafka security setting that cannot be used as it is (one line, exit 2)."""


def ssl_context(settings: Settings) -> ssl.SSLContext | None:
    """The TLS context of SSL and SASL_SSL (None for the plaintext protocols).

    Verifies the broker's certificate and host name against
    ``kafka_ssl_ca_file`` (the system's CAs when unset); presents
    ``kafka_ssl_cert_file`` / ``kafka_ssl_key_file`` when set (mutual TLS).
    """
    if settings.kafka_security_protocol not in ("SSL", "SASL_SSL"):
        return None
    ca = settings.kafka_ssl_ca_file
    try:
        context = ssl.create_default_context(cafile=str(ca) if ca else None)
    except (ssl.SSLError, OSError) as exc:
        raise KafkaConfigProblem(
            f"RINGTALLY_KAFKA_SSL_CA_FILE={ca}: not a readable PEM certificate "
            f"({exc.__class__.__name__})"
        ) from None
    if settings.kafka_ssl_cert_file is not None:
        try:
            context.load_cert_chain(
                str(settings.kafka_ssl_cert_file), str(settings.kafka_ssl_key_file)
            )
        except (ssl.SSLError, OSError) as exc:
            raise KafkaConfigProblem(
                f"RINGTALLY_KAFKA_SSL_CERT_FILE={settings.kafka_ssl_cert_file} with "
                f"RINGTALLY_KAFKA_SSL_KEY_FILE={settings.kafka_ssl_key_file}: not a PEM "
                f"certificate and its unencrypted key ({exc.__class__.__name__})"
            ) from None
    return context


def _sasl_password(settings: Settings) -> str:
    secret = settings.kafka_sasl_password
    return secret.get_secret_value() if secret is not None else ""


def aiokafka_kwargs(settings: Settings, **extra: Any) -> dict[str, Any]:
    """Keyword arguments for ``AIOKafkaConsumer`` / ``AIOKafkaProducer`` / ``AIOKafkaClient``:
    the bootstrap servers, the passthrough's known keys, the security settings, then
    ``extra`` (a client's own arguments: group_id, client_id ...)."""
    out: dict[str, Any] = {"bootstrap_servers": settings.kafka_bootstrap}
    for key, value in settings.kafka_client_config.items():
        if key in AIOKAFKA_PASSTHROUGH:
            name, kind = AIOKAFKA_PASSTHROUGH[key]
            try:
                out[name] = kind(value)
            except ValueError:
                raise KafkaConfigProblem(
                    f"RINGTALLY_KAFKA_CLIENT_CONFIG: {key} must be a number, got {value!r}"
                ) from None
    protocol = settings.kafka_security_protocol
    out["security_protocol"] = protocol
    context = ssl_context(settings)
    if context is not None:
        out["ssl_context"] = context
    if protocol in ("SASL_PLAINTEXT", "SASL_SSL"):
        out["sasl_mechanism"] = settings.kafka_sasl_mechanism
        out["sasl_plain_username"] = settings.kafka_sasl_username
        out["sasl_plain_password"] = _sasl_password(settings)
    out.update(extra)
    return out


def kafka_config(settings: Settings, **extra: object) -> dict[str, object]:
    """confluent-kafka (librdkafka) configuration: bootstrap servers, security, the
    passthrough, then ``extra`` (a client's own keys: group.id, logger, acks ...)."""
    out: dict[str, object] = {
        "bootstrap.servers": settings.kafka_bootstrap,
        **settings.kafka_client_config,
        "security.protocol": settings.kafka_security_protocol.lower(),
    }
    if settings.kafka_security_protocol in ("SSL", "SASL_SSL"):
        ssl_context(settings)  # the same one-line errors as the aiokafka clients
        if settings.kafka_ssl_ca_file:
            out["ssl.ca.location"] = str(settings.kafka_ssl_ca_file)
        if settings.kafka_ssl_cert_file:
            out["ssl.certificate.location"] = str(settings.kafka_ssl_cert_file)
            out["ssl.key.location"] = str(settings.kafka_ssl_key_file)
    if settings.kafka_security_protocol in ("SASL_PLAINTEXT", "SASL_SSL"):
        out["sasl.mechanism"] = settings.kafka_sasl_mechanism
        out["sasl.username"] = settings.kafka_sasl_username
        out["sasl.password"] = _sasl_password(settings)
    out.update(extra)
    return out


def java_client_properties(settings: Settings) -> str:
    """The security settings as a Java client ``.properties`` text, for Kafka's own
    command-line tools (``--command-config``). Holds the password: write it to a
    file only its owner may read, and delete it after use."""
    protocol = settings.kafka_security_protocol
    lines = [f"security.protocol={protocol}"]
    if protocol in ("SSL", "SASL_SSL"):
        if settings.kafka_ssl_ca_file:
            lines += [
                "ssl.truststore.type=PEM",
                f"ssl.truststore.location={settings.kafka_ssl_ca_file}",
            ]
        if settings.kafka_ssl_cert_file:
            raise KafkaConfigProblem(
                "RINGTALLY_KAFKA_SSL_CERT_FILE: Kafka's command-line tools (reset-offsets) "
                "take a client certificate only as a keystore; use SASL_SSL for them"
            )
    if protocol in ("SASL_PLAINTEXT", "SASL_SSL"):
        module = (
            "org.apache.kafka.common.security.plain.PlainLoginModule"
            if settings.kafka_sasl_mechanism == "PLAIN"
            else "org.apache.kafka.common.security.scram.ScramLoginModule"
        )
        user = json.dumps(settings.kafka_sasl_username)  # a JAAS string is double-quoted
        password = json.dumps(_sasl_password(settings))
        lines += [
            f"sasl.mechanism={settings.kafka_sasl_mechanism}",
            f"sasl.jaas.config={module} required username={user} password={password};",
        ]
    return "".join(f"{line}\n" for line in lines)


def faust_broker_credentials(settings: Settings) -> object | None:
    """Faust's ``broker_credentials`` for the worker (None: plaintext)."""
    import faust

    protocol = settings.kafka_security_protocol
    if protocol == "SSL":
        return faust.SSLCredentials(ssl_context(settings))
    if protocol in ("SASL_PLAINTEXT", "SASL_SSL"):
        return faust.SASLCredentials(
            username=settings.kafka_sasl_username,
            password=_sasl_password(settings),
            ssl_context=ssl_context(settings),  # None -> SASL_PLAINTEXT, else SASL_SSL
            mechanism=settings.kafka_sasl_mechanism,
        )
    return None


class KafkaRefused(RingtallyError):
    """The brokers answer but refuse this client: authentication or TLS (exit code 2)."""

    exit_code = 2


def probe(settings: Settings, timeout: float = 10.0) -> tuple[str, str | None]:
    """Ask the brokers for metadata as these settings' client: ``("ok", None)``,
    ``("refused", why)`` (said as soon as the broker refuses, with :func:`auth_fix`'s
    advice) or ``("unreachable", detail)`` after ``timeout``."""
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import AdminClient

    seen: list[str] = []
    admin = AdminClient(
        kafka_config(settings, logger=_LOG, error_cb=lambda err: seen.append(err.str()))
    )
    deadline = time.monotonic() + timeout
    while True:
        try:
            admin.list_topics(timeout=min(1.0, max(0.1, deadline - time.monotonic())))
            return "ok", None
        except KafkaException as exc:
            admin.poll(0)  # serves error_cb
            refused = next((e for e in seen if auth_fix(e)), None)
            if refused is not None:
                return "refused", f"{auth_fix(refused)} ({refused[:160]})"  # the advice first
            if time.monotonic() >= deadline:
                err = exc.args[0] if exc.args else exc
                return "unreachable", err.str() if hasattr(err, "str") else str(err)


def wait_until_admitted(
    settings: Settings, log: logging.Logger, should_stop: Callable[[], bool] = lambda: False
) -> None:
    """Block while the brokers refuse this client (wrong password, unknown CA, a
    principal without rights), logging one line naming the setting and retrying with
    backoff (credentials may be fixed or rotated meanwhile); returns once admitted, when
    the brokers cannot be reached at all (the caller's own error says that) or
    ``should_stop()``. For long-running processes: the worker and the sink."""
    outage = Outage(
        f"kafka at {settings.kafka_bootstrap}", log, base=1.0, cap=30.0, doing="not starting"
    )
    while not should_stop():
        state, detail = probe(settings, timeout=10.0)
        if state != "refused":
            outage.ok()
            return
        wait = time.monotonic() + outage.failed(KafkaRefused(f"refused this client: {detail}"))
        while time.monotonic() < wait and not should_stop():
            time.sleep(0.2)


def auth_fix(detail: str) -> str | None:
    """The setting to look at for a client error's text (None: not a security problem).

    Covers what librdkafka and aiokafka say when authentication, TLS or an
    ACL refuses a client; the text itself may be shown, it carries no secret.
    """
    text = detail.lower()
    if "certificate" in text or "handshake" in text:  # before SASL: "sasl_ssl://" is in both
        return "check RINGTALLY_KAFKA_SSL_CA_FILE (the broker's certificate must chain to it)"
    if "authentication" in text or "sasl" in text:
        return "check RINGTALLY_KAFKA_SASL_USERNAME, _PASSWORD and _MECHANISM"
    if "authoriz" in text:
        return "this principal lacks a Kafka ACL for it (docs/security.md: who may write what)"
    return None
