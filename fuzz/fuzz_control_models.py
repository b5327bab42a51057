"""atheris: the control records (Ring versions, Submissions) and what the control state does
with them.

Contract: ``Model.model_validate_json`` returns or raises ``ValidationError``;
building the crypto ring of a valid Ring record returns or raises
``ringcrypto.MalformedInput`` (a ValueError), as ``agents.control`` expects;
and ``ControlState.apply`` never raises on any record: it returns None or a
verdict, and an unsigned or foreign-signed record (every fuzzed one: no
input carries the registrar's signature) changes nothing.

    python fuzz/fuzz_control_models.py fuzz/corpus/control_models -max_total_time=120
"""

import sys

import _common  # noqa: F401
import atheris

with atheris.instrument_imports():
    from pydantic import ValidationError

    from agents.control import ControlRecord, ControlState
    from agents.registrar import RegistrarKeys
    from models.control import Ring, Submission
    from models.reasons import ReasonCode
    from streams.settings import Settings

import hashlib

import ringcrypto

MODELS = (Ring, Submission)
SETTINGS = Settings(topic_prefix="fuzz", partitions=1)
TOPICS = (SETTINGS.topic("rings"), SETTINGS.topic("submissions"))
REGISTRAR = RegistrarKeys(
    [ringcrypto.SecretKey.from_seed(hashlib.sha256(b"fuzz registrar").digest()).public_key]
)


def TestOneInput(data: bytes) -> None:  # noqa: N802
    if not data:
        return
    kind = data[0] % len(MODELS)
    model, body = MODELS[kind], data[1:]
    state = ControlState(SETTINGS, registrar=REGISTRAR)
    key = body[:8] if data[0] & 0x80 else None
    try:
        parsed = model.model_validate_json(body)
    except ValidationError:
        verdict = state.apply(ControlRecord(TOPICS[kind], 0, 0, 1000, key, body))
        assert verdict is not None and verdict.reason is ReasonCode.MALFORMED
        return
    assert model.model_validate_json(parsed.to_json()) == parsed
    assert parsed.signing_bytes()
    if isinstance(parsed, Ring):
        try:
            ring = ringcrypto.Ring(parsed.public_key_bytes(), max_size=1024)
        except ringcrypto.MalformedInput:
            pass
        else:
            assert len(ring) == len(set(parsed.public_keys))
    ident = parsed.ring_id if isinstance(parsed, Ring) else parsed.submission_id
    record = ControlRecord(TOPICS[kind], 0, 0, 1000, ident.encode(), body)
    verdict = state.apply(record)
    assert verdict is not None, "a record no trusted registrar signed changed the state"
    assert verdict.reason is ReasonCode.UNAUTHORIZED_CONTROL_EVENT, verdict
    assert not state.submissions and not any(h.versions for h in state.rings.values())


if __name__ == "__main__":
    atheris.Setup(sys.argv, TestOneInput)
    atheris.Fuzz()
