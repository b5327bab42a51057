"""Nothing the system stores links two votes of one reviewer (DESIGN invariant 8).

A round of several reviewers (2 genres, rings of 4) voting on several
submissions (3 each, 8 submissions), with a revocation, runs through a real
worker and the sink. Then EVERY topic of the test's prefix (inputs, outputs,
internal topics and changelogs: keys, values, headers) and EVERY table of
its Postgres schema is read, and each record or row is cut into values.

*Public* values, which anyone may know and which identify no reviewer:
ring ids, ring versions and the rings' public keys, the registrar's key,
submission ids, genres, epochs, vote types, reason codes, decisions, rules
versions, type tags, topic and table names, booleans, null, ints below 2^31
(offsets, partitions, counts, slots, versions, sequence numbers), timestamps
(ints that are times in ms or µs since 1970, ISO-8601 text), floats, and the
audit chain's hashes (``hash``/``prev_hash``: a function of the events
before them, i.e. of log order, which offsets already tell). Free text
(``detail``) is public except for the identifiers in it (hex runs, UUIDs,
base64 runs), which are values of their own. Base64 that decodes to JSON (a
rejection's payload) is read as that JSON. Every other value is *private*.

A record *mentions* a vote when one of its private values is one of the
vote's own (vote id, token id, key image, signature). A vote's *footprint* is
the set of private values of every record that mentions it. The test fails
if a record mentions two votes of one reviewer on different submissions, or
if two such votes' footprints share a private value. (Not transitively: a
tally mentions every vote on its submission, so transitive closure would
join everything through submissions, which is public.)

On v1 this fails at once: each vote's TokenIssued named its token id beside
the reviewer's ``credential_hash``, so every vote of a reviewer shared it
(``test_the_check_finds_a_v1_credential_hash`` shows the check catching it).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import re
import time
import uuid
from collections import defaultdict
from collections.abc import Iterable, Iterator
from datetime import date, datetime
from decimal import Decimal
from itertools import combinations
from typing import Any

import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, TopicPartition

from models import Decision, ReasonCode, VoteType
from tests.fixtures.rounds import live_round, small_round

_IDENT = re.compile(
    r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
    r"|[0-9a-fA-F]{16,}|[A-Za-z0-9+/]{24,}={0,2}"
)
_ISO_TIME = re.compile(r"^\d{4}-\d\d-\d\d[T ]\d\d:\d\d(:\d\d(\.\d+)?)?(Z|[+-]\d\d:?\d\d)?$")
_PUBLIC_KEYS_OF_FIELDS = {"hash", "prev_hash"}
_FIELD_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,40}$")


class Values:
    """Cuts records into private values, given what is public."""

    def __init__(self, public: set[str]) -> None:
        self.public = public

    def of(self, data: Any, field: str | None = None) -> Iterator[str]:
        if data is None or isinstance(data, bool | float | Decimal | date):
            return
        if field in _PUBLIC_KEYS_OF_FIELDS:
            return
        if isinstance(data, int):
            if abs(data) < 2**31 or _is_time(data):
                return
            yield f"int:{data}"
        elif isinstance(data, dict):
            for key, value in data.items():
                if not _FIELD_NAME.match(str(key)):  # a field name is schema, public
                    yield from self.of(key)
                yield from self.of(value, str(key))
        elif isinstance(data, list | tuple):
            for item in data:
                yield from self.of(item, field)
        elif isinstance(data, bytes | bytearray | memoryview):
            yield from self.of_bytes(bytes(data))
        elif isinstance(data, uuid.UUID):
            yield from self.of(str(data))
        elif isinstance(data, datetime):
            return
        else:
            yield from self.of_text(str(data))

    def of_bytes(self, raw: bytes) -> Iterator[str]:
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            yield f"bytes:{raw.hex()}"
            return
        yield from self.of_text(text)

    def of_text(self, text: str) -> Iterator[str]:
        if text in self.public or _ISO_TIME.match(text) or len(text) < 8:
            return
        if text[:1] in "{[":
            try:
                yield from self.of(json.loads(text))
                return
            except ValueError:
                pass
        if re.fullmatch(r"[A-Za-z0-9+/]+={0,2}", text) and len(text) % 4 == 0:
            try:
                decoded = base64.b64decode(text, validate=True)
                yield from self.of(json.loads(decoded))
            except (binascii.Error, ValueError):
                pass
            else:
                yield text
                return
        if any(c.isspace() for c in text):  # free text: only the identifiers in it
            for ident in _IDENT.findall(text):
                if ident not in self.public:
                    yield ident
            return
        yield text


def _is_time(n: int) -> bool:
    """Milliseconds or microseconds since 1970 between 2020 and 2100."""
    return 1_577_836_800_000 <= n <= 4_102_444_800_000 or (
        1_577_836_800_000_000 <= n <= 4_102_444_800_000_000
    )


def public_values(settings: Any, round_: Any, registrar_key: bytes, names: Iterable[str]) -> set:
    public = {str(x) for x in (*ReasonCode, *VoteType, *Decision)}
    public |= {d.name for d in Decision} | set(names)
    public |= {"vote_cast", "ring", "submission", "ballot", "rejection", "tally", "retraction"}
    public.add(registrar_key.hex())
    for ring in round_.rings.values():
        public |= {ring.ring_id, ring.genre, *ring.public_keys}
    for p in round_.planned():
        if p.topic == "rings":  # every version's members (the rotation's, the unsigned one's)
            body = json.loads(p.value)
            public |= {body["ring_id"], *body["public_keys"]}
    for sub in round_.submissions.values():
        public |= {sub.submission_id, sub.genre}
    from models.decision import rules_version

    public.add(rules_version(min_votes=settings.min_votes, flag_threshold=settings.flag_threshold))
    return public


def read_topics(settings: Any) -> Iterator[tuple[str, list[Any]]]:
    """(where, parts) for every record of every topic of the prefix: key, value, headers.

    Every partition of every topic is assigned at once and read from its beginning until
    librdkafka reports its end (a partition EOF, past any transaction markers): one
    consumer's fetches, not two round trips per partition (watermarks, then a consume
    that waited out its timeout when the last offsets were markers)."""
    from streams.topics import topics_with_prefix

    names = topics_with_prefix(settings, [settings.topic_prefix], timeout=10)
    consumer = Consumer(
        {
            "bootstrap.servers": settings.kafka_bootstrap,
            "group.id": f"unlinkable-{uuid.uuid4().hex[:8]}",
            "enable.auto.commit": False,
            "enable.partition.eof": True,
            "isolation.level": "read_uncommitted",  # aborted records too
        }
    )
    try:
        topics = consumer.list_topics(timeout=10).topics
        pending = {(name, p) for name in names for p in topics[name].partitions}
        consumer.assign([TopicPartition(name, p, OFFSET_BEGINNING) for name, p in pending])
        deadline = time.monotonic() + 120
        while pending:
            assert time.monotonic() < deadline, f"never reached the end of {sorted(pending)}"
            for msg in consumer.consume(1000, timeout=0.5):
                error = msg.error()
                if error is not None:  # the end of a partition; others are retried
                    if error.code() == KafkaError._PARTITION_EOF:
                        pending.discard((msg.topic(), msg.partition()))
                    continue
                parts = [msg.key(), msg.value()]
                parts += [v for _, v in msg.headers() or ()]
                yield f"{msg.topic()}[{msg.partition()}]@{msg.offset()}", parts
    finally:
        consumer.close()


async def _read_tables(settings: Any) -> list[tuple[str, list[Any]]]:
    from connectors.postgres.db import connect

    conn = await connect(settings, search_path=False)
    try:
        tables = [
            r["tablename"]
            for r in await conn.fetch(
                "SELECT tablename FROM pg_tables WHERE schemaname = $1", settings.postgres_schema
            )
        ]
        rows = []
        for table in tables:
            for row in await conn.fetch(f'SELECT * FROM "{settings.postgres_schema}"."{table}"'):
                rows.append((f"{table} row", [dict(row)]))
        return rows
    finally:
        await conn.close()


def find_links(
    records: Iterable[tuple[str, list[Any]]], votes: list[Any], values: Values
) -> tuple[list[str], dict[str, int]]:
    """The links between two votes of one reviewer on different submissions, and how many
    records mentioned each vote (so a vote the reader never saw fails the test too)."""
    own: dict[str, str] = {}  # private value -> vote id
    for vote in votes:
        body = json.loads(vote.value)
        signature = base64.b64decode(body["signature"])
        for value in (body["vote_id"], body["token_id"], signature[1:33].hex(), body["signature"]):
            own[value] = body["vote_id"]
    info = {json.loads(v.value)["vote_id"]: v for v in votes}
    footprint: dict[str, set[str]] = defaultdict(set)
    mentions: dict[str, int] = defaultdict(int)
    links: list[str] = []
    for where, parts in records:
        private = {x for part in parts for x in values.of(part)}
        about = {own[x] for x in private if x in own}
        for vote_id in about:
            footprint[vote_id] |= private
            mentions[vote_id] += 1
        for a, b in combinations(sorted(about), 2):
            if _same_reviewer_other_submission(info[a], info[b]):
                links.append(f"{where} mentions {a} and {b}")
    for a, b in combinations(sorted(info), 2):
        if _same_reviewer_other_submission(info[a], info[b]):
            shared = footprint[a] & footprint[b]
            if shared:
                links.append(f"{a} and {b} share {sorted(shared)[:3]} ({len(shared)})")
    return links, dict(mentions)


def _same_reviewer_other_submission(a: Any, b: Any) -> bool:
    return a.reviewer == b.reviewer and a.submission_id != b.submission_id


def _honest_votes(round_: Any) -> list[Any]:
    """The round's valid votes (every vote a reviewer casts as the protocol says)."""
    return [p for p in round_.all_votes() if p.expect == "ballot" and p.reviewer]


