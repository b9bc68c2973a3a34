"""What a consumer may commit: pure bookkeeping, with real Message objects."""

from __future__ import annotations

from confluent_kafka import KafkaError, Message

from engagement_platform.streaming.checkpoint import OffsetTracker


def msg(partition: int, offset: int) -> Message:
    return Message(topic="events", partition=partition, offset=offset, value=b"{}")


def nothing_waits(_partition: int) -> int | None:
    return None


def test_commits_one_past_the_last_consumed_of_each_partition() -> None:
    t = OffsetTracker()
    t.assign([0, 1, 2])
    t.consumed([msg(0, 5), msg(1, 2), msg(0, 6), msg(1, 3)])
    assert t.to_commit(nothing_waits) == {0: 7, 1: 4}


def test_never_past_the_lowest_offset_still_waiting() -> None:
    t = OffsetTracker()
    t.assign([0, 1])
    t.consumed([msg(0, 10), msg(0, 11), msg(0, 12), msg(1, 4)])
    waiting = {0: 11}
    assert t.to_commit(waiting.get) == {0: 11, 1: 5}
    t.committed({0: 11, 1: 5})
    assert t.to_commit(waiting.get) == {}  # nothing moved
    waiting.clear()  # the event at 11 left (enriched or timed out)
    assert t.to_commit(waiting.get) == {0: 13}


def test_only_the_partitions_asked_for_and_errors_do_not_count() -> None:
    t = OffsetTracker()
    t.assign([0, 1])
    eof = Message(topic="events", partition=1, offset=99, error=KafkaError(KafkaError._PARTITION_EOF))
    t.consumed([msg(0, 1), msg(1, 7), eof])
    assert t.to_commit(nothing_waits, {1}) == {1: 8}


def test_forgotten_partitions_and_an_abandoned_run_commit_nothing() -> None:
    t = OffsetTracker()
    t.assign([0, 1])
    t.consumed([msg(0, 1), msg(1, 1)])
    t.committed({0: 2, 1: 2})
    t.forget({1})
    assert t.assigned == {0}
    t.assign([1])  # it comes back: committed again from what is consumed from now on
    t.consumed([msg(1, 5)])
    assert t.to_commit(nothing_waits) == {1: 6}
    t.abandon()
    assert t.to_commit(nothing_waits) == {}
