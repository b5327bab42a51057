"""docs/asyncapi.json: the AsyncAPI 3 document of every topic, kept in step with the code.

It must be exactly what ``python -m streams.asyncapi`` makes from the topic specs
and the models (so a topic or model changed without it fails here), a valid
AsyncAPI 3.0.0 document (checked against the official schema, vendored in
tests/fixtures/specs/), and say for each topic what a client needs: address,
key, partitioner, partitions, compaction, retention, the value's schema.
"""

from __future__ import annotations

import copy
import json
from dataclasses import replace
from pathlib import Path

import pytest
from jsonschema import Draft7Validator

from streams import asyncapi
from streams.asyncapi import ASYNCAPI_FILE, asyncapi_document, main
from streams.topics import TOPICS

ROOT = Path(__file__).resolve().parents[1]
SPEC = json.loads((ROOT / "tests/fixtures/specs/asyncapi-3.0.0.schema.json").read_text())
DOC = json.loads(ASYNCAPI_FILE.read_text())


def _errors(document) -> list[str]:
    return [
        f"{'/'.join(map(str, e.absolute_path))}: {e.message[:200]}"
        for e in Draft7Validator(SPEC).iter_errors(document)
    ]


def test_the_published_document_is_what_the_generator_makes(capsys):
    assert main(["--check"]) == 0, capsys.readouterr().out


def test_a_topic_added_without_regenerating_fails_the_check(monkeypatch, capsys):
    extra = replace(TOPICS[3], name="ballots-v3")
    monkeypatch.setattr(asyncapi, "TOPICS", (*TOPICS, extra))
    assert main(["--check"]) == 1
    assert "out of date" in capsys.readouterr().out


def test_it_is_a_valid_asyncapi_3_document():
    assert DOC["asyncapi"] == "3.0.0"
    assert _errors(DOC) == []


@pytest.mark.parametrize(
    "spoil",
    [
        lambda d: d.pop("info"),
        lambda d: d["operations"]["receive-votes"].update(action="publish"),
        lambda d: d["channels"]["votes"]["bindings"]["kafka"].update(partition_count=3),
        lambda d: d["components"]["messages"]["VoteCast"].update(payloads={}),
    ],
)
def test_the_structure_check_can_fail(spoil):
    """The vendored schema really checks the document (a spoiled copy is refused)."""
    spoiled = copy.deepcopy(DOC)
    spoil(spoiled)
    assert _errors(spoiled)


def test_every_topic_says_what_a_client_needs():
    assert set(DOC["channels"]) == {t.name for t in TOPICS}
    for spec in TOPICS:
        channel = DOC["channels"][spec.name]
        assert channel["address"] == "{prefix}." + spec.name
        kafka = channel["bindings"]["kafka"]
        assert kafka["x-partitioner"] == "murmur2"
        assert "murmur2(key) & 0x7fffffff" in channel["description"]
        assert kafka.get("partitions") == spec.partitions
        policy = kafka["topicConfiguration"]["cleanup.policy"]
        assert policy == (["compact"] if spec.compacted else ["delete"])
        assert (kafka["topicConfiguration"].get("retention.ms") == -1) == spec.keep_forever
        if spec.broker_time:
            assert kafka["topicConfiguration"]["message.timestamp.type"] == "LogAppendTime"
        (ref,) = channel["messages"].values()
        message = DOC["components"]["messages"][ref["$ref"].rsplit("/", 1)[1]]
        assert message["bindings"]["kafka"]["key"]["description"].startswith(spec.key)
        if spec.schema is None:
            assert "payload" not in message and "dlq.reason" in message["headers"]["properties"]
            continue
        schema_file = (ASYNCAPI_FILE.parent / message["payload"]["schema"]["$ref"]).resolve()
        assert json.loads(schema_file.read_text())["$id"] == message["x-schema-id"]
    actions = {name: op["action"] for name, op in DOC["operations"].items()}
    assert actions["receive-votes"] == "receive" and actions["send-tallies"] == "send"


def test_the_document_is_generated_from_the_live_specs():
    assert asyncapi_document() == DOC
