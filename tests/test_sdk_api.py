"""The SDK's public API is exactly what ``__all__`` says (in the style of asyncpg's
tests/test_exceptions.py): adding or removing a public name is a deliberate change here."""

from __future__ import annotations

import types

import connectors.sdk as sdk

EXPECTED = [
    "Admin",
    "AsyncVoteClient",
    "GatewayVoter",
    "KeyFileError",
    "NotFound",
    "Outcome",
    "OutcomeTimeout",
    "ReceiptInvalid",
    "ReceiptTimeout",
    "Registrar",
    "SdkProducer",
    "SlotUsed",
    "SlotsExhausted",
    "VoteClient",
    "Voter",
    "build_vote",
    "create_key_file",
    "end_offsets",
    "ensure_topics",
    "fetch_receipt",
    "get_ring",
    "list_rings",
    "list_submissions",
    "load_key_file",
    "load_registrar",
    "read_compacted",
    "read_topic",
    "ring_history",
    "verify_receipt",
]

#: Protocol v1's token issuing is gone from the SDK (nothing issues tokens in v2).
REMOVED = ["Issuer", "load_issuer", "issue_tokens", "revoke_credential", "revoke_token"]


def test_all_is_exactly_the_public_api() -> None:
    assert sorted(sdk.__all__) == EXPECTED
    assert len(set(sdk.__all__)) == len(sdk.__all__)


def test_every_exported_name_exists_and_nothing_else_public_leaks() -> None:
    for name in sdk.__all__:
        assert hasattr(sdk, name), name
    public = {
        name
        for name, value in vars(sdk).items()
        if not name.startswith("_") and not isinstance(value, types.ModuleType)
    }
    assert public == set(sdk.__all__)


def test_v1_token_issuing_is_gone() -> None:
    for name in REMOVED:
        assert not hasattr(sdk, name), name
        assert not hasattr(sdk.Admin, name), name


def test_errors_are_ringtally_errors_with_cli_exit_codes() -> None:
    from streams.errors import RingtallyError

    assert issubclass(sdk.KeyFileError, RingtallyError) and sdk.KeyFileError.exit_code == 2
    assert issubclass(sdk.NotFound, RingtallyError) and sdk.NotFound.exit_code == 2
    assert issubclass(sdk.OutcomeTimeout, RingtallyError) and sdk.OutcomeTimeout.exit_code == 3
    assert issubclass(sdk.SlotUsed, RingtallyError) and sdk.SlotUsed.exit_code == 2
    assert issubclass(sdk.SlotsExhausted, RingtallyError) and sdk.SlotsExhausted.exit_code == 2


def test_submodules_declare_all() -> None:
    import importlib

    names = (
        "admin",
        "aio",
        "bulletin",
        "errors",
        "keyfile",
        "outcome",
        "producer",
        "reader",
        "receipt",
        "registrar",
        "vote",
        "voter",
    )
    modules = [importlib.import_module(f"connectors.sdk.{name}") for name in names]
    for module in modules:
        assert isinstance(module.__all__, list), module.__name__
        for name in module.__all__:
            assert hasattr(module, name), f"{module.__name__}.{name}"
