"""The operator CLI end to end, as a user runs it: ``ringtally`` subprocesses against a real
worker (the module's ``pipeline``), then the real sink, then the tallies read back from
Postgres and from the Redis read model."""

from __future__ import annotations

import json
import uuid

import pytest
import redis

from agents.registrar import RegistrarKeys, trusted_registrar_keys
from connectors.sdk import end_offsets, read_topic
from models.control import Ring
from tests.test_cli_runner import ringtally

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def cli_settings(pipeline):
    settings, _ = pipeline
    yield settings
    client = redis.Redis.from_url(settings.redis_url)
    try:
        keys = list(client.scan_iter(match=f"{settings.topic_prefix}:*"))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


def ok(result) -> str:
    assert result.code == 0, result
    assert "Traceback" not in result.err, result
    return result.out


def make_reviewers(settings, home, *names: str) -> dict[str, str]:
    return {
        n: ok(ringtally(settings, "keys", "new", str(home / f"{n}.key"))).strip() for n in names
    }


def test_keys_rings_votes_sink_and_tallies(cli_settings, tmp_path) -> None:
    s = cli_settings
    tag = uuid.uuid4().hex[:8]
    ring, sub, genre = f"ring-{tag}", f"sub-{tag}", f"genre-{tag}"
    (tmp_path / "more").mkdir()
    pubs = make_reviewers(s, tmp_path, "alice", "bob")
    carol = ok(ringtally(s, "keys", "new", str(tmp_path / "more" / "carol.key"))).strip()

    out = ok(
        ringtally(
            s,
            "rings",
            "add",
            ring,
            "--genre",
            genre,
            "--epoch",
            "5",
            "--key-file",
            str(tmp_path / "alice.key"),
            "--key",
            pubs["bob"],
            "--keys-from",
            str(tmp_path / "more"),
            "--valid-from",
            "2026-01-01T00:00:00Z",
        )
    )
    assert out.strip() == (
        f"registered ring {ring} version 1 (genre {genre}, epoch 5, 3 members, 10 votes per "
        "epoch, active, valid from 2026-01-01T00:00:00+00:00)"
    )
    listed = {r["ring_id"]: r for r in json.loads(ok(ringtally(s, "rings", "list", "--json")))}
    assert sorted(listed[ring]["public_keys"]) == sorted([*pubs.values(), carol])
    assert (listed[ring]["version"], listed[ring]["votes_per_epoch"]) == (1, 10)
    assert ring in ok(ringtally(s, "rings", "list"))
    ok(ringtally(s, "submissions", "add", sub, "--genre", genre, "--epoch", "5"))
    assert sub in ok(ringtally(s, "submissions", "list"))

    def vote(who: str, kind: str, *extra: str):
        return ringtally(
            s,
            "vote",
            "--key-file",
            str(tmp_path / f"{who}.key"),
            "--ring",
            ring,
            "--submission",
            sub,
            "--type",
            kind,
            "--wait",
            "60",
            *extra,
        )

    first = vote("alice", "approve")
    assert first.code == 0, first
    assert first.out.startswith("ballot: vote ") and f"counted on submission {sub}" in first.out

    second = vote("alice", "reject", "--json")  # the same reviewer again, another slot
    assert second.code == 1, second
    rejection = json.loads(second.out)
    assert (rejection["outcome"], rejection["reason"]) == ("rejection", "duplicate_key_image")
    assert second.err == ""
    used = json.loads((tmp_path / "alice.slots.json").read_text())["used"]["5"]
    assert len(used) == 2  # both slots remembered beside the key file

    third = json.loads(ok(vote("bob", "approve", "--compact", "--json")))
    assert (third["outcome"], third["vote_type"], third["submission_id"]) == (
        "ballot",
        "approve",
        sub,
    )

    ok(ringtally(s, "db", "migrate"))
    ok(ringtally(s, "sink", "--once"))  # everything is out: vote --wait saw it

    pg = json.loads(ok(ringtally(s, "tally", "show", sub, "--json")))
    assert pg["counts"] == {"approve": 2, "reject": 0, "flag": 0, "escalate": 0}
    assert (pg["total"], pg["decision"], pg["version"]) == (2, "PENDING", 2)
    table = ok(ringtally(s, "tally", "show", sub))
    assert sub in table and "PENDING" in table
    assert sub in ok(ringtally(s, "tally", "show"))

    rd = json.loads(ok(ringtally(s, "tally", "show", sub, "--redis", "--json")))
    assert (rd["counts"], rd["total"], rd["decision"], rd["version"]) == (
        pg["counts"],
        2,
        "PENDING",
        2,
    )
    assert sub in ok(ringtally(s, "tally", "show", "--redis", sub))

    rejected = json.loads(
        ok(ringtally(s, "rejections", "list", "--reason", "duplicate_key_image", "--json"))
    )
    token = rejection["token_id"]
    assert [r["token_id"] for r in rejected if r["token_id"] == token] == [token]
    listed = ok(ringtally(s, "rejections", "list", "--limit", "5"))
    assert "duplicate_key_image" in listed, listed


