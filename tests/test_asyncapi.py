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
from streams.topics import INTERNAL_TOPICS, TOPICS

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
    internal = {suffix for suffix, _ in INTERNAL_TOPICS}
    assert set(DOC["channels"]) == {t.name for t in TOPICS} | internal
    for suffix in internal:  # the workers' own topics: listed, marked internal, no contract
        channel = DOC["channels"][suffix]
        assert channel["x-internal"] is True and channel["address"] == "{appId}-" + suffix
        assert "Internal to the workers" in channel["description"]
    for message in DOC["components"]["messages"].values():  # whole sentences, not cut lines
        assert message["summary"].rstrip().endswith((".", ")")), message["summary"]
    for spec in TOPICS:
        channel = DOC["channels"][spec.name]
        assert channel["address"] == "{prefix}." + spec.name
        kafka = channel["bindings"]["kafka"]
        assert kafka["x-partitioner"] == "murmur2"
        assert "murmur2(key) & 0x7fffffff" in channel["description"]
        assert kafka.get("partitions") == spec.partitions
        policy = kafka["topicConfiguration"]["cleanup.policy"]
        assert policy == (["compact"] if spec.compacted else ["delete"])
        forever = spec.keep_forever or spec.retention_setting is not None
        assert (kafka["topicConfiguration"].get("retention.ms") == -1) == forever
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


# --- from an installed package (issue 18 review, finding 8) --------------------------------


def _installed(tmp_path) -> dict[str, str]:
    """``streams`` and ``models`` as a wheel installs them: no docs/ beside them."""
    import os
    import shutil

    site = tmp_path / "site-packages"
    for package in ("streams", "models"):
        shutil.copytree(
            ROOT / package, site / package, ignore=shutil.ignore_patterns("__pycache__")
        )
    return {**os.environ, "PYTHONPATH": str(site)}


def _run(env, *args, cwd, module="streams.asyncapi"):
    import subprocess
    import sys

    return subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def test_check_without_a_checkout_is_a_one_line_refusal(tmp_path):
    """Fails on the old code: it compared with a non-existent site-packages/docs/asyncapi.json
    and exited 1 ("out of date; run: python -m streams.asyncapi", which then failed too)."""
    env = _installed(tmp_path)
    for args in (["--check"], []):
        result = _run(env, *args, cwd=tmp_path)
        assert result.returncode == 2, result
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and "installed package; pass --out FILE" in lines[0], result
        assert "Traceback" not in result.stderr and not (tmp_path / "site-packages/docs").exists()


def test_out_elsewhere_writes_refs_that_resolve_there(tmp_path):
    """Fails on the old code: --out /elsewhere/x.json wrote $ref ../models/schemas/..., which
    does not resolve from /elsewhere."""
    env = _installed(tmp_path)
    out = tmp_path / "elsewhere" / "asyncapi.json"
    out.parent.mkdir()
    assert _run(env, "--out", str(out), cwd=tmp_path).returncode == 0
    assert _run(env, "--out", str(out), "--check", cwd=tmp_path).returncode == 0
    _assert_refs_resolve(out)
    # published beside their own copy of the schemas (python -m models.schema --out DIR)
    schemas = tmp_path / "published" / "schemas"
    made = _run(env, "--out", str(schemas), cwd=tmp_path, module="models.schema")
    assert made.returncode == 0, made
    beside = tmp_path / "published" / "asyncapi.json"
    args = ["--out", str(beside), "--schemas-ref", "schemas/"]
    assert _run(env, *args, cwd=tmp_path).returncode == 0
    _assert_refs_resolve(beside)
    stale = _run(env, *args[:2], "--check", cwd=tmp_path)  # without the same --schemas-ref
    assert stale.returncode == 1 and f"--out {beside}" in stale.stdout, stale


def _assert_refs_resolve(document_path: Path) -> None:
    document = json.loads(document_path.read_text())
    refs = 0
    for message in document["components"]["messages"].values():
        if "payload" not in message:
            continue
        target = (document_path.parent / message["payload"]["schema"]["$ref"]).resolve()
        assert json.loads(target.read_text())["$id"] == message["x-schema-id"], target
        refs += 1
    assert refs == len([t for t in TOPICS if t.schema])
