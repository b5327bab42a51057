"""The published JSON Schemas are a contract a producer can build on without our code.

A vote is built here from ``models/schemas/votes.schema.json``'s text alone
(field names and types, the vote_id rule, the signed message's layout, the
record key and partition) and the ringtally-v2 signature primitive, then fed to
the real verify stage, which must accept it. The export command writes where it
is told and never into an installed package.
"""

from __future__ import annotations

import asyncio
import base64
import json
import re
import shutil
import struct
import subprocess
import sys
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest
from aiokafka.partitioner import murmur2
from jsonschema import Draft202012Validator

import ringcrypto
from agents.control import ControlRecord, ControlState
from agents.records import SourceRecord
from agents.verify import VoteVerifier
from models import Ring, Submission
from models.schema import SCHEMA_DIR, main, render_schemas
from streams.settings import Settings
from tests.fixtures.votes import registrar_keys, signed

ROOT = Path(__file__).resolve().parents[1]
DIALECT = "https://json-schema.org/draft/2020-12/schema"
#: What a schema's text must not carry: notes about our code or our review process.
INTERNAL = re.compile(r"\bfinding\b|\bF\d+\b|TODO|XXX|\.py\b|issue #|\bagents?\b", re.IGNORECASE)


def _published() -> dict[str, dict]:
    return {p.name: json.loads(p.read_text()) for p in sorted(SCHEMA_DIR.glob("*.schema.json"))}


