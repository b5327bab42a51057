"""atheris: the sink's decoder (``connectors/postgres/decode.py``) on arbitrary values.

Contract (its docstring): a record becomes ``Decoded`` or ``DeadLetter``,
never an exception, for every topic kind; a DeadLetter's reason is one of the
documented codes and its detail fits the 2,000-character column.

    python fuzz/fuzz_sink_decode.py fuzz/corpus/sink_decode -max_total_time=120
"""

import sys

import _common  # noqa: F401
import atheris

with atheris.instrument_imports():
    from connectors.postgres.decode import KINDS, DeadLetter, Decoded, Record, decode

KIND_NAMES = sorted(KINDS)
REASONS = {"empty_value", "bad_json", "invalid_message"}


def TestOneInput(data: bytes) -> None:  # noqa: N802
    if not data:
        return
    kind = KIND_NAMES[data[0] % len(KIND_NAMES)]
    value = None if data[0] >= 250 else data[1:]
    out = decode(kind, Record("t", 0, 1, 0, None, value))
    if isinstance(out, DeadLetter):
        assert out.reason in REASONS, out.reason
        assert len(out.detail) <= 2000
    else:
        assert isinstance(out, Decoded) and isinstance(out.model, KINDS[kind])


if __name__ == "__main__":
    atheris.Setup(sys.argv, TestOneInput)
    atheris.Fuzz()
