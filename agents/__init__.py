"""Faust agents of the vote path: verify, revocation fan-out, tally.

Importing :mod:`agents.pipeline` registers the agents on :data:`streams.app.app`;
the logic modules import without Faust.
"""
