"""Reviewer key files: created 0600 and never clobbered; unsafe or malformed files refused.

No services needed.
"""

from __future__ import annotations

import json
import os
import stat

import pytest

import ringcrypto
from connectors.sdk import KeyFileError, create_key_file, load_key_file
from streams.errors import RingtallyError


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def _refused(path, *needles: str) -> KeyFileError:
    with pytest.raises(KeyFileError) as info:
        load_key_file(path)
    line = info.value.one_line()
    assert str(path) in line and "\n" not in line
    for needle in needles:
        assert needle in line, line
    assert isinstance(info.value, RingtallyError) and info.value.exit_code == 2
    return info.value


def test_created_0600_even_under_a_permissive_umask(tmp_path) -> None:
    old = os.umask(0)
    try:
        public = create_key_file(tmp_path / "a.key")
    finally:
        os.umask(old)
    assert _mode(tmp_path / "a.key") == 0o600
    key = load_key_file(tmp_path / "a.key")
    assert key.public_key == public
    doc = json.loads((tmp_path / "a.key").read_text())
    assert doc["version"] == 1 and doc["public_key"] == public.hex()
    assert "SECRET" in doc["warning"]


def test_a_given_key_round_trips(tmp_path) -> None:
    key = ringcrypto.SecretKey.from_seed(bytes(range(32)))
    create_key_file(tmp_path / "seeded.key", key)
    loaded = load_key_file(tmp_path / "seeded.key")
    assert loaded.public_key == key.public_key
    assert loaded.key_image(b"sub-1") == key.key_image(b"sub-1")


def test_never_overwrites_unless_asked(tmp_path) -> None:
    path = tmp_path / "a.key"
    first = create_key_file(path)
    with pytest.raises(KeyFileError) as info:
        create_key_file(path)
    assert "already exists" in info.value.one_line()
    assert load_key_file(path).public_key == first
    os.chmod(path, 0o644)  # even a loose old file is replaced by a 0600 one
    second = create_key_file(path, overwrite=True)
    assert second != first and load_key_file(path).public_key == second
    assert _mode(path) == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.key"]  # no temp file left


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660, 0o602])
def test_group_or_world_access_is_refused_with_the_chmod_fix(tmp_path, mode) -> None:
    path = tmp_path / "a.key"
    create_key_file(path)
    os.chmod(path, mode)
    _refused(path, f"mode {mode:04o}", f"chmod 600 {path}")


def test_missing_file_and_directory(tmp_path) -> None:
    _refused(tmp_path / "nope.key", "does not exist", "ringtally keys new")
    os.chmod(tmp_path, 0o700)
    _refused(tmp_path, "not a regular file")


def _write(path, content: str | bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(content.encode() if isinstance(content, str) else content)


def _doc(**changes) -> str:
    key = ringcrypto.SecretKey.from_seed(b"\x07" * 32)
    doc = {
        "version": 1,
        "type": "ringtally-reviewer-key",
        "public_key": key.public_key.hex(),
        "secret_key": key.export_secret().hex(),
        "warning": "SECRET",
    }
    doc.update(changes)
    return json.dumps({k: v for k, v in doc.items() if v is not None})


OTHER_PUBLIC = ringcrypto.SecretKey.from_seed(b"\x08" * 32).public_key.hex()


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ("{not json", "not valid JSON"),
        (b"\xff\xfe\x00", "not valid JSON"),
        ("[1, 2]", "not a JSON object"),
        (_doc(version=2), "version 2"),
        (_doc(version=None), "version None"),
        (_doc(type="something-else"), "type"),
        (_doc(secret_key=None), "secret_key is missing"),
        (_doc(secret_key="zz" * 32), "secret_key is missing or not 64"),
        (_doc(secret_key="00" * 32), "secret_key is not a valid key"),
        (_doc(secret_key="ff" * 32), "secret_key is not a valid key"),
        (_doc(public_key="AB" * 32), "public_key is missing or not 64"),
        (_doc(public_key=OTHER_PUBLIC), "does not match the secret key"),
    ],
    ids=[
        "json",
        "binary",
        "array",
        "version",
        "no-version",
        "type",
        "no-secret",
        "hex",
        "zero",
        "non-canonical",
        "uppercase",
        "mismatch",
    ],
)
def test_malformed_files_are_refused(tmp_path, content, problem) -> None:
    path = tmp_path / "bad.key"
    _write(path, content)
    error = _refused(path, problem)
    assert "ringtally keys new" in error.one_line()
    assert (
        ringcrypto.SecretKey.from_seed(b"\x07" * 32).export_secret().hex() not in error.one_line()
    )


def test_the_well_formed_document_loads(tmp_path) -> None:
    path = tmp_path / "ok.key"
    _write(path, _doc())
    assert load_key_file(path).public_key == ringcrypto.SecretKey.from_seed(b"\x07" * 32).public_key


def test_oversized_file_is_refused(tmp_path) -> None:
    path = tmp_path / "big.key"
    _write(path, " " * (65 * 1024) + _doc())
    _refused(path, "too large")
