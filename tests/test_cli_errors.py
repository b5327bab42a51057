"""Every operator command's bad-argument path: ONE line on stderr, exit 2, no traceback.

Runs the real ``ringtally`` executable. Cases that get as far as Kafka use one
throw-away topic prefix for the module (1 partition per topic, so cheap).
"""

from __future__ import annotations

import os
import stat
import uuid

import pytest

import ringcrypto
from tests.test_cli_runner import ringtally

pytestmark = pytest.mark.integration

HASH = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
NOT_A_POINT = "01" * 32


@pytest.fixture(scope="module")
def world(stack, tmp_path_factory):
    """Settings with their own prefix, a key file, a registered ring the key is NOT in."""
    from connectors.sdk import Admin, create_key_file
    from tests.fixtures.stack import make_settings

    settings = make_settings(stack, f"t-{uuid.uuid4().hex[:8]}", partitions=1)
    home = tmp_path_factory.mktemp("cli-errors")
    create_key_file(home / "alice.key")
    create_key_file(home / "loose.key")
    os.chmod(home / "loose.key", 0o644)
    (home / "empty").mkdir()
    (home / "bad.jsonl").write_text('{"key_file": "alice.key"}\n')
    outsider = ringcrypto.SecretKey.generate()
    Admin(settings).register_ring(
        "ring-other", genre="g", epoch=1, public_keys=[outsider.public_key]
    )
    return settings, home


VOTE = [
    "vote",
    "--key-file",
    "{home}/alice.key",
    "--ring",
    "ring-other",
    "--submission",
    "s1",
    "--type",
    "approve",
    "--token",
    "tok-1",
]

CASES = {
    # keys
    "keys-new-exists": (["keys", "new", "{home}/alice.key"], "already exists"),
    "keys-new-seed": (["keys", "new", "{home}/x.key", "--seed-hex", "abc"], "--seed-hex"),
    "keys-new-nodir": (["keys", "new", "{home}/no/such/dir/x.key"], "does not exist"),
    "keys-show-loose": (["keys", "show", "{home}/loose.key"], "chmod 600 {home}/loose.key"),
    "keys-show-missing": (["keys", "show", "{home}/nope.key"], "does not exist"),
    # rings
    "rings-add-hex": (
        ["rings", "add", "r1", "--genre", "g", "--epoch", "1", "--key", "zz"],
        "'--key'",
    ),
    "rings-add-point": (
        ["rings", "add", "r1", "--genre", "g", "--epoch", "1", "--key", NOT_A_POINT],
        "not a valid public key",
    ),
    "rings-add-nomembers": (
        ["rings", "add", "r1", "--genre", "g", "--epoch", "1"],
        "at least one member",
    ),
    "rings-add-id": (
        ["rings", "add", "r 1", "--genre", "g", "--epoch", "1", "--key-file", "{home}/alice.key"],
        "RING_ID",
    ),
    "rings-add-epoch": (
        ["rings", "add", "r1", "--genre", "g", "--epoch", "-3", "--key-file", "{home}/alice.key"],
        "--epoch",
    ),
    "rings-add-genre": (
        ["rings", "add", "r1", "--epoch", "1", "--key-file", "{home}/alice.key"],
        "Missing option '--genre'",
    ),
    "rings-add-keyfile": (
        ["rings", "add", "r1", "--genre", "g", "--epoch", "1", "--key-file", "{home}/nope.key"],
        "does not exist",
    ),
    "rings-add-loose": (
        ["rings", "add", "r1", "--genre", "g", "--epoch", "1", "--key-file", "{home}/loose.key"],
        "chmod 600",
    ),
    "rings-add-dup": (
        [
            "rings",
            "add",
            "r1",
            "--genre",
            "g",
            "--epoch",
            "1",
            "--key-file",
            "{home}/alice.key",
            "--key-file",
            "{home}/alice.key",
        ],
        "given twice",
    ),
    "rings-add-emptydir": (
        ["rings", "add", "r1", "--genre", "g", "--epoch", "1", "--keys-from", "{home}/empty"],
        "no *.key files",
    ),
    "rings-deactivate-unknown": (["rings", "deactivate", "no-such-ring"], "no ring 'no-such-ring'"),
    "rings-list-extra": (["rings", "list", "--frobnicate"], "No such option"),
    # submissions
    "submissions-add-epoch": (["submissions", "add", "s1", "--genre", "g"], "'--epoch'"),
    "submissions-add-id": (
        ["submissions", "add", "", "--genre", "g", "--epoch", "1"],
        "SUBMISSION_ID",
    ),
    # tokens, revoke
    "tokens-credential": (
        ["tokens", "issue", "--credential", "abc", "--epoch", "1", "--count", "1"],
        "credential hash",
    ),
    "tokens-count-zero": (
        ["tokens", "issue", "--credential", HASH, "--epoch", "1", "--count", "0"],
        "--count",
    ),
    "tokens-count-text": (
        ["tokens", "issue", "--credential", HASH, "--epoch", "1", "--count", "many"],
        "--count",
    ),
    "revoke-hash": (["revoke", HASH[:-1] + "g", "--reason", "r"], "credential hash"),
    "revoke-no-reason": (["revoke", HASH], "Missing option '--reason'"),
    "revoke-empty-reason": (["revoke", HASH, "--reason", " "], "--reason"),
    "tokens-revoke-id": (["tokens", "revoke", "has space", "--reason", "r"], "an id"),
    "tokens-revoke-empty-reason": (["tokens", "revoke", "tok-1", "--reason", " "], "--reason"),
    # vote
    "vote-type": ([*VOTE[:-4], "--type", "maybe", "--token", "tok-1"], "'maybe' is not one of"),
    "vote-keyfile": (["vote", "--key-file", "{home}/nope.key", *VOTE[3:]], "does not exist"),
    "vote-loose": (["vote", "--key-file", "{home}/loose.key", *VOTE[3:]], "chmod 600"),
    "vote-ring": ([*VOTE[:4], "no-such-ring", *VOTE[5:]], "no ring 'no-such-ring'"),
    "vote-not-member": (VOTE, "not a member of ring ring-other"),
    "vote-wait": ([*VOTE, "--wait", "-1"], "--wait"),
    "vote-epoch": ([*VOTE, "--epoch", "x"], "--epoch"),
    # produce
    "produce-missing": (["produce", "{home}/nope.jsonl"], "cannot read"),
    "produce-strict": (["produce", "--strict", "{home}/bad.jsonl"], "bad.jsonl:1:"),
    # tally, rejections
    "tally-id": (["tally", "show", "a b"], "SUBMISSION"),
    "tally-limit": (["tally", "show", "--limit", "0"], "--limit"),
    "rejections-reason": (["rejections", "list", "--reason", "nope"], "--reason"),
    "rejections-limit": (["rejections", "list", "--limit", "-1"], "--limit"),
}