@pytest.mark.integration
def test_no_record_or_row_links_two_votes_of_one_reviewer(stack, tmp_path):
    def round_(settings):
        return small_round(settings, submissions_per_genre=4, attacks=False, revocation=True)

    with live_round(stack, tmp_path, round_=round_, sink=True) as run:
        from connectors.sdk.registrar import load_registrar
        from streams.topics import topics_with_prefix

        settings, rnd = run.settings, run.round
        votes = _honest_votes(rnd)
        reviewers = defaultdict(set)
        for v in votes:
            reviewers[v.reviewer].add(v.submission_id)
        assert sum(len(s) >= 2 for s in reviewers.values()) >= 6, "too few reviewers to test"

        # wait until the sink stored every outcome
        async def stored() -> int:
            from connectors.postgres.db import connect

            conn = await connect(settings)
            try:
                return await conn.fetchval(
                    "SELECT (SELECT count(*) FROM ballots) + (SELECT count(*) FROM rejections)"
                )
            finally:
                await conn.close()

        run.outputs.wait_for(
            lambda o: asyncio.run(stored()) >= rnd.outcome_count(), what="the sink"
        )
        names = topics_with_prefix(settings, [settings.topic_prefix], timeout=10)
        assert any("changelog" in n for n in names) and any("accepted" in n for n in names)
        public = public_values(settings, rnd, load_registrar(settings).public_key, names)
        records = list(read_topics(settings)) + asyncio.run(_read_tables(settings))
        links, mentions = find_links(records, votes, Values(public))
        assert not links, "\n".join(links[:10])
        # every vote was seen, on the votes topic, the ballots and in Postgres at least
        assert {json.loads(v.value)["vote_id"] for v in votes} <= set(mentions)
        assert min(mentions.values()) >= 4


