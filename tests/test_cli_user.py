"""A new user's rough edges (issue 18), each run as a user runs it: the real ``ringtally``
executable in a subprocess, its output and exit code checked.

Version, help and completion; bad settings and options as one line (never a traceback,
never a secret); ``config show`` and its reference page; a misspelt variable.
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path

import pytest

from tests.test_cli_runner import ROOT, ringtally


def _env(**extra: str) -> dict[str, str]:
    return {**os.environ, **extra}


def _one_line_error(result, needle: str, code: int = 2) -> str:
    assert result.code == code, result
    assert "Traceback" not in result.out + result.err, result
    lines = [line for line in result.err.strip().splitlines() if line.startswith("ringtally:")]
    assert len(lines) == 1 and lines[0].startswith("ringtally: error: "), result
    assert needle in lines[0], result
    return lines[0]


# --- version, help, completion ----------------------------------------------------------


def test_version_is_ringtallys_and_names_the_rust_core() -> None:
    """Fails on the old code, which printed "ringtally, version Faust 0.15.3"."""
    import ringcrypto

    result = ringtally(None, "--version")
    assert result.code == 0, result
    assert result.out.startswith("ringtally 0.1.0 ("), result
    assert f"ringcrypto {ringcrypto.__version__}" in result.out
    assert "Faust" not in result.out


def test_root_help_lists_ringtallys_commands_and_only_fausts_worker() -> None:
    """Fails on the old code: the root help listed ten Faust commands (two crashed)."""
    result = ringtally(None, "--help")
    assert result.code == 0, result
    listed = {
        line.split()[0]
        for line in result.out.split("Commands:")[1].splitlines()
        if line.startswith("  ") and not line.startswith("    ")
    }
    assert {"worker", "config", "stack", "sink", "db", "tally"} <= listed, listed
    assert not listed & {"agents", "completion", "livecheck", "models", "send", "tables"}
    assert "--version" in result.out and "_RINGTALLY_COMPLETE=bash_source" in result.out
    gone = ringtally(None, "agents")
    _one_line_error(gone, "No such command 'agents'")


def test_shell_completion_is_clicks_own() -> None:
    """Click's completion (worked before the fix too; kept as the documented way)."""
    script = ringtally(None, env=_env(_RINGTALLY_COMPLETE="bash_source"))
    assert script.code == 0 and "_ringtally_completion()" in script.out, script
    words = ringtally(
        None,
        env=_env(_RINGTALLY_COMPLETE="bash_complete", COMP_WORDS="ringtally con", COMP_CWORD="1"),
    )
    assert words.code == 0 and "plain,config" in words.out.splitlines(), words


# --- bad settings and options: one line, exit 2, no secret ------------------------------

SECRET = "hunter2-secret"
BAD = {
    "dsn-port": (
        {"RINGTALLY_POSTGRES_DSN": f"postgresql://u:{SECRET}@127.0.0.1:notaport/x"},
        "RINGTALLY_POSTGRES_DSN: port 'notaport' is not a number",
    ),
    "dsn-scheme": (
        {"RINGTALLY_POSTGRES_DSN": f"http://u:{SECRET}@127.0.0.1/x"},
        "RINGTALLY_POSTGRES_DSN: is not a postgresql://",
    ),
    "redis-port": (
        {"RINGTALLY_REDIS_URL": f"redis://:{SECRET}@127.0.0.1:xx/0"},
        "RINGTALLY_REDIS_URL: has a port that is not a number",
    ),
    "redis-scheme": ({"RINGTALLY_REDIS_URL": "127.0.0.1:16379"}, "RINGTALLY_REDIS_URL"),
    "kafka-port": ({"RINGTALLY_KAFKA_BOOTSTRAP": "127.0.0.1:x"}, "RINGTALLY_KAFKA_BOOTSTRAP"),
    "partitions": ({"RINGTALLY_PARTITIONS": "many"}, "RINGTALLY_PARTITIONS"),
}
COMMANDS = {
    "db-status": ["db", "status"],
    "db-migrate": ["db", "migrate", "--dry-run"],
    "audit-verify": ["audit", "verify"],
    "sink": ["sink", "--once"],
    "tally-show": ["tally", "show"],
    "tally-show-redis": ["tally", "show", "--redis"],
}


