"""The Redis read model: the latest tally per submission, and a channel announcing changes.

``store``  the Redis layout and the compare-and-set Lua script
``task``   the consumer that keeps it current and rebuilds it when Redis lost it
``cli``    ``ringtally readmodel`` (the sink also runs it, unless ``--no-readmodel``)
"""
