"""Reading a topic from the beginning in tests, with a fresh consumer group each time."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable

from confluent_kafka import Consumer, Message


def read_topic(
    bootstrap: str,
    topic: str,
    *,
    until: Callable[[list[Message]], bool],
    timeout: float = 60.0,
    settle: float = 1.0,
) -> list[Message]:
    """Every message of ``topic`` until ``until(messages)`` holds, then ``settle`` more seconds
    (so duplicates that follow are seen too). Fails on timeout with what was read."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"test-read-{uuid.uuid4().hex}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "session.timeout.ms": 6000,
            "fetch.wait.max.ms": 50,
            "topic.metadata.refresh.interval.ms": 500,
        }
    )
    consumer.subscribe([topic])
    messages: list[Message] = []
    deadline = time.monotonic() + timeout
    done_at: float | None = None
    try:
        while True:
            now = time.monotonic()
            if done_at is not None and now >= done_at:
                return messages
            if now >= deadline:
                raise AssertionError(
                    f"{topic}: condition not met after {timeout:.0f}s ({len(messages)} read)"
                )
            for m in consumer.consume(num_messages=5000, timeout=0.2):
                if m.error() is None:
                    messages.append(m)
            if done_at is None and until(messages):
                done_at = time.monotonic() + settle
    finally:
        consumer.close()
