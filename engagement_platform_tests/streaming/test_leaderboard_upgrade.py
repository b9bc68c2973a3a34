"""The upgrade of old seen sets into dedupe bitmaps, against a real Redis: after it, a replay
of an event the old version counted is still not counted twice."""

from __future__ import annotations

import random
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import redis

from engagement_platform.bench.data import make_contents
from engagement_platform.streaming.leaderboard import Keys, Rules, SeenBits, minute_bucket
from engagement_platform.streaming.leaderboard_runner import Applier, counted
from engagement_platform.streaming.leaderboard_upgrade import MIGRATE_LUA, upgrade_seen_sets
from engagement_platform_tests import harness
from engagement_platform_tests.harness import StackHandle


@pytest.fixture
def writer(stack: StackHandle) -> Iterator[redis.Redis]:
    """The leaderboard consumer's own login: its ACL must allow the upgrade and the script."""
    client = redis.Redis.from_url(stack.settings.redis_url_for("writer"))
    yield client
    client.close()


@pytest.fixture
def keys(r: redis.Redis) -> Iterator[Keys]:
    """A key prefix of the test's own; its keys are deleted afterwards."""
    prefix = f"u{uuid.uuid4().hex[:8]}:"
    yield Keys(prefix)
    for key in r.scan_iter(match=f"{prefix}*", count=1000):
        r.delete(key)


def events_over(minutes: int, count: int, first_id: int = 1) -> list[dict[str, Any]]:
    rng = random.Random(22)
    contents = make_contents(4, rng)
    now = datetime.now(UTC)
    return [
        harness.enriched_event(
            first_id + i, contents[i % 4], now - timedelta(seconds=rng.uniform(0, minutes * 60)), rng
        )
        for i in range(count)
    ]


def scores(r: redis.Redis, keys: Keys) -> Counter[tuple[str, str]]:
    out: Counter[tuple[str, str]] = Counter()
    head = keys.minute("")
    for key in r.scan_iter(match=f"{head}*", count=1000):
        for member, score in r.zrange(key, 0, -1, withscores=True):
            out[(key.decode()[len(head) :], member.decode())] = score
    return out


def expected(events: list[dict[str, Any]]) -> Counter[tuple[str, str]]:
    return Counter((minute_bucket(e["event_ts"]), e["content_id"]) for e in events)


def test_an_event_counted_before_the_upgrade_is_not_counted_again(
    r: redis.Redis, writer: redis.Redis, keys: Keys
) -> None:
    rules = Rules()
    # ids across two bitmaps (2^20 each), over 6 minutes: several old sets per bitmap
    events = events_over(6, 3000, first_id=2**20 - 1500)
    old = events[:2000]
    sets = harness.old_version_state(r, keys, rules, old)
    other = Keys(keys.prefix + "seconds:")  # the other metric's sets are its own consumer's
    (other_set,) = harness.old_version_state(r, other, rules, old[:1])

    done = upgrade_seen_sets(writer, keys, rules)

    assert (done.sets, done.ids) == (len(sets), 2000)
    assert not any(r.exists(s) for s in sets) and r.exists(other_set)
    assert counted(r, keys, [e["event_id"] for e in events]) == [True] * 2000 + [False] * 1000
    # each bitmap lives as long as the latest bucket its ids went to
    for bitmap in {keys.seen_bit(e["event_id"])[0] for e in old}:
        latest = max(
            rules.expire_at(minute_bucket(e["event_ts"]))
            for e in old
            if keys.seen_bit(e["event_id"])[0] == bitmap
        )
        assert abs(r.ttl(bitmap) - (latest - time.time())) <= 2

    # the old events again (a replay across the upgrade), with the new ones: only the new count
    applier = Applier(writer, rules, keys)
    result = applier.apply(harness.aggregate_records(events, rules, datetime.now(UTC)))
    assert (result.applied, result.duplicates) == (1000, 2000)
    assert scores(r, keys) == expected(events)


def test_the_upgrade_is_idempotent_and_resumes_a_half_moved_set(r: redis.Redis, keys: Keys) -> None:
    rules = Rules()
    events = events_over(1, 800)
    sets = harness.old_version_state(r, keys, rules, events)
    # a crash half-way through: some ids of each set already in the bitmaps, the sets still there
    script = r.register_script(MIGRATE_LUA)
    for e in events[:400]:
        bits = SeenBits(keys)
        expire_at = rules.expire_at(minute_bucket(e["event_ts"]))
        runs, offsets = bits.pack([e["event_id"]], expire_at)
        script(keys=[sets[0], *bits.bitmap_keys], args=[expire_at, runs, offsets, "0"])

    assert upgrade_seen_sets(r, keys, rules).ids == 800
    again = upgrade_seen_sets(r, keys, rules)
    assert (again.sets, again.ids) == (0, 0)
    assert all(counted(r, keys, [e["event_id"] for e in events]))
    result = Applier(r, rules, keys).apply(harness.aggregate_records(events, rules, datetime.now(UTC)))
    assert (result.applied, result.duplicates) == (0, 800)
    assert scores(r, keys) == expected(events)


def test_a_set_past_every_bucket_it_could_serve_is_dropped_not_moved(r: redis.Redis, keys: Keys) -> None:
    rules = Rules(retention_minutes=1, ttl_margin_seconds=60)
    # counted 10 minutes ago by a consumer keeping 120: past what this one, keeping 1, accepts
    at = (datetime.now(UTC) - timedelta(minutes=10)).strftime("%Y-%m-%dT%H:%M:00.000Z")
    stale = [dict(e, event_ts=at) for e in events_over(1, 10)]
    (old_set,) = harness.old_version_state(r, keys, Rules(), stale)
    done = upgrade_seen_sets(r, keys, rules)
    assert (done.sets, done.ids) == (1, 0)
    assert not r.exists(old_set) and not any(counted(r, keys, [e["event_id"] for e in stale]))
