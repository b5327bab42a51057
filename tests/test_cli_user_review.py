"""The review of issue 18's fixes, each finding run as a user runs it: the real ``ringtally``
executable in a subprocess, its output and exit code checked (style of test_cli_user.py)."""

from __future__ import annotations

import os

import pytest

from tests.test_cli_runner import ringtally
from tests.test_cli_user import _env, _one_line_error

PASSWORD = "Pa55wordXYZ"

# --- 2: a secret in a bad value is never printed ------------------------------------------

SECRET_VALUES = {
    "libpq-keywords": (
        "RINGTALLY_POSTGRES_DSN",
        f"host=127.0.0.1 port=15432 user=u password={PASSWORD} dbname=ringtally",
    ),
    "libpq-quoted": ("RINGTALLY_POSTGRES_DSN", f"host=127.0.0.1 password='{PASSWORD} x'"),
    "bare-dsn": ("RINGTALLY_POSTGRES_DSN", PASSWORD),
    "kafka-userinfo": ("RINGTALLY_KAFKA_BOOTSTRAP", f"user:{PASSWORD}@127.0.0.1:19092"),
    "redis-bare": ("RINGTALLY_REDIS_URL", PASSWORD),
    "dsn-slash-in-password": (
        "RINGTALLY_POSTGRES_DSN",
        f"postgresql://u:{PASSWORD}/x@127.0.0.1:notaport/db",
    ),
}


@pytest.mark.parametrize("case", sorted(SECRET_VALUES))
def test_a_bad_value_holding_a_password_is_never_printed(case) -> None:
    """Fails on the old code: the libpq key=value DSN, a bare value and Kafka's user:pw@host
    were printed whole in the one-line error. Every output of the command that reads the
    setting, and of ``config show`` (table and JSON), is searched for the password."""
    variable, value = SECRET_VALUES[case]
    command = {
        "RINGTALLY_POSTGRES_DSN": ["db", "status"],
        "RINGTALLY_KAFKA_BOOTSTRAP": ["rings", "list"],
        "RINGTALLY_REDIS_URL": ["tally", "show", "--redis"],
    }[variable]
    env = _env(**{variable: value})
    result = ringtally(None, *command, env=env)
    _one_line_error(result, variable)
    assert PASSWORD not in result.out + result.err, result
    stack = ringtally(None, "stack", "status", env=env)  # the stack's own error handler
    assert stack.code == 2 and variable in stack.err, stack
    assert PASSWORD not in stack.out + stack.err, stack
    for show in (["config", "show"], ["config", "show", "--json"]):
        shown = ringtally(None, *show, env=env)
        assert shown.code == 0, shown
        assert variable in shown.out and PASSWORD not in shown.out + shown.err, shown


def test_config_show_masks_a_password_keyword_in_a_valid_looking_value() -> None:
    from streams.settings import mask_secrets

    assert mask_secrets(f"postgresql://u@h/db?password={PASSWORD}&x=1") == (
        "postgresql://u@h/db?password=***&x=1"
    )
    assert mask_secrets(f"postgresql://u:{PASSWORD}@h:1/db") == "postgresql://u:***@h:1/db"


# --- 6: one bad setting stops only what reads it ------------------------------------------


@pytest.mark.parametrize(
    "command",
    [
        ["--version"],
        ["--help"],
        ["db", "--help"],
        ["sink", "--help"],
        ["worker", "--help"],
        ["config", "docs"],
        ["keys", "new", "{tmp}/alice.key", "--seed-hex", "11" * 32],
        ["tally", "show", "--redis", "--json"],
    ],
)
def test_one_bad_setting_does_not_stop_commands_that_do_not_read_it(command, tmp_path) -> None:
    """Fails on the old code: RINGTALLY_POSTGRES_DSN=nonsense made each of these exit 2."""
    args = [a.replace("{tmp}", str(tmp_path)) for a in command]
    result = ringtally(None, *args, env=_env(RINGTALLY_POSTGRES_DSN="nonsense"))
    assert result.code == 0, result
    assert "RINGTALLY_POSTGRES_DSN" not in result.err, result


