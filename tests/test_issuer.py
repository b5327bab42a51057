"""The issuer key's life on one machine (finding F5): settings, files, what workers trust."""

from __future__ import annotations

import os
import stat

import pytest
from pydantic import ValidationError

from agents.issuer import IssuerKeysMissing, trusted_issuer_keys
from connectors.sdk.issuer import load_issuer, pin_issuer
from connectors.sdk.keyfile import KeyFileError
from streams.settings import Settings
from tests.fixtures.issuer import ISSUER

A, B = "aa" * 32, "bb" * 32


def test_issuer_public_keys_come_comma_separated_from_the_environment(monkeypatch):
    monkeypatch.setenv("RINGTALLY_ISSUER_PUBLIC_KEYS", f" {A} , {B},")
    s = Settings()
    assert s.issuer_public_keys == f"{A},{B}"
    assert s.issuer_public_key_list == [bytes.fromhex(A), bytes.fromhex(B)]
    assert s.to_env()["RINGTALLY_ISSUER_PUBLIC_KEYS"] == f"{A},{B}"
    assert Settings().issuer_public_key_list  # still set: the environment is read again


@pytest.mark.parametrize("bad", ["abc", A.upper(), f"{A},{A}", f"{A};{B}"])
def test_bad_issuer_public_keys_are_refused(bad):
    with pytest.raises(ValidationError):
        Settings(issuer_public_keys=bad)


def test_a_development_issuer_key_is_created_once_mode_0600_with_its_public_key(tmp_path):
    settings = Settings(data_dir=tmp_path)
    first = load_issuer(settings)
    key_file = tmp_path / "issuer.key"
    assert stat.S_IMODE(os.stat(key_file).st_mode) == 0o600
    assert (tmp_path / "issuer.pub").read_text() == first.public_key.hex() + "\n"
    assert load_issuer(settings).public_key == first.public_key  # reused, not replaced
    assert trusted_issuer_keys(settings) == [first.public_key]  # what a worker trusts
    assert first.public_key.hex() in repr(first) and "secret" not in repr(first).lower()


def test_a_configured_issuer_key_file_is_never_created(tmp_path):
    settings = Settings(data_dir=tmp_path, issuer_key_file=tmp_path / "elsewhere.key")
    with pytest.raises(KeyFileError, match="does not exist"):
        load_issuer(settings)
    assert not (tmp_path / "elsewhere.key").exists()


def test_configured_keys_win_over_the_development_file(tmp_path):
    load_issuer(Settings(data_dir=tmp_path))
    assert trusted_issuer_keys(Settings(data_dir=tmp_path, issuer_public_keys=f"{A},{B}")) == [
        bytes.fromhex(A),
        bytes.fromhex(B),
    ]


@pytest.mark.parametrize("content", [None, "", "not hex\n", "aa" * 31 + "\n"])
def test_a_worker_without_a_usable_issuer_key_gets_one_line_with_the_fix(tmp_path, content):
    if content is not None:
        (tmp_path / "issuer.pub").write_text(content)
    with pytest.raises(IssuerKeysMissing) as caught:
        trusted_issuer_keys(Settings(data_dir=tmp_path))
    line = caught.value.one_line()
    assert "\n" not in line and "RINGTALLY_ISSUER_PUBLIC_KEYS" in line


def test_pin_issuer_makes_a_throw_away_data_dir_sign_and_trust_the_same_key(tmp_path):
    source = Settings(data_dir=tmp_path / "project")
    pinned = pin_issuer(Settings(data_dir=tmp_path / "run"), source)
    issuer = load_issuer(pinned)
    assert issuer.public_key == load_issuer(source).public_key
    assert trusted_issuer_keys(pinned) == [issuer.public_key]
    assert not (tmp_path / "run" / "issuer.key").exists()
    assert issuer.public_key != ISSUER.public_key
