"""The secured local Kafka (``stack up --secure``) enforces the trust model (issue 15).

Each principal's allowed operations succeed and each forbidden one fails
with an authorization error, on a real broker with SASL_SSL, SCRAM and the
StandardAuthorizer, started by the stack's own code (tests/fixtures/secure.py).
A client with a wrong password, a CA that did not sign the broker's
certificate, or a missing CA file gets one line naming the setting and a
non-zero exit from the ``ringtally`` command.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import time
import uuid
from collections import Counter
from pathlib import Path

import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition

from connectors.stack.kafka.secure import ROLES, SDK_GROUPS
from streams.kafka_client import kafka_config
from streams.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
DENIED = "TOPIC_AUTHORIZATION_FAILED"


@pytest.fixture(scope="module")
def acl(secure_kafka):  # noqa: ANN001, ANN201
    """A fresh prefix on the secured broker, with one record on partition 0 of the topics
    read below (written by the admin)."""
    settings = secure_kafka.prefix_settings()
    admin = secure_kafka.as_role(settings, "admin")
    for short in ("votes", "rings", "ballots", "tallies"):
        assert produce(admin, settings.topic(short)) is None
    return settings


def produce(settings: Settings, topic: str) -> str | None:
    """Write one record to partition 0; None, or the error's name."""
    errors: list[str] = []
    producer = Producer(
        kafka_config(settings, **{"message.timeout.ms": 20_000, "enable.idempotence": False})
    )
    producer.produce(
        topic,
        key=b"k",
        value=b"v",
        partition=0,
        on_delivery=lambda err, _msg: errors.append(err.name()) if err else None,
    )
    assert producer.flush(30) == 0
    return errors[0] if errors else None


def consume(settings: Settings, topic: str, group: str) -> str | None:
    """Read a record from partition 0; None, or the error's name."""
    consumer = Consumer(kafka_config(settings, **{"group.id": group, "enable.auto.commit": False}))
    try:
        consumer.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is None:
                continue
            return msg.error().name() if msg.error() else None
        return "TIMED_OUT"
    finally:
        consumer.close()


def _group(settings: Settings, role: str) -> str:
    """A consumer group the role may use (the worker's and the sink's by prefix)."""
    if role == "worker":
        return f"{settings.group_id}-probe"
    if role == "sink":
        return f"{settings.topic_prefix}-sink-probe"
    return f"{SDK_GROUPS}probe"


CASES = [
    # the forbidden operations
    ("producer", "write", "rings", DENIED),
    ("producer", "write", "tallies", DENIED),
    ("producer", "read", "votes", DENIED),
    ("reader", "read", "votes", DENIED),
    ("sink", "write", "ballots", DENIED),
    ("producer", "write", "@accepted", DENIED),
    ("registrar", "write", "@accepted", DENIED),
    ("sink", "write", "@accepted", DENIED),
    ("reader", "write", "@accepted", DENIED),
    # more of the same trust model
    ("registrar", "write", "votes", DENIED),
    ("reader", "write", "tallies", DENIED),
    ("sink", "read", "votes", DENIED),
    ("worker", "write", "rings", DENIED),
    # and what each role is for
    ("producer", "write", "votes", None),
    ("registrar", "write", "rings", None),
    ("registrar", "write", "submissions", None),
    ("worker", "read", "votes", None),
    ("worker", "read", "rings", None),
    ("worker", "write", "tallies", None),
    ("worker", "write", "@accepted", None),
    ("sink", "read", "ballots", None),
    ("sink", "write", "sink-dlq", None),
    ("reader", "read", "tallies", None),
    ("producer", "read", "rings", None),
]


@pytest.mark.parametrize(("role", "op", "short", "expected"), CASES)
def test_each_principal_may_do_exactly_its_part(secure_kafka, acl, role, op, short, expected):
    settings = secure_kafka.as_role(acl, role)
    # "@accepted": the worker's internal topic of accepted votes (counted unchecked)
    topic = f"{acl.group_id}-accepted" if short == "@accepted" else acl.topic(short)
    got = produce(settings, topic) if op == "write" else consume(settings, topic, _group(acl, role))
    assert got == expected, f"{role} {op} {topic}: {got}"