#: Commands that read only some settings: a bad value of another one does not stop them
#: (test_cli_user_review.py checks that they then work).
READS_ONLY = {
    "tally-show": {"dsn-port", "dsn-scheme"},
    "tally-show-redis": {"redis-port", "redis-scheme"},
}


@pytest.mark.parametrize(
    ("command", "bad"),
    [(c, b) for c in sorted(COMMANDS) for b in sorted(BAD) if b in READS_ONLY.get(c, BAD)],
)
def test_a_bad_setting_is_one_line_naming_it_never_the_secret(command, bad) -> None:
    """Fails on the old code: a malformed DSN was "unavailable", a bad Redis URL or DSN port
    a traceback. Settings are checked before anything connects, so no service is needed."""
    env, needle = BAD[bad]
    result = ringtally(None, *COMMANDS[command], env=_env(**env))
    _one_line_error(result, needle)
    assert SECRET not in result.out + result.err


@pytest.mark.parametrize("command", [["db", "status"], ["db", "migrate"], ["audit", "verify"]])
def test_a_bad_schema_option_names_the_option(command) -> None:
    """Fails on the old code, which blamed RINGTALLY_POSTGRES_SCHEMA for --schema."""
    result = ringtally(None, *command, "--schema", "a;b")
    assert "RINGTALLY_POSTGRES_SCHEMA" not in result.err
    _one_line_error(result, "Invalid value for '--schema': 'a;b' is not a schema name")


def test_a_bad_schema_option_of_the_sink_names_the_option() -> None:
    result = ringtally(None, "sink", "--schema", "x y", "--once")
    _one_line_error(result, "'--schema'")


@pytest.mark.integration
@pytest.mark.parametrize("command", sorted(set(COMMANDS) - {"tally-show-redis"}))
def test_a_refused_login_is_one_line_with_the_fix_and_no_password(stack, command) -> None:
    """A role that does not exist: the server answers "no", which is not "unavailable".
    Fails on the old code: a traceback (InvalidAuthorizationSpecificationError)."""
    host = stack.postgres_dsn.rpartition("@")[2]
    dsn = f"postgresql://nobody-{SECRET[:6]}:{SECRET}@{host}"
    result = ringtally(None, *COMMANDS[command], env=_env(RINGTALLY_POSTGRES_DSN=dsn))
    line = _one_line_error(result, "refused the connection")
    assert "check the user, password and database in RINGTALLY_POSTGRES_DSN" in line
    assert SECRET not in result.out + result.err


@pytest.mark.integration
def test_audit_verify_on_an_unmigrated_schema_is_one_line(stack) -> None:
    """Fails on the old code: count_events ran before the schema check (UndefinedTableError)."""
    result = ringtally(
        None,
        "audit",
        "verify",
        "--schema",
        "t_never_migrated",
        env=_env(RINGTALLY_POSTGRES_DSN=stack.postgres_dsn),
    )
    _one_line_error(result, "schema t_never_migrated has no ringtally tables yet", code=1)


@pytest.mark.integration
def test_the_sink_with_kafka_down_is_one_line(stack) -> None:
    """Fails on the old code: the read model's failed start left "Task exception was never
    retrieved" with its traceback, and an unclosed consumer."""
    result = ringtally(
        None,
        "sink",
        "--once",
        env=_env(
            RINGTALLY_KAFKA_BOOTSTRAP="127.0.0.1:9",
            RINGTALLY_POSTGRES_DSN=stack.postgres_dsn,
            RINGTALLY_POSTGRES_SCHEMA="t_never_migrated",
        ),
    )
    assert result.code in (1, 2), result
    assert "Traceback" not in result.err and "never retrieved" not in result.err, result
    assert "Unclosed" not in result.err, result


