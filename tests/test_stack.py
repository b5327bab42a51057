"""The local stack: pure helpers, then the real processes.

Tests that break things (stop the stack, take its ports, corrupt its data)
run a second stack in a temporary data dir on free ports, sharing only the
project's Kafka jar cache, so they never disturb the session's shared stack.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from connectors.cli.stack import stack as stack_cli
from connectors.stack import (
    CONSOLE_PRODUCER,
    LocalStack,
    StackError,
    kafka_version,
    run_kafka_tool,
)
from connectors.stack.kafka import parse_bootstrap
from connectors.stack.kafka.broker import KafkaService, read_properties
from connectors.stack.paths import StackPaths
from connectors.stack.postgres import parse_dsn
from connectors.stack.process import (
    ProcessRecord,
    pid_running,
    port_free,
    port_owner,
    read_cmdline,
    read_record,
    start_ticks,
    write_record,
)
from connectors.stack.redis import parse_redis_url
from streams.settings import Settings

PROJECT_CACHE = Settings().data_dir / "cache"


# --- helpers -----------------------------------------------------------------


def free_ports(n: int) -> list[int]:
    """``n`` distinct ports free on 127.0.0.1 right now."""
    socks, ports = [], []
    for _ in range(n):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        socks.append(s)
        ports.append(s.getsockname()[1])
    for s in socks:
        s.close()
    return ports


def isolated_settings(data_dir: Path) -> Settings:
    kafka, controller, pg, redis = free_ports(4)
    return Settings(
        data_dir=data_dir,
        kafka_bootstrap=f"127.0.0.1:{kafka}",
        kafka_controller_port=controller,
        postgres_dsn=f"postgresql://ringtally@127.0.0.1:{pg}/ringtally",
        redis_url=f"redis://127.0.0.1:{redis}/0",
        partitions=1,
    )


def processes_mentioning(text: str) -> list[int]:
    """PIDs whose command line contains ``text`` (our markers are absolute paths)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue
            if text in cmd and int(entry.name) != os.getpid():
                found.append(int(entry.name))
    return found


@pytest.fixture
def iso_stack() -> Iterator[LocalStack]:
    """A throw-away stack (own dir, own ports, shared jar cache), always torn down.

    Not under pytest's tmp dir: that is mode 700, and as root PostgreSQL runs as
    the ``postgres`` user, who must be able to enter the data dir. A short
    path also keeps PostgreSQL's Unix socket path under its ~100-byte limit.
    """
    data_dir = Path(tempfile.mkdtemp(prefix="rt-stack-"))
    data_dir.chmod(0o755)
    local = LocalStack(isolated_settings(data_dir), cache_dir=PROJECT_CACHE)
    try:
        yield local
    finally:
        try:
            local.down()
        finally:
            for pid in processes_mentioning(str(local.paths.stack_dir)):
                os.kill(pid, 9)  # only processes carrying this test's own temp path
            shutil.rmtree(data_dir, ignore_errors=True)


@pytest.fixture
def sleeper() -> Iterator[subprocess.Popen[bytes]]:
    """An unrelated live process, to stand in for a PID the kernel reused."""
    proc = subprocess.Popen(["sleep", "300"])
    # Popen returns once exec has begun; wait until /proc shows the new argv.
    deadline = time.monotonic() + 10
    while read_cmdline(proc.pid) != ["sleep", "300"] and time.monotonic() < deadline:
        time.sleep(0.01)
    yield proc
    proc.kill()
    proc.wait()


# --- pure helpers ---------------------------------------------------------------


def test_stack_error_is_one_line_with_fix_and_log(tmp_path: Path) -> None:
    err = StackError(
        "kafka",
        "not healthy after 60s (port 19092 closed)\nmore",
        fix="retry",
        log_file=tmp_path / "kafka.log",
    )
    assert err.line().startswith(
        "kafka: not healthy after 60s (port 19092 closed) more; retry; see "
    )
    assert "\n" not in err.line()
    group = StackError.group([err, StackError("redis", "redis-server not found")])
    assert group.lines() == [err.line(), "redis: redis-server not found"]
    assert StackError.group([err]) is err


