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
    (home / "members.txt").write_text("# no key here\n")
    (home / "bad-members.txt").write_text("zz\n")
    outsider = ringcrypto.SecretKey.generate()
    admin = Admin(settings)
    admin.register_ring("ring-other", genre="g", epoch=1, public_keys=[outsider.public_key])
    admin.register_ring("ring-gone", genre="g", epoch=1, public_keys=[outsider.public_key])
    admin.deactivate_ring("ring-gone")
    (home / "outsider.pub").write_text(outsider.public_key.hex())
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
]
ROTATE = ["rings", "rotate", "ring-other"]

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
    "submissions-add-conflict": (
        ["submissions", "add", "s-fixed", "--genre", "other", "--epoch", "1"],
        "cannot change",
    ),
    # rings: versions
    "rings-add-k-zero": (
        ["rings", "add", "r1", "--genre", "g", "--epoch", "1", "--votes-per-epoch", "0"],
        "--votes-per-epoch",
    ),
    "rings-add-valid-from": (
        ["rings", "add", "r1", "--genre", "g", "--epoch", "1", "--valid-from", "tomorrow"],
        "ISO 8601",
    ),
    "rings-add-valid-from-tz": (
        ["rings", "add", "r1", "--genre", "g", "--epoch", "1", "--valid-from", "2026-01-01"],
        "no timezone",
    ),
    "rings-rotate-nothing": (ROTATE, "nothing to change"),
    "rings-rotate-add-point": (
        [*ROTATE, "--members", "{home}/members.txt", "--add", NOT_A_POINT],
        "'--add'",
    ),
    "rings-rotate-members-and-add": (
        [*ROTATE, "--members", "{home}/members.txt", "--add", "{outsider}"],
        "not both",
    ),
    "rings-rotate-empty-members": ([*ROTATE, "--members", "{home}/members.txt"], "no public key"),
    "rings-rotate-bad-members": (
        [*ROTATE, "--members", "{home}/bad-members.txt"],
        "bad-members.txt:1:",
    ),
    "rings-rotate-remove-outsider": (
        [*ROTATE, "--remove", "{alice}"],
        "is not a member of ring ring-other version 1",
    ),
    "rings-rotate-add-member": (
        [*ROTATE, "--add", "{outsider}"],
        "is already a member of ring ring-other",
    ),
    "rings-rotate-remove-all": ([*ROTATE, "--remove", "{outsider}"], "remove them all"),
    "rings-rotate-unknown": (
        ["rings", "rotate", "no-such-ring", "--add", "{alice}"],
        "no ring 'no-such-ring'",
    ),
    "rings-deactivate-twice": (["rings", "deactivate", "ring-gone"], "already inactive"),
    "rings-show-unknown": (["rings", "show", "no-such-ring"], "no ring 'no-such-ring'"),
    "rings-show-version": (["rings", "show", "ring-other", "--version", "7"], "no version 7"),
    "rings-show-version-zero": (["rings", "show", "ring-other", "--version", "0"], "--version"),
    # protocol v1's tokens are gone
    "tokens-gone": (["tokens", "issue"], "No such command 'tokens'"),
    "revoke-gone": (["revoke", "x", "--reason", "r"], "No such command 'revoke'"),
    # vote
    "vote-type": ([*VOTE[:-2], "--type", "maybe"], "'maybe' is not one of"),
    "vote-keyfile": (["vote", "--key-file", "{home}/nope.key", *VOTE[3:]], "does not exist"),
    "vote-loose": (["vote", "--key-file", "{home}/loose.key", *VOTE[3:]], "chmod 600"),
    "vote-ring": ([*VOTE[:4], "no-such-ring", *VOTE[5:]], "no ring 'no-such-ring'"),
    "vote-not-member": (VOTE, "not a member of ring ring-other"),
    "vote-wait": ([*VOTE, "--wait", "-1"], "--wait"),
    "vote-token-gone": ([*VOTE, "--token", "tok-1"], "No such option: --token"),
    "vote-slot": ([*VOTE, "--slot", "-1"], "--slot"),
    "vote-ring-version": ([*VOTE, "--ring-version", "0"], "--ring-version"),
    "vote-ring-version-unknown": ([*VOTE, "--ring-version", "9"], "has no version 9"),
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
    names = {
        "home": home,
        "outsider": (home / "outsider.pub").read_text(),
        "alice": ringtally(None, "keys", "show", str(home / "alice.key")).out.strip(),
    }
    if case == "submissions-add-conflict":
        first = ringtally(settings, "submissions", "add", "s-fixed", "--genre", "g", "--epoch", "1")
        assert first.code == 0, first
    result = ringtally(settings, *(a.format(**names) for a in args))
    _assert_one_line_usage_error(result, needle.format(**names))


