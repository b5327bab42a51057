"""The producer SDK: sign and publish votes and wait for their outcomes, issue tokens,
register rings and submissions, and keep reviewer keys in files.

Everything public is listed in ``__all__`` (``tests/test_sdk_api.py`` pins it):

* :class:`VoteClient` / :class:`AsyncVoteClient` — sign, publish, ``wait_outcome``;
* :func:`build_vote` — a signed :class:`~models.VoteCast` without publishing;
* :class:`Admin` — rings, submissions, tokens, revocations;
* :class:`Issuer` / :func:`load_issuer` — the issuer key that signs token events;
* :func:`create_key_file` / :func:`load_key_file` / :class:`KeyFileError` — key files;
* :func:`list_rings`, :func:`get_ring`, :func:`list_submissions`, :func:`read_compacted`,
  :func:`end_offsets` — reading topics back;
* :class:`SdkProducer`, :func:`ensure_topics` — the idempotent producer, topic creation;
* :class:`NotFound`, :class:`OutcomeTimeout` — errors (all ``RingtallyError``).
"""

from .admin import Admin
from .aio import AsyncVoteClient
from .errors import NotFound, OutcomeTimeout
from .issuer import Issuer, load_issuer
from .keyfile import KeyFileError, create_key_file, load_key_file
from .outcome import Outcome
from .producer import SdkProducer, ensure_topics
from .reader import end_offsets, get_ring, list_rings, list_submissions, read_compacted
from .vote import VoteClient, build_vote

__all__ = [
    "Admin",
    "AsyncVoteClient",
    "Issuer",
    "KeyFileError",
    "NotFound",
    "Outcome",
    "OutcomeTimeout",
    "SdkProducer",
    "VoteClient",
    "build_vote",
    "create_key_file",
    "end_offsets",
    "ensure_topics",
    "get_ring",
    "list_rings",
    "list_submissions",
    "load_issuer",
    "load_key_file",
    "read_compacted",
]
