"""The watch that rejoins a consumer its group forgot: its timing without a broker, and the
broker's answer for a member that is in its group and for one that is not."""

from __future__ import annotations

import uuid

from confluent_kafka import Consumer

from engagement_platform.streaming import kafka_io, membership, topics
from engagement_platform_tests.harness import StackHandle, wait_for


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_asks_after_the_grace_then_every_interval_and_acts_on_two_noes_in_a_row() -> None:
    clock, answers, asked = Clock(), [True, False, None, False, False], []

    def in_group() -> bool | None:
        asked.append(clock.now)
        return answers[len(asked) - 1]

    watch = membership.GroupWatch(in_group, grace=30, every=10, clock=clock)
    assert not watch.forgotten(assigned=False)  # the grace starts
    clock.now += 29
    assert not watch.forgotten(assigned=False) and asked == []
    clock.now += 1
    assert not watch.forgotten(assigned=False)  # asked: still a member (between assignments)
    clock.now += 5
    assert not watch.forgotten(assigned=False) and len(asked) == 1  # not asked again yet
    clock.now += 5
    assert not watch.forgotten(assigned=False)  # asked: not a member (once)
    clock.now += 10
    assert not watch.forgotten(assigned=False)  # asked: the broker did not answer
    clock.now += 10
    assert not watch.forgotten(assigned=False)  # asked: not a member (once)
    clock.now += 10
    assert watch.forgotten(assigned=False)  # asked: not a member, twice in a row
    assert asked == [1030.0, 1040.0, 1050.0, 1060.0, 1070.0]


def test_partitions_reset_the_grace() -> None:
    clock = Clock()
    watch = membership.GroupWatch(lambda: False, grace=30, every=10, clock=clock)
    watch.forgotten(assigned=False)
    clock.now += 25
    assert not watch.forgotten(assigned=True)
    clock.now += 25
    assert not watch.forgotten(assigned=False)  # a new grace began
    clock.now += 30
    assert not watch.forgotten(assigned=False)
    clock.now += 10
    assert watch.forgotten(assigned=False)
    assert not watch.forgotten(assigned=False)  # the replacement gets a grace of its own


def test_the_broker_says_who_is_a_member(stack: StackHandle) -> None:
    s = stack.settings
    topic, group = f"t{uuid.uuid4().hex[:8]}", f"g{uuid.uuid4().hex[:8]}"
    topics.ensure_topics(
        s.kafka_bootstrap_servers, [topics.TopicSpec(topic, 1)], bounds=topics.settings_bounds(s)
    )
    member = Consumer(kafka_io.consumer_config(s, group))
    outsider = Consumer(kafka_io.consumer_config(s, group))  # same group, never subscribed
    try:
        member.subscribe([topic])
        wait_for(lambda: member.poll(0.2) is None and member.assignment(), 60, "the member's assignment")
        assert membership.member_of(s.kafka_bootstrap_servers, group, lambda: member)() is True
        assert membership.member_of(s.kafka_bootstrap_servers, group, lambda: outsider)() is False
        assert membership.member_of(s.kafka_bootstrap_servers, group, lambda: None)() is None
    finally:
        member.close()
        outsider.close()