@pytest.mark.parametrize(
    ("args", "env", "needle"),
    [
        (
            ["rings", "list"],
            {"RINGTALLY_KAFKA_BOOTSTRAP": "127.0.0.1:9", "RINGTALLY_KAFKA_TIMEOUT": "1"},
            "kafka at 127.0.0.1:9 unreachable within 1 s",
        ),
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
        ["rings", "rotate"],
        ["rings", "deactivate"],
        ["rings", "show"],
        ["submissions", "add"],
        ["submissions", "list"],
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
        ("RINGTALLY_DATA_DIR", "", "RINGTALLY_DATA_DIR: must not be empty"),
        ("RINGTALLY_TABLE_STORE", "sqlite", "RINGTALLY_TABLE_STORE"),
        ("RINGTALLY_REGISTRAR_PUBLIC_KEYS", "abc", "RINGTALLY_REGISTRAR_PUBLIC_KEYS"),
    ],
)
def test_a_bad_setting_in_the_environment_is_one_line_and_exit_2(variable, value, needle) -> None:
    # A bad value stops the commands that read it (stack status does not read the
    # registrar's keys; a worker does).
    command = ["worker"] if "REGISTRAR" in variable else ["stack", "status"]
    result = ringtally(None, *command, env={**os.environ, variable: value})
    assert result.code == 2, result
    assert result.err.strip().count("\n") == 0 and needle in result.err, result.err
    assert "Traceback" not in result.out + result.err


def test_a_worker_with_no_registrar_key_refuses_to_start_in_one_line(tmp_path) -> None:
    """A worker that trusts no registrar key could accept no ring; it says so, before
    Faust starts anything."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RINGTALLY_REGISTRAR")}
    result = ringtally(None, "worker", env={**env, "RINGTALLY_DATA_DIR": str(tmp_path)})
    assert result.code == 2, result
    assert result.err.strip().count("\n") == 0, result.err
    assert "no registrar public key configured" in result.err, result.err
    assert "RINGTALLY_REGISTRAR_PUBLIC_KEYS" in result.err
    assert "Traceback" not in result.out + result.err


def test_a_worker_with_a_session_timeout_the_brokers_refuse_says_so_in_one_line(
    settings, tmp_path
) -> None:
    """Below the brokers' group.min.session.timeout.ms (6 s by default) the group refuses the
    worker at every join. Fails on the code before: the worker started, logged
    InvalidSessionTimeoutError at each join and never owned a partition."""
    env = {"RINGTALLY_DATA_DIR": str(tmp_path), "RINGTALLY_SESSION_TIMEOUT": "3"}
    result = ringtally(settings, "worker", env=env, timeout=120)
    assert result.code == 2, result
    assert result.err.strip().count("\n") == 0, result.err
    assert "group.min.session.timeout.ms=6000" in result.err, result.err
    assert "RINGTALLY_SESSION_TIMEOUT=3" in result.err, result.err
    assert "Traceback" not in result.out + result.err


def test_worker_help_prints_help_even_with_no_registrar_key(tmp_path) -> None:
    """Asking for help starts nothing, so the start checks must not refuse it (issue 18).
    Fails if the worker start check runs on --help."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RINGTALLY_REGISTRAR")}
    result = ringtally(None, "worker", "--help", env={**env, "RINGTALLY_DATA_DIR": str(tmp_path)})
    assert result.code == 0, result
    assert "Usage: ringtally worker" in result.out, result.out
    assert "registrar" not in result.err


def test_a_gateway_with_no_registrar_key_refuses_to_start_in_one_line(tmp_path) -> None:
    """Fail closed (review finding): a gateway that cannot tell genuine rings would serve
    any ring a topic writer published. Fails if the gateway starts without a key."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RINGTALLY_REGISTRAR")}
    result = ringtally(None, "gateway", env={**env, "RINGTALLY_DATA_DIR": str(tmp_path)})
    assert result.code == 2, result
    assert result.err.strip().count("\n") == 0, result.err
    assert "no registrar public key" in result.err, result.err
    assert "Traceback" not in result.out + result.err


@pytest.mark.parametrize(
    ("key_file", "needle"), [("nope.key", "does not exist"), ("loose.key", "group/others")]
)
def test_a_missing_or_loose_registrar_key_file_is_one_line_and_exit_2(world, key_file, needle):
    settings, home = world
    result = ringtally(
        settings,
        *("submissions", "add", f"s-{key_file}", "--genre", "g", "--epoch", "1"),
        env={"RINGTALLY_REGISTRAR_KEY_FILE": str(home / key_file)},
    )
    assert result.code == 2, result
    assert result.err.strip().count("\n") == 0 and needle in result.err, result.err
    assert "Traceback" not in result.out + result.err
