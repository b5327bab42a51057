"""One settings object for every ringtally process.

Values come from the constructor first, then from ``RINGTALLY_*`` environment
variables, then from the defaults below, which point at the local stack that
``ringtally stack up`` starts. The object is frozen: a worker, the sink and the
CLI read the same values for their whole life, so a value seen in a log line
is the value in force.

Environment variables (each field's name upper-cased, prefixed)::

    RINGTALLY_KAFKA_BOOTSTRAP      RINGTALLY_POSTGRES_DSN   RINGTALLY_REDIS_URL
    RINGTALLY_TOPIC_PREFIX         RINGTALLY_PARTITIONS     RINGTALLY_REPLICATION_FACTOR
    RINGTALLY_TABLE_STORE          RINGTALLY_DATA_DIR       ...

Registrar keys (control records, rings and submissions, are signed by the registrar)::

    RINGTALLY_REGISTRAR_PUBLIC_KEYS  the keys a worker trusts: 64-hex public keys,
                                     comma-separated (several during a key rotation)
    RINGTALLY_REGISTRAR_KEY_FILE     the registrar side's secret key file

A development machine needs neither: the registrar side (``ringtally stack up``,
the SDK's ``Admin``, the CLI) creates ``<data_dir>/registrar.key`` (mode 0600,
the ``ringtally keys new`` format) on first use, with its public key beside it
in ``<data_dir>/registrar.pub``, and a worker with no configured keys trusts
that public key. A worker never reads the secret key file.

The log key (signed tree heads of the submission logs, native/SPEC.md §14)::

    RINGTALLY_LOG_KEY_FILE           the workers' secret key file: they sign the heads
    RINGTALLY_LOG_PUBLIC_KEY         the key a verifier (receipts, the witness) trusts
    RINGTALLY_WITNESS_KEY_FILE       the witness's key (co-signatures of heads it recomputed)

Likewise the first worker (or ``ringtally stack up``) creates
``<data_dir>/log.key`` when no file is configured, with ``<data_dir>/log.pub``
beside it, which verifiers with no configured key trust.

Without ``RINGTALLY_DATA_DIR`` the data directory is found the same way from
any directory of a project (:func:`locate_data_dir`), so the stack, the CLI
and a worker started elsewhere share one registrar key. Every field has a
description: docs/configuration.md is generated from them
(:func:`settings_markdown`), and ``ringtally config show`` prints the values in
force with their sources (:meth:`Settings.sources`), secrets masked
(:meth:`Settings.redacted`).
"""

from __future__ import annotations

import difflib
import json
import os
import re
import ssl
import tomllib
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, ValidationError, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

__all__ = [
    "DATA_DIR_NAME",
    "HEX_PUBLIC_KEY",
    "OUTPUT_TOPICS",
    "PLAIN_NAME",
    "SECRET_SETTINGS",
    "Settings",
    "get_settings",
    "lenient_settings",
    "locate_data_dir",
    "mask_secrets",
    "redact_url",
    "setting_error",
    "settings_markdown",
    "shown_value",
    "unknown_variables",
]

#: Topic prefixes and schema names: what may go into a topic name or a SQL identifier.
PLAIN_NAME = _NAME = re.compile(r"^[A-Za-z0-9._-]{1,100}$")
#: A 32-byte public key as written in settings and in ``registrar.pub``: 64 lowercase hex.
HEX_PUBLIC_KEY = re.compile(r"^[0-9a-f]{64}$")

#: RocksDB databases a worker opens per votes partition it owns: the tokens and tally
#: tables (agents/pipeline.py), one database per table partition.
TABLES_PER_PARTITION = 2
#: Settings whose values are secret (or may hold one): never echoed in an error or shown.
SECRET_SETTINGS = frozenset({"kafka_sasl_password", "kafka_client_config"})
_SASL = ("SASL_PLAINTEXT", "SASL_SSL")
_TLS = ("SSL", "SASL_SSL")
#: Client keys the passthrough may not carry: the bootstrap list and every security key
#: (TLS, SASL, security.protocol). Each either has its own setting or could weaken one:
#: ``enable.ssl.certificate.verification=false`` or ``ssl.endpoint.identification.algorithm=none``
#: would make confluent-kafka clients trust any broker.
_OWN_SETTING = re.compile(r"^(bootstrap\.servers|security\..*|sasl\..*|ssl\..*|enable\.ssl\..*)$")

#: The topics the pipeline writes and the sink reads (see ``Settings.output_prefix``).
OUTPUT_TOPICS = frozenset({"ballots", "tallies", "rejections", "audit", "heads", "sink-dlq"})


