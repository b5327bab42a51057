"""Every message on every ringtally topic, as strict pydantic v2 models.

Import from here: ``from models import VoteCast, Ballot, ReasonCode``.
"""

from .audit import AuditEvent, AuditKind, ChainBreak, first_break, genesis_hash
from .control import ControlRecord, Ring, Submission
from .decision import RULES_ID, Decision, decide, rules_version
from .encoding import VOTE_PROTOCOL, vote_signing_bytes
from .fields import MAX_PAYLOAD_BYTES, MAX_RING_MEMBERS, VoteType
from .outputs import Ballot, Rejection, Tally, VoteCounts
from .reasons import ReasonCode
from .votes import VoteCast, VotesMessage, parse_votes_message

__all__ = [
    "MAX_PAYLOAD_BYTES",
    "MAX_RING_MEMBERS",
    "RULES_ID",
    "VOTE_PROTOCOL",
    "AuditEvent",
    "AuditKind",
    "Ballot",
    "ChainBreak",
    "ControlRecord",
    "Decision",
    "ReasonCode",
    "Rejection",
    "Ring",
    "Submission",
    "Tally",
    "VoteCast",
    "VoteCounts",
    "VoteType",
    "VotesMessage",
    "decide",
    "first_break",
    "genesis_hash",
    "parse_votes_message",
    "rules_version",
    "vote_signing_bytes",
]