def test_credentials_file_is_private_and_in_the_documented_shape(secure_kafka):
    path = secure_kafka.credentials
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    data = json.loads(path.read_text())
    assert data["bootstrap"] == f"127.0.0.1:{secure_kafka.base.kafka_secure_port}"
    assert Path(data["ca_file"]).is_file()
    assert set(ROLES) <= set(data["principals"])
    for who in data["principals"].values():
        assert set(who) == {"username", "password"} and len(who["password"]) >= 24
    # the throw-away CA's key is gone once it signed the broker's certificate
    assert not (path.parent / "ca.key").exists()
    assert stat.S_IMODE((path.parent / "server.properties").stat().st_mode) == 0o600


def test_no_password_is_on_a_command_line_while_the_storage_is_formatted(tmp_path, monkeypatch):
    """``stack up --secure``'s first start (CA, keystore, SCRAM users in the formatted
    storage), run for real by the stack's code with every child process's argv recorded:
    no principal's password nor the keystore's is in one (any local user could read it
    in /proc/*/cmdline); the java @argfile that held the SCRAM users is gone after."""
    from connectors.stack.kafka.secure import SecureKafkaService
    from connectors.stack.paths import StackPaths

    argvs: list[list[str]] = []
    real_run = subprocess.run

    def recording_run(argv, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN202
        argvs.append([str(a) for a in argv])
        return real_run(argv, *args, **kwargs)

    monkeypatch.setattr(subprocess, "run", recording_run)
    settings = Settings(data_dir=tmp_path, kafka_secure_port=1, kafka_secure_controller_port=2)
    paths = StackPaths.for_data_dir(tmp_path, Settings().data_dir / "cache")
    service = SecureKafkaService(settings, paths)
    service.prepare(lambda *_: None)
    assert (service.data_dir / "meta.properties").is_file()  # the format really ran
    data = json.loads(service.credentials_file.read_text())
    secrets = [who["password"] for who in data["principals"].values()]
    secrets.append(data["keystore_password"])
    assert any(Path(a[0]).name == "java" for a in argvs), argvs
    assert any(a[0] == "openssl" for a in argvs), argvs
    for argv in argvs:
        line = " ".join(argv)
        assert not [s for s in secrets if s in line], f"a password in: {argv[:3]}..."
    assert list(service.dir.glob("*.args")) == []


# --- bad input: the ringtally command as a user runs it ----------------------------------------


def _ringtally(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("RINGTALLY_KAFKA_")}
    return subprocess.run(
        [sys.executable, "-m", "connectors.cli", *args],
        env={**clean, "PYTHONPATH": str(ROOT), **env},
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )


@pytest.fixture(scope="module")
def other_ca(tmp_path_factory) -> Path:
    """A CA certificate that did not sign the broker's."""
    where = tmp_path_factory.mktemp("other-ca")
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2"]
        + ["-subj", "/CN=not-the-stack-ca", "-keyout", "k.pem", "-out", "ca.pem"],
        cwd=where,
        check=True,
        capture_output=True,
        timeout=60,
    )
    return where / "ca.pem"


@pytest.mark.parametrize(
    ("mistake", "names"),
    [
        ("wrong password", "RINGTALLY_KAFKA_SASL_USERNAME, _PASSWORD"),
        ("unknown CA", "RINGTALLY_KAFKA_SSL_CA_FILE"),
        ("missing CA file", "RINGTALLY_KAFKA_SSL_CA_FILE"),
    ],
)
def test_a_refused_client_is_one_line_naming_the_setting(
    secure_kafka, acl, other_ca, mistake, names
):
    reader = secure_kafka.as_role(acl, "reader")
    password = reader.kafka_sasl_password.get_secret_value()
    env = reader.to_env()
    if mistake == "wrong password":
        env["RINGTALLY_KAFKA_SASL_PASSWORD"] = "not-" + password
    elif mistake == "unknown CA":
        env["RINGTALLY_KAFKA_SSL_CA_FILE"] = str(other_ca)
    else:
        env["RINGTALLY_KAFKA_SSL_CA_FILE"] = str(other_ca.parent / "missing.pem")
    result = _ringtally(env, "rings", "list")
    lines = result.stderr.strip().splitlines()
    assert result.returncode != 0 and len(lines) == 1, result.stderr
    assert names in lines[0] and "Traceback" not in result.stderr
    assert password not in result.stderr + result.stdout