def test_the_check_finds_a_v1_credential_hash():
    """A v1-style record naming a token beside its credential links that reviewer's
    votes: the check must say so (it can fail)."""

    class Vote:
        def __init__(self, reviewer: str, sub: str) -> None:
            self.reviewer, self.submission_id = reviewer, sub
            token = uuid.uuid4().hex * 2
            self.value = json.dumps(
                {
                    "vote_id": str(uuid.uuid4()),
                    "token_id": token,
                    "signature": base64.b64encode(bytes(65) + uuid.uuid4().bytes).decode(),
                }
            ).encode()
            self.token = token

    a1, a2, b1 = Vote("r/0", "s1"), Vote("r/0", "s2"), Vote("r/1", "s1")
    values = Values(public={"s1", "s2"})
    records = [(f"votes@{n}", [v.token.encode(), v.value]) for n, v in enumerate((a1, a2, b1))]
    assert find_links(records, [a1, a2, b1], values)[0] == []
    credential = "c0ffee" * 10
    for n, v in enumerate((a1, a2)):  # TokenIssued {token_id, credential_hash}
        body = {"type": "token_issued", "token_id": v.token, "credential_hash": credential}
        records.append((f"issued@{n}", [v.token.encode(), json.dumps(body).encode()]))
    links, _ = find_links(records, [a1, a2, b1], values)
    assert links and credential in links[0]
