"""The Faust app, its settings, topics and tables, and the ``ringtally`` CLI."""