def test_the_right_credentials_pass_the_same_check(secure_kafka, acl):
    from connectors.sdk.registrar import pin_registrar

    env = pin_registrar(secure_kafka.as_role(acl, "registrar")).to_env()  # a key to trust
    result = _ringtally(env, "rings", "list")
    assert result.returncode == 0, result.stderr


# --- a round end to end, every client authenticated as its principal ----------------------


def _postgres_as(dsn: str, user: str) -> str:
    """``dsn`` with another user (the local stack trusts loopback connections)."""
    from urllib.parse import urlsplit

    parts = urlsplit(dsn)
    return parts._replace(netloc=f"{user}@{parts.hostname}:{parts.port}").geturl()


async def _sql(dsn: str, *statements: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(dsn, timeout=10)
    try:
        for statement in statements:
            await conn.execute(statement)
    finally:
        await conn.close()


@pytest.mark.integration
def test_a_round_end_to_end_with_every_client_authenticated(secure_kafka, stack, tmp_path):
    """Worker, sink, registrar, producer and reader each with their own Kafka credentials,
    the sink on a Postgres role that owns nothing; the outputs on the topics and in
    Postgres match the round's ground truth, and the sink's role cannot touch the audit
    table's trigger."""
    import asyncio

    import asyncpg

    from connectors.demo.check import Observed, Truth, all_match, check, tallies_from_records
    from connectors.demo.observe import read_postgres
    from connectors.demo.simulation import Publisher
    from connectors.postgres.db import connect
    from connectors.postgres.migrate import migrate
    from connectors.stack.harness import SinkProcess, WorkerProcess, free_port
    from tests.fixtures.pipeline import Outputs
    from tests.fixtures.rounds import outcome_positions, small_round
    from tests.fixtures.stack import make_settings

    prefix = f"t-{uuid.uuid4().hex[:8]}"
    base = make_settings(
        stack,
        prefix,
        kafka_bootstrap=secure_kafka.base.kafka_bootstrap,
        table_store="memory",
        partitions=4,
        web_port=free_port(),
        verify_batch_window=0.01,
        data_dir=tmp_path,
    )
    secure_kafka.service.provision(base)  # its topics (made by the admin) and ACLs
    rnd = small_round(base)
    # Postgres: the test's owner role migrates and grants; the sink connects as its own role
    role = base.postgres_schema + "_sink"
    superuser = _postgres_as(base.postgres_dsn, "postgres")
    sink_dsn = _postgres_as(base.postgres_dsn, role)
    asyncio.run(_sql(superuser, f'CREATE ROLE "{role}" LOGIN'))
    asyncio.run(migrate(Settings(**base.model_dump(exclude_unset=True), postgres_sink_role=role)))
    as_sink = Settings(**{**base.model_dump(exclude_unset=True), "postgres_dsn": sink_dsn})
    worker = WorkerProcess(secure_kafka.as_role(base, "worker"), tmp_path / "worker.log")
    sink = SinkProcess(secure_kafka.as_role(as_sink, "sink"), tmp_path / "sink.log")
    registrar = Publisher(secure_kafka.as_role(base, "registrar"))
    producer = Publisher(secure_kafka.as_role(base, "producer"))
    producer.appended, producer.positions = registrar.appended, registrar.positions
    outputs = Outputs(secure_kafka.as_role(base, "reader"))
    try:
        worker.start()
        sink.start()
        for phase in (rnd.control, rnd.votes, rnd.rotation, rnd.late_votes):
            for planned in phase:
                control = planned.topic in ("rings", "submissions")
                (registrar if control else producer).send(planned)
            for publisher in (registrar, producer):
                publisher.flush()
            registrar.wait_clock_past(registrar.last_appended_ms())
        want = rnd.outcome_count()
        outputs.wait_for(lambda o: len(outcome_positions(o)) >= want, 120, f"{want} outcomes")
        outputs.settle(1.0)
        truth = Truth.from_round(rnd)
        topics = Observed(
            "topics",
            ballots={b["vote_id"] for b in outputs.ballots},
            rejections=Counter(r["reason"] for r in outputs.rejections),
            tallies=tallies_from_records(outputs.tallies),
        )
        assert all_match(lines := check(truth, topics)), [x for x in lines if not x.ok]

        async def stored() -> Observed:
            conn = await connect(base)  # the schema on its search_path
            try:
                return await read_postgres(conn)
            finally:
                await conn.close()

        deadline = time.monotonic() + 60
        while not all_match(check(truth, observed := asyncio.run(stored()))):
            assert sink.alive(), sink.tail()
            assert time.monotonic() < deadline, [x for x in check(truth, observed) if not x.ok]
            time.sleep(0.5)
        assert "unauthorized" not in (tmp_path / "worker.log").read_text().lower()
        assert "owns audit_log" not in sink.tail(200)
        table = f'"{base.postgres_schema}".audit_log'
        for statement in (
            f"ALTER TABLE {table} DISABLE TRIGGER ALL",
            f"DROP TABLE {table}",
            f'ALTER TABLE {table} OWNER TO "{role}"',
        ):
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                asyncio.run(_sql(sink_dsn, statement))
    finally:
        outputs.close()
        worker.stop()
        sink.stop()
        asyncio.run(_sql(superuser, f'DROP OWNED BY "{role}"', f'DROP ROLE "{role}"'))


@pytest.mark.parametrize("process", ["worker", "sink"])
def test_a_refused_worker_or_sink_says_why_and_retries(secure_kafka, stack, tmp_path, process):
    """Wrong password: one log line naming the settings to check, no secret, and the
    process keeps retrying with backoff instead of exiting."""
    import signal

    from connectors.stack.harness import free_port
    from tests.fixtures.stack import make_settings

    settings = make_settings(stack, f"t-{uuid.uuid4().hex[:8]}", web_port=free_port())
    if process == "sink":  # it checks its schema before it asks Kafka
        import asyncio

        from connectors.postgres.migrate import migrate

        asyncio.run(migrate(settings))
    role = secure_kafka.as_role(secure_kafka.prefix_settings(settings.topic_prefix), process)
    password = role.kafka_sasl_password.get_secret_value()
    env = {**settings.to_env(), **role.to_env(), "RINGTALLY_KAFKA_SASL_PASSWORD": "no-" + password}
    argv = ["worker", "--loglevel", "info"] if process == "worker" else ["sink", "--no-readmodel"]
    log_path = tmp_path / f"{process}.log"
    clean = {k: v for k, v in os.environ.items() if not k.startswith("RINGTALLY_")}
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "connectors.cli", *argv],
            env={**clean, "PYTHONPATH": str(ROOT), **env},
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
        )
    try:
        deadline = time.monotonic() + 60
        while "refused this client" not in log_path.read_text():
            assert proc.poll() is None, log_path.read_text()[-2000:]
            assert time.monotonic() < deadline, log_path.read_text()[-2000:]
            time.sleep(0.2)
        text = log_path.read_text()
        line = next(x for x in text.splitlines() if "refused this client" in x)
        assert "RINGTALLY_KAFKA_SASL_USERNAME, _PASSWORD" in line and "retrying" in line
        assert password not in text and "Traceback" not in text
        assert proc.poll() is None  # still there, retrying
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)