# --- config show, its reference, a misspelt variable --------------------------------------


def test_config_show_says_where_each_value_came_from_and_masks_secrets() -> None:
    """Fails on the old code: there was no ``config`` command."""
    dsn = f"postgresql://ringtally:{SECRET}@127.0.0.1:15432/ringtally"
    env = _env(RINGTALLY_PARTITIONS="5", RINGTALLY_POSTGRES_DSN=dsn)
    env.pop("RINGTALLY_MIN_VOTES", None)
    result = ringtally(None, "config", "show", "--json", env=env)
    assert result.code == 0, result
    shown = json.loads(result.out)
    assert shown["partitions"] == {
        "variable": "RINGTALLY_PARTITIONS",
        "value": 5,
        "source": "env RINGTALLY_PARTITIONS",
    }
    assert shown["min_votes"]["source"] == "default" and shown["min_votes"]["value"] == 3
    assert shown["postgres_dsn"]["value"] == "postgresql://ringtally:***@127.0.0.1:15432/ringtally"
    assert SECRET not in result.out + result.err
    table = ringtally(None, "config", "show", env=env)
    assert table.code == 0 and "RINGTALLY_PARTITIONS" in table.out, table
    assert SECRET not in table.out + table.err


def test_redacted_masks_any_secret_field_and_any_url_password() -> None:
    """Generic masking: a SecretStr setting added later is masked without being listed."""
    from pydantic import SecretStr

    from streams.settings import Settings

    class WithSecret(Settings):
        some_password: SecretStr = SecretStr(SECRET)
        other_url: str = f"amqp://me:{SECRET}@host/"

    shown = WithSecret().redacted()
    assert shown["some_password"] == "***"
    assert shown["other_url"] == "amqp://me:***@host/"
    assert SECRET not in json.dumps(shown, default=str)


@pytest.mark.parametrize(
    ("variable", "closest"),
    [
        ("RINGTALLY_PARTITONS", "RINGTALLY_PARTITIONS"),
        ("RINGTALLY_REGISTRAR_PUBLIC_KEY", "RINGTALLY_REGISTRAR_PUBLIC_KEYS"),
        ("RINGTALLY_POSTGRES_SCEHMA", "RINGTALLY_POSTGRES_SCHEMA"),
        # replaced in session 11; not close to its replacement by spelling
        ("RINGTALLY_ROCKSDB_BLOCK_CACHE", "RINGTALLY_ROCKSDB_MEMORY"),
    ],
)
def test_a_misspelt_variable_gets_a_warning_naming_the_closest_setting(variable, closest):
    """Fails on the old code, which ignored it silently (extra="ignore")."""
    result = ringtally(None, "config", "show", "--json", env=_env(**{variable: "1"}))
    assert result.code == 0, result
    assert (
        f"ringtally: warning: {variable} is not a ringtally setting; did you mean {closest}?"
        in result.err.splitlines()
    ), result


def test_known_variables_of_other_parts_get_no_warning() -> None:
    result = ringtally(
        None,
        "config",
        "show",
        "--json",
        env=_env(RINGTALLY_GATEWAY_PORT="8081", RINGTALLY_STACK_JAVA="/usr/bin/java"),
    )
    assert result.code == 0 and "warning" not in result.err, result


def test_every_setting_is_documented_in_docs_configuration_md() -> None:
    """docs/configuration.md is generated from the Settings model: a field added without a
    description, or without regenerating the page, fails here."""
    from streams.settings import Settings, settings_markdown

    undocumented = [n for n, f in Settings.model_fields.items() if not f.description]
    assert not undocumented, f"settings without a description: {undocumented}"
    page = (ROOT / "docs" / "configuration.md").read_text()
    assert page == settings_markdown(), (
        "docs/configuration.md is stale: ringtally config docs > docs/configuration.md"
    )
    for name in Settings.model_fields:
        assert f"`RINGTALLY_{name.upper()}`" in page


