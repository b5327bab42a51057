"""Faust agents of the vote path: verify, revocation fan-out, tally.

Importing this package registers every agent on :data:`streams.app.app`.
"""

from . import pipeline  # noqa: E402,F401  (registers the agents)
