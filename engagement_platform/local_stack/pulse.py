"""What `engagement-platform up` prints every few seconds: records flowing through each topic,
and the top of the live leaderboard.

It reads the topics from their end with a throwaway group and never commits, so it takes
nothing from the real consumers; it only shows that data moves, and how fast.
"""

from __future__ import annotations

import time
import uuid
from collections import Counter

from confluent_kafka import Consumer

from engagement_platform.kafka_config import client_config
from engagement_platform.settings import Settings
from engagement_platform.streaming import topics

WATCHED = (topics.CONTENT_FLAT, topics.EVENTS_FLAT, topics.ENRICHED, topics.ENRICHED_DLQ)


class Pulse:
    def __init__(self, settings: Settings, watched: tuple[str, ...] = WATCHED) -> None:
        self.watched = watched
        self.settings = settings
        self.consumer = Consumer(
            client_config(
                settings.kafka_bootstrap_servers,
                extra={
                    "group.id": f"ep-pulse-{uuid.uuid4().hex[:8]}",
                    "auto.offset.reset": "latest",
                    "enable.auto.commit": False,
                    "session.timeout.ms": 6000,
                    "topic.metadata.refresh.interval.ms": 5000,
                    "log_level": 3,
                },
            )
        )
        self.consumer.subscribe(list(watched))
        self.counts: Counter[str] = Counter()
        self.since = time.monotonic()

    def poll(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            for message in self.consumer.consume(num_messages=10_000, timeout=min(left, 0.5)):
                if message.error() is None and (topic := message.topic()) is not None:
                    self.counts[topic] += 1

    def line(self) -> str:
        """One summary of the interval since the previous line, then start a new interval."""
        elapsed = max(time.monotonic() - self.since, 1e-9)
        parts = [f"{t} +{self.counts[t]:,} ({self.counts[t] / elapsed:,.0f}/s)" for t in self.watched]
        self.counts.clear()
        self.since = time.monotonic()
        return "flowing: " + ", ".join(parts)

    def leaderboard_line(self, window_minutes: int = 10, n: int = 3) -> str:
        """The top of the live leaderboard, read the way the dashboard reads it."""
        from engagement_platform.serving.top_content import top_content

        try:
            rows = top_content(window_minutes=window_minutes, n=n, settings=self.settings)
        except Exception as exc:  # noqa: BLE001 - a status line reports, it does not fail
            return f"leaderboard: unavailable ({exc})"
        if not rows:
            return f"leaderboard ({window_minutes} min): empty"
        top = ", ".join(f"#{r.rank} {r.title or r.content_id} ({r.score:g})" for r in rows)
        return f"leaderboard ({window_minutes} min): {top}"

    def close(self) -> None:
        self.consumer.close()