def test_config_docs_prints_the_reference_page() -> None:
    result = ringtally(None, "config", "docs")
    assert result.code == 0, result
    assert result.out == Path(ROOT / "docs" / "configuration.md").read_text()


# --- a worker and a sink run as an operator runs them ------------------------------------

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def _listen_addresses(port: int) -> set[str]:
    """The local addresses something listens on at TCP ``port`` (from /proc/net/tcp)."""
    out = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        local, state = line.split()[1], line.split()[3]
        address, hex_port = local.split(":")
        if int(hex_port, 16) == port and state == "0A":  # LISTEN
            out.add(".".join(str(b) for b in reversed(bytes.fromhex(address))))
    return out


def _get(url: str) -> tuple[int, dict[str, str], str]:
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, dict(response.headers), response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read().decode()


@contextlib.contextmanager
def _serving(
    args: list[str], env: dict[str, str], cwd: Path, health: str, log_path: Path, until=None
):
    """``ringtally ARGS`` in its own session until its ``health`` URL says ok (or
    ``until(status, body, log_text)`` holds); stopped with SIGTERM (as an operator would)
    afterwards. Yields the log's path."""
    import signal
    import subprocess
    import time

    from tests.test_cli_runner import RINGTALLY

    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [*RINGTALLY, *args],
            cwd=cwd,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 120
        while True:
            assert proc.poll() is None, log_path.read_text()[-3000:]
            assert time.monotonic() < deadline, log_path.read_text()[-3000:]
            try:
                status, _, body = _get(health)
                if until is not None:
                    if until(status, json.loads(body), log_path.read_text()):
                        break
                elif status == 200 and json.loads(body).get("status") == "ok":
                    break
            except (OSError, ValueError):
                pass
            time.sleep(0.5)
        yield log_path
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(10)


def _metric_families(text: str) -> dict[str, object]:
    from prometheus_client.parser import text_string_to_metric_families

    return {family.name: family for family in text_string_to_metric_families(text)}


def _assert_build_info(families: dict[str, object]) -> None:
    from importlib.metadata import version

    import ringcrypto

    samples = families["ringtally_build_info"].samples
    assert [(s.labels, s.value) for s in samples] == [
        (
            {
                "version": version("ringtally"),
                "ringcrypto": ringcrypto.__version__,
                "spec": ringcrypto.SPEC_VERSION,
            },
            1.0,
        )
    ]


@pytest.mark.integration
def test_worker_p_gets_its_own_tables_binds_web_host_and_says_when_no_key_matches(
    stack, tmp_path
) -> None:
    """``ringtally worker -p N`` as an operator starts a second worker on one host:

    * its RocksDB directory is named after N, not RINGTALLY_WEB_PORT (they shared one);
    * its web server listens on RINGTALLY_WEB_HOST only (it bound 0.0.0.0);
    * its /metrics says which exposition format it is, and which build answers;
    * a ring signed by a registrar key it does not trust (the registrar side used another
      data directory) gets one warning with the fix (before: silent rejections).
    Fails on the old code on each of these.
    """
    import time
    import uuid

    import ringcrypto
    from connectors.sdk import Admin
    from connectors.stack.harness import free_port
    from tests.fixtures.sink_records import settings_env
    from tests.fixtures.stack import make_settings

    trusted = ringcrypto.SecretKey.generate().public_key.hex()  # not the key Admin signs with
    port, configured = free_port(), free_port()
    settings = make_settings(
        stack,
        f"t-{uuid.uuid4().hex[:8]}",
        partitions=1,
        data_dir=tmp_path / "data",
        table_store="rocksdb",
        web_host="127.0.0.1",
        web_port=configured,
        registrar_public_keys=trusted,
    )
    with _serving(
        ["worker", "-p", str(port), "--loglevel", "info"],
        settings_env(settings),
        tmp_path,
        f"http://127.0.0.1:{port}/health",
        tmp_path / "worker.log",
    ) as log_path:
        workers = tmp_path / "data" / "workers"
        assert sorted(p.name for p in workers.iterdir()) == [f"{settings.group_id}-{port}"]
        assert _listen_addresses(port) == {"127.0.0.1"}

        status, headers, text = _get(f"http://127.0.0.1:{port}/metrics")
        assert status == 200 and headers["Content-Type"] == CONTENT_TYPE, headers
        _assert_build_info(_metric_families(text))

        Admin(settings).register_ring(
            "ring-1",
            genre="g",
            epoch=1,
            public_keys=[ringcrypto.SecretKey.generate().public_key],
        )
        needle = "none signed by a registrar key this worker trusts"
        deadline = time.monotonic() + 60
        while needle not in log_path.read_text():
            assert time.monotonic() < deadline, log_path.read_text()[-3000:]
            time.sleep(0.5)
        text = log_path.read_text()
        assert text.count(needle) == 1
        assert "RINGTALLY_REGISTRAR_PUBLIC_KEYS" in text.split(needle, 1)[1].splitlines()[0]


