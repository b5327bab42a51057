"""The producer SDK: sign and publish votes, issue tokens, register rings and submissions."""

from .admin import Admin
from .producer import SdkProducer, ensure_topics
from .vote import VoteClient, build_vote

__all__ = ["Admin", "SdkProducer", "VoteClient", "build_vote", "ensure_topics"]
