"""``top_content``'s unique users and the window's overall unique users, on a real Redis filled
by the consumer's own apply code."""

from __future__ import annotations

import random
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import redis

from engagement_platform.bench.data import make_contents
from engagement_platform.serving.top_content import top_content, unique_users
from engagement_platform.streaming.leaderboard import Keys, Rules
from engagement_platform.streaming.leaderboard_runner import Applier
from engagement_platform_tests import harness


def test_each_title_and_the_window_count_their_distinct_users(r: redis.Redis, keys: Keys) -> None:
    rules = Rules()
    now = datetime.now(UTC).replace(second=30, microsecond=0)
    a, b = make_contents(2, random.Random(5))
    rng = random.Random(5)
    ids = iter(range(1, 100_000))
    people = [str(uuid.UUID(int=i + 1)) for i in range(40)]

    def at(content: Any, minutes_ago: int, users: list[str]) -> list[dict[str, Any]]:
        out = []
        for user in users:
            event = harness.enriched_event(next(ids), content, now - timedelta(minutes=minutes_ago), rng)
            out.append(event | {"user_id": user})
        return out

    # a: 30 events by 10 people over three minutes (the same people each minute); b: 20 by 20
    # others, 5 of them also a's; 20 minutes ago, 10 people nobody else saw; one event has no user
    events = (
        at(a, 0, people[:10]) + at(a, 1, people[:10]) + at(a, 2, people[:10])
        + at(b, 1, people[5:25]) + at(b, 20, people[30:40])
        + [harness.enriched_event(next(ids), b, now, rng) | {"user_id": None}]
    )  # fmt: skip
    Applier(r, rules, keys).apply(harness.aggregate_records(events, rules, now))

    rows = top_content(10, 5, client=r, key_prefix=keys.prefix, now=now, max_age_ms=0)
    assert [(x.content_id, x.score, x.unique_users) for x in rows] == [
        (str(a.id), 30.0, 10),  # a minute's users merge with the next's: 10, not 30
        (str(b.id), 21.0, 20),  # the event without a user is counted, and adds no user
    ]
    assert unique_users(10, client=r, key_prefix=keys.prefix, now=now) == 25
    assert unique_users(30, client=r, key_prefix=keys.prefix, now=now) == 35
    wide = top_content(30, 5, client=r, key_prefix=keys.prefix, now=now)
    assert [(x.content_id, x.score, x.unique_users) for x in wide] == [
        (str(b.id), 31.0, 30),
        (str(a.id), 30.0, 10),
    ]
    assert unique_users(10, client=r, key_prefix="nothing-here:", now=now) == 0
