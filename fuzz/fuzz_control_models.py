"""atheris: the control models (Ring, Submission, CredentialRevoked) and ring construction.

Contract: ``Model.model_validate_json`` returns or raises ``ValidationError``;
building the crypto ring of a valid Ring record returns or raises
``ringcrypto.MalformedInput`` (a ValueError), as ``agents.control`` expects.

    python fuzz/fuzz_control_models.py fuzz/corpus/control_models -max_total_time=120
"""

import sys

import _common  # noqa: F401
import atheris

with atheris.instrument_imports():
    from pydantic import ValidationError

    from models.control import CredentialRevoked, Ring, Submission

import ringcrypto

MODELS = (Ring, Submission, CredentialRevoked)


def TestOneInput(data: bytes) -> None:  # noqa: N802
    if not data:
        return
    model = MODELS[data[0] % len(MODELS)]
    try:
        parsed = model.model_validate_json(data[1:])
    except ValidationError:
        return
    assert model.model_validate_json(parsed.to_json()) == parsed
    if isinstance(parsed, Ring):
        try:
            ring = ringcrypto.Ring(parsed.public_key_bytes(), max_size=1024)
        except ringcrypto.MalformedInput:
            return
        assert len(ring) == len(set(parsed.public_keys))


if __name__ == "__main__":
    atheris.Setup(sys.argv, TestOneInput)
    atheris.Fuzz()
