"""The operator CLI end to end, as a user runs it: ``ringtally`` subprocesses against a real
worker (the module's ``pipeline``), then the real sink, then the tallies read back from
Postgres and from the Redis read model."""

from __future__ import annotations

import json
import secrets
import uuid

import pytest
import redis

from agents.issuer import IssuerKeys, trusted_issuer_keys
from connectors.sdk import end_offsets, read_compacted
from models import CredentialRevoked
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


def test_keys_rings_tokens_votes_sink_and_tallies(cli_settings, tmp_path) -> None:
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
        )
    )
    assert out.strip() == f"registered ring {ring} (genre {genre}, epoch 5, 3 members, active)"
    listed = {r["ring_id"]: r for r in json.loads(ok(ringtally(s, "rings", "list", "--json")))}
    assert sorted(listed[ring]["public_keys"]) == sorted([*pubs.values(), carol])
    assert ring in ok(ringtally(s, "rings", "list"))
    ok(ringtally(s, "submissions", "add", sub, "--genre", genre, "--epoch", "5"))
    assert sub in ok(ringtally(s, "submissions", "list"))

    credential = secrets.token_hex(32)
    issued = json.loads(
        ok(
            ringtally(
                s,
                "tokens",
                "issue",
                "--credential",
                credential,
                "--epoch",
                "5",
                "--count",
                "2",
                "--json",
            )
        )
    )
    assert issued["credential_hash"] == credential and len(issued["tokens"]) == 2
    plain = ok(
        ringtally(
            s, "tokens", "issue", "--credential", credential.upper(), "--epoch", "5", "--count", "2"
        )
    ).split()
    assert len(plain) == 2 and all(len(t) == 32 for t in plain)
    t1, t2 = issued["tokens"]
    t3, _ = plain

    def vote(who: str, token: str, kind: str, *extra: str):
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
            "--token",
            token,
            "--wait",
            "60",
            *extra,
        )

    first = vote("alice", t1, "approve")
    assert first.code == 0, first
    assert first.out.startswith("ballot: vote ") and f"counted on submission {sub}" in first.out

    second = vote("alice", t2, "reject")  # the same reviewer again, with another token
    assert second.code == 1, second
    assert second.out.startswith("rejection: vote ") and "duplicate_key_image" in second.out
    assert second.err == ""

    third = json.loads(ok(vote("bob", t3, "approve", "--compact", "--json")))
    assert (third["outcome"], third["vote_type"], third["submission_id"]) == (
        "ballot",
        "approve",
        sub,
    )

    ok(ringtally(s, "db", "migrate"))
    ok(ringtally(s, "sink", "--until-idle", "5"))

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
    assert [r["token_id"] for r in rejected if r["token_id"] == t2] == [t2]
    assert "duplicate_key_image" in ok(ringtally(s, "rejections", "list", "--limit", "5"))


def test_produce_signs_specs_publishes_signed_lines_and_skips_bad_ones(cli_settings, tmp_path):
    from connectors.sdk import Admin, load_key_file
    from connectors.sdk.vote import build_vote, resolve_ring

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
    tokens = admin.issue_tokens(secrets.token_hex(32), epoch=2, count=4)
    signed = build_vote(
        load_key_file(tmp_path / "bob.key"),
        resolve_ring(admin.list_rings()[ring])[0],
        submission_id=subs[2],
        ring_id=ring,
        vote_type="escalate",
        token_id=tokens[2],
        epoch=2,
    )
    lines = [
        "# three votes and two mistakes",
        json.dumps(
            {
                "key_file": "alice.key",
                "ring_id": ring,
                "submission_id": subs[0],
                "vote_type": "approve",
                "token_id": tokens[0],
            }
        ),
        json.dumps(
            {
                "key_file": "bob.key",
                "ring_id": ring,
                "submission_id": subs[1],
                "vote_type": "reject",
                "token_id": tokens[1],
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
                "token_id": tokens[3],
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


def test_deactivated_ring_and_revoked_credential(cli_settings, tmp_path) -> None:
    s = cli_settings
    tag = uuid.uuid4().hex[:8]
    ring, sub, genre = f"ring-{tag}", f"sub-{tag}", f"genre-{tag}"
    make_reviewers(s, tmp_path, "alice")
    ok(
        ringtally(
            s,
            "rings",
            "add",
            ring,
            "--genre",
            genre,
            "--epoch",
            "1",
            "--key-file",
            str(tmp_path / "alice.key"),
        )
    )
    ok(ringtally(s, "submissions", "add", sub, "--genre", genre, "--epoch", "1"))
    credential = secrets.token_hex(32)
    [token] = ok(
        ringtally(s, "tokens", "issue", "--credential", credential, "--epoch", "1", "--count", "1")
    ).split()
    assert ok(ringtally(s, "rings", "deactivate", ring)).strip() == f"ring {ring} is now inactive"
    listed = {r["ring_id"]: r for r in json.loads(ok(ringtally(s, "rings", "list", "--json")))}
    assert listed[ring]["active"] is False

    result = ringtally(
        s,
        "vote",
        "--key-file",
        str(tmp_path / "alice.key"),
        "--ring",
        ring,
        "--submission",
        sub,
        "--type",
        "approve",
        "--token",
        token,
        "--wait",
        "60",
    )
    assert result.code == 1, result
    assert "inactive_ring" in result.out and "warning: ring" in result.err

    published = ringtally(
        s,
        "vote",
        "--key-file",
        str(tmp_path / "alice.key"),
        "--ring",
        ring,
        "--submission",
        sub,
        "--type",
        "approve",
        "--token",
        "tok-x",
        "--json",
    )
    assert json.loads(ok(published))["outcome"] == "published"

    out = ok(ringtally(s, "revoke", credential, "--reason", "credential leaked"))
    assert credential in out
    revocations = read_compacted(s, "revocations")
    assert json.loads(revocations[credential.encode()])["reason"] == "credential leaked"
    # signed by the issuer key the worker trusts (finding F5)
    revocation = CredentialRevoked.model_validate_json(revocations[credential.encode()])
    assert IssuerKeys(trusted_issuer_keys(s)).check(revocation) is None


def test_tokens_revoke_revokes_one_token_signed_by_the_issuer(cli_settings, tmp_path) -> None:
    s = cli_settings
    tag = uuid.uuid4().hex[:8]
    ring, sub, genre = f"ring-{tag}", f"sub-{tag}", f"genre-{tag}"
    make_reviewers(s, tmp_path, "alice")
    alice = str(tmp_path / "alice.key")
    ok(ringtally(s, "rings", "add", ring, "--genre", genre, "--epoch", "1", "--key-file", alice))
    ok(ringtally(s, "submissions", "add", sub, "--genre", genre, "--epoch", "1"))
    credential = secrets.token_hex(32)
    revoked, kept = ok(
        ringtally(s, "tokens", "issue", "--credential", credential, "--epoch", "1", "--count", "2")
    ).split()
    assert ok(ringtally(s, "tokens", "revoke", revoked, "--reason", "lost")).strip() == (
        f"revoked token {revoked}"
    )
    vote = ["vote", "--key-file", alice, "--ring", ring, "--type", "approve", "--wait", "60"]
    result = ringtally(s, *vote, "--submission", sub, "--token", revoked)
    assert result.code == 1 and "token_revoked" in result.out, result
    # the other token of the credential is untouched
    assert ringtally(s, *vote, "--submission", sub, "--token", kept).code == 0
