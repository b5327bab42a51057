"""Settings: environment prefix, validation, redaction."""

import pytest
from pydantic import ValidationError

from streams.settings import Settings, redact_url


def test_environment_variables_override_defaults(monkeypatch):
    monkeypatch.setenv("RINGTALLY_KAFKA_BOOTSTRAP", "10.0.0.1:9092")
    monkeypatch.setenv("RINGTALLY_PARTITIONS", "4")
    monkeypatch.setenv("RINGTALLY_TABLE_STORE", "memory")
    s = Settings()
    assert (s.kafka_bootstrap, s.partitions, s.table_store) == ("10.0.0.1:9092", 4, "memory")
    assert Settings(partitions=2).partitions == 2  # constructor wins


def test_defaults_point_at_the_local_stack():
    s = Settings()
    assert s.kafka_bootstrap.startswith("127.0.0.1:")
    assert "127.0.0.1" in s.postgres_dsn and "127.0.0.1" in s.redis_url
    assert s.data_dir.is_absolute()
    assert s.topic("votes") == "ringtally.votes"
    assert s.group_id == "ringtally-worker"


@pytest.mark.parametrize(
    "bad",
    [
        {"partitions": 0},
        {"table_store": "sqlite"},
        {"topic_prefix": "has space"},
        {"web_port": 0},
        {"data_dir": ""},
    ],
)
def test_invalid_values_are_refused(bad):
    with pytest.raises(ValidationError):
        Settings(**bad)


def test_settings_are_frozen():
    with pytest.raises(ValidationError):
        Settings().partitions = 3


def test_passwords_are_masked_when_shown():
    s = Settings(postgres_dsn="postgresql://u:hunter2@127.0.0.1:5432/db")
    shown = s.redacted()
    assert "hunter2" not in str(shown)
    assert shown["postgres_dsn"] == "postgresql://u:***@127.0.0.1:5432/db"
    assert redact_url("redis://127.0.0.1:6379/0") == "redis://127.0.0.1:6379/0"


def test_output_prefix_moves_only_the_output_topics():
    s = Settings(topic_prefix="live", output_prefix="shadow")
    assert s.topic("votes") == "live.votes" and s.topic("rings") == "live.rings"
    assert s.topic("ballots") == "shadow.ballots" and s.topic("tallies") == "shadow.tallies"
    assert Settings(topic_prefix="live").topic("ballots") == "live.ballots"


@pytest.mark.parametrize(
    "bad",
    [
        {"control_sync_interval": 0},
        {"control_sync_interval": 11},
        {"control_clock_skew_ms": -1},
        {"control_clock_skew_ms": 60_001},
    ],
)
def test_control_reader_settings_are_bounded(bad):
    """A zero sync interval would spin; an unbounded skew would hold every vote."""
    with pytest.raises(ValidationError):
        Settings(**bad)


def test_v1_issuer_and_fanout_settings_are_gone(monkeypatch):
    """Protocol v2 has no issuer: a leftover variable is ignored, never half-honoured."""
    monkeypatch.setenv("RINGTALLY_ISSUER_PUBLIC_KEYS", "aa" * 32)
    monkeypatch.setenv("RINGTALLY_FANOUT", "false")
    env = Settings().to_env()
    assert not any("ISSUER" in k or "FANOUT" in k for k in env)
    assert "RINGTALLY_CONTROL_CLOCK_SKEW_MS" in env and "RINGTALLY_REGISTRAR_PUBLIC_KEYS" in env
