"""streams.topics against a real broker: the configuration decisions rest on.

Which vote came first and which ring version was in force are decided by
broker timestamps (docs/protocol.md), so ensure_topics must set them and the
worker-start checks must notice when they are missing.
"""

from __future__ import annotations

import time

import pytest
from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic

from streams.topics import (
    broker_time_problem,
    ensure_topics,
    partition_count_problem,
    session_timeout_problem,
)

BROKER_TIME = ("votes", "rings", "submissions")


def _configs(settings, names):
    admin = AdminClient({"bootstrap.servers": settings.kafka_bootstrap})
    resources = [ConfigResource(ConfigResource.Type.TOPIC, settings.topic(n)) for n in names]
    described = admin.describe_configs(resources, request_timeout=30)
    return {
        r.name.rsplit(".", 1)[1]: {k: v.value for k, v in f.result(timeout=30).items()}
        for r, f in described.items()
    }


def _create(settings, name, partitions, config):
    """Create a topic by hand (as an operator or v1 would have), and wait until it is known."""
    admin = AdminClient({"bootstrap.servers": settings.kafka_bootstrap})
    new = NewTopic(settings.topic(name), partitions, 1, config=config)
    for future in admin.create_topics([new], operation_timeout=30).values():
        future.result()
    deadline = time.monotonic() + 30
    while settings.topic(name) not in admin.list_topics(timeout=30).topics:
        assert time.monotonic() < deadline, f"{name} not in the metadata after 30 s"
        time.sleep(0.05)


def test_new_topics_are_broker_stamped_kept_for_ever_and_not_compacted(settings):
    ensure_topics(settings)
    configs = _configs(settings, [*BROKER_TIME, "tallies"])
    for name in BROKER_TIME:
        assert configs[name]["message.timestamp.type"] == "LogAppendTime", name
        assert configs[name]["retention.ms"] == "-1", name
        assert configs[name]["cleanup.policy"] == "delete", name
    assert configs["tallies"]["cleanup.policy"] == "compact"
    assert broker_time_problem(settings) is None and partition_count_problem(settings) is None


def test_existing_topics_made_by_hand_or_by_v1_are_repaired(settings):
    """A producer-stamped votes topic, a compacted rings topic (v1 kept only a ring's latest
    record): the worker-start check names the first problem; ensure_topics repairs both."""
    _create(settings, "votes", settings.partitions, {"retention.ms": "3600000"})
    _create(settings, "rings", 1, {"cleanup.policy": "compact"})
    _create(settings, "submissions", 1, {"message.timestamp.type": "LogAppendTime"})
    problem = broker_time_problem(settings)
    assert problem is not None and "LogAppendTime" in problem and "\n" not in problem
    ensure_topics(settings)
    configs = _configs(settings, ["votes", "rings"])
    assert configs["votes"]["message.timestamp.type"] == "LogAppendTime"
    assert configs["votes"]["retention.ms"] == "-1"
    assert configs["rings"]["cleanup.policy"] == "delete"
    assert broker_time_problem(settings) is None


@pytest.mark.parametrize("partitions", [1, 5])
def test_a_votes_topic_with_another_partition_count_is_named(settings, partitions):
    """Home partitions are murmur2 mod the settings' count: on another count nearly every
    vote would be wrong_partition, so a worker refuses to start."""
    _create(settings, "votes", partitions, {"message.timestamp.type": "LogAppendTime"})
    ensure_topics(settings)  # leaves an existing topic's partition count alone
    problem = partition_count_problem(settings)
    assert problem is not None
    assert f"has {partitions} partitions" in problem
    assert f"RINGTALLY_PARTITIONS={partitions}" in problem


def test_the_checks_do_not_create_a_missing_topic(settings):
    """A metadata request naming a topic makes the broker auto-create it (with its default
    partition count): the checks must only report that it is missing."""
    assert partition_count_problem(settings) is not None
    assert broker_time_problem(settings) is not None
    admin = AdminClient({"bootstrap.servers": settings.kafka_bootstrap})
    assert settings.topic("votes") not in admin.list_topics(timeout=30).topics


