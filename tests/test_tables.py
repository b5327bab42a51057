"""BatchedTable writes the changelog records Faust's own Table would write.

Recovery (Faust's) decodes the changelog with the table's JSON codec, so
the bytes our hand-over sends must be what that codec produces: the same
compact JSON, ASCII-escaped. Checked on the shapes the three tables store.
"""

from __future__ import annotations

import pytest
from faust.serializers import codecs

from agents.tokens import TokenPhase, TokenState
from streams.tables import _encode

VALUES = [
    TokenState(
        phase=TokenPhase.ISSUED, credential_hash="ab" * 32, epoch=1, issued_offset=0
    ).to_dict(),
    TokenState(
        phase=TokenPhase.SPENT,
        credential_hash="cd" * 32,
        epoch=2,
        issued_offset=3,
        spent_by="0b7c1a4e-0000-5000-8000-000000000000",
        spent_digest="ef" * 32,
        key_image="12" * 32,
        changed_offset=9,
    ).to_dict(),
    {"vote_id": "v", "version": 7, "event": '{"chain":"tally-3","sequence":7}'},
    {"counts": {"approve": 1, "reject": 0, "flag": 2, "escalate": 0}, "version": 3},
    {"seq": 12, "hash": "00" * 32},
    {"tokens": ["tok-1", "tok-é"], "revoked": "stolen laptop — ünïcode"},
]


@pytest.mark.parametrize("value", VALUES)
def test_changelog_value_bytes_equal_fausts_json_codec(value):
    assert _encode(value) == codecs.dumps("json", value)


def test_token_state_round_trips_through_the_changelog_encoding():
    import json

    state = TokenState(
        phase=TokenPhase.REVOKED, credential_hash="ab" * 32, epoch=1, revoked_reason="x"
    )
    assert TokenState.from_dict(json.loads(_encode(state.to_dict()))) == state
