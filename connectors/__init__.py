"""What talks to the outside, and what operators run (README's "Layout").

Libraries, importing only ``models`` and ``streams``: ``postgres`` (the sink),
``readmodel`` (Redis), ``sdk`` (producers), ``stack`` (local services and
ringtally's own processes). Above them: ``replay``, ``demo``, and ``cli``
(the ``ringtally`` command), which nothing imports.
"""