def test_config_show_shows_the_bad_value_and_its_error_masked() -> None:
    """Fails on the old code (exit 2, nothing shown)."""
    import json

    dsn = f"host=127.0.0.1 user=u password={PASSWORD}"
    result = ringtally(None, "config", "show", "--json", env=_env(RINGTALLY_POSTGRES_DSN=dsn))
    assert result.code == 0, result
    row = json.loads(result.out)["postgres_dsn"]
    assert row["value"] == "host=127.0.0.1 user=u password=***"
    assert "libpq key=value" in row["error"]
    assert json.loads(result.out)["partitions"]["value"] == int(
        os.environ.get("RINGTALLY_PARTITIONS", "12")
    )
    assert "ringtally: warning: invalid setting RINGTALLY_POSTGRES_DSN" in result.err
    assert PASSWORD not in result.out + result.err


@pytest.mark.parametrize(
    ("command", "variable"),
    [
        (["db", "status"], "RINGTALLY_POSTGRES_DSN"),
        (["tally", "show", "--redis"], "RINGTALLY_REDIS_URL"),
        (["rings", "list"], "RINGTALLY_TOPIC_PREFIX"),
    ],
)
def test_a_command_that_reads_the_bad_setting_gives_the_one_line(command, variable) -> None:
    """A broken value is never replaced by its default where it is used (a bad topic prefix
    must not make ``rings list`` read the default prefix's topics)."""
    value = {"RINGTALLY_TOPIC_PREFIX": "a b"}.get(variable, "nonsense")
    result = ringtally(None, *command, env=_env(**{variable: value}))
    _one_line_error(result, variable)


# --- 3: ``worker -h HOST`` is Faust's --web-host, not help ---------------------------------


def _isolated_worker_env(tmp_path, **extra: str) -> dict[str, str]:
    """A worker environment with no registrar key anywhere and its own topics."""
    import uuid

    return _env(
        RINGTALLY_DATA_DIR=str(tmp_path / "data"),
        RINGTALLY_TOPIC_PREFIX=f"t-{uuid.uuid4().hex[:8]}",
        RINGTALLY_PARTITIONS="1",
        RINGTALLY_TABLE_STORE="memory",
        **extra,
    )


def test_worker_dash_h_runs_the_start_checks(tmp_path) -> None:
    """Fails on the old code: ``-h`` was taken for help, the checks were skipped and the
    worker died in its agent with a RegistrarKeysMissing traceback, exit 70."""
    result = ringtally(
        None, "worker", "-h", "127.0.0.1", cwd=tmp_path, env=_isolated_worker_env(tmp_path)
    )
    _one_line_error(result, "no registrar public key configured")
    assert "ringtally keys new" in result.err or "RINGTALLY_REGISTRAR" in result.err


def test_worker_help_is_fausts_worker_help() -> None:
    result = ringtally(None, "worker", "--help")
    assert result.code == 0 and "--web-host" in result.out, result