@pytest.mark.integration
def test_the_sink_serves_health_and_metrics_with_a_lag_gauge_and_build_info(
    stack, tmp_path
) -> None:
    """``ringtally sink`` with RINGTALLY_METRICS_PORT: /health answers (it served the
    metrics there), /metrics has the versioned content type (it said version 0.0.4 only
    by accident of prometheus-client's defaults: checked here), ringtally_build_info, and
    the summed lag as a gauge named without _total. Fails on the old code."""
    import uuid

    from connectors.stack.harness import free_port
    from tests.fixtures.sink_records import settings_env
    from tests.fixtures.stack import make_settings

    port = free_port()
    settings = make_settings(
        stack, f"t-{uuid.uuid4().hex[:8]}", partitions=1, metrics_port=port, data_dir=tmp_path
    )
    migrated = ringtally(settings, "db", "migrate")
    assert migrated.code == 0, migrated
    with _serving(
        ["sink", "--no-readmodel"],
        settings_env(settings),
        tmp_path,
        f"http://127.0.0.1:{port}/health",
        tmp_path / "sink.log",
    ):
        status, headers, body = _get(f"http://127.0.0.1:{port}/health")
        assert status == 200 and headers["Content-Type"] == "application/json"
        assert json.loads(body) == {"status": "ok", "down": [], "lag": 0, "records": 0}
        status, headers, text = _get(f"http://127.0.0.1:{port}/metrics")
        assert status == 200 and headers["Content-Type"] == CONTENT_TYPE, headers
        families = _metric_families(text)
        _assert_build_info(families)
        assert families["ringtally_sink_lag_overall"].type == "gauge"
        assert "ringtally_sink_lag_total" not in text
        assert _listen_addresses(port) == {"127.0.0.1"}


# --- the data directory -------------------------------------------------------------------


def _no_data_dir_env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "RINGTALLY_DATA_DIR"}
    return {**env, "XDG_DATA_HOME": str(tmp_path / "xdg")}


def test_help_and_read_only_commands_create_no_data_directory(tmp_path) -> None:
    """Fails on the old code: ``worker --help`` created ./.ringtally wherever it ran."""
    cwd = tmp_path / "somewhere"
    cwd.mkdir()
    env = _no_data_dir_env(tmp_path)
    for args in (
        ["--help"],
        ["--version"],
        ["worker", "--help"],
        ["config", "show"],
        ["keys", "--help"],
        ["stack", "status"],
        ["db", "status"],
    ):
        result = ringtally(None, *args, cwd=cwd, env=env)
        assert "Traceback" not in result.err, result
        assert list(cwd.iterdir()) == [], (args, result)
        assert not (tmp_path / "xdg" / "ringtally").exists(), (args, result)


