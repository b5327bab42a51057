"""atheris: ``models.parse_votes_message`` on arbitrary bytes.

Documented contract (models/votes.py): it returns a VoteCast (the only
message on the votes topic in protocol v2) or raises
``pydantic.ValidationError``. Anything else escaping is a finding. A parsed
VoteCast must also give its signing bytes, context, epoch bytes and decoded
signature without raising, and survive a JSON round trip unchanged.

    python fuzz/fuzz_votes_message.py fuzz/corpus/votes_message -max_total_time=120
"""

import sys

import _common  # noqa: F401  (sys.path)
import atheris

with atheris.instrument_imports():
    from pydantic import ValidationError

    from models.fields import MAX_PAYLOAD_BYTES
    from models.votes import VoteCast, parse_votes_message


def TestOneInput(data: bytes) -> None:  # noqa: N802 - atheris' name
    if len(data) > MAX_PAYLOAD_BYTES:  # the verifier refuses these before parsing
        return
    try:
        message = parse_votes_message(data)
    except ValidationError:
        return
    assert isinstance(message, VoteCast)
    again = parse_votes_message(message.to_json())
    assert again == message, (message, again)
    assert message.signing_bytes()
    assert message.context() == message.submission_id.encode()
    assert len(message.epoch_bytes()) == 8
    assert message.signature_bytes()


if __name__ == "__main__":
    atheris.Setup(sys.argv, TestOneInput)
    atheris.Fuzz()
