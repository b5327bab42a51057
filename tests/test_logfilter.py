"""The Kafka client's retry-loop logging is rate limited (streams.logfilter, finding F4)."""

from __future__ import annotations

import logging

from streams.logfilter import KAFKA_CLIENT_LOGGERS, RepeatFilter, install


def _record(msg: str, *args: object, name: str = "aiokafka.conn") -> logging.LogRecord:
    return logging.LogRecord(name, logging.ERROR, __file__, 1, msg, args, None)


def test_repeats_are_dropped_for_a_while_then_counted_on_the_next_one_through():
    now = [0.0]
    f = RepeatFilter(every=5, clock=lambda: now[0])
    assert f.filter(_record("Unable connect to node with id %s: %s", 1, "refused"))
    for i in range(2500):
        now[0] = i / 1000
        assert not f.filter(_record("Unable connect to node with id %s: %s", 1, "refused"))
    # another kind of message is not held back by the first one
    assert f.filter(_record("Unable to update metadata from %s", [1], name="aiokafka.client"))
    now[0] = 5.0
    through = _record("Unable connect to node with id %s: %s", 1, "refused")
    assert f.filter(through)
    assert through.getMessage() == (
        "Unable connect to node with id 1: refused [2500 more like this in the last 5+ s]"
    )
    now[0] = 10.5
    quiet = _record("Unable connect to node with id %s: %s", 1, "refused")
    assert f.filter(quiet) and quiet.getMessage().endswith("refused")  # nothing dropped since


def test_the_flood_of_a_broker_outage_comes_out_as_one_line_per_kind():
    import aiokafka.client as client_module

    caught: list[logging.LogRecord] = []

    class _Catch(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            caught.append(record)

    handler = _Catch()
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        install()
        for _ in range(1000):  # what aiokafka's client does in a fraction of a second
            client_module.log.error("Unable connect to node with id %s: %s", 1, "refused")
            client_module.log.error("Unable to update metadata from %s", [1])
    finally:
        root.removeHandler(handler)
    assert [r.getMessage() for r in caught] == [
        "Unable connect to node with id 1: refused",
        "Unable to update metadata from [1]",
    ]


def test_install_puts_one_shared_filter_on_each_client_logger():
    first = install()
    assert install() is first
    for name in KAFKA_CLIENT_LOGGERS:
        assert [f for f in logging.getLogger(name).filters if isinstance(f, RepeatFilter)] == [
            first
        ]