def _descriptions(node, where=""):
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "description":
                yield where, value
            else:
                yield from _descriptions(value, f"{where}/{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _descriptions(value, f"{where}/{i}")


def test_every_published_schema_names_its_dialect_and_a_stable_id():
    published = _published()
    assert published, "no schemas in models/schemas"
    for name, schema in published.items():
        assert schema.get("$schema") == DIALECT, name
        stem = name.removesuffix(".schema.json")
        assert schema.get("$id") == f"urn:ringtally:schema:v2:{stem}", name
        Draft202012Validator.check_schema(schema)
    assert len({s["$id"] for s in published.values()}) == len(published)


def test_schema_descriptions_carry_no_internal_notes():
    for name, schema in _published().items():
        for where, text in _descriptions(schema):
            assert not INTERNAL.search(text), f"{name}{where}: {text!r}"


# --- a vote from the schema's text alone -------------------------------------------------------

SETTINGS = Settings(topic_prefix="contract", partitions=4)
EPOCH, SUBMISSION, RING_ID = 3, "paper-42", "poetry-3"


def _lp(data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + data


def _message_from_layout(layout: str, vote: dict) -> bytes:
    """The signed message, built by reading the layout the schema states term by term."""
    out = b""
    for term in (t.strip() for t in layout.split("||")):
        if m := re.fullmatch(r'lp\("([^"]+)"\)', term):
            out += _lp(m[1].encode())
        elif m := re.fullmatch(r"lp\((\w+) as 16 bytes\)", term):
            out += _lp(uuid.UUID(vote[m[1]]).bytes)
        elif m := re.fullmatch(r"lp\((\w+)\)", term):
            out += _lp(str(vote[m[1]]).encode("utf-8"))
        elif m := re.fullmatch(r"u(32|64)\((\w+)\)", term):
            out += int(vote[m[2]]).to_bytes(int(m[1]) // 8, "big")
        else:
            raise AssertionError(
                f"the schema's message layout has a term no producer can read: {term}"
            )
    return out


def _vote_from_schema(schema: dict, key: ringcrypto.SecretKey, ring: ringcrypto.Ring) -> dict:
    text = schema["description"]
    # vote_id: "uuid5(<namespace>, token_id)"
    namespace = re.search(r"uuid5\(([0-9a-f-]{36}), token_id\)", text)
    assert namespace, "the schema does not say how vote_id is derived"
    # the signature: context, epoch bytes and message, as the schema words them
    assert "context utf8(submission_id), epoch u64(epoch), slot ``slot``" in " ".join(text.split())
    layout = re.search(r"over the message.*?``(lp\(\".*?)``", text, re.DOTALL)
    assert layout, "the schema does not give the signed message's layout"
    epoch = EPOCH.to_bytes(8, "big")
    vote = {
        "submission_id": SUBMISSION,
        "ring_id": RING_ID,
        "ring_version": 1,
        "vote_type": "approve",
        "epoch": EPOCH,
        "slot": 1,
        "token_id": key.slot_tag(epoch, 1).hex(),  # the slot tag, lowercase hex
    }
    vote["vote_id"] = str(uuid.uuid5(uuid.UUID(namespace[1]), vote["token_id"]))
    message = _message_from_layout(" ".join(layout[1].split()), vote)
    signature = ringcrypto.sign_vote(key, ring, SUBMISSION.encode(), epoch, 1, message)
    vote["signature"] = base64.b64encode(signature).decode("ascii")
    assert set(vote) | {"type"} == set(schema["properties"])
    assert set(schema["required"]) <= set(vote)
    return vote


def _control(keys: list[ringcrypto.SecretKey]) -> ControlState:
    control = ControlState(SETTINGS, registrar=registrar_keys())
    ring = Ring(
        ring_id=RING_ID,
        version=1,
        genre="poetry",
        epoch=EPOCH,
        public_keys=[k.public_key.hex() for k in keys],
        votes_per_epoch=2,
        valid_from=datetime(1970, 1, 1, tzinfo=UTC),
    )
    submission = Submission(submission_id=SUBMISSION, genre="poetry", epoch=EPOCH)
    for topic, record_key, record in (
        ("rings", RING_ID, signed(ring)),
        ("submissions", SUBMISSION, signed(submission)),
    ):
        control.apply(
            ControlRecord(SETTINGS.topic(topic), 0, 0, 1000, record_key.encode(), record.to_json())
        )
    return control


class _Out:
    """The verify stage's outputs, collected."""

    def __init__(self) -> None:
        self.accepted_votes: list = []
        self.rejections: list = []

    async def accepted(self, vote) -> None:
        self.accepted_votes.append(vote)

    async def refused(self, refusal) -> None:
        self.rejections.append(refusal.rejection)

    async def rejection(self, key, rejection) -> None:
        self.rejections.append(rejection)


def test_a_vote_built_from_the_published_schema_alone_is_accepted():
    """Fails when the schema leaves out a rule the verify stage enforces (how vote_id is
    derived, what the signature signs, the record key or partition)."""
    schema = json.loads((SCHEMA_DIR / "votes.schema.json").read_text())
    keys = [ringcrypto.SecretKey.generate() for _ in range(3)]
    vote = _vote_from_schema(schema, keys[1], ringcrypto.Ring([k.public_key for k in keys]))
    Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER).validate(vote)

    value = json.dumps(vote).encode()
    assert "the record key is the token_id's ASCII bytes" in " ".join(schema["description"].split())
    record_key = vote["token_id"].encode("ascii")
    partition = (murmur2(record_key) & 0x7FFFFFFF) % SETTINGS.partitions
    record = SourceRecord(
        SETTINGS.topic("votes"), partition, 0, record_key, value, timestamp_ms=5000
    )
    out = _Out()
    verifier = VoteVerifier(
        control=_control(keys),
        tokens={},
        outputs=out,
        verify_batch=ringcrypto.verify_vote_batch,
        partitions=SETTINGS.partitions,
    )
    asyncio.run(verifier.process([record]))
    assert [(r.reason.value, r.detail) for r in out.rejections] == []
    assert [str(a.vote_id) for a in out.accepted_votes] == [vote["vote_id"]]


# --- the export command --------------------------------------------------------------------------


def test_export_writes_where_out_says(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "models.schema", "--out", str(tmp_path / "s")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    written = {p.name: p.read_text() for p in (tmp_path / "s").iterdir()}
    assert written == render_schemas()
    assert str(tmp_path / "s") in result.stdout


def test_export_never_writes_into_an_installed_package(tmp_path):
    """models installed under site-packages: without --out the command refuses in one line
    and leaves the package's files as they were."""
    site = tmp_path / "lib" / "site-packages"
    shutil.copytree(ROOT / "models", site / "models", ignore=shutil.ignore_patterns("__pycache__"))
    shipped = site / "models" / "schemas" / "votes.schema.json"
    shipped.write_text("as installed\n")
    result = subprocess.run(
        [sys.executable, "-m", "models.schema"],
        cwd=tmp_path,
        env={"PYTHONPATH": str(site), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stderr.count("\n") == 1 and "--out" in result.stderr, result.stderr
    assert "Traceback" not in result.stderr
    assert shipped.read_text() == "as installed\n"


def test_check_reports_a_schema_file_no_model_makes(tmp_path, capsys):
    for name, text in render_schemas().items():
        (tmp_path / name).write_text(text)
    assert main(["--check", "--out", str(tmp_path)]) == 0
    (tmp_path / "credential_revoked.schema.json").write_text("{}\n")
    assert main(["--check", "--out", str(tmp_path)]) == 1
    assert "credential_revoked.schema.json (no model)" in capsys.readouterr().out


@pytest.mark.parametrize("argv", [["--bogus"], ["--out"]])
def test_export_bad_arguments_exit_2_without_a_traceback(argv):
    result = subprocess.run(
        [sys.executable, "-m", "models.schema", *argv],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr and "usage:" in result.stderr