@pytest.mark.parametrize(("seconds", "needle"), [(3.0, "group.min"), (6.0, None), (300.0, None)])
def test_a_session_timeout_outside_the_brokers_range_is_named(settings, seconds, needle):
    """The brokers' defaults: 6 s..30 min (the settings allow 1..300 s). Below it every join
    is refused."""
    problem = session_timeout_problem(settings.model_copy(update={"session_timeout": seconds}))
    if needle is None:
        assert problem is None, problem
    else:
        assert problem is not None and needle in problem and "\n" not in problem, problem


def test_output_topics_are_kept_for_ever_by_default_and_retention_is_a_setting(settings):
    """The witness recomputes roots from ballots and rejections, replays need the votes:
    the broker's default 7 days is not theirs. Fails on the code before: ballots,
    rejections and audit had the broker's default retention (604800000)."""
    _create(settings, "ballots", settings.partitions, {})  # by hand: the broker's default
    ensure_topics(settings, ["votes", "ballots", "rejections", "audit"])
    configs = _configs(settings, ["votes", "ballots", "rejections", "audit"])
    for name, config in configs.items():
        assert config["retention.ms"] == "-1", name
        assert config["cleanup.policy"] == "delete", name
    day = 86_400_000
    shorter = settings.model_copy(
        update={"votes_retention_ms": 3 * day, "output_retention_ms": day}
    )
    ensure_topics(shorter, ["votes", "ballots"])  # an existing topic follows the setting
    wanted = {"votes": str(3 * day), "ballots": str(day)}
    deadline = time.monotonic() + 30  # an altered config reaches the broker's view shortly after
    while True:
        configs = _configs(settings, ["votes", "ballots"])
        seen = {name: config["retention.ms"] for name, config in configs.items()}
        if seen == wanted or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert seen == wanted


def test_min_insync_replicas_follows_the_replication_factor():
    """An unreplicated topic gets none; RF 3 gets 2 unless set; more than RF is refused."""
    from pydantic import ValidationError

    from streams.settings import Settings

    assert Settings(replication_factor=1).min_insync is None
    assert Settings(replication_factor=3).min_insync == 2
    assert Settings(replication_factor=3, min_insync_replicas=3).min_insync == 3
    with pytest.raises(ValidationError, match="more than RINGTALLY_REPLICATION_FACTOR=2"):
        Settings(replication_factor=2, min_insync_replicas=3)


def test_changelogs_keep_records_from_compaction_long_enough_for_the_owner_to_heal(settings):
    """The zombie fence (streams.fence): a paused worker's late changelog write must not
    let compaction drop the owner's newer record before the owner re-writes the key, so
    changelogs get min.compaction.lag.ms, on creation and on a changelog made before."""
    from streams.topics import internal_topic_specs

    changelogs = [n for n, _, compacted in internal_topic_specs(settings).values() if compacted]
    admin = AdminClient({"bootstrap.servers": settings.kafka_bootstrap})
    old = NewTopic(changelogs[0], settings.partitions, 1, config={"cleanup.policy": "compact"})
    for future in admin.create_topics([old], operation_timeout=30).values():
        future.result()  # as a worker before the fence made it
    ensure_topics(settings.model_copy(update={"changelog_compaction_lag": 90.0}), internal=True)
    resources = [ConfigResource(ConfigResource.Type.TOPIC, name) for name in changelogs]
    deadline = time.monotonic() + 30  # a broker learns an altered config from the controller
    while True:
        described = admin.describe_configs(resources, request_timeout=30)
        lags = {
            r.name: f.result(timeout=30)["min.compaction.lag.ms"].value
            for r, f in described.items()
        }
        if lags == dict.fromkeys(changelogs, "90000") or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert lags == dict.fromkeys(changelogs, "90000")