def test_the_data_directory_is_found_the_same_way_from_anywhere(tmp_path) -> None:
    """The nearest .ringtally/ above, else a ringtally checkout's, else the user data dir.
    Fails on the old code, where it was ./.ringtally of whatever the current directory was."""
    env = _no_data_dir_env(tmp_path)

    def data_dir(cwd: Path) -> tuple[str, str]:
        result = ringtally(None, "config", "show", "--json", cwd=cwd, env=env)
        assert result.code == 0, result
        shown = json.loads(result.out)["data_dir"]
        return shown["value"], shown["source"]

    project = tmp_path / "project"
    deep = project / "a" / "b"
    deep.mkdir(parents=True)
    (project / ".ringtally").mkdir()
    assert data_dir(deep) == (
        str(project / ".ringtally"),
        f"default: the nearest .ringtally/ (in {project})",
    )
    assert data_dir(ROOT / "docs")[0] == str(ROOT / ".ringtally")
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    value, source = data_dir(outside)
    assert value == str(tmp_path / "xdg" / "ringtally") and "user data directory" in source
    explicit = ringtally(
        None, "config", "show", "--json", cwd=deep, env={**env, "RINGTALLY_DATA_DIR": "x"}
    )
    shown = json.loads(explicit.out)["data_dir"]
    assert shown == {
        "variable": "RINGTALLY_DATA_DIR",
        "value": str(deep / "x"),
        "source": "env RINGTALLY_DATA_DIR",
    }


# --- --json: stable keys (docs/cli.md), parsed --------------------------------------------


@pytest.mark.integration
def test_json_output_of_db_status_audit_verify_tally_show_stack_status_and_replay(
    stack, tmp_path
) -> None:
    """Each command's --json parses and carries the keys docs/cli.md lists. Fails on the
    old code: db status, stack status, audit verify and replay had no --json."""
    import uuid

    from streams.topics import ensure_topics
    from tests.fixtures.stack import make_settings

    settings = make_settings(stack, f"t-{uuid.uuid4().hex[:8]}", partitions=1, data_dir=tmp_path)
    ensure_topics(settings, internal=True)
    assert ringtally(settings, "db", "migrate").code == 0

    def parsed(*args: str, code: int = 0):
        result = ringtally(settings, *args, "--json")
        assert result.code == code, result
        return json.loads(result.out)

    from connectors.postgres.migrate import discover

    status = parsed("db", "status")
    shipped = len(discover())
    assert status == {
        "schema": settings.postgres_schema,
        "version": shipped,
        "migrations_known": shipped,
        "rows": dict.fromkeys(
            ["ballots", "rejections", "tallies", "escalations", "audit_log", "sink_dead_letters"],
            0,
        ),
        "offsets": [],
    }
    assert parsed("audit", "verify") == {"ok": True, "events": 0, "chains": 0, "breaks": []}
    assert parsed("tally", "show") == []
    pieces = parsed("stack", "status")
    assert [p["piece"] for p in pieces] == ["kafka", "postgres", "redis"]
    assert set(pieces[0]) == {"piece", "address", "pid", "state", "healthy", "detail", "log"}
    replay = parsed("replay", "--quiet", "--stall-timeout", "60")
    assert replay["ok"] is True and replay["differences"] == []
    assert set(replay) == {
        "ok",
        "live_schema",
        "replay_schema",
        "since",
        "tables",
        "differences",
        "votes_records",
        "seconds",
        "kept",
        "notes",
    }
    assert replay["tables"]["ballots"] == {"live_rows": 0, "replay_rows": 0, "differences": 0}


@pytest.mark.integration
@pytest.mark.parametrize("command", [["tally", "show", "--redis"], ["readmodel", "--once"]])
def test_a_redis_database_out_of_range_is_one_line(stack, command) -> None:
    """Redis answers "DB index is out of range". Fails on the old code: a traceback."""
    url = stack.redis_url.rsplit("/", 1)[0] + "/999"
    result = ringtally(None, *command, env=_env(RINGTALLY_REDIS_URL=url))
    line = _one_line_error(result, "refused (DB index is out of range)")
    assert "check the database number, user and password in RINGTALLY_REDIS_URL" in line
