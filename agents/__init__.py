"""Faust agents of the vote path: verify, tally, and control-check (control records that
changed nothing become rejections).

Importing :mod:`agents.pipeline` registers the agents on :data:`streams.app.app`;
the logic modules import without Faust.
"""