def test_a_sink_role_without_grants_is_one_line(stack, tmp_path):
    """The sink on a Postgres role nobody granted the schema to: one line, no traceback."""
    import asyncio

    from connectors.postgres.migrate import migrate
    from tests.fixtures.stack import make_settings

    settings = make_settings(stack, f"t-{uuid.uuid4().hex[:8]}")
    asyncio.run(migrate(settings))
    role = settings.postgres_schema + "_nogrant"
    superuser = _postgres_as(settings.postgres_dsn, "postgres")
    asyncio.run(_sql(superuser, f'CREATE ROLE "{role}" LOGIN'))
    try:
        env = {
            **settings.to_env(),
            "RINGTALLY_POSTGRES_DSN": _postgres_as(settings.postgres_dsn, role),
        }
        result = _ringtally(env, "sink", "--no-readmodel")
        lines = result.stderr.strip().splitlines()
        assert result.returncode != 0 and "Traceback" not in result.stderr, result.stderr
        assert "RINGTALLY_POSTGRES_SINK_ROLE" in lines[-1], result.stderr
    finally:
        asyncio.run(_sql(superuser, f'DROP OWNED BY "{role}"', f'DROP ROLE "{role}"'))


# --- Redis: an ACL user per role ------------------------------------------------------------


async def test_redis_acl_users_write_and_read_only_their_part(stack):
    """The read model written as the ``sink`` ACL user (user and password in
    RINGTALLY_REDIS_URL); the ``reader`` user reads it but can neither write nor
    publish; neither reaches another prefix's keys."""
    import secrets
    from urllib.parse import urlsplit

    from redis.asyncio import Redis
    from redis.exceptions import NoPermissionError

    from connectors.postgres.topics import ensure_topics
    from connectors.readmodel.store import ReadModelStore, acl_rules
    from connectors.readmodel.task import ReadModel
    from tests.fixtures.sink_records import make_tally, produce
    from tests.fixtures.stack import make_settings

    settings = make_settings(stack, f"t-{uuid.uuid4().hex[:8]}")
    prefix = settings.topic_prefix
    admin = Redis.from_url(settings.redis_url, decode_responses=True)
    where = urlsplit(settings.redis_url)
    users = {role: (f"{prefix}-{role}", secrets.token_urlsafe(16)) for role in ("sink", "reader")}

    def url(role: str) -> str:
        user, password = users[role]
        return where._replace(netloc=f"{user}:{password}@{where.hostname}:{where.port}").geturl()

    try:
        for role, rules in acl_rules(prefix).items():
            user, password = users[role]
            await admin.execute_command(
                "ACL", "SETUSER", user, "on", f">{password}", *rules.split()
            )
        await ensure_topics(settings)
        await produce(settings, "tallies", [make_tally("s1", 2, approve=2).to_json()], keys=[b"s1"])
        as_sink = Settings(**{**settings.model_dump(exclude_unset=True), "redis_url": url("sink")})
        await ReadModel(as_sink, once=True).run()
        reader = Redis.from_url(url("reader"), decode_responses=True)
        try:
            got = await ReadModelStore(reader, prefix).get("s1")
            assert got is not None and got["version"] == 2
            for denied in (
                reader.hset(f"{prefix}:tally:s1", "version", "99"),
                reader.publish(f"{prefix}:tallies", "forged"),
                reader.get("other-prefix:tally:s1"),
                reader.flushall(),
            ):
                with pytest.raises(NoPermissionError):
                    await denied
        finally:
            await reader.aclose()
        writer = Redis.from_url(url("sink"), decode_responses=True)
        try:
            for denied in (writer.set("other-prefix:x", "1"), writer.flushall()):
                with pytest.raises(NoPermissionError):
                    await denied
        finally:
            await writer.aclose()
    finally:
        for user, _ in users.values():
            await admin.execute_command("ACL", "DELUSER", user)
        keys = [k async for k in admin.scan_iter(match=f"{prefix}:*")]
        if keys:
            await admin.delete(*keys)
        await admin.aclose()