def test_address_parsing() -> None:
    assert parse_bootstrap("127.0.0.1:19092,other:1") == ("127.0.0.1", 19092)
    assert parse_dsn("postgresql://ringtally@127.0.0.1:15432/ringtally") == (
        "127.0.0.1",
        15432,
        "ringtally",
        "ringtally",
    )
    assert parse_dsn("postgresql://u:pw@localhost/") == ("localhost", 5432, "u", "u")
    assert parse_redis_url("redis://:s3cret@127.0.0.1:16379/0") == ("127.0.0.1", 16379, "s3cret")
    for bad in (
        lambda: parse_bootstrap("nonsense"),
        lambda: parse_dsn("mysql://x@127.0.0.1/db"),
        lambda: parse_redis_url("http://127.0.0.1:1"),
    ):
        with pytest.raises(StackError):
            bad()
    with pytest.raises(StackError) as info:  # the message shows the host, not user:password
        parse_dsn("postgresql://u:s3cret@127.0.0.1:port/db")
    assert "s3cret" not in info.value.line() and "127.0.0.1:port" in info.value.line()
    with pytest.raises(StackError) as info:
        parse_redis_url("redis://u:s3cret@127.0.0.1:port/0")
    assert "s3cret" not in info.value.line() and "127.0.0.1:port" in info.value.line()


def test_read_properties(tmp_path: Path) -> None:
    p = tmp_path / "meta.properties"
    p.write_text("#comment\nnode.id=1\ncluster.id = abc\n")
    assert read_properties(p) == {"node.id": "1", "cluster.id": "abc"}
    p.write_text("garbage without equals\n")
    with pytest.raises(ValueError):
        read_properties(p)


def test_process_record_checks_start_time_and_marker(tmp_path: Path, sleeper) -> None:
    pidfile = tmp_path / "x.pid"
    rec = write_record(pidfile, sleeper.pid, "300")  # "sleep 300" carries the marker "300"
    assert read_record(pidfile) == rec
    # each of the three checks on its own first, so a failure says which one
    assert pid_running(sleeper.pid), open(f"/proc/{sleeper.pid}/stat").read()
    assert start_ticks(sleeper.pid) == rec.start_ticks
    assert "300" in " ".join(read_cmdline(sleeper.pid) or []), read_cmdline(sleeper.pid)
    assert rec.matches()
    assert not rec.matches("some-other-marker")
    reused = ProcessRecord(sleeper.pid, (rec.start_ticks or 0) + 1, "300")
    assert not reused.matches()  # same PID, different start time: not ours
    pidfile.write_text("not json")
    assert read_record(pidfile) is not None and not read_record(pidfile).matches()
    pidfile.write_text(str(sleeper.pid))  # a classic PID file: only our own marker decides
    assert not read_record(pidfile).matches("/some/stack/dir")


def test_port_probing() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        assert not port_free("127.0.0.1", port)
        assert port_owner(port) == os.getpid()
    assert port_free("127.0.0.1", port)


def test_kafka_pom_pins_a_4x_release_and_single_node_settings(tmp_path: Path) -> None:
    assert kafka_version().startswith("4.")
    settings = isolated_settings(tmp_path)
    props = KafkaService(settings, StackPaths.for_data_dir(tmp_path)).server_properties(
        tmp_path / "data"
    )
    for line in (
        "process.roles=broker,controller",
        "transaction.state.log.replication.factor=1",
        "transaction.state.log.min.isr=1",
        "offsets.topic.replication.factor=1",
        "min.insync.replicas=1",
        "group.initial.rebalance.delay.ms=0",
    ):
        assert line in props.splitlines()
    assert "0.0.0.0" not in props


