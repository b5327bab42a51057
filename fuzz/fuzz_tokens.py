"""atheris: random vote sequences on one slot tag through its state machine (``agents.tokens``).

The verifier's use of it, step by step: a record at each offset, with one of
a few vote digests and a signature that checks out or not; sometimes the
records come again from an earlier offset (a redelivery after a crash), and
are decided against the state as of their offset. Contract: nothing raises;
the state survives its dict round trip; and

* a tag is spent at most once, by the first record with a valid signature;
* a later record is accepted again (a replay) exactly when it carries the spending
  vote's digest; any other gets ``token_spent``;
* a redelivered record is decided exactly as the first time.

    python fuzz/fuzz_tokens.py -max_total_time=120
"""

import sys

import _common  # noqa: F401
import atheris

with atheris.instrument_imports():
    from agents.tokens import TokenState, vote_digest
    from models.reasons import ReasonCode


def _decide(state, offset, digest, valid):
    """What the verifier does with a record: (new state, outcome)."""
    seen = state.as_of(offset) if state is not None and state.newer_than(offset) else state
    verdict = TokenState.check_spend(seen, digest=digest)
    if verdict.replay:  # forwarded again, as when it spent the tag
        return state, "accepted"
    if verdict.reason is not None:
        assert verdict.reason is ReasonCode.TOKEN_SPENT
        return state, "spent"
    if not valid:
        return state, "bad"
    if state is not None:  # spent by a later record: refused, the state stays
        return state, "overtaken"
    return TokenState.spend(vote_id="v", digest=digest, key_image="k", offset=offset), "accepted"


def TestOneInput(data: bytes) -> None:  # noqa: N802
    fdp = atheris.FuzzedDataProvider(data)
    records = [
        (vote_digest(b"m%d" % fdp.ConsumeIntInRange(0, 2), b"s"), fdp.ConsumeBool())
        for _ in range(fdp.ConsumeIntInRange(1, 16))
    ]
    state: TokenState | None = None
    first: dict[int, str] = {}
    spender: int | None = None
    for offset, (digest, valid) in enumerate(records):
        before = state
        state, outcome = _decide(state, offset, digest, valid)
        first[offset] = outcome
        if state is not before:
            assert spender is None, "tag spent twice"
            spender = offset
        if spender is not None and offset > spender:
            same = digest == records[spender][0]
            assert outcome == ("accepted" if same else "spent"), (offset, outcome)
        assert state is None or TokenState.from_dict(state.to_dict()) == state
        if offset and fdp.ConsumeBool():  # a crash: the records from some offset come again
            for again in range(fdp.ConsumeIntInRange(0, offset), offset + 1):
                kept = state
                state, outcome = _decide(state, again, *records[again])
                assert outcome == first[again], (again, outcome, first[again])
                assert state is kept, "a redelivered record changed the tag's state"
    if spender is not None:
        assert state is not None and state.changed_offset == spender
        assert all(first[o] == "bad" for o in range(spender))
    else:
        assert state is None and all(o == "bad" for o in first.values())


if __name__ == "__main__":
    atheris.Setup(sys.argv, TestOneInput)
    atheris.Fuzz()