#: (role, command) the ACL rules must refuse: each reaches past the prefix (review of #15).
#: Arguments are split on "|"; {p} is the prefix.
_REDIS_DENIED = [
    (role, cmd)
    for role in ("sink", "reader")
    for cmd in (
        "FUNCTION|LOAD|#!lua name=rt_probe\nredis.register_function('f', function() end)",
        "FUNCTION|FLUSH",
        "FUNCTION|DELETE|rt_probe",
        "SCRIPT|FLUSH",
        "SELECT|5",
        "COPY|{p}:tally:a|{p}:tally:b|DB|5",
        "MOVE|{p}:tally:a|7",
        "SWAPDB|0|5",
        "SCAN|0",
        "KEYS|*",
        "RANDOMKEY",
        "DBSIZE",
        "FLUSHDB",
        "FLUSHALL",
        "EVAL|return 1|0",
        "GET|other:tally:a",
        "CONFIG|GET|*",
    )
] + [
    ("reader", cmd)
    for cmd in ("HSET|{p}:tally:a|version|9", "PUBLISH|{p}:tallies|x", "EVALSHA|00|0")
]
#: what each role does run (the end-to-end test above runs them for real)
_REDIS_ALLOWED = [
    ("sink", "EVALSHA|0000|3|{p}:readmodel:ready|{p}:readmodel:offsets|{p}:tally:a"),
    ("sink", "SCRIPT|LOAD|return 1"),
    ("sink", "HSET|{p}:tally:a|version|2"),
    ("sink", "SET|{p}:readmodel:ready|1"),
    ("sink", "PUBLISH|{p}:tallies|x"),
    ("sink", "HGETALL|{p}:readmodel:offsets"),
    ("reader", "HGETALL|{p}:tally:a"),
    ("reader", "EXISTS|{p}:readmodel:ready"),
    ("reader", "SUBSCRIBE|{p}:tallies"),
    ("reader", "PING"),
]