def test_a_used_slot_and_an_exhausted_epoch_are_refused_before_publishing(
    settings, tmp_path
) -> None:
    """The second vote on a slot, or a vote beyond k, is one line (exit 2) and nothing
    reaches the votes topic: the user learns it before a token_spent rejection could."""
    tag = uuid.uuid4().hex[:8]
    ring, genre = f"ring-{tag}", f"genre-{tag}"
    make_reviewers(settings, tmp_path, "alice")
    alice = str(tmp_path / "alice.key")
    ok(
        ringtally(
            settings,
            *("rings", "add", ring, "--genre", genre, "--epoch", "3", "--key-file", alice),
            *("--votes-per-epoch", "2"),
        )
    )
    votes = settings.topic("votes")

    def vote(sub: str, *extra: str):
        return ringtally(
            settings,
            *("vote", "--key-file", alice, "--ring", ring, "--submission", sub),
            *("--type", "approve", *extra),
        )

    published = json.loads(ok(vote("s1", "--slot", "1", "--json")))
    assert (published["outcome"], published["ring_version"]) == ("published", 1)
    before = sum(end_offsets(settings, [votes]).values())
    again = vote("s2", "--slot", "1")
    assert again.code == 2 and again.err.count("\n") == 1, again
    assert "slot 1 of epoch 3 is already used by this key" in again.err
    assert "not published" in again.err
    assert sum(end_offsets(settings, [votes]).values()) == before

    ok(vote("s2"))  # the one slot left (0)
    before += 1
    exhausted = vote("s3")
    assert exhausted.code == 2 and "all 2 slots of epoch 3 are used" in exhausted.err, exhausted
    assert sum(end_offsets(settings, [votes]).values()) == before


def test_rings_rotate_publishes_a_signed_version_2_and_revokes_a_key(cli_settings, tmp_path):
    """rotate --remove publishes version 2 signed by the registrar key the worker trusts;
    the removed reviewer's vote naming version 1 is then ring_not_in_force."""
    s = cli_settings
    tag = uuid.uuid4().hex[:8]
    ring, sub, genre = f"ring-{tag}", f"sub-{tag}", f"genre-{tag}"
    pubs = make_reviewers(s, tmp_path, "alice", "bob", "carol")
    ok(
        ringtally(
            s,
            *("rings", "add", ring, "--genre", genre, "--epoch", "1"),
            *("--key", pubs["alice"], "--key", pubs["bob"]),
        )
    )
    ok(ringtally(s, "submissions", "add", sub, "--genre", genre, "--epoch", "1"))
    out = ok(ringtally(s, "rings", "rotate", ring, "--remove", pubs["bob"], "--add", pubs["carol"]))
    assert out.startswith(f"published ring {ring} version 2 (genre {genre}, epoch 1, 2 members")

    records = [
        Ring.model_validate_json(r.value) for r in read_topic(s, "rings") if r.key == ring.encode()
    ]
    assert [r.version for r in records] == [1, 2]  # every version stays on the topic
    v2 = records[1]
    assert sorted(v2.public_keys) == sorted([pubs["alice"], pubs["carol"]])
    assert RegistrarKeys(trusted_registrar_keys(s)).check(v2) is None  # signed, trusted

    members = tmp_path / "members.txt"
    members.write_text(f"# back to alice and bob\n{pubs['alice']}\n{pubs['bob'].upper()}\n")
    shown = json.loads(ok(ringtally(s, "rings", "show", ring, "--json")))
    assert [v["version"] for v in shown] == [1, 2]
    assert (
        json.loads(ok(ringtally(s, "rings", "show", ring, "--version", "1", "--json")))[
            "public_keys"
        ]
        == records[0].public_keys
    )

    def vote(who: str, *extra: str):
        return ringtally(
            s,
            *("vote", "--key-file", str(tmp_path / f"{who}.key"), "--ring", ring),
            *("--submission", sub, "--type", "approve", "--wait", "60", *extra),
        )

    revoked = vote("bob", "--ring-version", "1")
    assert revoked.code == 1 and "ring_not_in_force" in revoked.out, revoked
    not_member = vote("bob")
    assert not_member.code == 2 and "not a member of ring" in not_member.err, not_member
    assert vote("carol").code == 0

    out = ok(ringtally(s, "rings", "rotate", ring, "--members", str(members)))
    assert "version 3" in out
    assert vote("bob").code == 0  # back in the ring


