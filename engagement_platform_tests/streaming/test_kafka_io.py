"""Pure units of kafka_io: no broker."""

from __future__ import annotations

import logging

from engagement_platform.streaming.kafka_io import Repeats


def record(msg: str, *args: object) -> logging.LogRecord:
    return logging.LogRecord("t", logging.ERROR, __file__, 1, msg, args, None)


def test_one_line_of_a_kind_per_window_and_the_next_says_how_many_it_stood_for() -> None:
    now = [100.0]
    repeats = Repeats(window=30, clock=lambda: now[0])
    refused = "%s: Connect to ipv4#127.0.0.1:%d failed: Connection refused (after %dms in state CONNECT)"
    assert repeats.filter(record(refused, "consumer-1", 9092, 0))
    for ms in range(20):
        now[0] += 1
        assert not repeats.filter(record(refused, "consumer-1", 9092, ms))
    assert repeats.filter(record("1/1 brokers are down"))  # another kind passes meanwhile
    now[0] += 15
    late = record(refused, "consumer-1", 9092, 3)
    assert repeats.filter(late)
    assert late.getMessage().endswith("(and 20 like it in 35s)")
    again = record(refused, "consumer-1", 9092, 3)
    assert not repeats.filter(again)