def test_redis_acl_rules_allow_only_what_each_role_runs(stack):
    """The rules of ``acl_rules`` asked of the real Redis with ACL DRYRUN (nothing runs):
    a server-wide flush, another database, listing keys: refused; the commands the sink
    and the gateway use: allowed. Throw-away users, deleted after."""
    import redis

    from connectors.readmodel.store import acl_rules

    prefix = f"t-{uuid.uuid4().hex[:8]}"
    admin = redis.Redis.from_url(stack.redis_url, decode_responses=True)
    users = {role: f"{prefix}-{role}" for role in ("sink", "reader")}
    try:
        for role, rules in acl_rules(prefix).items():
            admin.execute_command("ACL", "SETUSER", users[role], "on", ">pw-unused", *rules.split())

        def verdict(role: str, command: str) -> str:
            words = command.replace("{p}", prefix).split("|")
            return admin.execute_command("ACL", "DRYRUN", users[role], *words)

        allowed = [(r, c) for r, c in _REDIS_DENIED if verdict(r, c) == "OK"]
        assert allowed == [], f"not refused: {allowed}"
        refused = [(r, c, verdict(r, c)) for r, c in _REDIS_ALLOWED if verdict(r, c) != "OK"]
        assert refused == [], refused
    finally:
        for user in users.values():
            admin.execute_command("ACL", "DELUSER", user)
        admin.close()


def test_kafka_tools_authenticate_too(secure_kafka, acl):
    """``ringtally reset-offsets`` runs Kafka's own tool: it gets the same security settings
    (a 0600 --command-config file), here as the admin."""
    from connectors.replay.offsets import reset_group_offsets

    admin = secure_kafka.as_role(acl, "admin")
    group, topic = f"{acl.group_id}-reset", acl.topic("tallies")
    consumer = Consumer(kafka_config(admin, **{"group.id": group, "enable.auto.commit": False}))
    try:
        consumer.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
        deadline = time.monotonic() + 30
        while (msg := consumer.poll(0.5)) is None or msg.error():
            assert time.monotonic() < deadline, "the admin read nothing"
        consumer.commit(message=msg, asynchronous=False)
    finally:
        consumer.close()
    out = reset_group_offsets(admin, group, [topic], to="earliest", timeout=120)
    assert topic in out and group in out


def test_a_principal_without_rights_is_one_line_naming_the_acl(secure_kafka, acl, tmp_path):
    """The producer's credentials used for the registrar's work: refused by the broker,
    one line pointing at the ACLs, exit non-zero."""
    from connectors.sdk.registrar import pin_registrar

    producer = pin_registrar(secure_kafka.as_role(acl, "producer"))  # a key to sign with
    env = producer.to_env()
    result = _ringtally(env, "submissions", "add", "sub-1", "--genre", "g", "--epoch", "1")
    lines = result.stderr.strip().splitlines()
    assert result.returncode != 0 and len(lines) == 1, result.stderr
    assert "Topic authorization failed" in lines[0] and "ACL" in lines[0], lines[0]


@pytest.mark.parametrize(("role", "command"), [("witness", "rings"), ("reader", "submissions")])
def test_a_reader_without_read_rights_is_one_line_naming_the_acl(secure_kafka, role, command):
    """``rings list`` as the witness and ``submissions list`` as the reader: the topic holds
    a record but the principal may not read it. One line naming the principal and the
    ACLs, exit non-zero, instead of waiting out the read ("did not reach its end
    offsets")."""
    from connectors.sdk.registrar import pin_registrar

    settings = secure_kafka.prefix_settings()
    assert produce(secure_kafka.as_role(settings, "admin"), settings.topic(command)) is None
    who = pin_registrar(secure_kafka.as_role(settings, role))
    result = _ringtally(who.to_env(), command, "list")
    lines = result.stderr.strip().splitlines()
    assert result.returncode != 0 and len(lines) == 1, result.stderr
    assert "authorization failed" in lines[0].lower() and "ACL" in lines[0], lines[0]
    assert repr(role) in lines[0] and settings.topic(command) in lines[0], lines[0]


def test_stack_status_shows_the_secured_broker_once_it_exists(secure_kafka):
    from connectors.stack import LocalStack

    local = LocalStack(secure_kafka.base, cache_dir=secure_kafka.service.paths.cache_dir)
    rows = {row.piece: row for row in local.status()}
    assert rows["secure"].healthy, rows["secure"]
    assert rows["secure"].port == secure_kafka.base.kafka_secure_port
    assert [s.name for s in local.select(up=True)] == ["kafka", "postgres", "redis"]