def test_cli_help_has_examples() -> None:
    runner = CliRunner()
    for cmd in ("up", "down", "status", "logs"):
        result = runner.invoke(stack_cli, [cmd, "--help"])
        assert result.exit_code == 0 and "Example" in result.output, cmd
    assert runner.invoke(stack_cli, ["up", "nosuchpiece"]).exit_code == 2


# --- the shared stack -----------------------------------------------------------


def _shared(stack) -> LocalStack:  # noqa: ANN001
    if stack.kind != "local":
        pytest.skip(f"the session's services are {stack.kind}, not the local stack")
    return LocalStack(Settings())


@pytest.mark.integration
def test_shared_stack_up_is_idempotent_and_healthy(stack) -> None:  # noqa: ANN001
    local = _shared(stack)
    rows = local.status()
    assert [r.piece for r in rows] == ["kafka", "postgres", "redis"]
    assert all(r.healthy for r in rows), rows
    before = {r.piece: r.pid for r in rows}
    again = local.up()
    assert {n: r.action for n, r in again.items()} == dict.fromkeys(before, "already running")
    assert {n: r.pid for n, r in again.items()} == before


@pytest.mark.integration
def test_status_and_logs_commands(stack, monkeypatch) -> None:  # noqa: ANN001
    _shared(stack)
    runner = CliRunner()
    status = runner.invoke(stack_cli, ["status", "--check"])
    assert status.exit_code == 0, status.output
    assert status.output.count("healthy") == 3
    logs = runner.invoke(stack_cli, ["logs", "kafka", "-n", "3"])
    assert logs.exit_code == 0 and len(logs.output.splitlines()) == 3


@pytest.mark.integration
async def test_console_producer_message_read_by_aiokafka(stack, settings) -> None:  # noqa: ANN001
    from aiokafka import AIOKafkaConsumer

    if stack.kind != "local":
        pytest.skip("needs the local stack's Kafka jars")
    topic = settings.topic("roundtrip")
    proc = await asyncio.to_thread(
        run_kafka_tool,
        CONSOLE_PRODUCER,
        [
            "--bootstrap-server",
            settings.kafka_bootstrap,
            "--topic",
            topic,
            "--reader-property",
            "parse.key=true",
            "--reader-property",
            "key.separator=|",
        ],
        b"vote-1|hello from the console producer\n",
        120.0,
        settings=settings,
        cache_dir=PROJECT_CACHE,
    )
    assert proc.returncode == 0, proc.stderr.decode()
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=settings.kafka_bootstrap,
        group_id=settings.group_id,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    try:
        deadline = time.monotonic() + 30
        got = []
        while not got and time.monotonic() < deadline:
            batches = await consumer.getmany(timeout_ms=1000)
            got = [m for msgs in batches.values() for m in msgs]
    finally:
        await consumer.stop()
    assert [(m.key, m.value) for m in got] == [(b"vote-1", b"hello from the console producer")]


# --- throw-away stacks ---------------------------------------------------------


@pytest.mark.integration
@pytest.mark.slow
def test_isolated_up_status_down_leaves_nothing_running(iso_stack: LocalStack) -> None:
    results = iso_stack.up()
    assert {r.action for r in results.values()} == {"started"}
    assert all(s.healthy for s in iso_stack.status())
    pids = {n: r.pid for n, r in results.items()}
    assert set(processes_mentioning(str(iso_stack.paths.stack_dir))) >= set(pids.values())

    stopped = iso_stack.down()
    assert all(v.startswith("stopped pid") for v in stopped.values()), stopped
    assert processes_mentioning(str(iso_stack.paths.stack_dir)) == []
    for svc in iso_stack.services.values():
        assert all(port_free("127.0.0.1", p) for p in svc.ports)
        assert not svc.pid_file.exists()
    assert {s.state for s in iso_stack.status()} == {"stopped"}
    assert iso_stack.down() == dict.fromkeys(pids, "not running")