def test_produce_signs_specs_publishes_signed_lines_and_skips_bad_ones(cli_settings, tmp_path):
    from connectors.sdk import Admin, build_vote, load_key_file

    s = cli_settings
    tag = uuid.uuid4().hex[:8]
    ring, genre = f"ring-{tag}", f"genre-{tag}"
    subs = [f"sub-{tag}-{i}" for i in range(3)]
    make_reviewers(s, tmp_path, "alice", "bob")
    ok(
        ringtally(
            s, "rings", "add", ring, "--genre", genre, "--epoch", "2", "--keys-from", str(tmp_path)
        )
    )
    admin = Admin(s)
    for sub in subs:
        admin.register_submission(sub, genre=genre, epoch=2)
    signed = build_vote(
        load_key_file(tmp_path / "bob.key"),
        admin.list_rings()[ring],
        submission_id=subs[2],
        ring_id=ring,
        ring_version=1,
        vote_type="escalate",
        epoch=2,
        slot=9,
    )
    lines = [
        "# three votes and two mistakes",
        json.dumps(
            {
                "key_file": "alice.key",
                "ring_id": ring,
                "submission_id": subs[0],
                "vote_type": "approve",
            }
        ),
        json.dumps(
            {
                "key_file": "bob.key",
                "ring_id": ring,
                "ring_version": 1,
                "submission_id": subs[1],
                "vote_type": "reject",
                "slot": 0,
                "compact": True,
            }
        ),
        "{not json",
        signed.to_json().decode(),
        json.dumps(
            {
                "key_file": "alice.key",
                "ring_id": ring,
                "submission_id": subs[0],
                "vote_type": "sideways",
            }
        ),
        "",
    ]
    (tmp_path / "votes.jsonl").write_text("\n".join(lines) + "\n")

    votes_topic = s.topic("votes")
    before = sum(end_offsets(s, [votes_topic]).values())
    strict = ringtally(s, "produce", "--strict", str(tmp_path / "votes.jsonl"))
    assert (
        strict.code == 2
        and "votes.jsonl:4:" in strict.err
        and "nothing was published" in strict.err
    )
    assert sum(end_offsets(s, [votes_topic]).values()) == before
    assert (
        not (tmp_path / "bob.slots.json").exists()
        or json.loads((tmp_path / "bob.slots.json").read_text())["used"] == {}
    )  # the aborted run gave its slots back

    result = ringtally(s, "produce", str(tmp_path / "votes.jsonl"), "--wait", "60")
    assert result.code == 1, result
    assert result.err.splitlines()[0].startswith(f"{tmp_path / 'votes.jsonl'}:4: not JSON")
    assert "votes.jsonl:6: not a valid vote spec: vote_type" in result.err
    assert "Traceback" not in result.err
    assert result.out.splitlines() == [
        f"published 3 vote(s) to {votes_topic}; skipped 2 bad line(s)",
        "outcomes: 3 ballot(s), 0 rejection(s)",
    ]
    assert sum(end_offsets(s, [votes_topic]).values()) == before + 3
    assert json.loads((tmp_path / "bob.slots.json").read_text())["used"] == {"2": [0]}


def test_deactivated_ring_refuses_votes(cli_settings, tmp_path) -> None:
    s = cli_settings
    tag = uuid.uuid4().hex[:8]
    ring, sub, genre = f"ring-{tag}", f"sub-{tag}", f"genre-{tag}"
    make_reviewers(s, tmp_path, "alice")
    alice = str(tmp_path / "alice.key")
    ok(ringtally(s, "rings", "add", ring, "--genre", genre, "--epoch", "1", "--key-file", alice))
    ok(ringtally(s, "submissions", "add", sub, "--genre", genre, "--epoch", "1"))
    out = ok(ringtally(s, "rings", "deactivate", ring)).strip()
    assert out.startswith(f"published ring {ring} version 2 ") and "inactive" in out
    listed = {r["ring_id"]: r for r in json.loads(ok(ringtally(s, "rings", "list", "--json")))}
    assert (listed[ring]["active"], listed[ring]["version"]) == (False, 2)

    vote = ["vote", "--key-file", alice, "--ring", ring, "--submission", sub, "--type", "approve"]
    result = ringtally(s, *vote, "--wait", "60")
    assert result.code == 1, result
    assert "inactive_ring" in result.out and "warning: ring" in result.err

    published = ringtally(s, *vote, "--json")
    assert json.loads(ok(published))["outcome"] == "published"