def test_a_worker_without_the_rights_says_so_in_one_line(secure_kafka, acl, tmp_path):
    """The reader's credentials given to a worker: it authenticates, then may not make or
    use its internal topics; it stops at start with one line naming the authorization
    failure and the ACLs, no traceback."""
    from connectors.sdk.registrar import pin_registrar
    from connectors.stack.harness import free_port

    reader = pin_registrar(secure_kafka.as_role(acl, "reader"))
    env = {**reader.to_env(), "RINGTALLY_WEB_PORT": str(free_port())}
    result = _ringtally(env, "worker")
    lines = result.stderr.strip().splitlines()
    assert result.returncode != 0 and "Traceback" not in result.stderr, result.stderr[-2000:]
    assert "authorization failed" in lines[-1].lower() and "ACL" in lines[-1], lines[-1]


def test_stack_up_secure_makes_the_postgres_sink_role_and_redis_users(stack, tmp_path):
    """``provision_service_users`` (run by ``stack up --secure``) on the real Postgres and
    Redis: the sink's login role owns nothing and may only insert into audit_log; the
    Redis users are the ACL rules' and work with the URLs written to the 0600 credentials
    file; a second run keeps the passwords."""
    import asyncio

    import asyncpg
    import redis

    from connectors.cli._service_users import provision_service_users
    from connectors.postgres.migrate import migrate
    from tests.fixtures.stack import make_settings

    settings = make_settings(stack, f"t-{uuid.uuid4().hex[:8]}")
    asyncio.run(migrate(settings))
    creds = tmp_path / "credentials.json"
    creds.write_text(json.dumps({"principals": {}}))
    role = settings.postgres_schema + "_sink"
    admin = redis.Redis.from_url(settings.redis_url, decode_responses=True)
    try:
        lines = provision_service_users(settings, creds)
        assert [line.split(":")[0] for line in lines] == ["postgres", "redis"], lines
        assert "granted" in lines[0] and "ACL users" in lines[1], lines
        data = json.loads(creds.read_text())
        assert stat.S_IMODE(creds.stat().st_mode) == 0o600
        assert provision_service_users(settings, creds) and json.loads(creds.read_text()) == data

        async def as_sink() -> tuple[object, ...]:
            conn = await asyncpg.connect(data["postgres"]["sink"]["dsn"], timeout=10)
            try:
                audit = f"{settings.postgres_schema}.audit_log"
                return tuple(
                    [
                        await conn.fetchval("SELECT current_user"),
                        await conn.fetchval("SELECT has_table_privilege($1, 'INSERT')", audit),
                        await conn.fetchval("SELECT has_table_privilege($1, 'UPDATE')", audit),
                        await conn.fetchval(
                            "SELECT count(*) FROM pg_tables WHERE tableowner = current_user"
                        ),
                    ]
                )
            finally:
                await conn.close()

        assert asyncio.run(as_sink()) == (role, True, False, 0)
        sink = redis.Redis.from_url(data["redis"]["sink"]["url"], decode_responses=True)
        reader = redis.Redis.from_url(data["redis"]["reader"]["url"], decode_responses=True)
        try:
            sink.hset(f"{settings.topic_prefix}:tally:a", "version", "1")
            assert reader.hgetall(f"{settings.topic_prefix}:tally:a") == {"version": "1"}
            for denied in (
                lambda: reader.hset(f"{settings.topic_prefix}:tally:a", "v", "2"),
                lambda: sink.scan(0),
            ):
                with pytest.raises(redis.exceptions.NoPermissionError):
                    denied()
        finally:
            sink.close()
            reader.close()
    finally:
        for who in ("sink", "reader"):
            admin.execute_command("ACL", "DELUSER", f"{settings.topic_prefix}-{who}")
        admin.delete(f"{settings.topic_prefix}:tally:a")
        admin.close()
        superuser = _postgres_as(settings.postgres_dsn, "postgres")
        asyncio.run(
            _sql(
                superuser,
                f'DROP SCHEMA IF EXISTS "{settings.postgres_schema}" CASCADE',
                f'DROP ROLE IF EXISTS "{role}"',
            )
        )
