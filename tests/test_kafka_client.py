"""One Kafka client configuration for every client (issue 15), as pure checks.

Every place that builds a Kafka client takes its connection settings from
``streams/kafka_client.py``: a new site that does not (and so would talk
plaintext to a secured cluster, or not at all) fails
``test_every_kafka_client_goes_through_kafka_client``. The settings refuse
impossible combinations with one line naming the setting, and a password
never shows in a repr, a redacted dump or an error.
"""

from __future__ import annotations

import ast
import subprocess
from pathlib import Path

import pytest
from pydantic import ValidationError

from streams.kafka_client import (
    KafkaConfigProblem,
    aiokafka_kwargs,
    auth_fix,
    faust_broker_credentials,
    java_client_properties,
    kafka_config,
)
from streams.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
SECRET = "s3cret-pw-that-must-not-leak"

#: Client classes of aiokafka, confluent-kafka and Faust.
CLIENTS = {
    "AIOKafkaConsumer",
    "AIOKafkaProducer",
    "AIOKafkaClient",
    "AIOKafkaAdminClient",
    "Consumer",
    "Producer",
    "AdminClient",
    "App",
    "RingtallyApp",
}
HELPERS = {"aiokafka_kwargs", "kafka_config", "_admin_client", "_consumer"}
#: Sites allowed to build a client by hand, each with its reason.
EXEMPT = {
    # the plain stack's health probe talks to that broker's own PLAINTEXT listener,
    # whatever the settings' security protocol (they may point at a secured cluster)
    ("connectors/stack/kafka/broker.py", "AIOKafkaClient"),
}


def _name(func: ast.expr) -> str | None:
    if isinstance(func, ast.Name):
        return func.id
    if isinstance(func, ast.Attribute):
        return func.attr
    return None


def _uses_helper(call: ast.Call) -> bool:
    for node in ast.walk(call):
        if node is not call and isinstance(node, ast.Call) and _name(node.func) in HELPERS:
            return True
        if isinstance(node, ast.keyword) and node.arg == "broker_credentials":
            return True
    return False


def construction_sites(root: Path) -> list[str]:
    """Kafka clients built without the one configuration, as ``path:line Class``."""
    bad = []
    for package in ("agents", "streams", "connectors"):
        for path in sorted((root / package).rglob("*.py")):
            rel = path.relative_to(root).as_posix()
            if rel == "streams/kafka_client.py":
                continue
            tree = ast.parse(path.read_text(), rel)
            for node in ast.walk(tree):
                if isinstance(node, ast.Call):
                    name = _name(node.func)
                    if name in CLIENTS and (rel, name) not in EXEMPT and not _uses_helper(node):
                        bad.append(f"{rel}:{node.lineno} {name}")
                    if name in ("_admin_client", "_consumer") and node.args:
                        first = node.args[0]
                        if isinstance(first, ast.Attribute) and first.attr == "kafka_bootstrap":
                            bad.append(f"{rel}:{node.lineno} {name}(bootstrap)")
                # A hand-written client config: only kafka_client.py spells these.
                if isinstance(node, ast.Constant) and node.value == "bootstrap.servers":
                    bad.append(f"{rel}:{node.lineno} 'bootstrap.servers'")
                if isinstance(node, ast.keyword) and node.arg == "bootstrap_servers":
                    if (rel, "AIOKafkaClient") not in EXEMPT:
                        bad.append(f"{rel}:{node.lineno} bootstrap_servers=")
            words = {n.value for n in ast.walk(tree) if isinstance(n, ast.Constant)}
            if "--bootstrap-server" in words and "--command-config" not in words:
                bad.append(f"{rel} runs a Kafka tool without --command-config")
    return bad


def test_every_kafka_client_goes_through_kafka_client():
    assert construction_sites(ROOT) == []