@pytest.mark.integration
def test_stale_pid_file_is_replaced_and_its_pid_left_alone(iso_stack: LocalStack, sleeper) -> None:
    redis = iso_stack.services["redis"]
    iso_stack.paths.ensure()
    redis.dir.mkdir(parents=True)
    # a PID file naming a live process that is not ours (the PID was "reused")
    write_record(redis.pid_file, sleeper.pid, redis.marker)
    notes: list[str] = []
    result = iso_stack.up(["redis"], report=lambda piece, msg: notes.append(msg))["redis"]
    assert result.action == "started" and result.pid != sleeper.pid
    assert any("stale PID file" in n for n in notes)
    iso_stack.down(["redis"])
    assert sleeper.poll() is None  # never signalled

    # and a PID file whose process is dead
    write_record(redis.pid_file, sleeper.pid, redis.marker)
    sleeper.kill()
    sleeper.wait()
    assert iso_stack.up(["redis"])["redis"].action == "started"
    assert iso_stack.status(["redis"])[0].healthy


@pytest.mark.integration
def test_port_taken_by_foreign_process_names_piece_and_port(iso_stack: LocalStack) -> None:
    redis_port = iso_stack.services["redis"].ports[0]
    controller_port = iso_stack.services["kafka"].ports[1]
    with socket.socket() as a, socket.socket() as b:
        a.bind(("127.0.0.1", redis_port))
        a.listen()
        b.bind(("127.0.0.1", controller_port))
        b.listen()
        with pytest.raises(StackError) as info:
            iso_stack.up(["kafka", "redis"])
        assert iso_stack.status(["redis"])[0].state == "port taken"
    lines = info.value.lines()
    assert len(lines) == 2
    assert lines[0].startswith(
        f"kafka: port {controller_port} on 127.0.0.1 is already in use by pid"
    )
    assert lines[1].startswith(f"redis: port {redis_port} on 127.0.0.1 is already in use by pid")
    assert "RINGTALLY_REDIS_URL" in lines[1]


@pytest.mark.integration
def test_corrupt_kafka_meta_properties_is_one_clear_error(iso_stack: LocalStack) -> None:
    kafka = iso_stack.services["kafka"]
    iso_stack.paths.ensure()
    (kafka.data_dir).mkdir(parents=True)
    (kafka.data_dir / "meta.properties").write_bytes(b"\x00\xff garbage")
    with pytest.raises(StackError) as info:
        iso_stack.up(["kafka"])
    line = info.value.line()
    assert line.startswith("kafka: corrupt data dir ") and "meta.properties unreadable" in line
    assert "down --purge" in line and "\n" not in line

    (kafka.data_dir / "meta.properties").write_text(
        "version=1\nnode.id=1\ncluster.id=AAAAAAAAAAAAAAAAAAAAAA\ndirectory.id=x\n"
    )
    kafka.cluster_id_file.write_text("BBBBBBBBBBBBBBBBBBBBBB\n")
    with pytest.raises(StackError, match="cluster id mismatch"):
        iso_stack.up(["kafka"])
    assert processes_mentioning(str(iso_stack.paths.stack_dir)) == []

    iso_stack.down(["kafka"], purge=True)  # the advertised fix
    assert not kafka.dir.exists()


