"""The registrar's key on the worker side: settings, files, which signatures count.

Control records (ring versions, submissions) count only when a trusted
registrar key signed them (DESIGN invariant 10; agents/registrar.py).
"""

from __future__ import annotations

import base64
import os
import stat

import pytest
from pydantic import ValidationError

import ringcrypto
from agents.registrar import RegistrarKeys, RegistrarKeysMissing, trusted_registrar_keys
from models.control import Submission
from streams.settings import Settings
from tests.fixtures.votes import REGISTRAR_KEY, registrar_keys, signed

A, B = "aa" * 32, "bb" * 32
SUBMISSION = Submission(submission_id="s1", genre="g", epoch=1)
OTHER = ringcrypto.SecretKey.from_seed(b"\x05" * 32)


def test_registrar_public_keys_come_comma_separated_from_the_environment(monkeypatch):
    monkeypatch.setenv("RINGTALLY_REGISTRAR_PUBLIC_KEYS", f" {A} , {B},")
    s = Settings()
    assert s.registrar_public_keys == f"{A},{B}"
    assert s.registrar_public_key_list == [bytes.fromhex(A), bytes.fromhex(B)]
    assert s.to_env()["RINGTALLY_REGISTRAR_PUBLIC_KEYS"] == f"{A},{B}"


@pytest.mark.parametrize("bad", ["abc", A.upper(), f"{A},{A}", f"{A};{B}"])
def test_bad_registrar_public_keys_are_refused(bad):
    with pytest.raises(ValidationError):
        Settings(registrar_public_keys=bad)


def test_a_worker_trusts_the_development_public_key_file(tmp_path):
    (tmp_path / "registrar.pub").write_text(REGISTRAR_KEY.public_key.hex() + "\n")
    assert trusted_registrar_keys(Settings(data_dir=tmp_path)) == [REGISTRAR_KEY.public_key]
    assert Settings(data_dir=tmp_path).registrar_key_path == tmp_path / "registrar.key"


def test_configured_keys_win_over_the_development_file(tmp_path):
    (tmp_path / "registrar.pub").write_text(REGISTRAR_KEY.public_key.hex() + "\n")
    settings = Settings(data_dir=tmp_path, registrar_public_keys=f"{A},{B}")
    assert trusted_registrar_keys(settings) == [bytes.fromhex(A), bytes.fromhex(B)]


@pytest.mark.parametrize("content", [None, "", "not hex\n", "aa" * 31 + "\n"])
def test_a_worker_without_a_usable_registrar_key_gets_one_line_with_the_fix(tmp_path, content):
    if content is not None:
        (tmp_path / "registrar.pub").write_text(content)
    with pytest.raises(RegistrarKeysMissing) as caught:
        trusted_registrar_keys(Settings(data_dir=tmp_path))
    line = caught.value.one_line()
    assert "\n" not in line and "RINGTALLY_REGISTRAR_PUBLIC_KEYS" in line


def test_only_a_trusted_registrar_signature_counts():
    keys = registrar_keys()
    assert keys.check(signed(SUBMISSION)) is None
    assert "carries no registrar signature" in keys.check(SUBMISSION)
    foreign = keys.check(signed(SUBMISSION, OTHER))
    assert foreign is not None and "1 trusted registrar key" in foreign
    assert keys.check(signed(SUBMISSION).model_copy(update={"genre": "h"})) is not None


def test_during_a_key_rotation_both_keys_count():
    keys = registrar_keys(OTHER)
    assert keys.public_keys == [REGISTRAR_KEY.public_key, OTHER.public_key]
    assert keys.check(signed(SUBMISSION)) is None and keys.check(signed(SUBMISSION, OTHER)) is None


def test_the_batch_check_agrees_with_the_single_check():
    """The control reader checks a batch's signatures in a thread (verify_items)."""
    keys = registrar_keys()
    records = [signed(SUBMISSION), signed(SUBMISSION, OTHER), signed(SUBMISSION)]
    records[2] = records[2].model_copy(update={"epoch": 9})
    items = [keys.batch_item(r) for r in records]
    assert (
        keys.verify_items(items)
        == [keys.check(r) is None for r in records]
        == [
            True,
            False,
            False,
        ]
    )
    assert keys.batch_item(SUBMISSION) is None  # unsigned: nothing to check


def test_a_vote_signature_is_never_a_registrar_signature():
    """Another context and message: a voter who is a ring of one cannot sign control records."""
    keys = RegistrarKeys([OTHER.public_key])
    ring = ringcrypto.Ring([OTHER.public_key])
    vote_sig = ringcrypto.sign_vote(OTHER, ring, b"s1", bytes(8), 0, SUBMISSION.signing_bytes())

    forged = SUBMISSION.model_copy(
        update={"registrar_signature": base64.b64encode(vote_sig).decode()}
    )
    assert keys.check(forged) is not None


def test_the_sdk_registrar_creates_the_development_key_a_worker_then_trusts(tmp_path):
    """The registrar side (connectors.sdk) and the worker side agree on the files."""
    from connectors.sdk.registrar import load_registrar

    settings = Settings(data_dir=tmp_path)
    registrar = load_registrar(settings)
    assert stat.S_IMODE(os.stat(tmp_path / "registrar.key").st_mode) == 0o600
    assert trusted_registrar_keys(settings) == [registrar.public_key]
    assert load_registrar(settings).public_key == registrar.public_key  # reused
    assert (
        RegistrarKeys(trusted_registrar_keys(settings)).check(registrar.sign_submission(SUBMISSION))
        is None
    )