@pytest.mark.integration
def test_a_start_check_failing_inside_a_worker_is_one_line_not_a_traceback(stack, tmp_path) -> None:
    """A worker started without ``ringtally worker``'s pre-checks (Faust's own CLI) still
    refuses in one CRITICAL line, exit 78. Fails on the old code: a traceback, exit 70."""
    import subprocess
    import sys

    env = _isolated_worker_env(tmp_path, RINGTALLY_KAFKA_BOOTSTRAP=stack.kafka_bootstrap)
    proc = subprocess.run(
        [sys.executable, "-m", "faust", "-A", "agents.pipeline:app", "worker", "-l", "info"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    output = proc.stdout + proc.stderr
    assert proc.returncode == 78, output[-3000:]
    assert "Traceback" not in output, output[-3000:]
    critical = [line for line in output.splitlines() if "[CRITICAL]" in line]
    assert len(critical) == 1 and "no registrar public key" in critical[0], critical


# --- 7: a registrar key for a new user outside a checkout ----------------------------------


def _new_user_env(tmp_path, stack, **extra: str) -> dict[str, str]:
    """A user outside any checkout: no RINGTALLY_DATA_DIR, an empty home, own topics."""
    import uuid

    env = {k: v for k, v in os.environ.items() if not k.startswith("RINGTALLY_")}
    env.pop("PYTHONSAFEPATH", None)
    return {
        **env,
        "HOME": str(tmp_path / "home"),
        "XDG_DATA_HOME": str(tmp_path / "home" / "data"),
        "RINGTALLY_KAFKA_BOOTSTRAP": stack.kafka_bootstrap,
        "RINGTALLY_TOPIC_PREFIX": f"t-{uuid.uuid4().hex[:8]}",
        "RINGTALLY_PARTITIONS": "1",
        **extra,
    }


@pytest.mark.integration
def test_rings_add_with_a_registrar_key_file_outside_a_checkout(stack, tmp_path) -> None:
    """Fails on the old code: with RINGTALLY_REGISTRAR_KEY_FILE set and no registrar.pub,
    'rings add' said "no registrar public key known", though the secret key implies it."""
    user = tmp_path / "user"
    user.mkdir()
    env = _new_user_env(tmp_path, stack)
    registrar = ringtally(None, "keys", "new", "registrar.key", cwd=user, env=env)
    assert registrar.code == 0, registrar
    alice = ringtally(None, "keys", "new", "alice.key", cwd=user, env=env)
    assert alice.code == 0, alice
    signing = {**env, "RINGTALLY_REGISTRAR_KEY_FILE": str(user / "registrar.key")}
    added = ringtally(
        None, "rings", "add", "r1", "--genre", "g", "--epoch", "1",
        "--key", alice.out.strip(), cwd=user, env=signing,
    )  # fmt: skip
    assert added.code == 0 and "registered ring r1 version 1" in added.out, added
    listed = ringtally(None, "rings", "list", "--json", cwd=user, env=signing)
    assert listed.code == 0 and '"r1"' in listed.out, listed


@pytest.mark.integration
def test_no_registrar_key_says_how_to_create_one(stack, tmp_path) -> None:
    """Fails on the old code: the message named neither 'ringtally keys new' nor the
    variable that points at a registrar key."""
    user = tmp_path / "user"
    user.mkdir()
    result = ringtally(None, "rings", "list", cwd=user, env=_new_user_env(tmp_path, stack))
    line = _one_line_error(result, "no registrar public key known")
    assert "ringtally keys new registrar.key" in line and "RINGTALLY_REGISTRAR_KEY_FILE" in line


# --- 4: the sink's /health and its read model ----------------------------------------------


@pytest.mark.integration
def test_sink_health_names_the_read_models_redis_when_it_is_down(stack, tmp_path) -> None:
    """``ringtally sink`` with Redis unreachable: /health answers 503 naming the read model's
    Redis, and the log says so while the sink runs (one line, not only at shutdown).
    Fails on the old code: /health said 200 ok, and nothing was logged until SIGTERM."""
    import uuid

    from connectors.stack.harness import free_port
    from tests.test_cli_user import _serving

    port = free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("RINGTALLY_")},
        "RINGTALLY_DATA_DIR": str(tmp_path / "data"),
        "RINGTALLY_KAFKA_BOOTSTRAP": stack.kafka_bootstrap,
        "RINGTALLY_POSTGRES_DSN": stack.postgres_dsn,
        "RINGTALLY_POSTGRES_SCHEMA": f"t_{uuid.uuid4().hex[:8]}",
        "RINGTALLY_TOPIC_PREFIX": f"t-{uuid.uuid4().hex[:8]}",
        "RINGTALLY_PARTITIONS": "1",
        "RINGTALLY_REDIS_URL": f"redis://:{PASSWORD}@127.0.0.1:1/0",
        "RINGTALLY_METRICS_PORT": str(port),
    }
    answers = []

    def redis_down_reported(status: int, body: dict, text: str) -> bool:
        answers.append((status, body))
        return status == 503 and "redis unavailable" in text

    with _serving(
        ["sink", "--migrate"],
        env,
        tmp_path,
        f"http://127.0.0.1:{port}/health",
        tmp_path / "sink.log",
        until=redis_down_reported,
    ) as log_path:
        text = log_path.read_text()
    status, body = answers[-1]
    assert body["status"] == "unavailable" and body["down"] == ["redis (read model)"], body
    redis_lines = [line for line in text.splitlines() if "redis unavailable" in line]
    assert len(redis_lines) == 1 and "read model paused" in redis_lines[0], text[-3000:]
    assert "Traceback" not in text and PASSWORD not in text, text[-3000:]
    assert PASSWORD not in log_path.read_text()


# --- nits -----------------------------------------------------------------------------------


