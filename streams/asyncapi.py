"""The AsyncAPI 3 document of every ringtally topic, generated from :data:`streams.topics.TOPICS`.

One channel per topic (address ``{prefix}.<name>``, its key, partitioning
rule, compaction, retention, timestamp type) and one message per value kind,
whose payload is a ``$ref`` to the JSON Schema exported by :mod:`models.schema`.
Operations are ringtally's side: it *receives* the input topics (votes from
producers, control records from the registrar) and *sends* the outputs.

``python -m streams.asyncapi`` rewrites ``docs/asyncapi.json`` in a source
checkout (``--out FILE`` elsewhere; without a checkout and without ``--out`` it
refuses, exit 2); ``--check`` exits 1 when a topic or a model changed without
it (the test suite runs the check). Payload ``$ref``s are relative to the
document, so they resolve where it is written: ``../models/schemas/`` for
docs/, the path to the installed package's schemas for ``--out`` elsewhere, or
``--schemas-ref BASE`` (a URL, or a directory written by ``python -m
models.schema --out``). Relative paths were chosen over the schemas' ``$id``s
because the ids are URNs that no tool can fetch.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from models.schema import SCHEMA_DIR, schema_documents

from .partitioner import PARTITIONER_HINT
from .topics import INTERNAL_TOPICS, TOPICS, TopicSpec, topic_config

__all__ = ["ASYNCAPI_FILE", "asyncapi_document", "render_asyncapi"]

ASYNCAPI_FILE = Path(__file__).resolve().parents[1] / "docs" / "asyncapi.json"
#: Kafka bindings version of the AsyncAPI bindings used here.
_KAFKA_BINDING = "0.5.0"
_DEFAULT_PARTITIONS = 12  # streams.settings.Settings.partitions' default
_INPUTS = {"votes": "producers (the SDK, the gateway)", "rings": "the registrar",
           "submissions": "the registrar"}  # fmt: skip
_SCHEMAS = schema_documents()
_PARTITIONING = "(murmur2(key) & 0x7fffffff) % partitions, i.e. " + PARTITIONER_HINT


def _message_name(spec: TopicSpec) -> str:
    """The message's name: its model's (the schema's title), or DeadLetter for raw bytes."""
    return _SCHEMAS[spec.schema]["title"] if spec.schema else "DeadLetter"


def _channel(spec: TopicSpec) -> dict[str, Any]:
    config = topic_config(spec)
    fixed = spec.partitions is not None
    partitions = spec.partitions or _DEFAULT_PARTITIONS
    cleanup = config.get("cleanup.policy", "delete")
    topic_configuration: dict[str, Any] = {"cleanup.policy": [cleanup]}
    if "retention.ms" in config:
        topic_configuration["retention.ms"] = int(config["retention.ms"])
    if "message.timestamp.type" in config:
        topic_configuration["message.timestamp.type"] = config["message.timestamp.type"]
    retention = (
        f"kept for ever by default (retention.ms=-1; RINGTALLY_{spec.retention_setting.upper()})"
        if spec.retention_setting
        else "kept for ever (retention.ms=-1)"
        if "retention.ms" in config
        else "the latest record per key is kept (compacted)"
        if cleanup == "compact"
        else "the broker's default retention"
    )
    lines = [
        f"Holds: {spec.holds}. Key: {spec.key}.",
        f"Partitions: {partitions}"
        + ("." if fixed else " by default: RINGTALLY_PARTITIONS, the same for votes and outputs."),
        f"Partitioner: {_PARTITIONING}.",
        f"Retention: {retention}.",
    ]
    if spec.broker_time:
        lines.append(
            "Timestamps: LogAppendTime (the broker's clock); ringtally decides by them, "
            "never by a producer's."
        )
    if spec.name == "votes":
        lines.append(
            "A record on any other partition than its key's murmur2 partition is rejected "
            "wrong_partition."
        )
    binding: dict[str, Any] = {
        "topicConfiguration": topic_configuration,
        "bindingVersion": _KAFKA_BINDING,
        "x-partitioner": "murmur2",
    }
    if fixed:
        binding["partitions"] = partitions
    else:
        binding["x-partitions-setting"] = "RINGTALLY_PARTITIONS"
        binding["x-partitions-default"] = partitions
    name = _message_name(spec)
    return {
        "address": f"{{prefix}}.{spec.name}",
        "title": spec.name,
        "description": "\n".join(lines),
        "parameters": {"prefix": {"$ref": "#/components/parameters/prefix"}},
        "messages": {name: {"$ref": f"#/components/messages/{name}"}},
        "bindings": {"kafka": binding},
    }


#: What each of the worker's own topics holds (streams.topics.INTERNAL_TOPICS), its key.
_INTERNAL = {
    "accepted": (
        "votes that passed verification, repartitioned by submission for the tally agent "
        "(values are VoteCast JSON)",
        "submission_id",
    ),
    "tokens-changelog": ("the changelog of the slot-tag table (slot tag -> its vote)", "slot tag"),
    "tally-changelog": (
        "the changelog of the tally table (ballot entries, running tallies, audit chain heads)",
        "submission_id or chain",
    ),
}


def _internal_channel(suffix: str, compacted: bool) -> dict[str, Any]:
    """A worker's own topic: documented so operators know it, marked internal (no contract)."""
    holds, key = _INTERNAL[suffix]
    cleanup = "compact" if compacted else "delete"
    return {
        "address": f"{{appId}}-{suffix}",
        "title": f"{suffix} (internal)",
        "summary": f"Internal to the workers: {holds}.",
        "description": (
            f"Internal to the workers: {holds}. Key: {key}. Partitions: RINGTALLY_PARTITIONS. "
            f"cleanup.policy={cleanup}. "
            + (
                "Each record carries the header ringtally-epoch (its writer's ownership "
                "epoch: recovery skips a record older than its partition's largest), and "
                "min.compaction.lag.ms is RINGTALLY_CHANGELOG_COMPACTION_LAG. "
                if compacted
                else ""
            )
            + "Its format is the workers' own and may change in any "
            "release: do not produce to it or build on it; a replay uses a fresh app id, so "
            "it never reads the live pipeline's."
        ),
        "parameters": {"appId": {"$ref": "#/components/parameters/appId"}},
        "messages": {"Internal": {"$ref": "#/components/messages/Internal"}},
        "bindings": {
            "kafka": {
                "topicConfiguration": {"cleanup.policy": [cleanup]},
                "bindingVersion": _KAFKA_BINDING,
                "x-partitions-setting": "RINGTALLY_PARTITIONS",
                "x-internal": True,
            }
        },
        "x-internal": True,
    }


def _summary(description: str) -> str:
    """A schema description's first paragraph, on one line (its lines are wrapped)."""
    return " ".join(description.split("\n\n")[0].split())


def _message(spec: TopicSpec, schemas_ref: str) -> dict[str, Any]:
    key = {"type": "string", "description": f"{spec.key}; UTF-8 bytes"}
    binding = {"key": key, "bindingVersion": _KAFKA_BINDING}
    if spec.schema is None:
        return {
            "name": "DeadLetter",
            "title": "A record the sink could not store",
            "summary": f"{spec.holds[0].upper()}{spec.holds[1:]}.",
            "description": "The original record's value and key, unchanged; the headers say why "
            "and where from. Produced at least once: de-duplicate on the source headers.",
            "headers": {
                "type": "object",
                "properties": {
                    header: {"type": "string", "description": text}
                    for header, text in (
                        ("dlq.reason", "empty_value, bad_json, invalid_message, audit_fork, …"),
                        ("dlq.detail", "what was wrong, in words"),
                        ("dlq.source.topic", "the topic the record came from"),
                        ("dlq.source.partition", "its partition (decimal)"),
                        ("dlq.source.offset", "its offset (decimal)"),
                        ("dlq.source.timestamp", "its timestamp, ms since 1970 (decimal)"),
                    )
                },
            },
            "bindings": {"kafka": binding},
        }
    document = _SCHEMAS[spec.schema]
    return {
        "name": _message_name(spec),
        "title": spec.holds,
        "summary": _summary(document.get("description", "")),
        "contentType": "application/json",
        "payload": {
            "schemaFormat": "application/schema+json;version=draft-2020-12",
            "schema": {"$ref": f"{schemas_ref}{spec.schema}.schema.json"},
        },
        "bindings": {"kafka": binding},
        "x-schema-id": document["$id"],
    }


#: Where docs/asyncapi.json finds the schemas: models/schemas/ of the same checkout.
CHECKOUT_SCHEMAS_REF = "../models/schemas/"


def asyncapi_document(schemas_ref: str = CHECKOUT_SCHEMAS_REF) -> dict[str, Any]:
    """The AsyncAPI 3.0 document as a dict; each payload is a ``$ref`` to
    ``<schemas_ref><name>.schema.json`` (relative to the document, or a URL)."""
    channels = {spec.name: _channel(spec) for spec in TOPICS}
    channels.update({suffix: _internal_channel(suffix, c) for suffix, c in INTERNAL_TOPICS})
    messages = {_message_name(spec): _message(spec, schemas_ref) for spec in TOPICS}
    messages["Internal"] = {
        "name": "Internal",
        "title": "A worker's internal record",
        "summary": "Internal to the workers; no contract (format may change in any release).",
        "x-internal": True,
    }
    operations: dict[str, Any] = {}
    for spec in TOPICS:
        receive = spec.name in _INPUTS
        verb = "receive" if receive else "send"
        who = (
            f"{_INPUTS[spec.name]} send, the workers read"
            if receive
            else ("the sink writes" if spec.schema is None else "the workers write")
        )
        operations[f"{verb}-{spec.name}"] = {
            "action": verb,
            "channel": {"$ref": f"#/channels/{spec.name}"},
            "summary": who,
            "messages": [{"$ref": f"#/channels/{spec.name}/messages/{_message_name(spec)}"}],
        }
    return {
        "asyncapi": "3.0.0",
        "id": "urn:ringtally:asyncapi:v2",
        "info": {
            "title": "ringtally",
            "version": "2",
            "description": (
                "The topics of ringtally, the vote path of an anonymous peer-review system "
                "(protocol v2). Every value is JSON; its schema is the $ref'd JSON Schema in "
                "models/schemas/. Output messages gain fields only additively: readers ignore "
                "fields they do not know. Generated by python -m streams.asyncapi; see "
                "docs/consumers.md."
            ),
        },
        "defaultContentType": "application/json",
        "servers": {
            "local": {
                "host": "127.0.0.1:19092",
                "protocol": "kafka",
                "description": "ringtally stack up, or docker compose's host listener",
            }
        },
        "channels": channels,
        "operations": operations,
        "components": {
            "messages": messages,
            "parameters": {
                "prefix": {
                    "default": "ringtally",
                    "description": "RINGTALLY_TOPIC_PREFIX: every topic is <prefix>.<name>",
                },
                "appId": {
                    "default": "ringtally-worker",
                    "description": "the workers' app id (RINGTALLY_APP_ID, default "
                    "<prefix>-worker): their internal topics are <appId>-<name>",
                },
            },
        },
    }


def render_asyncapi(schemas_ref: str = CHECKOUT_SCHEMAS_REF) -> str:
    return json.dumps(asyncapi_document(schemas_ref), indent=2, ensure_ascii=False) + "\n"


def schemas_ref_for(out: Path) -> str:
    """The payload ``$ref`` base that resolves from ``out``'s directory to the JSON Schemas
    this code exports (``models/schemas/``, in a checkout or an installed package)."""
    return Path(os.path.relpath(SCHEMA_DIR, out.resolve().parent)).as_posix() + "/"


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m streams.asyncapi",
        description="Write (or --check) the AsyncAPI 3 document of the topics: docs/asyncapi.json "
        "in a source checkout, --out FILE elsewhere.",
    )
    parser.add_argument("--out", type=Path, default=None, help="file to write or check")
    parser.add_argument(
        "--schemas-ref",
        default=None,
        metavar="BASE",
        help="what each payload $ref starts with: a URL or a path relative to the document "
        "where the *.schema.json files are (e.g. after python -m models.schema --out DIR); "
        "default: the path from the document to this package's models/schemas/",
    )
    parser.add_argument("--check", action="store_true", help="exit 1 if the file is out of date")
    args = parser.parse_args(argv)
    if args.out is None and not ASYNCAPI_FILE.parent.is_dir():
        what = "check" if args.check else "write"
        print(
            f"python -m streams.asyncapi: error: nothing to {what}: docs/asyncapi.json belongs "
            "to a source checkout and this is an installed package; pass --out FILE",
            file=sys.stderr,
        )
        return 2
    out = args.out or ASYNCAPI_FILE
    schemas_ref = args.schemas_ref if args.schemas_ref is not None else schemas_ref_for(out)
    text = render_asyncapi(schemas_ref)
    if args.check:
        if not out.is_file() or out.read_text() != text:
            again = " ".join(
                ["python -m streams.asyncapi"]
                + ([f"--out {args.out}"] if args.out else [])
                + ([f"--schemas-ref {args.schemas_ref}"] if args.schemas_ref is not None else [])
            )
            print(f"{out} is out of date; run: {again}")
            return 1
        print(f"{out} is up to date")
        return 0
    try:
        out.write_text(text)
    except OSError as exc:
        print(f"cannot write {out}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    channels = len(TOPICS) + len(INTERNAL_TOPICS)
    print(f"wrote {out} ({channels} channels; payload schemas at {schemas_ref})")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
