"""docker-compose.yml cannot run here (no Docker engine); check what it declares."""

from pathlib import Path

import yaml

from streams.settings import Settings

ROOT = Path(__file__).resolve().parents[1]


def _compose():
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def test_compose_names_the_stack_services():
    services = _compose()["services"]
    assert {"kafka", "postgres", "redis", "worker", "sink"} <= set(services)
    assert services["kafka"]["environment"]["KAFKA_PROCESS_ROLES"] == "broker,controller"
    assert services["kafka"]["image"].startswith("apache/kafka:4.")


def test_worker_and_sink_use_the_ringtally_settings_variables():
    services = _compose()["services"]
    known = {f"RINGTALLY_{name.upper()}" for name in Settings.model_fields}
    for name in ("worker", "sink"):
        env = services[name]["environment"]
        for required in (
            "RINGTALLY_KAFKA_BOOTSTRAP",
            "RINGTALLY_POSTGRES_DSN",
            "RINGTALLY_REDIS_URL",
            "RINGTALLY_TOPIC_PREFIX",
            "RINGTALLY_PARTITIONS",
        ):
            assert required in env, (name, required)
        assert set(env) <= known, set(env) - known  # no variable the settings would ignore
    assert services["worker"]["command"][:2] == ["ringtally", "worker"]


def test_the_worker_must_be_given_the_registrar_keys():
    """Compose's ``${VAR:?message}``: ``docker compose up`` stops with the message when unset.
    Only public keys: no service is handed the registrar's secret key file."""
    services = _compose()["services"]
    keys = services["worker"]["environment"]["RINGTALLY_REGISTRAR_PUBLIC_KEYS"]
    assert keys.startswith("${RINGTALLY_REGISTRAR_PUBLIC_KEYS:?") and keys.endswith("}")
    assert "ringtally keys show registrar.key" in keys
    assert "RINGTALLY_REGISTRAR_PUBLIC_KEYS" not in services["sink"]["environment"]
    for service in services.values():
        env = service.get("environment") or {}
        assert not any("ISSUER" in name for name in env), env  # protocol v1 is gone
        assert "RINGTALLY_REGISTRAR_KEY_FILE" not in env


def test_compose_addresses_parse_as_settings():
    env = dict(_compose()["services"]["worker"]["environment"])
    env["RINGTALLY_REGISTRAR_PUBLIC_KEYS"] = "1c" * 32  # what the operator's variable gives
    s = Settings(**{k.removeprefix("RINGTALLY_").lower(): v for k, v in env.items()})
    assert s.kafka_bootstrap == "kafka:9092"
    assert s.partitions == 12
    assert s.registrar_public_key_list == [bytes.fromhex("1c" * 32)]