def test_the_sink_metrics_server_answers_404_and_405() -> None:
    """Fails on the old code: every path and method got the metrics with 200."""
    import urllib.request

    from connectors.postgres.metrics import SinkMetrics
    from connectors.postgres.sink import Sink
    from streams.settings import Settings
    from tests.test_cli_user import _get

    metrics = SinkMetrics(Sink(Settings())).start(0)
    try:
        base = f"http://127.0.0.1:{metrics.port}"
        assert _get(f"{base}/metrics")[0] == 200
        assert _get(f"{base}/health")[0] == 200
        assert _get(f"{base}/nothing-here")[0] == 404
        request = urllib.request.Request(f"{base}/metrics", data=b"x", method="POST")
        try:
            urllib.request.urlopen(request, timeout=5)
            raise AssertionError("POST answered 2xx")
        except urllib.error.HTTPError as exc:
            assert exc.code == 405 and exc.headers["Allow"] == "GET, HEAD"
    finally:
        metrics.stop()


@pytest.mark.parametrize(
    ("command", "option"),
    [
        (["readmodel", "--until-idle", "-1"], "--until-idle"),
        (["sink", "--until-idle", "0"], "--until-idle"),
        (["replay", "--stall-timeout", "-3"], "--stall-timeout"),
    ],
)
def test_negative_durations_are_refused_before_anything_runs(command, option, tmp_path) -> None:
    """Fails on the old code: -1 was accepted (readmodel returned at once, exit 0; replay got
    as far as the topics). Refused while parsing, before any topic or schema is made."""
    import uuid

    env = _env(RINGTALLY_TOPIC_PREFIX=f"t-{uuid.uuid4().hex[:8]}")
    result = ringtally(None, *command, cwd=tmp_path, env=env)
    _one_line_error(result, f"Invalid value for '{option}'")


def test_models_schema_check_with_out_repeats_out(tmp_path) -> None:
    """Fails on the old code: the hint said 'python -m models.schema' (the checkout's copy)."""
    import subprocess
    import sys

    proc = subprocess.run(
        [sys.executable, "-m", "models.schema", "--check", "--out", str(tmp_path)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 1 and f"run: python -m models.schema --out {tmp_path}" in proc.stdout


def test_the_votes_schema_names_the_reason_of_every_rule() -> None:
    """Fails on the old schema: five rules had no [reason]. The audit rule says how
    non-ASCII is hashed (escaped, as json.dumps does), not just "UTF-8"."""
    import json

    from models import ReasonCode
    from models.schema import SCHEMA_DIR

    votes = json.loads((SCHEMA_DIR / "votes.schema.json").read_text())
    text = json.dumps(votes)
    vote_reasons = set(ReasonCode) - {
        ReasonCode.UNAUTHORIZED_CONTROL_EVENT,  # control records, not votes
        ReasonCode.CONTROL_CONFLICT,
        ReasonCode.TOKEN_SPENT,  # the workers', not a producer's rule
        ReasonCode.DUPLICATE_KEY_IMAGE,
        *(r for r in ReasonCode if r.meaning.startswith("(v1)")),
    }
    missing = [r.value for r in vote_reasons if f"[{r.value}]" not in text]
    assert not missing, missing
    audit = json.loads((SCHEMA_DIR / "audit_event.schema.json").read_text())["description"]
    assert "non-ASCII" in audit and "json.dumps" in audit


@pytest.mark.integration
def test_stack_status_outside_a_checkout_hints_at_the_data_dir(stack, tmp_path) -> None:
    """Run from a directory outside any checkout while the stack runs: the pieces show "port
    taken" (another data directory's processes). Fails on the old code: no hint at all."""
    import json

    env = {k: v for k, v in _env().items() if k != "RINGTALLY_DATA_DIR"}
    env.update(HOME=str(tmp_path), XDG_DATA_HOME=str(tmp_path / "data"))
    result = ringtally(None, "stack", "status", "--json", cwd=tmp_path, env=env)
    assert result.code == 0, result
    if not any(row["state"] == "port taken" for row in json.loads(result.out)):
        pytest.skip("the services do not run on the ports of the settings here")
    (hint,) = [line for line in result.err.splitlines() if line.startswith("ringtally: hint:")]
    assert "set RINGTALLY_DATA_DIR" in hint and str(tmp_path / "data" / "ringtally") in hint
