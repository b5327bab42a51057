"""docker-compose.yml, Dockerfile and .dockerignore: checked without a Docker engine.

Where a compose plugin answers, ``docker compose config`` checks the file; where
none does (the development machines and CI have no Docker engine), the file is
validated against the Compose Specification's JSON Schema, vendored in
tests/fixtures/specs/. Either way the rules the schema cannot state are checked
here: healthchecks and restart policies on every service, Kafka reachable from
the host and from containers (listeners advertised to match the published
port), the ringtally services on SASL_SSL with SCRAM-SHA-512, no secret written
into the file, a non-root image user, and a build context without local state.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from jsonschema import Draft202012Validator

ROOT = Path(__file__).resolve().parents[1]
COMPOSE_TEXT = (ROOT / "docker-compose.yml").read_text()
COMPOSE = yaml.safe_load(COMPOSE_TEXT)
SERVICES = COMPOSE["services"]
START = (ROOT / "docker/kafka/start.sh").read_text()
RINGTALLY_SERVICES = ("worker", "sink")
#: What compose interpolates: ${NAME}, ${NAME:-default}, ${NAME:?message}.
VARIABLE = re.compile(r"\$\{([A-Z0-9_]+)(?::?[-?][^}]*)?\}")


def _example_env() -> dict[str, str]:
    names = re.findall(r"^([A-Z0-9_]+)=", (ROOT / "docker/env.example").read_text(), re.M)
    return {name: f"test-{name.lower()}" for name in names}


def _docker_compose() -> list[str] | None:
    docker = shutil.which("docker")
    if docker is None:
        return None
    probe = subprocess.run([docker, "compose", "version"], capture_output=True, check=False)
    return [docker, "compose"] if probe.returncode == 0 else None


def test_the_compose_file_is_valid():
    """``docker compose config`` where a compose plugin exists, else the compose schema."""
    compose = _docker_compose()
    if compose is not None:
        result = subprocess.run(
            [*compose, "-f", str(ROOT / "docker-compose.yml"), "config", "--quiet"],
            env={**os.environ, **_example_env()},
            capture_output=True,
            text=True,
            check=False,
        )
        assert result.returncode == 0, result.stderr
        return
    schema = yaml.safe_load((ROOT / "tests/fixtures/specs/compose-spec.schema.json").read_text())
    errors = [
        f"{'/'.join(map(str, e.absolute_path))}: {e.message[:200]}"
        for e in Draft202012Validator(schema).iter_errors(COMPOSE)
    ]
    assert errors == []


def test_the_compose_schema_check_can_fail():
    """A misspelt key and a wrong type are refused (the schema check is not vacuous)."""
    schema = yaml.safe_load((ROOT / "tests/fixtures/specs/compose-spec.schema.json").read_text())
    bad = yaml.safe_load(COMPOSE_TEXT)
    bad["services"]["redis"]["healthcheck"]["intervall"] = "5s"
    bad["services"]["kafka"]["restart"] = ["always"]
    assert len(list(Draft202012Validator(schema).iter_errors(bad))) >= 2


def test_every_variable_is_listed_in_the_env_example_and_no_secret_is_written_in():
    used = set(VARIABLE.findall(COMPOSE_TEXT))
    assert used <= set(_example_env()), used - set(_example_env())
    for name, service in SERVICES.items():
        for key, value in (service.get("environment") or {}).items():
            if "PASSWORD" in key:
                assert VARIABLE.fullmatch(str(value)), f"{name}: {key} is written in the file"
        dsn = (service.get("environment") or {}).get("RINGTALLY_POSTGRES_DSN", "")
        assert not dsn or ":${RINGTALLY_POSTGRES_PASSWORD:?" in dsn


def test_every_service_has_a_healthcheck_and_a_restart_policy():
    for name, service in SERVICES.items():
        check = service.get("healthcheck") or {}
        assert check.get("test") and not check.get("disable"), f"{name}: no healthcheck"
        assert service.get("restart") in ("no", "always", "unless-stopped", "on-failure"), name
        one_shot = service["restart"] == "no"
        assert one_shot == name.endswith(("-init", "-setup")), (
            f"{name}: restart {service['restart']}"
        )
        for dependency, condition in (service.get("depends_on") or {}).items():
            wanted = (
                "completed_successfully" if dependency.endswith(("-init", "-setup")) else "healthy"
            )
            assert condition["condition"] == f"service_{wanted}", f"{name} -> {dependency}"


def test_worker_and_sink_metrics_are_reachable_from_other_containers():
    """Fails on the old file: both bound 127.0.0.1 (the setting's default), so a Prometheus
    container could not scrape them. Nothing publishes their ports to the host."""
    for name, port, path in (("worker", "6066", "/health"), ("sink", "9108", "/health")):
        service = SERVICES[name]
        assert service["environment"]["RINGTALLY_WEB_HOST"] == "0.0.0.0", name
        assert not service.get("ports"), f"{name}: metrics stay on the compose network"
        assert f"http://127.0.0.1:{port}{path}" in " ".join(service["healthcheck"]["test"]), name


def _property(name: str) -> str:
    (value,) = re.findall(rf"^{re.escape(name)}=(.*)$", START, re.M)
    return value


def test_kafka_is_reachable_from_containers_and_from_the_host():
    listeners = dict(item.split("://") for item in _property("listeners").split(","))
    advertised = dict(item.split("://") for item in _property("advertised.listeners").split(","))
    protocols = dict(
        item.split(":") for item in _property("listener.security.protocol.map").split(",")
    )
    # containers: the INTERNAL listener, advertised under the service's name
    assert listeners["INTERNAL"] == ":9094" and advertised["INTERNAL"] == "kafka:9094"
    for name in RINGTALLY_SERVICES:
        assert SERVICES[name]["environment"]["RINGTALLY_KAFKA_BOOTSTRAP"] == "kafka:9094"
    # the host: the published port is the one advertised, on the loopback address only
    (published,) = SERVICES["kafka"]["ports"]
    host_ip, host_port, container_port = published.split(":")
    assert (host_ip, listeners["HOST"]) == ("127.0.0.1", f":{container_port}")
    assert advertised["HOST"] == "127.0.0.1:${KAFKA_HOST_PORT}"
    assert SERVICES["kafka"]["environment"]["KAFKA_HOST_PORT"] == host_port
    # both client listeners authenticate; the controller listener is this container's own
    assert protocols["INTERNAL"] == protocols["HOST"] == "SASL_SSL"
    assert listeners["CONTROLLER"].startswith("localhost:") and "CONTROLLER" not in advertised
    assert _property("sasl.enabled.mechanisms") == "SCRAM-SHA-512"
    assert _property("allow.everyone.if.no.acl.found") == "false"
    assert (
        "--add-scram" in START
        and 'san="dns:kafka,dns:localhost,ip:127.0.0.1"'
        in (ROOT / "docker/kafka/tls-init.sh").read_text()
    )


def test_the_ringtally_services_use_sasl_ssl_and_see_only_the_ca_certificate():
    for name in RINGTALLY_SERVICES:
        env = SERVICES[name]["environment"]
        assert env["RINGTALLY_KAFKA_SECURITY_PROTOCOL"] == "SASL_SSL"
        assert env["RINGTALLY_KAFKA_SASL_MECHANISM"] == "SCRAM-SHA-512"
        assert env["RINGTALLY_KAFKA_SASL_USERNAME"] == "ringtally"
        mounts = {v.split(":")[0]: v.split(":")[1] for v in SERVICES[name]["volumes"]}
        assert mounts["kafka-ca-public"] == str(Path(env["RINGTALLY_KAFKA_SSL_CA_FILE"]).parent)
        assert "kafka-ca" not in mounts and "kafka-broker-tls" not in mounts
    ca_key_users = [
        n
        for n, s in SERVICES.items()
        if any(v.startswith("kafka-ca:") for v in s.get("volumes", []))
    ]
    assert ca_key_users == ["kafka-tls-init"]


def test_the_image_runs_as_a_non_root_user():
    final_stage = (ROOT / "Dockerfile").read_text().rsplit("\nFROM ", 1)[1]
    users = re.findall(r"^USER\s+(\S+)", final_stage, re.M)
    assert users, "the final stage sets no USER: the image would run as root"
    assert users[-1].split(":")[0] not in ("root", "0")


# --- the build context ----------------------------------------------------------------------------


def _ignore_rules() -> list[tuple[bool, re.Pattern[str]]]:
    """.dockerignore as Docker reads it: glob patterns from the context root, ``**`` for any
    depth, ``!`` to re-include; a matching directory excludes all below it; the last match wins."""
    rules = []
    for line in (ROOT / ".dockerignore").read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        negate, pattern = line.startswith("!"), line.lstrip("!").strip("/")
        regex = re.escape(pattern).replace(r"\*\*/", "(?:.*/)?").replace(r"\*\*", ".*")
        regex = regex.replace(r"\*", "[^/]*").replace(r"\?", "[^/]")
        rules.append((negate, re.compile(rf"{regex}(?:/.*)?")))
    return rules


def _excluded(path: str, rules=None) -> bool:
    excluded = False
    for negate, rule in rules or _ignore_rules():
        if rule.fullmatch(path):
            excluded = not negate
    return excluded


@pytest.mark.parametrize(
    "path",
    [
        ".ringtally/registrar.key",
        ".ringtally/kafka/jars/kafka.jar",
        ".venv/bin/python",
        "native/target/release/libringcrypto.so",
        "native/fuzz/corpus/seed",
        ".git/HEAD",
        ".env",
        "connectors/stack/some.pem",
        "models/__pycache__/votes.cpython-311.pyc",
    ],
)
def test_local_state_and_build_output_stay_out_of_the_build_context(path):
    assert _excluded(path)


@pytest.mark.parametrize(
    "path",
    [
        "pyproject.toml",
        "README.md",
        "constraints.txt",
        "ringcrypto.pyi",
        "native/Cargo.toml",
        "native/Cargo.lock",
        "native/src/lib.rs",
        "models/schemas/votes.schema.json",
        "connectors/cli/__init__.py",
    ],
)
def test_what_the_image_builds_from_stays_in_the_build_context(path):
    assert not _excluded(path)


def test_the_build_context_of_this_checkout_is_small():
    """Walks this checkout (in CI: with .venv, native/target and .ringtally made by make)."""
    rules, total = _ignore_rules(), 0
    for directory, dirs, files in os.walk(ROOT):
        rel = Path(directory).relative_to(ROOT).as_posix()
        prefix = "" if rel == "." else f"{rel}/"
        dirs[:] = [d for d in dirs if not _excluded(prefix + d, rules)]
        for name in files:
            path = Path(directory, name)
            if not _excluded(prefix + name, rules) and not path.is_symlink():
                total += path.stat().st_size
    assert total < 20 * 1024 * 1024, f"build context is {total / 2**20:.1f} MiB"
