"""The producer SDK: pick a slot, sign and publish votes and wait for their outcomes,
register ring versions and submissions as the registrar, keep reviewer keys in files.

Everything public is listed in ``__all__`` (``tests/test_sdk_api.py`` pins it):

* :class:`VoteClient` / :class:`AsyncVoteClient` — sign, publish, ``wait_outcome``;
* :class:`GatewayVoter` — sign locally, publish through a ringtally gateway (HTTP);
* :class:`Voter` — a reviewer key and its used slots (:class:`SlotUsed`,
  :class:`SlotsExhausted` before anything is published);
* :func:`build_vote` — a signed :class:`~models.VoteCast` without publishing;
* :class:`Admin` — ring versions (register, rotate, deactivate) and submissions;
* :class:`Registrar` / :func:`load_registrar` — the registrar key that signs them;
* :func:`create_key_file` / :func:`load_key_file` / :class:`KeyFileError` — key files;
* :func:`list_rings`, :func:`get_ring`, :func:`ring_history`, :func:`list_submissions`,
  :func:`read_topic`, :func:`read_compacted`, :func:`end_offsets` — reading topics back;
* :class:`SdkProducer`, :func:`ensure_topics` — the idempotent producer, topic creation;
* :func:`fetch_receipt` / :func:`verify_receipt` (:class:`ReceiptInvalid`,
  :class:`ReceiptTimeout`) — a counted vote's receipt from the output topics, and its
  offline check (``VoteClient.wait_receipt``; native/SPEC.md §14.4);
* :class:`NotFound`, :class:`OutcomeTimeout` — errors (all ``RingtallyError``).
"""

from .admin import Admin
from .aio import AsyncVoteClient
from .errors import NotFound, OutcomeTimeout, SlotsExhausted, SlotUsed
from .gateway import GatewayVoter
from .keyfile import KeyFileError, create_key_file, load_key_file
from .outcome import Outcome
from .producer import SdkProducer, ensure_topics
from .reader import (
    end_offsets,
    get_ring,
    list_rings,
    list_submissions,
    read_compacted,
    read_topic,
    ring_history,
)
from .receipt import ReceiptInvalid, ReceiptTimeout, fetch_receipt, verify_receipt
from .registrar import Registrar, load_registrar
from .vote import VoteClient, build_vote
from .voter import Voter

__all__ = [
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