def test_the_site_check_fails_on_a_hand_built_client(tmp_path):
    (tmp_path / "connectors").mkdir()
    (tmp_path / "agents").mkdir()
    (tmp_path / "streams").mkdir()
    (tmp_path / "connectors" / "x.py").write_text(
        "from aiokafka import AIOKafkaConsumer\n"
        "c = AIOKafkaConsumer(bootstrap_servers=s.kafka_bootstrap)\n"
        "ok = AIOKafkaConsumer(**aiokafka_kwargs(s))\n"
        "p = Producer({'bootstrap.servers': 'x'})\n"
    )
    assert sorted(construction_sites(tmp_path)) == [
        "connectors/x.py:2 AIOKafkaConsumer",
        "connectors/x.py:2 bootstrap_servers=",
        "connectors/x.py:4 'bootstrap.servers'",
        "connectors/x.py:4 Producer",
    ]


# --- settings ------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def _no_env(monkeypatch):
    for name in (
        "SECURITY_PROTOCOL",
        "SASL_MECHANISM",
        "SASL_USERNAME",
        "SASL_PASSWORD",
        "SSL_CA_FILE",
        "SSL_CERT_FILE",
        "SSL_KEY_FILE",
        "CLIENT_CONFIG",
    ):
        monkeypatch.delenv(f"RINGTALLY_KAFKA_{name}", raising=False)


@pytest.fixture(scope="module")
def pem(tmp_path_factory) -> tuple[Path, Path]:
    """A self-signed certificate and its key (PEM), made by openssl."""
    where = tmp_path_factory.mktemp("pem")
    cert, key = where / "ca.pem", where / "ca.key"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2"]
        + ["-subj", "/CN=ringtally-test", "-keyout", str(key), "-out", str(cert)],
        check=True,
        capture_output=True,
        timeout=60,
    )
    return cert, key


def _error(**values: object) -> tuple[str, str]:
    with pytest.raises(ValidationError) as info:
        Settings(**values)
    first = info.value.errors()[0]
    return first["loc"][0], first["msg"]


@pytest.mark.parametrize(
    ("values", "field", "says"),
    [
        ({"kafka_security_protocol": "SASL_SSL"}, "kafka_sasl_username", "SASL_SSL"),
        (
            {"kafka_security_protocol": "SASL_PLAINTEXT", "kafka_sasl_username": "u"},
            "kafka_sasl_password",
            "required",
        ),
        ({"kafka_sasl_username": "u"}, "kafka_sasl_username", "PLAINTEXT does not authenticate"),
        ({"kafka_sasl_password": SECRET}, "kafka_sasl_password", "PLAINTEXT does not authenticate"),
        (
            {"kafka_security_protocol": "SSL", "kafka_ssl_ca_file": "/nonexistent/ca.pem"},
            "kafka_ssl_ca_file",
            "no such file",
        ),
        ({"kafka_ssl_ca_file": __file__}, "kafka_ssl_ca_file", "uses no TLS"),
        (
            {"kafka_security_protocol": "SSL", "kafka_ssl_key_file": __file__},
            "kafka_ssl_cert_file",
            "KEY_FILE",
        ),
        (
            {"kafka_security_protocol": "SSL", "kafka_ssl_cert_file": __file__},
            "kafka_ssl_cert_file",
            "KEY_FILE",
        ),
        ({"kafka_client_config": {"sasl.password": SECRET}}, "kafka_client_config", "its own"),
        # the reviewer's MITM: either key would make confluent clients trust any broker
        (
            {"kafka_client_config": {"enable.ssl.certificate.verification": "false"}},
            "kafka_client_config",
            "its own",
        ),
        (
            {"kafka_client_config": {"ssl.endpoint.identification.algorithm": "none"}},
            "kafka_client_config",
            "its own",
        ),
        ({"kafka_client_config": {"ssl.cipher.suites": "NULL"}}, "kafka_client_config", "its own"),
        (
            {"kafka_client_config": {"sasl.oauthbearer.config": "x"}},
            "kafka_client_config",
            "its own",
        ),
        ({"kafka_client_config": {"security.foo": "x"}}, "kafka_client_config", "its own"),
        ({"kafka_client_config": {"Bad Key": "1"}}, "kafka_client_config", "property name"),
        ({"kafka_sasl_mechanism": "GSSAPI"}, "kafka_sasl_mechanism", "SCRAM-SHA-512"),
    ],
)
def test_bad_combinations_name_the_setting(values, field, says):
    loc, msg = _error(**values)
    assert (loc, says in msg) == (field, True), msg
    assert SECRET not in msg