class Settings(BaseSettings):
    """Where the services are, how topics are laid out, and the tally rules."""

    model_config = SettingsConfigDict(
        env_prefix="RINGTALLY_", frozen=True, extra="ignore", validate_default=True
    )

    # --- services -------------------------------------------------------
    kafka_bootstrap: str = Field(
        "127.0.0.1:19092", description="Kafka bootstrap servers, host:port[,host:port]"
    )
    kafka_timeout: float = Field(
        10.0,
        gt=0,
        le=600.0,
        description="seconds a CLI command waits for Kafka to answer before it reports it "
        "unreachable (exit 2) or gives up a request",
    )
    kafka_controller_port: int = Field(
        19093, ge=1, le=65535, description="the local stack's KRaft controller port (stack only)"
    )
    kafka_secure_port: int = Field(
        19094,
        ge=1,
        le=65535,
        description="the secured local broker's SASL_SSL port (stack up --secure)",
    )
    kafka_secure_controller_port: int = Field(
        19095, ge=1, le=65535, description="the secured local broker's controller port (stack only)"
    )
    # How every Kafka client authenticates: turned into each client library's
    # configuration in one place, streams/kafka_client.py (docs/security.md).
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = Field(
        "PLAINTEXT",
        description="how every Kafka client connects: PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL",
    )
    kafka_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] = Field(
        "SCRAM-SHA-512", description="used with SASL_PLAINTEXT and SASL_SSL"
    )
    kafka_sasl_username: str | None = Field(None, description="SASL user (the Kafka principal)")
    kafka_sasl_password: SecretStr | None = Field(
        None, description="SASL password (never shown, logged or echoed)"
    )
    kafka_ssl_ca_file: Path | None = Field(
        None,
        description="PEM CA certificate(s) the broker's certificate must chain to; "
        "default: the system's CAs",
    )
    kafka_ssl_key_file: Path | None = Field(
        None, description="PEM private key (unencrypted) of kafka_ssl_cert_file"
    )
    kafka_ssl_cert_file: Path | None = Field(
        None, description="PEM client certificate (mutual TLS), with kafka_ssl_key_file"
    )
    kafka_client_config: Annotated[dict[str, str], NoDecode] = Field(
        default_factory=dict,
        description="other client properties, JSON, librdkafka names "
        '(e.g. {"client.rack": "r1"}): passed to confluent-kafka clients as they are, '
        "to aiokafka clients where it has the same option (streams/kafka_client.py); no "
        "`security.*`, `sasl.*`, `ssl.*` or `enable.ssl.*` key",
    )
    postgres_dsn: str = Field(
        "postgresql://ringtally@127.0.0.1:15432/ringtally",
        description="libpq-style URL; a password in it is masked whenever settings are shown",
    )
    postgres_schema: str = Field(
        "ringtally", description="Postgres schema of the sink's tables (--schema overrides it)"
    )
    postgres_sink_role: str | None = Field(
        None,
        description="Postgres role the migrations grant the sink's rights to (it inserts into "
        "audit_log but owns nothing); the sink then connects as it. Unset: the sink uses the "
        "migrating role (which owns the tables)",
    )
    redis_url: str = Field(
        "redis://127.0.0.1:16379/0",
        description="redis://, rediss:// or unix:// URL of the read model; a password in it is "
        "masked whenever settings are shown",
    )

    # --- topics and tables ---------------------------------------------
    topic_prefix: str = Field("ringtally", description="every topic is <prefix>.<name>")
    output_prefix: str | None = Field(
        None,
        description="prefix of the output topics when not topic_prefix: a replay reads the live "
        "inputs and writes shadow outputs",
    )
    partitions: int = Field(12, ge=1, le=1024, description="partitions of the votes topic")
    replication_factor: int = Field(1, ge=1, le=16, description="replicas of every topic")
    min_insync_replicas: int | None = Field(
        None,
        ge=1,
        le=16,
        description="min.insync.replicas of every topic when replication_factor > 1 (default: "
        "replication_factor - 1): replicas an acks=all write must reach; at most "
        "replication_factor",
    )
    votes_retention_ms: int = Field(
        -1,
        ge=-1,
        description="retention.ms of the votes topic (-1: for ever). Shorter loses replays from "
        "before it, the vote in a late rejection, and the vote in receipts and bulletins",
    )
    output_retention_ms: int = Field(
        -1,
        ge=-1,
        description="retention.ms of the ballots, rejections and audit topics (-1: for ever). "
        "Shorter: a witness started later cannot recompute older roots, and a sink stopped "
        "longer stops at a gap (docs/sink.md)",
    )
    table_store: Literal["rocksdb", "memory"] = Field(
        "rocksdb", description="where a worker keeps its tables: rocksdb (on disk) or memory"
    )
    standby_replicas: int = Field(
        0, ge=0, le=8, description="standby copies of each table partition on other workers"
    )
    rocksdb_write_buffer: int = Field(
        4 * 1024 * 1024, ge=1024 * 1024, description="bytes per memtable, per table partition"
    )
    rocksdb_write_buffers: int = Field(2, ge=2, le=8, description="memtables per table partition")
    rocksdb_memory: int | None = Field(
        None,
        ge=4 * 1024 * 1024,
        description="bytes of RocksDB memory for the whole worker, however many table partitions "
        "it owns: one cache shared by all of them (data, index and filter blocks), charged "
        "for the memtables too, which are flushed once they hold half of it; default: two "
        "thirds of rocksdb_write_buffer per table partition, at least 64 MiB (64 MiB for 12 "
        "partitions)",
    )
    data_dir: Path = Field(
        default_factory=lambda: locate_data_dir()[0],
        description="stack data, registrar key, table stores, jar cache; default: the nearest "
        ".ringtally/ above the current directory, else <checkout>/.ringtally in a ringtally "
        "source checkout, else $XDG_DATA_HOME/ringtally (~/.local/share/ringtally)",
    )

    # --- worker ---------------------------------------------------------
    app_id: str | None = Field(
        None, description="Faust app id (consumer group); defaults to <topic_prefix>-worker"
    )
    web_host: str = Field(
        "127.0.0.1",
        description="address the worker's web server (/health, /metrics) and the sink's metrics "
        "server bind (0.0.0.0: every interface)",
    )
    web_port: int = Field(
        6066,
        ge=1,
        le=65535,
        description="the worker's web port (ringtally worker -p overrides it); also names the "
        "worker's table directory",
    )
    session_timeout: float = Field(
        10.0,
        ge=3.0,
        le=300.0,
        description="seconds before a silent worker's partitions move (within the brokers' "
        "group.min.session.timeout.ms..group.max.session.timeout.ms, 6 s..30 min by default: a "
        "worker refuses to start outside them); at least 3 s, so the ownership lease, which "
        "ends a second or more before the session, outlasts a heartbeat interval",
    )
    changelog_compaction_lag: float = Field(
        3600.0,
        ge=0,
        le=7 * 24 * 3600.0,
        description="seconds a table changelog record stays safe from compaction "
        "(min.compaction.lag.ms): the time a partition's owner has to re-write a key that "
        "a paused worker's late write landed on, before compaction could drop the owner's "
        "newer record (docs/reliability.md, zombie workers)",
    )
    stall_after: float = Field(
        20.0,
        ge=0,
        le=3600.0,
        description="seconds an owned partition with records waiting may stay unread "
        "before the worker seeks back to its committed offsets (0: never)",
    )
    producer_linger: float = Field(
        0.005, ge=0, le=1.0, description="seconds the worker's producer waits to fill a batch"
    )
    producer_buffer: int = Field(
        10_000,
        ge=100,
        le=1_000_000,
        description="table changelog writes queued before an agent waits for them to drain",
    )
    verify_batch_size: int = Field(
        256, ge=1, le=10_000, description="votes the verifier checks in one batch, at most"
    )
    verify_batch_window: float = Field(
        0.02, gt=0, le=5.0, description="seconds the verifier waits to fill a batch"
    )
    max_ring_size: int = Field(
        1024, ge=1, le=65_536, description="members a ring may have; a bigger ring is malformed"
    )
    control_sync_interval: float = Field(
        0.1,
        gt=0,
        le=10.0,
        description="seconds between the control reader's checks that it has read the control "
        "topics to their end (a vote newer than the last check waits for the next one)",
    )
    control_clock_skew_ms: int = Field(
        200,
        ge=0,
        le=60_000,
        description="how far (ms) a broker's clock may lag the worker's: a vote is decided only "
        "once the control topics were read to their end this long after its broker timestamp; "
        "also the wait before an idle votes partition passes a closing (native/SPEC.md §14.3)",
    )
    metrics_port: int = Field(
        0,
        ge=0,
        le=65535,
        description="the sink's Prometheus /metrics port (0: off); "
        "a worker serves /metrics on web_port",
    )

    # --- registrar (signed control plane) ----------------------------------------
    registrar_public_keys: str = Field(
        "",
        description="registrar public keys (64 hex each, comma-separated) whose signatures on "
        "ring versions and submissions the workers accept; empty: trust "
        "<data_dir>/registrar.pub",
    )
    registrar_key_file: Path | None = Field(
        None,
        description="the registrar's secret key file (registrar side only; never a worker's); "
        "default <data_dir>/registrar.key, created on first use",
    )

    # --- log key (signed tree heads) -------------------------------------------
    log_key_file: Path | None = Field(
        None,
        description="the workers' secret key signing the submission logs' heads; default "
        "<data_dir>/log.key, created on first use",
    )
    witness_key_file: Path | None = Field(
        None,
        description="the witness's secret key co-signing heads it recomputed; default "
        "<data_dir>/witness.key, created on first use",
    )
    log_public_key: str = Field(
        "",
        description="the log public key (64 hex) receipts and heads are checked against; "
        "empty: trust <data_dir>/log.pub",
    )

    # --- tally rules ------------------------------------------------------
    min_votes: int = Field(3, ge=1, description="votes a submission needs before it is decided")
    flag_threshold: int = Field(
        3, ge=1, description="flag votes that make a decided submission ESCALATED"
    )

    @field_validator("topic_prefix", "postgres_schema", "output_prefix", "postgres_sink_role")
    @classmethod
    def _plain_name(cls, value: str | None) -> str | None:
        if value is not None and not _NAME.match(value):
            raise ValueError(f"must match {_NAME.pattern}, got {value!r}")
        return value

    @field_validator("kafka_bootstrap")
    @classmethod
    def _host_ports(cls, value: str) -> str:
        for server in value.split(","):
            if "@" in server or "=" in server:  # user:password@host: never echoed
                raise ValueError(
                    "is not host:port[,host:port] (it holds '@' or '='; Kafka credentials do "
                    "not belong in the bootstrap list; the value is not shown)"
                )
            _check_port(server.strip().rpartition("]")[2].rpartition(":")[2], server)
        return value

    @field_validator("postgres_dsn")
    @classmethod
    def _dsn(cls, value: str) -> str:
        # A malformed URL is a configuration error here, not "unavailable" later
        # (issue 18). Messages show the value with any password masked.
        shown = shown_value(value)
        scheme, sep, rest = value.partition("://")
        if not sep and "=" in value:  # libpq's key=value form; asyncpg reads URLs only
            raise ValueError(
                f"is a libpq key=value string; write it as a "
                f"postgresql://user:password@host:port/database URL: {shown}"
            )
        if not sep or scheme not in ("postgresql", "postgres"):
            raise ValueError(f"is not a postgresql://user@host:port/database URL: {shown}")
        # hosts follow the LAST '@' (a password may hold '/' or '@'), so no port shown
        # here can be part of a password
        hosts = rest.rpartition("@")[2].split("/", 1)[0].split("?", 1)[0]
        for host in filter(None, hosts.split(",")):  # libpq allows host1:p1,host2:p2
            port = host.rpartition("]")[2].rpartition(":")
            _check_port(port[2] if port[1] else "", shown)
        return value

    @field_validator("redis_url")
    @classmethod
    def _redis(cls, value: str) -> str:
        shown = shown_value(value)
        parts = urlsplit(value)
        if parts.scheme not in ("redis", "rediss", "unix"):
            raise ValueError(f"is not a redis://, rediss:// or unix:// URL: {shown}")
        try:
            parts.port  # noqa: B018 - raises on a port that is not a number
        except ValueError:
            raise ValueError(f"has a port that is not a number: {shown}") from None
        database = parts.path.strip("/")
        if parts.scheme != "unix" and database and not database.isdigit():
            raise ValueError(f"names database {database!r}; a Redis database is a number")
        return value

    @field_validator("min_insync_replicas")
    @classmethod
    def _min_insync(cls, value: int | None, info: ValidationInfo) -> int | None:
        factor = info.data.get("replication_factor")
        if value is not None and factor is not None and value > factor:
            raise ValueError(
                f"{value} is more than RINGTALLY_REPLICATION_FACTOR={factor}: no write could "
                "ever be acknowledged"
            )
        return value

    @property
    def min_insync(self) -> int | None:
        """The min.insync.replicas topics get: None on unreplicated topics."""
        if self.replication_factor <= 1:
            return None
        return self.min_insync_replicas or self.replication_factor - 1

    @field_validator("kafka_sasl_username")
    @classmethod
    def _sasl_user(cls, value: str | None, info: ValidationInfo) -> str | None:
        protocol = info.data.get("kafka_security_protocol")
        if protocol in _SASL and not value:
            raise ValueError(f"required with RINGTALLY_KAFKA_SECURITY_PROTOCOL={protocol}")
        if protocol not in _SASL and value:
            raise ValueError(
                f"a SASL user is set but RINGTALLY_KAFKA_SECURITY_PROTOCOL={protocol} does not "
                "authenticate: set it to SASL_SSL or SASL_PLAINTEXT"
            )
        return value

    @field_validator("kafka_sasl_password")
    @classmethod
    def _sasl_password(cls, value: SecretStr | None, info: ValidationInfo) -> SecretStr | None:
        # The messages never hold the value (setting_error shows the message only).
        protocol = info.data.get("kafka_security_protocol")
        if protocol in _SASL and (value is None or not value.get_secret_value()):
            raise ValueError(f"required with RINGTALLY_KAFKA_SECURITY_PROTOCOL={protocol}")
        if protocol not in _SASL and value is not None and value.get_secret_value():
            raise ValueError(
                f"a SASL password is set but RINGTALLY_KAFKA_SECURITY_PROTOCOL={protocol} does "
                "not authenticate: set it to SASL_SSL or SASL_PLAINTEXT"
            )
        return value

    @field_validator("kafka_ssl_ca_file", "kafka_ssl_cert_file", "kafka_ssl_key_file")
    @classmethod
    def _tls_file(cls, value: Path | None, info: ValidationInfo) -> Path | None:
        key_file = info.data.get("kafka_ssl_key_file")  # declared before the certificate
        if info.field_name == "kafka_ssl_cert_file" and (value is None) != (key_file is None):
            raise ValueError(
                "required with RINGTALLY_KAFKA_SSL_KEY_FILE"
                if value is None
                else "needs RINGTALLY_KAFKA_SSL_KEY_FILE (its private key) too"
            )
        if value is None:
            return None
        protocol = info.data.get("kafka_security_protocol")
        if protocol not in _TLS:
            raise ValueError(
                f"a TLS file is set but RINGTALLY_KAFKA_SECURITY_PROTOCOL={protocol} uses no "
                "TLS: set it to SSL or SASL_SSL"
            )
        path = value.expanduser().resolve()
        if not path.is_file():
            raise ValueError(f"no such file: {path}")
        # Loaded once here, so a file that is no PEM fails every process at start, in
        # one line, before any client or task is made.
        try:
            if info.field_name == "kafka_ssl_ca_file":
                ssl.create_default_context(cafile=str(path))
            elif info.field_name == "kafka_ssl_cert_file":
                ssl.create_default_context().load_cert_chain(str(path), str(key_file))
        except (ssl.SSLError, OSError) as exc:
            what = "PEM certificate" if key_file is None else "PEM certificate of that key"
            raise ValueError(f"{path} is not a readable {what} ({type(exc).__name__})") from None
        return path

    @field_validator("kafka_client_config", mode="before")
    @classmethod
    def _json(cls, value: object) -> object:
        # JSON text, from the environment (NoDecode: a bad value is our one-line error,
        # not pydantic-settings' traceback) or a child's to_env() read back.
        if isinstance(value, str):
            try:
                return json.loads(value) if value.strip() else {}
            except ValueError:
                raise ValueError('must be a JSON object like {"client.rack": "r1"}') from None
        return value

    @field_validator("kafka_client_config")
    @classmethod
    def _passthrough(cls, value: dict[str, str]) -> dict[str, str]:
        for key in value:
            if not re.fullmatch(r"[a-z0-9]+(\.[a-z0-9]+)*", key):
                raise ValueError(f"{key[:60]!r} is not a client property name like client.rack")
            if _OWN_SETTING.match(key) or "password" in key or "secret" in key:
                raise ValueError(
                    f"{key!r} is a security key: TLS and SASL take only their "
                    "RINGTALLY_KAFKA_* settings (each has its own), never the passthrough"
                )
        return value

    @field_validator("registrar_public_keys")
    @classmethod
    def _hex_keys(cls, value: str) -> str:
        keys = [part.strip() for part in value.split(",") if part.strip()]
        for key in keys:
            if not HEX_PUBLIC_KEY.match(key):
                raise ValueError(f"a registrar public key is 64 lowercase hex digits, got {key!r}")
        if len(set(keys)) != len(keys):
            raise ValueError("a registrar public key is listed twice")
        return ",".join(keys)  # one spelling, whatever the spaces

    @field_validator("log_public_key")
    @classmethod
    def _hex_log_key(cls, value: str) -> str:
        if value and not HEX_PUBLIC_KEY.match(value.strip()):
            raise ValueError(f"the log public key is 64 lowercase hex digits, got {value!r}")
        return value.strip()

    @field_validator("data_dir", mode="before")
    @classmethod
    def _not_empty(cls, value: object) -> object:
        if isinstance(value, str) and not value.strip():
            raise ValueError("must not be empty (an empty value would mean the current directory)")
        return value

    @field_validator("data_dir", "registrar_key_file", "log_key_file", "witness_key_file")
    @classmethod
    def _absolute(cls, value: Path | None) -> Path | None:
        return None if value is None else value.expanduser().resolve()

    @property
    def group_id(self) -> str:
        """Faust app id, which is also the consumer group and changelog prefix."""
        return self.app_id or f"{self.topic_prefix}-worker"

    @property
    def registrar_public_key_list(self) -> list[bytes]:
        """``registrar_public_keys`` as 32-byte keys (empty: none configured)."""
        return [bytes.fromhex(k) for k in self.registrar_public_keys.split(",") if k]

    @property
    def registrar_key_path(self) -> Path:
        """The registrar's secret key file (``registrar_key_file``, else
        ``<data_dir>/registrar.key``)."""
        return self.registrar_key_file or self.data_dir / "registrar.key"

    @property
    def registrar_public_key_path(self) -> Path:
        """Where the registrar side leaves its public key for workers: ``registrar.pub``."""
        return self.registrar_key_path.with_suffix(".pub")

    @property
    def log_key_path(self) -> Path:
        """The log's secret key file (``log_key_file``, else ``<data_dir>/log.key``)."""
        return self.log_key_file or self.data_dir / "log.key"

    @property
    def log_public_key_path(self) -> Path:
        """Where the workers leave the log's public key for verifiers: ``log.pub``."""
        return self.log_key_path.with_suffix(".pub")

    @property
    def witness_key_path(self) -> Path:
        """The witness's secret key file (``witness_key_file``, else ``<data_dir>/witness.key``)."""
        return self.witness_key_file or self.data_dir / "witness.key"

    def topic(self, name: str) -> str:
        """Full topic name for a short name: ``topic("votes") == "ringtally.votes"``.

        Output topics (:data:`OUTPUT_TOPICS`) take ``output_prefix`` when it is set.
        """
        prefix = (
            self.output_prefix
            if self.output_prefix and name in OUTPUT_TOPICS
            else self.topic_prefix
        )
        return f"{prefix}.{name}"

    def to_env(self) -> dict[str, str]:
        """These settings as ``RINGTALLY_*`` variables, for a child process."""
        out = {}
        for name, value in self.model_dump(exclude_none=True).items():
            if isinstance(value, SecretStr):
                value = value.get_secret_value()  # the child needs the value itself
            elif isinstance(value, dict):
                value = json.dumps(value, sort_keys=True)
            out[f"RINGTALLY_{name.upper()}"] = (
                str(value).lower() if isinstance(value, bool) else str(value)
            )
        return out

    def rocksdb_options(self) -> dict[str, int]:
        """RocksDB options for one table (Faust opens one database per table partition).

        Faust's defaults (3 x 64 MiB memtables and a 2 GiB block cache per
        database, 36 databases for 12 partitions) let a worker's memory follow
        its table state for gigabytes before RocksDB flushes (reliability F6).
        Bounds per database still grew with the partition count and filled for
        hours at a low rate (the soak, issue 16), so ``memory_budget`` is one
        bound for the whole worker (``streams.tables.BoundedRocksDBOptions``).
        """
        return {
            "write_buffer_size": self.rocksdb_write_buffer,
            "max_write_buffer_number": self.rocksdb_write_buffers,
            "memory_budget": self.rocksdb_memory_budget,
        }

    @property
    def heartbeat_interval(self) -> float:
        """Seconds between the worker's group heartbeats: a third of the session timeout, at
        most Kafka's default 3 s. Each answered one renews the ownership lease
        (streams.lease), which must not lapse between two of them."""
        return min(3.0, self.session_timeout / 3)

    @property
    def rocksdb_memory_budget(self) -> int:
        """``rocksdb_memory``, or by default sized for every table partition (a worker may
        own them all after a failover): memtables get half, a third of a write buffer per
        database, so each fills a while before it is flushed; 64 MiB at least."""
        if self.rocksdb_memory is not None:
            return self.rocksdb_memory
        databases = self.partitions * TABLES_PER_PARTITION
        return max(64 * 1024 * 1024, databases * self.rocksdb_write_buffer * 2 // 3)

    def __repr_args__(self) -> list[tuple[str, object]]:
        """``repr()`` and ``str()`` show :meth:`redacted`: a traceback, a log line or a
        debugger never prints a Postgres or Redis password (review of issue 15)."""
        return list(self.redacted().items())

    def redacted(self) -> dict[str, object]:
        """Settings as a dict safe to print or log: every secret masked.

        Generic, so a setting added later is covered without being listed: a
        ``SecretStr`` shows as ``***``, a password inside a URL as ``user:***@``.
        """
        out: dict[str, object] = {}
        broken = self.broken
        for name in type(self).model_fields:
            if name in broken:  # lenient_settings: its error is shown instead
                continue
            value = getattr(self, name)
            if isinstance(value, SecretStr):
                value = "***" if value.get_secret_value() else ""
            elif isinstance(value, str):
                value = mask_secrets(value)
            elif isinstance(value, Path):
                value = str(value)
            out[name] = value
        if not {"registrar_key_file", "data_dir"} & broken.keys():
            out["registrar_key_file"] = str(self.registrar_key_path)  # the path, never the key
        if not {"log_key_file", "data_dir"} & broken.keys():
            out["log_key_file"] = str(self.log_key_path)
        if not {"witness_key_file", "data_dir"} & broken.keys():
            out["witness_key_file"] = str(self.witness_key_path)
        return out

    @property
    def broken(self) -> dict[str, str]:
        """``{field: one-line error}`` of every bad value: none (see :func:`lenient_settings`)."""
        return {}

    @classmethod
    def sources(cls, environ: Mapping[str, str] | None = None) -> dict[str, str]:
        """Where each setting's value comes from: its variable, or the default (and why)."""
        env = {k.upper(): k for k in (os.environ if environ is None else environ)}
        out = {}
        for name in cls.model_fields:
            variable = f"RINGTALLY_{name.upper()}"
            if variable in env:
                out[name] = f"env {env[variable]}"
            elif name == "data_dir":
                out[name] = f"default: {locate_data_dir()[1]}"
            else:
                out[name] = "default"
        return out


def _check_port(port: str, where: str) -> None:
    if port and not (port.isdigit() and 1 <= int(port) <= 65535):
        raise ValueError(f"port {port!r} is not a number from 1 to 65535 (in {where})")


#: The directory name ringtally keeps its data in, in a project (see :func:`locate_data_dir`).
DATA_DIR_NAME = ".ringtally"


def locate_data_dir(cwd: Path | None = None) -> tuple[Path, str]:
    """The data directory when ``RINGTALLY_DATA_DIR`` is not set, and why that one.

    The same from anywhere below a project, so a worker, the CLI and the stack
    started from different directories share one registrar key (issue 18):

    1. the nearest ``.ringtally/`` directory in the current directory or above it;
    2. else, inside a ringtally source checkout (a ``pyproject.toml`` naming the
       project ``ringtally``), ``<checkout>/.ringtally``;
    3. else the user data directory, ``$XDG_DATA_HOME/ringtally``
       (``~/.local/share/ringtally``).

    Nothing is created here: finding the directory never writes.
    """
    start = (cwd or Path.cwd()).resolve()
    for directory in (start, *start.parents):
        if (directory / DATA_DIR_NAME).is_dir():
            return directory / DATA_DIR_NAME, f"the nearest {DATA_DIR_NAME}/ (in {directory})"
        if _is_ringtally_checkout(directory):
            return directory / DATA_DIR_NAME, f"the ringtally source checkout {directory}"
    base = Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")
    return base / "ringtally", "the user data directory (no .ringtally/ or checkout found)"


def _is_ringtally_checkout(directory: Path) -> bool:
    try:
        with open(directory / "pyproject.toml", "rb") as f:
            return tomllib.load(f).get("project", {}).get("name") == "ringtally"
    except (OSError, tomllib.TOMLDecodeError):
        return False


#: ``RINGTALLY_*`` variables that are not :class:`Settings` fields but are read elsewhere
#: (the gateway's settings, the local stack's tool paths, the test suite's switches).
OTHER_VARIABLE_PREFIXES = (
    "RINGTALLY_GATEWAY_",
    "RINGTALLY_STACK_",
    "RINGTALLY_TEST_",
    "RINGTALLY_DASHBOARD_",
)


#: Variables of settings that were replaced, and the variable that replaced each: a
#: deployment that still sets one is told what to set instead.
REPLACED_VARIABLES = {
    # session 11 (the soak): one RocksDB bound for the whole worker, not one per partition
    "RINGTALLY_ROCKSDB_BLOCK_CACHE": "RINGTALLY_ROCKSDB_MEMORY",
}


def unknown_variables(environ: Mapping[str, str] | None = None) -> list[tuple[str, str | None]]:
    """``RINGTALLY_*`` variables no one reads (a typo is otherwise silently ignored), each
    with the closest known setting's variable, or the one that replaced it (None when
    nothing is close)."""
    known = [f"RINGTALLY_{name.upper()}" for name in Settings.model_fields]
    names = [k.removeprefix("RINGTALLY_") for k in known]  # the shared prefix is no likeness
    out = []
    for variable in sorted(os.environ if environ is None else environ):
        upper = variable.upper()
        if not upper.startswith("RINGTALLY_") or upper in known:
            continue
        if upper.startswith(OTHER_VARIABLE_PREFIXES):
            continue
        if upper in REPLACED_VARIABLES:
            out.append((variable, REPLACED_VARIABLES[upper]))
            continue
        close = difflib.get_close_matches(upper.removeprefix("RINGTALLY_"), names, n=1, cutoff=0.7)
        out.append((variable, f"RINGTALLY_{close[0]}" if close else None))
    return out


def setting_error(exc: ValidationError) -> str:
    """A settings validation error as one line naming the variable; never the value itself
    (it may be a secret: a validator that shows one masks it)."""
    return _one_error(exc.errors()[0])


def _one_error(error: Mapping[str, object]) -> str:
    loc = error.get("loc") or ("?",)
    message = str(error.get("msg", "invalid value")).removeprefix("Value error, ")
    return f"RINGTALLY_{str(loc[0]).upper()}: {message}"  # type: ignore[index]


def settings_markdown() -> str:
    """docs/configuration.md: every setting, its variable, default and description,
    generated from :class:`Settings` (``ringtally config docs``; a test keeps it current)."""
    lines = [
        "# Configuration",
        "",
        "<!-- generated by `ringtally config docs > docs/configuration.md`; do not edit -->",
        "",
        "Every ringtally process (worker, sink, CLI, gateway) reads one",
        "settings object, `streams/settings.py`, from `RINGTALLY_*` environment",
        "variables; a variable not set takes the default, which points at the local",
        "stack. `ringtally config show` prints the values in force and where each came",
        "from, secrets masked. A `RINGTALLY_*` variable that is no setting (a typo) gets",
        "a warning naming the closest one. A bad value stops only the commands that",
        "read it (with one line naming the variable; a value that may hold a password",
        "is shown masked or not at all), and `config show` shows it with its error.",
        "The gateway's own `RINGTALLY_GATEWAY_*`",
        "variables are in [gateway.md](gateway.md).",
        "",
        "| variable | default | what it is |",
        "|---|---|---|",
    ]
    for name, field in Settings.model_fields.items():
        if name == "data_dir":
            default = "see below"
        elif field.default_factory is not None:
            default = repr(field.default_factory())  # type: ignore[call-arg]
        elif isinstance(field.default, Path):
            default = str(field.default)
        else:
            default = "" if field.default is None else str(field.default)
        default = f"`{default}`" if default not in ("", "see below") else default or "(none)"
        description = (field.description or "").replace("|", "\\|")
        description = description.replace("<", "&lt;").replace(">", "&gt;")
        lines.append(f"| `RINGTALLY_{name.upper()}` | {default} | {description} |")
    lines += [
        "",
        "## The data directory",
        "",
        "`RINGTALLY_DATA_DIR` when set (a relative path is taken from the current",
        "directory). Otherwise it is found the same way from anywhere below a project,",
        "so the stack, the registrar side and a worker started from different",
        "directories share one registrar key:",
        "",
        "1. the nearest `.ringtally/` directory in the current directory or above it;",
        "2. else, inside a ringtally source checkout (a `pyproject.toml` whose project",
        "   is `ringtally`), `<checkout>/.ringtally`;",
        "3. else the user data directory, `$XDG_DATA_HOME/ringtally`",
        "   (`~/.local/share/ringtally`).",
        "",
        "Finding it creates nothing; `--help` and read-only commands never create it.",
        "`ringtally config show` says which rule chose it.",
        "",
    ]
    return "\n".join(lines)


#: ``scheme://user:PASSWORD@`` up to the LAST ``@`` (a password may hold ``@`` or ``/``).
_URL_PASSWORD = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*://[^:@/]*:)(.*)(@[^@]*)$", re.S)
#: ``password=...`` in a libpq key=value string or a URL's query.
_KEYWORD_PASSWORD = re.compile(r"(password\s*=\s*)('(?:[^'\\]|\\.)*'?|[^\s&]+)", re.I)


def mask_secrets(value: str) -> str:
    """``value`` with every password in it shown as ``***``: a URL's ``user:***@`` and a
    ``password=***`` keyword (libpq key=value strings, URL queries). Over-masks rather
    than under-masks."""
    value = _URL_PASSWORD.sub(r"\1***\3", value)
    return _KEYWORD_PASSWORD.sub(r"\1***", value)


def redact_url(url: str) -> str:
    """Replace the password of a URL with ``***`` (user and host stay readable)."""
    return mask_secrets(url)


def shown_value(value: str) -> str:
    """How an error message may show a setting that can hold a secret: a URL or
    key=value string with its passwords masked; anything else (a bare word could be the
    password itself) not at all."""
    if "://" in value or "=" in value:
        return mask_secrets(value)
    return "(value not shown: it may be a secret)"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once from the environment."""
    return Settings()  # type: ignore[call-arg]


class _PartlyBroken(Settings):
    """Settings read with some bad ``RINGTALLY_*`` values: the command line's view, so one bad
    value stops only what uses it (issue 18: ``RINGTALLY_POSTGRES_DSN=nonsense`` stopped
    ``keys show``). A broken field holds its default but reading it, or passing the whole
    object on (``to_env``, ``model_dump``), raises the one-line :class:`UsageProblem`; its
    methods read fields through the same guard, so no default leaks into a topic name."""

    def __getattribute__(self, name: str) -> object:
        if not name.startswith("_"):
            broken = object.__getattribute__(self, "__pydantic_private__")["_broken"]
            if name in broken:
                raise broken[name]
            if broken and name in _PASSES_ALL_ON:
                raise next(iter(broken.values()))
        return super().__getattribute__(name)

    @property
    def broken(self) -> dict[str, str]:
        """``{field: one-line error}`` of every bad value (for ``config show``)."""
        errors = object.__getattribute__(self, "__pydantic_private__")["_broken"]
        return {name: str(exc) for name, exc in errors.items()}


#: Methods that hand every value on at once: refused while any value is broken.
_PASSES_ALL_ON = frozenset({"to_env", "model_dump", "model_dump_json", "model_copy"})


def lenient_settings() -> Settings:
    """:func:`get_settings` for the command line: a bad value is an error only for a
    command that reads it (:class:`_PartlyBroken`); the worker and sink stay strict."""
    from streams.errors import UsageProblem

    try:
        return get_settings()
    except ValidationError:
        pass
    broken: dict[str, UsageProblem] = {}
    for _ in Settings.model_fields:  # each round replaces at least one bad value
        try:
            settings = _PartlyBroken(
                **{
                    n: Settings.model_fields[n].get_default(call_default_factory=True)
                    for n in broken
                }
            )
        except ValidationError as exc:
            for error in exc.errors():
                name = str((error.get("loc") or ("?",))[0])
                if name not in Settings.model_fields or name in broken:
                    raise
                broken[name] = UsageProblem(f"invalid setting {_one_error(error)}")
            continue
        settings.__pydantic_private__ = {"_broken": broken}
        return settings
    raise AssertionError("unreachable: every field replaced by its default")
