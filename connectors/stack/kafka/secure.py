"""The secured local Kafka (``ringtally stack up --secure``): SASL_SSL, SCRAM, ACLs.

A second single-node KRaft broker from the same jars, on ports of its own
(``RINGTALLY_KAFKA_SECURE_PORT`` / ``_SECURE_CONTROLLER_PORT``) so it runs
beside the plain stack. It exists to prove what docs/security.md says: each
role's principal may do what the trust model allows and nothing else.

* TLS: a throw-away CA (openssl) signs the broker's certificate for
  127.0.0.1; the CA's key is deleted once it has signed, so nothing else can
  ever be signed by it. Clients verify the broker with ``ca.pem``.
* Authentication: SCRAM-SHA-512 on the client listener; one user per role
  (worker, sink, producer, registrar, reader) and ``admin``, the super user
  the broker itself and ``stack up`` use. The users are created when the
  storage is formatted (``kafka-storage format --add-scram``, its arguments in
  a 0600 ``@argfile``: no password is ever on a command line). The
  controller listener (loopback) uses SASL PLAIN with the admin user only:
  KRaft controllers cannot check SCRAM.
* Authorization: ``StandardAuthorizer``, no ACL means no access; the ACLs of
  :func:`acl_bindings` are (re)applied on every ``up``.
* Credentials: ``<data_dir>/stack/secure/credentials.json`` (mode 0600).
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any, ClassVar

from streams.kafka_client import aiokafka_kwargs, kafka_config
from streams.settings import Settings

from ..errors import StackError
from ..service import LOOPBACK, Report
from .broker import KafkaService, write_private

__all__ = ["ROLES", "SecureKafkaService", "acl_bindings", "role_settings"]

#: One Kafka principal per role of docs/security.md's trust model.
ROLES: tuple[str, ...] = ("worker", "sink", "producer", "registrar", "reader", "witness")
ADMIN = "admin"
MECHANISM = "SCRAM-SHA-512"
#: Outputs of the pipeline (the sink's DLQ is the sink's own).
OUTPUTS = ("ballots", "tallies", "rejections", "audit", "heads")
INPUTS = ("votes", "rings", "submissions")
#: Group-id prefix of the SDK's throw-away consumers (reader, outcomes).
SDK_GROUPS = "ringtally-sdk-"


def role_settings(credentials: Path | str, role: str, base: Settings | None = None) -> Settings:
    """Settings of a client authenticated as ``role`` (or ``admin``) from a credentials file."""
    data = json.loads(Path(credentials).read_text())
    who = data["principals"][role]
    values: dict[str, Any] = dict(base.model_dump(exclude_unset=True)) if base else {}
    values.update(
        kafka_bootstrap=data["bootstrap"],
        kafka_security_protocol="SASL_SSL",
        kafka_sasl_mechanism=MECHANISM,
        kafka_sasl_username=who["username"],
        kafka_sasl_password=who["password"],
        kafka_ssl_ca_file=data["ca_file"],
    )
    return Settings(**values)


def acl_bindings(settings: Settings) -> list[tuple[str, str, str, str, str]]:
    """The least-privilege ACLs, as (principal, resource type, pattern type, name, operation).

    ``p`` is ``settings.topic_prefix``, ``g`` the worker's app id (consumer group and
    prefix of its internal topics). Every principal may DESCRIBE the topics of ``p``
    (names, partitions, configs: what a client checks before it starts); reading
    and writing is granted topic by topic.
    """
    p, g = settings.topic_prefix, settings.group_id
    topic = settings.topic
    out: list[tuple[str, str, str, str, str]] = []

    def allow(role: str, kind: str, pattern: str, name: str, *ops: str) -> None:
        out.extend((f"User:{role}", kind, pattern, name, op) for op in ops)

    for role in ROLES:
        allow(role, "TOPIC", "PREFIXED", f"{p}.", "DESCRIBE", "DESCRIBE_CONFIGS")
    # worker: reads the inputs, writes outputs; its internal topics, changelogs and group
    for name in INPUTS:
        allow("worker", "TOPIC", "LITERAL", topic(name), "READ")
    for name in OUTPUTS:
        allow("worker", "TOPIC", "LITERAL", topic(name), "WRITE")
    allow("worker", "TOPIC", "PREFIXED", f"{p}.", "CREATE")  # Faust declares its topics
    allow("worker", "TOPIC", "PREFIXED", f"{g}-", "ALL")
    allow("worker", "GROUP", "PREFIXED", g, "READ", "DESCRIBE")
    allow("worker", "CLUSTER", "LITERAL", "kafka-cluster", "IDEMPOTENT_WRITE")
    # sink: reads the outputs, writes its dead letters
    for name in OUTPUTS:
        allow("sink", "TOPIC", "LITERAL", topic(name), "READ")
    allow("sink", "TOPIC", "LITERAL", topic("sink-dlq"), "WRITE", "READ")
    allow("sink", "GROUP", "PREFIXED", f"{p}-sink", "READ", "DESCRIBE")
    # registrar: writes (and reads back) the control topics
    for name in ("rings", "submissions"):
        allow("registrar", "TOPIC", "LITERAL", topic(name), "WRITE", "READ")
    # producer: writes votes; reads the signed rings to sign with and the public
    # outcomes of its votes; never the votes topic
    allow("producer", "TOPIC", "LITERAL", topic("votes"), "WRITE")
    for name in ("rings", "submissions", "ballots", "rejections", "heads"):
        allow("producer", "TOPIC", "LITERAL", topic(name), "READ")
    # witness: reads what the log is built from and the signed heads; writes co-signatures
    for name in ("ballots", "heads"):
        allow("witness", "TOPIC", "LITERAL", topic(name), "READ")
    allow("witness", "TOPIC", "LITERAL", topic("witness"), "WRITE", "READ")
    allow("witness", "GROUP", "PREFIXED", f"{p}-witness", "READ", "DESCRIBE")
    # reader: the output topics only (and the witness co-signatures, also public)
    allow("reader", "TOPIC", "LITERAL", topic("witness"), "READ")
    for name in OUTPUTS:
        allow("reader", "TOPIC", "LITERAL", topic(name), "READ")
    for role in ("producer", "registrar", "reader"):
        allow(role, "GROUP", "PREFIXED", SDK_GROUPS, "READ", "DESCRIBE")
    return out


def _openssl(args: list[str], where: Path, env: dict[str, str] | None = None) -> None:
    """Run openssl; a password goes in ``env`` (``-passout env:NAME``), never in argv."""
    proc = subprocess.run(
        ["openssl", *args],
        cwd=where,
        capture_output=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
        env={**os.environ, **(env or {})},
    )
    if proc.returncode != 0:
        last = (proc.stderr.decode(errors="replace").strip().splitlines() or ["?"])[-1]
        raise StackError("kafka-secure", f"openssl {args[0]} failed: {last[:200]}")


def _wait_in_force(admin: Any, bindings: list[Any], timeout: float = 30.0) -> None:
    """Wait until the broker's authorizer lists every binding.

    ``create_acls`` returns once the controller has them; the broker applies them a
    moment later from the metadata log. A client denied meanwhile (a consumer's first
    metadata request) keeps the denial until its next metadata refresh, minutes later.
    """
    from confluent_kafka.admin import (
        AclBindingFilter,
        AclOperation,
        AclPermissionType,
        ResourcePatternType,
        ResourceType,
    )

    every = AclBindingFilter(
        ResourceType.ANY,
        None,
        ResourcePatternType.ANY,
        None,
        None,
        AclOperation.ANY,
        AclPermissionType.ANY,
    )
    deadline = time.monotonic() + timeout
    while True:
        listed = set(admin.describe_acls(every, request_timeout=10).result(timeout=10))
        if all(b in listed for b in bindings):
            return
        if time.monotonic() > deadline:
            raise StackError("kafka-secure", f"the ACLs were not in force after {timeout:.0f}s")
        time.sleep(0.1)


class SecureKafkaService(KafkaService):
    """The plain broker's life cycle with a SASL_SSL listener, SCRAM users and ACLs."""

    name: ClassVar[str] = "secure"
    port_setting: ClassVar[str] = (
        "RINGTALLY_KAFKA_SECURE_PORT / RINGTALLY_KAFKA_SECURE_CONTROLLER_PORT"
    )

    @property
    def broker_port(self) -> int:
        return int(self.settings.kafka_secure_port)

    @property
    def controller_port(self) -> int:
        return int(self.settings.kafka_secure_controller_port)

    @property
    def bootstrap(self) -> str:
        return f"{LOOPBACK}:{self.broker_port}"

    @property
    def credentials_file(self) -> Path:
        return self.dir / "credentials.json"

    @property
    def ca_file(self) -> Path:
        return self.dir / "ca.pem"

    @property
    def keystore(self) -> Path:
        return self.dir / "broker.p12"

    # --- secrets, made once ---------------------------------------------------

    def check_binaries(self) -> None:
        super().check_binaries()
        if shutil.which("openssl") is None:
            raise StackError(
                "kafka-secure",
                "openssl is not installed (it makes the throw-away CA)",
                fix="apt-get install openssl",
            )

    def _credentials(self) -> dict[str, Any]:
        return json.loads(self.credentials_file.read_text())

    def _make_secrets(self, report: Report) -> None:
        """CA, broker keystore and one password per principal (first start only)."""
        report(self.name, "making a throw-away CA, the broker certificate and credentials")
        d = self.dir
        store_pw = secrets.token_urlsafe(24)
        san = d / "san.cnf"
        san.write_text(
            "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n"
            "keyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth,clientAuth\n"
        )
        _openssl(
            ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "825", "-keyout", "ca.key"]
            + ["-out", "ca.pem", "-subj", "/CN=ringtally local stack CA (throw-away)"]
            + ["-addext", "basicConstraints=critical,CA:TRUE"]
            + ["-addext", "keyUsage=critical,keyCertSign,cRLSign"],
            d,
        )
        _openssl(
            ["req", "-newkey", "rsa:2048", "-nodes", "-keyout", "broker.key", "-out", "broker.csr"]
            + ["-subj", "/CN=127.0.0.1"],
            d,
        )
        _openssl(
            ["x509", "-req", "-in", "broker.csr", "-CA", "ca.pem", "-CAkey", "ca.key"]
            + ["-CAcreateserial", "-days", "825", "-out", "broker.pem", "-extfile", "san.cnf"],
            d,
        )
        _openssl(
            ["pkcs12", "-export", "-in", "broker.pem", "-inkey", "broker.key", "-certfile"]
            + ["ca.pem", "-name", "broker", "-out", "broker.p12", "-passout", "env:RT_STORE_PW"],
            d,
            env={"RT_STORE_PW": store_pw},
        )
        for name in ("ca.key", "ca.srl", "broker.key", "broker.csr", "san.cnf"):
            (d / name).unlink(missing_ok=True)  # the CA signs nothing ever again
        os.chmod(self.keystore, 0o600)
        principals = {
            role: {"username": role, "password": secrets.token_urlsafe(24)}
            for role in (*ROLES, ADMIN)
        }
        data = {
            "bootstrap": self.bootstrap,
            "ca_file": str(self.ca_file),
            "principals": principals,
            "keystore_password": store_pw,
        }
        write_private(self.credentials_file, json.dumps(data, indent=2) + "\n")

    def prepare(self, report: Report) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        os.chmod(self.dir, 0o700)  # keystore, credentials and server.properties hold secrets
        if not self.credentials_file.exists():
            if self.data_dir.exists():
                raise StackError(
                    "kafka-secure",
                    f"{self.credentials_file} is missing but the broker's data is there: its "
                    "SCRAM users cannot be recovered",
                    fix="'ringtally stack down secure --purge', then 'stack up --secure'",
                )
            self._make_secrets(report)
        super().prepare(report)

    def format_args(self) -> list[str]:
        users = self._credentials()["principals"]
        out = []
        for who in users.values():
            out += [
                "--add-scram",
                f"{MECHANISM}=[name={who['username']},password={who['password']}]",
            ]
        return out

    def properties(self, log_dir: Path) -> dict[str, object]:
        lines = super().properties(log_dir)
        creds = self._credentials()
        admin = creds["principals"][ADMIN]
        b, c = self.broker_port, self.controller_port
        user, pw = json.dumps(admin["username"]), json.dumps(admin["password"])
        lines.update(
            {
                "listeners": f"SASL_SSL://{LOOPBACK}:{b},CONTROLLER://{LOOPBACK}:{c}",
                "advertised.listeners": f"SASL_SSL://{LOOPBACK}:{b}",
                "inter.broker.listener.name": "SASL_SSL",
                "listener.security.protocol.map": "SASL_SSL:SASL_SSL,CONTROLLER:SASL_PLAINTEXT",
                "sasl.enabled.mechanisms": MECHANISM,
                "sasl.mechanism.inter.broker.protocol": MECHANISM,
                "listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config": (
                    "org.apache.kafka.common.security.scram.ScramLoginModule required "
                    f"username={user} password={pw};"
                ),
                "sasl.mechanism.controller.protocol": "PLAIN",
                "listener.name.controller.sasl.enabled.mechanisms": "PLAIN",
                "listener.name.controller.plain.sasl.jaas.config": (
                    "org.apache.kafka.common.security.plain.PlainLoginModule required "
                    f"username={user} password={pw} user_{admin['username']}={pw};"
                ),
                "ssl.keystore.type": "PKCS12",
                "ssl.keystore.location": self.keystore,
                "ssl.keystore.password": creds["keystore_password"],
                "ssl.truststore.type": "PEM",
                "ssl.truststore.location": self.ca_file,
                "ssl.client.auth": "none",
                "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
                "super.users": f"User:{admin['username']}",
                "allow.everyone.if.no.acl.found": "false",
                # a client must never make a topic by asking for it
                "auto.create.topics.enable": "false",
            }
        )
        return lines

    # --- running --------------------------------------------------------------

    def admin_settings(self) -> Settings:
        return role_settings(self.credentials_file, ADMIN, self.settings)

    def client_kwargs(self) -> dict[str, object]:
        """The health probe authenticates as the admin, through TLS."""
        return aiokafka_kwargs(self.admin_settings())

    def after_start(self, report: Report) -> None:
        count = self.provision(self.settings)
        report(self.name, f"{count} ACLs for {', '.join(ROLES)}; {self.credentials_file}")

    def provision(self, settings: Settings) -> int:
        """Create the topics of ``settings``' prefix as the admin and apply
        :func:`acl_bindings` for it (idempotent); returns how many ACLs."""
        from confluent_kafka.admin import (
            AclBinding,
            AclOperation,
            AclPermissionType,
            AdminClient,
            ResourcePatternType,
            ResourceType,
        )

        from streams.topics import ensure_topics

        admin_settings = role_settings(self.credentials_file, ADMIN, settings)
        ensure_topics(admin_settings, internal=True)
        bindings = [
            AclBinding(
                ResourceType["BROKER" if kind == "CLUSTER" else kind],  # librdkafka's name
                name,
                ResourcePatternType[pattern],
                principal,
                "*",
                AclOperation[op],
                AclPermissionType.ALLOW,
            )
            for principal, kind, pattern, name, op in acl_bindings(settings)
        ]
        admin = AdminClient(kafka_config(admin_settings))
        for future in admin.create_acls(bindings, request_timeout=30).values():
            try:
                future.result(timeout=30)
            except Exception as exc:  # noqa: BLE001 - one line naming the piece
                raise StackError("kafka-secure", f"creating the ACLs failed: {exc}") from None
        _wait_in_force(admin, bindings)
        return len(bindings)