def _assert_one_line_usage_error(result, needle: str) -> None:
    assert result.code == 2, result
    assert "Traceback" not in result.out + result.err, result
    lines = result.err.strip().splitlines()
    assert len(lines) == 1, result
    assert lines[0].startswith("ringtally: error: "), result
    assert needle in lines[0], result


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_arguments_give_one_line_and_exit_2(world, case) -> None:
    settings, home = world
    args, needle = CASES[case]
    result = ringtally(settings, *(a.format(home=home) for a in args))
    _assert_one_line_usage_error(result, needle.format(home=home))


@pytest.mark.parametrize(
    ("args", "env", "needle"),
    [
        (["rings", "list"], {"RINGTALLY_KAFKA_BOOTSTRAP": "127.0.0.1:9"}, "kafka at 127.0.0.1:9"),
        (
            ["tally", "show"],
            {"RINGTALLY_POSTGRES_DSN": "postgresql://x@127.0.0.1:9/x"},
            "postgres at",
        ),
        (
            ["rejections", "list"],
            {"RINGTALLY_POSTGRES_DSN": "postgresql://nobody:secret@127.0.0.1:9/x"},
            "nobody:***@",
        ),
        (
            ["tally", "show", "--redis"],
            {"RINGTALLY_REDIS_URL": "redis://127.0.0.1:9/0"},
            "redis at",
        ),
    ],
    ids=["kafka", "postgres", "postgres-password-masked", "redis"],
)
def test_unreachable_services_give_one_line_and_exit_2(world, args, env, needle) -> None:
    result = ringtally(world[0], *args, env=env)
    _assert_one_line_usage_error(result, needle)
    assert "secret" not in result.err


def test_an_unmigrated_schema_is_one_line_with_the_fix(world) -> None:
    result = ringtally(world[0], "tally", "show", "sub-1")
    assert result.code == 1 and "Traceback" not in result.err, result
    assert result.err.strip().splitlines() == [
        f"ringtally: error: schema {world[0].postgres_schema} has no ringtally tables yet; "
        "run 'ringtally db migrate' (or 'ringtally sink --migrate')"
    ]