def test_the_password_is_in_no_repr_dump_or_error(monkeypatch):
    settings = Settings(
        kafka_security_protocol="SASL_PLAINTEXT",
        kafka_sasl_username="worker",
        kafka_sasl_password=SECRET,
    )
    assert SECRET not in repr(settings)
    assert SECRET not in str(settings.redacted())
    # nor the Postgres and Redis passwords, in the URL's userinfo or as a query parameter
    urls = Settings(
        postgres_dsn=f"postgresql://u:{SECRET}@h:5432/db?sslmode=require",
        redis_url=f"redis://h:6379/0?password={SECRET}",
    )
    for shown in (repr(urls), str(urls)):
        assert SECRET not in shown and "postgresql://u:***@h:5432/db" in shown, shown
    assert "redis://h:6379/0?password=***" in repr(urls)
    assert settings.redacted()["kafka_sasl_password"] == "***"
    # a child process gets the value itself (streams.settings.Settings.to_env)
    assert settings.to_env()["RINGTALLY_KAFKA_SASL_PASSWORD"] == SECRET
    monkeypatch.setenv("RINGTALLY_KAFKA_SASL_PASSWORD", SECRET)
    monkeypatch.setenv("RINGTALLY_KAFKA_SECURITY_PROTOCOL", "SASL_SSL")
    monkeypatch.setenv("RINGTALLY_KAFKA_SSL_CA_FILE", "/nonexistent/ca.pem")
    with pytest.raises(ValidationError) as info:
        Settings()
    assert SECRET not in str(info.value.errors(include_input=False))


# --- what each library gets ------------------------------------------------------------------


def test_plaintext_is_what_it_was():
    s = Settings(kafka_bootstrap="127.0.0.1:1")
    assert kafka_config(s, **{"group.id": "g"}) == {
        "bootstrap.servers": "127.0.0.1:1",
        "security.protocol": "plaintext",
        "group.id": "g",
    }
    assert aiokafka_kwargs(s, client_id="c") == {
        "bootstrap_servers": "127.0.0.1:1",
        "security_protocol": "PLAINTEXT",
        "client_id": "c",
    }
    assert faust_broker_credentials(s) is None


def _sasl_ssl(ca: Path, user: str, **passthrough: str) -> Settings:
    return Settings(
        kafka_security_protocol="SASL_SSL",
        kafka_sasl_username=user,
        kafka_sasl_password=SECRET,
        kafka_ssl_ca_file=ca,
        kafka_client_config=passthrough,
    )