@pytest.mark.integration
def test_missing_binaries_are_named_with_the_install_command(
    iso_stack: LocalStack, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    monkeypatch.delenv("JAVA_HOME", raising=False)
    monkeypatch.setenv("RINGTALLY_STACK_PG_BINDIR", str(empty))
    for var in ("RINGTALLY_STACK_JAVA", "RINGTALLY_STACK_REDIS_SERVER"):
        monkeypatch.delenv(var, raising=False)
    with pytest.raises(StackError) as info:
        iso_stack.up()
    lines = info.value.lines()
    assert lines[0] == (
        "kafka: java not found; install it with 'apt-get install openjdk-17-jre-headless'"
        " (make deps does this)"
    )
    assert lines[1].startswith(f"postgres: RINGTALLY_STACK_PG_BINDIR={empty} holds no initdb")
    assert lines[2] == (
        "redis: redis-server not found; install it with 'apt-get install redis-server'"
        " (make deps does this)"
    )


@pytest.mark.integration
def test_cli_failure_is_one_line_on_stderr_and_exit_1(
    iso_stack: LocalStack, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    s = iso_stack.settings
    for key, value in {
        "RINGTALLY_DATA_DIR": str(s.data_dir),
        "RINGTALLY_REDIS_URL": s.redis_url,
        "RINGTALLY_STACK_REDIS_SERVER": str(tmp_path / "no-such-redis-server"),
    }.items():
        monkeypatch.setenv(key, value)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    proc = subprocess.run(
        [sys.executable, "-m", "connectors.cli", "stack", "up", "redis"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines() == [
        f"redis: RINGTALLY_STACK_REDIS_SERVER={tmp_path / 'no-such-redis-server'} is not an"
        " executable file; point it at redis-server or unset it"
    ]


@pytest.mark.integration
@pytest.mark.skipif(os.geteuid() != 0, reason="only root hands the cluster to the postgres user")
def test_postgres_under_a_closed_dir_is_relocated_for_the_postgres_user() -> None:
    closed = Path(tempfile.mkdtemp(prefix="rt-closed-"))  # mode 700, like a CI workspace
    local = LocalStack(isolated_settings(closed / "data"), cache_dir=PROJECT_CACHE)
    pg = local.services["postgres"]
    try:
        notes: list[str] = []
        assert local.up(["postgres"], report=lambda p, m: notes.append(m))["postgres"].pid
        assert pg.dir.is_symlink() and str(pg.dir.resolve()).startswith("/var/tmp/ringtally-")
        assert any("closed to the 'postgres' user" in n for n in notes)
        assert local.status(["postgres"])[0].healthy
        assert local.up(["postgres"])["postgres"].action == "already running"
        target = pg.dir.resolve()
        local.down(["postgres"], purge=True)
        assert not target.exists() and not pg.dir.exists()
    finally:
        local.down()
        for pid in processes_mentioning(str(pg.dir.resolve())):
            os.kill(pid, 9)
        shutil.rmtree(closed, ignore_errors=True)


def test_fixture_picks_external_then_docker_then_local(monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.fixtures import stack as plugin

    for var in (*plugin._ENV, "RINGTALLY_TEST_STACK"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(plugin, "_docker_answers", lambda: False)
    assert plugin._choose_kind() == "local"
    monkeypatch.setattr(plugin, "_docker_answers", lambda: True)
    assert plugin._choose_kind() == "testcontainers"
    for var in plugin._ENV:
        monkeypatch.setenv(var, "x")
    assert plugin._choose_kind() == "external"
    monkeypatch.setenv("RINGTALLY_TEST_STACK", "local")
    assert plugin._choose_kind() == "local"
    monkeypatch.setenv("RINGTALLY_TEST_STACK", "bogus")
    with pytest.raises(pytest.UsageError):
        plugin._choose_kind()


def test_per_test_settings_are_isolated(stack, settings, topic_prefix) -> None:  # noqa: ANN001
    assert settings.topic_prefix == topic_prefix and topic_prefix.startswith("t-")
    assert settings.kafka_bootstrap == stack.kafka_bootstrap
    assert settings.group_id == f"{topic_prefix}-app"
    assert settings.postgres_schema == topic_prefix.replace("-", "_")


def test_per_test_settings_sign_with_the_registrar_key_their_workers_trust(settings) -> None:  # noqa: ANN001
    """A worker started with ``settings.to_env()`` trusts exactly the key ``Admin`` signs
    with: otherwise every ring a test registers would be unauthorized_control_event."""
    from agents.registrar import trusted_registrar_keys
    from connectors.sdk.registrar import load_registrar

    env = settings.to_env()
    signer = load_registrar(settings).public_key
    assert env["RINGTALLY_REGISTRAR_PUBLIC_KEYS"] == signer.hex()
    worker_side = Settings(
        **{k.removeprefix("RINGTALLY_").lower(): v for k, v in env.items() if v != ""}
    )
    assert trusted_registrar_keys(worker_side) == [signer]
    assert "secret" not in " ".join(env.values()).lower()


def test_stack_up_creates_the_registrar_dev_key_once(tmp_path: Path) -> None:
    """``stack up`` leaves registrar.key (0600) and registrar.pub in the data dir, which a
    worker with no configured keys trusts; a second run keeps the same key."""
    from agents.registrar import trusted_registrar_keys
    from connectors.cli.stack import _ensure_registrar_key

    settings = Settings(data_dir=tmp_path)
    _ensure_registrar_key(settings)
    key, pub = tmp_path / "registrar.key", tmp_path / "registrar.pub"
    assert key.stat().st_mode & 0o777 == 0o600
    public = pub.read_text().strip()
    assert trusted_registrar_keys(settings) == [bytes.fromhex(public)]
    _ensure_registrar_key(settings)
    assert pub.read_text().strip() == public
    assert not (tmp_path / "issuer.key").exists()


def test_stack_up_leaves_a_configured_registrar_alone(tmp_path: Path) -> None:
    from connectors.cli.stack import _ensure_registrar_key

    _ensure_registrar_key(Settings(data_dir=tmp_path, registrar_public_keys="1c" * 32))
    _ensure_registrar_key(
        Settings(data_dir=tmp_path, registrar_key_file=tmp_path / "elsewhere.key")
    )
    assert list(tmp_path.iterdir()) == []


def test_stack_up_creates_the_log_key_the_workers_sign_with_and_verifiers_trust(
    tmp_path: Path,
) -> None:
    """``stack up`` leaves log.key (0600) and log.pub; a worker signs heads with that key
    and ``receipt verify`` trusts log.pub; a configured key file is left alone."""
    from agents.loghead import load_log_signer
    from connectors.cli.stack import _ensure_log_key
    from connectors.sdk.receipt import trusted_log_key

    settings = Settings(data_dir=tmp_path)
    _ensure_log_key(settings)
    assert (tmp_path / "log.key").stat().st_mode & 0o777 == 0o600
    public = trusted_log_key(settings)
    assert load_log_signer(settings).public_key == public
    _ensure_log_key(settings)
    assert trusted_log_key(settings) == public
    elsewhere = tmp_path / "other"
    elsewhere.mkdir()
    _ensure_log_key(Settings(data_dir=elsewhere, log_key_file=tmp_path / "elsewhere.key"))
    assert list(elsewhere.iterdir()) == []


def test_only_throwaway_prefixes_are_ever_dropped() -> None:
    from tests.fixtures import stack as plugin

    assert plugin._TEST_PREFIX.fullmatch("t-0a1b2c3d")
    for real in ("ringtally", "t-", "t-xyz", "dbg-ctl", "t-0a1b2c3d.votes"):
        assert not plugin._TEST_PREFIX.fullmatch(real)


@pytest.mark.integration
def test_changed_port_setting_while_running_is_named(iso_stack: LocalStack) -> None:
    iso_stack.up(["redis"])
    old_port = iso_stack.services["redis"].ports[0]
    (new_port,) = free_ports(1)
    moved = LocalStack(
        iso_stack.settings.model_copy(update={"redis_url": f"redis://127.0.0.1:{new_port}/0"}),
        cache_dir=PROJECT_CACHE,
    )
    with pytest.raises(StackError, match=f"runs on port {old_port} but the settings now say"):
        moved.up(["redis"])
    assert moved.down(["redis"]).get("redis", "").startswith("stopped pid")