@pytest.mark.parametrize(
    "command",
    [
        ["keys", "new"],
        ["keys", "show"],
        ["rings", "add"],
        ["rings", "list"],
        ["rings", "deactivate"],
        ["submissions", "add"],
        ["submissions", "list"],
        ["tokens", "issue"],
        ["tokens", "revoke"],
        ["revoke"],
        ["vote"],
        ["produce"],
        ["tally", "show"],
        ["rejections", "list"],
    ],
    ids=lambda c: "-".join(c),
)
def test_every_command_has_help_with_an_example(command) -> None:
    result = ringtally(None, *command, "--help")
    assert result.code == 0, result
    assert "Example:" in result.out and "ringtally " + command[0] in result.out, result


# --- key files through the CLI (no services needed) ----------------------------------------


def test_keys_new_writes_0600_and_prints_the_public_key(tmp_path) -> None:
    result = ringtally(None, "keys", "new", str(tmp_path / "a.key"))
    assert result.code == 0, result
    public = result.out.strip()
    assert len(public) == 64 and "SECRET" in result.err
    assert stat.S_IMODE(os.stat(tmp_path / "a.key").st_mode) == 0o600
    assert ringtally(None, "keys", "show", str(tmp_path / "a.key")).out.strip() == public
    secret = __import__("json").loads((tmp_path / "a.key").read_text())["secret_key"]
    assert secret not in result.out + result.err


def test_keys_new_from_a_seed_is_deterministic_and_force_replaces(tmp_path) -> None:
    seed = "42" * 32
    a = ringtally(None, "keys", "new", str(tmp_path / "a.key"), "--seed-hex", seed)
    b = ringtally(None, "keys", "new", str(tmp_path / "b.key"), "--seed-hex", seed.upper())
    expected = ringcrypto.SecretKey.from_seed(bytes.fromhex(seed)).public_key.hex()
    assert a.out.strip() == b.out.strip() == expected, (a, b)
    c = ringtally(None, "keys", "new", str(tmp_path / "a.key"), "--force")
    assert c.code == 0 and c.out.strip() != expected
    assert stat.S_IMODE(os.stat(tmp_path / "a.key").st_mode) == 0o600


@pytest.mark.parametrize(
    ("variable", "value", "needle"),
    [
        ("RINGTALLY_PARTITIONS", "abc", "RINGTALLY_PARTITIONS: Input should be a valid integer"),
        ("RINGTALLY_DATA_DIR", "", "RINGTALLY_DATA_DIR: Value error, must not be empty"),
        ("RINGTALLY_TABLE_STORE", "sqlite", "RINGTALLY_TABLE_STORE"),
        ("RINGTALLY_ISSUER_PUBLIC_KEYS", "abc", "RINGTALLY_ISSUER_PUBLIC_KEYS"),
    ],
)
def test_a_bad_setting_in_the_environment_is_one_line_and_exit_2(variable, value, needle) -> None:
    result = ringtally(None, "stack", "status", env={**os.environ, variable: value})
    assert result.code == 2, result
    assert result.err.strip().count("\n") == 0 and needle in result.err, result.err
    assert "Traceback" not in result.out + result.err


def test_a_worker_with_no_issuer_key_refuses_to_start_in_one_line(tmp_path) -> None:
    """Finding F5: a worker that trusts no issuer key could accept no token; it says so."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RINGTALLY_ISSUER")}
    result = ringtally(None, "worker", env={**env, "RINGTALLY_DATA_DIR": str(tmp_path)})
    assert result.code == 2, result
    assert result.err.strip().count("\n") == 0, result.err
    assert "no issuer public key configured" in result.err and "RINGTALLY_ISSUER_PUBLIC_KEYS" in (
        result.err
    )
    assert "Traceback" not in result.out + result.err


@pytest.mark.parametrize(
    ("key_file", "needle"), [("nope.key", "does not exist"), ("loose.key", "group/others")]
)
def test_a_missing_or_loose_issuer_key_file_is_one_line_and_exit_2(world, key_file, needle):
    settings, home = world
    result = ringtally(
        settings,
        *("tokens", "issue", "--credential", HASH, "--epoch", "1", "--count", "1"),
        env={"RINGTALLY_ISSUER_KEY_FILE": str(home / key_file)},
    )
    assert result.code == 2, result
    assert result.err.strip().count("\n") == 0 and needle in result.err, result.err
    assert "Traceback" not in result.out + result.err