def test_sasl_ssl_reaches_every_library(pem):
    ca, _ = pem
    s = _sasl_ssl(ca, "sink", **{"client.rack": "r1", "request.timeout.ms": "5000"})
    conf = kafka_config(s)
    assert {k: conf[k] for k in conf if k.startswith(("security", "sasl", "ssl", "client"))} == {
        "security.protocol": "sasl_ssl",
        "sasl.mechanism": "SCRAM-SHA-512",
        "sasl.username": "sink",
        "sasl.password": SECRET,
        "ssl.ca.location": str(ca),
        "client.rack": "r1",
    }
    kw = aiokafka_kwargs(s)
    assert kw["security_protocol"] == "SASL_SSL"
    assert (kw["sasl_mechanism"], kw["sasl_plain_username"], kw["sasl_plain_password"]) == (
        "SCRAM-SHA-512",
        "sink",
        SECRET,
    )
    assert kw["ssl_context"].check_hostname and kw["request_timeout_ms"] == 5000
    assert "client.rack" not in kw and "client_rack" not in kw  # confluent-kafka only
    creds = faust_broker_credentials(s)
    assert (creds.protocol.value, creds.mechanism.value, creds.username) == (
        "SASL_SSL",
        "SCRAM-SHA-512",
        "sink",
    )
    assert SECRET not in repr(creds)
    props = java_client_properties(s)
    assert "security.protocol=SASL_SSL\n" in props
    assert f"ssl.truststore.location={ca}\n" in props
    assert f'ScramLoginModule required username="sink" password="{SECRET}";' in props


def test_a_ca_file_that_is_no_certificate_is_one_setting_error(tmp_path):
    bogus = tmp_path / "ca.pem"
    bogus.write_text("not a certificate\n")
    loc, msg = _error(kafka_security_protocol="SSL", kafka_ssl_ca_file=bogus)
    assert (loc, "is not a readable PEM certificate" in msg) == ("kafka_ssl_ca_file", True)


def test_the_client_side_check_is_one_line_too(tmp_path, pem):
    """ssl_context checks the files again (a file may change after the settings were read)."""
    ca, _ = pem
    copy = tmp_path / "ca.pem"
    copy.write_bytes(ca.read_bytes())
    s = Settings(kafka_security_protocol="SSL", kafka_ssl_ca_file=copy)
    copy.write_text("not a certificate any more\n")
    with pytest.raises(KafkaConfigProblem) as info:
        aiokafka_kwargs(s)
    assert info.value.one_line().startswith(f"RINGTALLY_KAFKA_SSL_CA_FILE={copy}: ")
    assert info.value.exit_code == 2


def test_mutual_tls_loads_the_pair(pem):
    cert, key = pem
    s = Settings(
        kafka_security_protocol="SSL",
        kafka_ssl_ca_file=cert,
        kafka_ssl_cert_file=cert,
        kafka_ssl_key_file=key,
    )
    assert kafka_config(s)["ssl.key.location"] == str(key)
    assert aiokafka_kwargs(s)["ssl_context"] is not None
    loc, msg = _error(
        kafka_security_protocol="SSL", kafka_ssl_cert_file=key, kafka_ssl_key_file=cert
    )
    assert (loc, "PEM certificate of that key" in msg) == ("kafka_ssl_cert_file", True)


@pytest.mark.parametrize(
    ("detail", "names"),
    [
        ("SASL authentication error: Authentication failed", "RINGTALLY_KAFKA_SASL_USERNAME"),
        (
            "sasl_ssl://127.0.0.1:1/bootstrap: SSL handshake failed: certificate verify failed",
            "RINGTALLY_KAFKA_SSL_CA_FILE",
        ),
        ("Broker: Topic authorization failed", "ACL"),
    ],
)
def test_auth_fix_names_what_to_check(detail, names):
    assert names in (auth_fix(detail) or "")
    assert auth_fix("Connection refused") is None


@pytest.mark.parametrize("text", ["not json", '["client.rack"]'])
def test_a_passthrough_that_is_no_json_object_is_one_setting_error(monkeypatch, text):
    monkeypatch.setenv("RINGTALLY_KAFKA_CLIENT_CONFIG", text)
    with pytest.raises(ValidationError) as info:
        Settings()
    assert info.value.errors()[0]["loc"] == ("kafka_client_config",)


def test_settings_survive_to_env_and_back(pem):
    ca, _ = pem
    s = _sasl_ssl(ca, "worker", **{"client.rack": "r1"})
    back = Settings(**{k.removeprefix("RINGTALLY_").lower(): v for k, v in s.to_env().items()})
    assert kafka_config(back) == kafka_config(s)
