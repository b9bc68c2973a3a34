"""The leaderboard consumer against a real broker and a real Redis.

The consumer runs as a real subprocess (``engagement-platform consume leaderboard``) on the
session stack, with a unique topic, group and Redis key prefix per test, so tests never see
each other's data.
The replay guarantee is also exercised directly on the apply function, where the "crash
after Redis applied, before the commit" case can be produced deterministically.
"""

from __future__ import annotations

import random
import re
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
import redis
from confluent_kafka import Consumer, Producer, TopicPartition

from engagement_platform.bench.data import make_contents
from engagement_platform.domain import Content
from engagement_platform.serving.top_content import top_content
from engagement_platform.streaming import kafka_io
from engagement_platform.streaming.leaderboard import (
    METRIC_ENGAGEMENT_SECONDS,
    METRIC_EVENTS,
    Keys,
    Rules,
    aggregate,
    decoder,
    metric_key_prefix,
    minute_bucket,
)
from engagement_platform.streaming.leaderboard_runner import Applier, counted
from engagement_platform.streaming.topics import TopicSpec, ensure_topics, settings_bounds
from engagement_platform_tests import harness
from engagement_platform_tests.harness import Child, StackHandle


@pytest.fixture
def names(r: redis.Redis) -> Iterator[dict[str, str]]:
    """A fresh topic, group and key prefix; the prefix's keys are deleted afterwards."""
    run = uuid.uuid4().hex[:8]
    yield {"topic": f"test.enriched.{run}", "group": f"leader-{run}", "prefix": f"t{run}:"}
    for key in r.scan_iter(match=f"t{run}:*", count=1000):
        r.delete(key)


# --- helpers --------------------------------------------------------------------------------------


def synthetic(
    counts: list[int], rng: random.Random, first_id: int = 1, minutes: float = 8.0
) -> tuple[list[Content], list[dict[str, Any]]]:
    """``counts[i]`` events for content i, stamped over the last ``minutes`` minutes, shuffled."""
    contents = make_contents(len(counts), rng)
    now = datetime.now(UTC)
    chosen = [c for c, n in zip(contents, counts, strict=True) for _ in range(n)]
    rng.shuffle(chosen)
    events = [
        harness.enriched_event(first_id + i, c, now - timedelta(seconds=rng.uniform(0, minutes * 60)), rng)
        for i, c in enumerate(chosen)
    ]
    return contents, events


class Produced:
    """Produces records and remembers the end offset of each partition (from delivery reports)."""

    def __init__(self, stack: StackHandle, topic: str) -> None:
        ensure_topics(
            stack.settings.kafka_bootstrap_servers,
            [TopicSpec(topic, stack.settings.topic_partitions)],
            bounds=settings_bounds(stack.settings),
        )
        self.topic = topic
        self.producer = Producer(kafka_io.producer_config(stack.settings))
        self.ends: dict[int, int] = {}
        self.errors: list[str] = []

    def _delivered(self, err: Any, msg: Any) -> None:
        if err is not None:
            self.errors.append(str(err))
        else:
            self.ends[msg.partition()] = max(self.ends.get(msg.partition(), 0), msg.offset() + 1)

    def send(self, events: list[dict[str, Any]]) -> None:
        records = ((e["content_id"].encode(), orjson.dumps(e)) for e in events)
        harness.produce_records(self.producer, self.topic, records, on_delivery=self._delivered)
        assert not self.errors, self.errors

    @property
    def total(self) -> int:
        return sum(self.ends.values())


def committed(stack: StackHandle, group: str, topic: str) -> dict[int, int]:
    return harness.committed_offsets(stack.settings.kafka_bootstrap_servers, group, topic)


def scores(r: redis.Redis, prefix: str) -> Counter[tuple[str, str]]:
    """(bucket, content_id) -> score, over every minute bucket under ``prefix``."""
    out: Counter[tuple[str, str]] = Counter()
    head = Keys(prefix).minute("")
    for key in r.scan_iter(match=f"{head}*", count=1000):
        bucket = key.decode()[len(head) :]
        for member, score in r.zrange(key, 0, -1, withscores=True):
            out[(bucket, member.decode())] = score
    return out


def expected_scores(events: list[dict[str, Any]]) -> Counter[tuple[str, str]]:
    unique = {e["event_id"]: e for e in events}
    return Counter((minute_bucket(e["event_ts"]), e["content_id"]) for e in unique.values())


@pytest.fixture
def consumers(spawn: Callable[..., Child]) -> Callable[..., Child]:
    """``consumers(names, *flags, name=...)`` starts ``consume leaderboard`` on a test's topic,
    group and key prefix (killed after the test if still running)."""

    def start(names: dict[str, str], *extra: str, name: str = "leaderboard") -> Child:
        args = ["--topic", names["topic"], "--group", names["group"], "--key-prefix", names["prefix"]]
        return spawn("consume", "leaderboard", *args, "--summary-every", "1", *extra, name=name)

    return start


def rewind_group(stack: StackHandle, names: dict[str, str], offsets: dict[int, int]) -> None:
    """Commit ``offsets`` for the group as a member of it, then leave.

    Joining is what makes the broker evict a killed member (after its session times out); a
    commit from outside the group is refused while the dead member is still listed.
    """
    consumer = Consumer(kafka_io.consumer_config(stack.settings, names["group"]))
    try:
        consumer.subscribe([names["topic"]])
        harness.wait_for(
            lambda: (
                consumer.consume(100, 0.2) is not None
                and len(consumer.assignment()) == stack.settings.topic_partitions
            ),
            60,
            "a helper member to own every partition",
        )
        consumer.commit(
            offsets=[TopicPartition(names["topic"], p, o) for p, o in offsets.items()], asynchronous=False
        )
    finally:
        consumer.close()


def last_counter(log: str, name: str) -> int:
    values = re.findall(rf"\b{name}=([\d,]+)", log)
    assert values, f"no {name}= in the consumer's summary lines:\n{log}"
    return int(values[-1].replace(",", ""))


def all_committed(stack: StackHandle, names: dict[str, str], produced: Produced) -> Callable[[], bool]:
    return lambda: committed(stack, names["group"], names["topic"]) == produced.ends


# --- the consumer, end to end -----------------------------------------------------------------------


def test_5000_events_scores_ttl_titles_ranking_and_sigterm(
    stack: StackHandle,
    r: redis.Redis,
    names: dict[str, str],
    consumers: Callable[..., Child],
) -> None:
    counts = [1600, 1200, 1000, 700, 500]
    contents, events = synthetic(counts, random.Random(1))
    produced = Produced(stack, names["topic"])
    produced.send(events)

    c = consumers(names, name="leaderboard")
    harness.wait_for(
        lambda: sum(scores(r, names["prefix"]).values()) >= 5000, 60, "5,000 counted", alive=c.alive
    )
    harness.wait_for(all_committed(stack, names, produced), 30, "offsets committed", alive=c.alive)
    assert c.stop() == 0, c.output()

    got = scores(r, names["prefix"])
    assert sum(got.values()) == 5000
    assert got == expected_scores(events)

    keys = Keys(names["prefix"])
    rules = Rules()
    bitmaps = {keys.seen_bit(e["event_id"])[0] for e in events}
    for key in [keys.minute(bucket) for bucket in {b for b, _ in got}] + sorted(bitmaps):
        ttl = r.ttl(key)
        # longer than the largest window served, and never unbounded
        assert rules.retention_minutes * 60 < ttl <= rules.ttl_seconds + 60, (key, ttl)

    rows = top_content(15, 3, client=r, key_prefix=names["prefix"], max_age_ms=0)
    assert [(row.rank, row.content_id, row.score) for row in rows] == [
        (i + 1, str(contents[i].id), float(counts[i])) for i in range(3)
    ]
    assert [(row.title, row.content_type) for row in rows] == [
        (x.title, x.content_type) for x in contents[:3]
    ]

    log = c.output()
    assert "processed=5,000" in log and "applied=5,000" in log and "lag=" in log
    assert "stopped cleanly" in log


def test_duplicates_in_topic_count_once_and_a_full_replay_adds_nothing(
    stack: StackHandle,
    r: redis.Redis,
    names: dict[str, str],
    consumers: Callable[..., Child],
) -> None:
    rng = random.Random(2)
    _, events = synthetic([900, 700, 400], rng)
    # at-least-once upstream: the same ids again, later, at other offsets (a re-enriched copy too)
    again = [dict(e, enriched_at="2026-12-01T00:00:00.000Z") for e in rng.sample(events, 1000)]
    produced = Produced(stack, names["topic"])
    produced.send(events[:1000])
    produced.send(again)
    produced.send(events[1000:])

    first = consumers(names, "--batch-size", "300", name="first")
    harness.wait_for(all_committed(stack, names, produced), 60, "all offsets committed", alive=first.alive)
    assert first.stop() == 0, first.output()
    assert scores(r, names["prefix"]) == expected_scores(events)
    assert sum(scores(r, names["prefix"]).values()) == 2000

    # a new group reads the whole topic again into the same keys: every id is already counted
    replay_names = dict(names, group=names["group"] + "-replay")
    replay = consumers(replay_names, name="replay")
    harness.wait_for(all_committed(stack, replay_names, produced), 60, "replay committed", alive=replay.alive)
    assert replay.stop() == 0, replay.output()
    assert scores(r, names["prefix"]) == expected_scores(events)
    assert "applied=0 " in replay.output() and "duplicates=3,000" in replay.output()


def test_kill_9_mid_stream_then_restart_counts_exactly(
    stack: StackHandle,
    r: redis.Redis,
    names: dict[str, str],
    consumers: Callable[..., Child],
) -> None:
    rng = random.Random(3)
    _, events = synthetic([6000, 5000, 4000, 3000, 2000], rng)
    stream = events[:2000] + rng.sample(events[:2000], 300) + events[2000:]  # with some duplicates
    produced = Produced(stack, names["topic"])
    produced.send(stream[:2000])
    counted = lambda: sum(scores(r, names["prefix"]).values())  # noqa: E731

    def produce_rest() -> None:
        # the stream keeps flowing, a bit slower than the consumer, so it is busy when it dies
        harness.wait_for(lambda: counted() > 0, 60, "the consumer to start counting")
        for i in range(2000, len(stream), 500):
            produced.send(stream[i : i + 500])
            time.sleep(0.1)

    first = consumers(names, "--batch-size", "200", name="first")
    feeder = threading.Thread(target=produce_rest)
    feeder.start()
    try:
        harness.wait_for(lambda: counted() >= 8000, 60, "counting under way", alive=first.alive)
        first.kill()
        counted_at_kill = counted()
    finally:
        feeder.join()
    assert counted_at_kill < len(events), "the consumer finished before it was killed: nothing was tested"

    # Where kill -9 lands cannot be chosen, so also force the worst case: rewind the group's
    # offsets by up to 1,500 records a partition, as if Redis had applied those batches and
    # every commit since had been lost.
    before = committed(stack, names["group"], names["topic"])
    rewound = {p: max(0, o - 1500) for p, o in before.items()}
    rewind_group(stack, names, rewound)
    assert committed(stack, names["group"], names["topic"]) == rewound

    second = consumers(names, "--batch-size", "200", name="second")
    harness.wait_for(
        all_committed(stack, names, produced), 90, "all offsets committed after restart", alive=second.alive
    )
    assert second.stop() == 0, second.output()
    got = scores(r, names["prefix"])
    assert sum(got.values()) == 20000
    assert got == expected_scores(events)
    replayed = sum(before.values()) - sum(rewound.values())
    assert last_counter(second.output(), "duplicates") >= replayed > 0


def test_a_consumer_started_on_old_seen_sets_upgrades_them_before_counting(
    stack: StackHandle,
    r: redis.Redis,
    names: dict[str, str],
    consumers: Callable[..., Child],
) -> None:
    """An upgrade in place: the old version counted 1,000 events into seen sets, and the whole
    topic is read again by the new one (a replay across the upgrade): only the rest count."""
    _, events = synthetic([800, 500, 200], random.Random(9))
    keys = Keys(names["prefix"])
    sets = harness.old_version_state(r, keys, Rules(), events[:1000])
    produced = Produced(stack, names["topic"])
    produced.send(events)

    c = consumers(names)
    harness.wait_for(all_committed(stack, names, produced), 60, "all offsets committed", alive=c.alive)
    assert c.stop() == 0, c.output()
    assert scores(r, names["prefix"]) == expected_scores(events)
    assert not any(r.exists(s) for s in sets)
    log = c.output()
    assert f"upgraded {len(sets)} seen set(s), 1000 event ids" in log
    assert last_counter(log, "applied") == 500 and last_counter(log, "duplicates") == 1000


# --- the apply function against real Redis ----------------------------------------------------------


def test_replaying_a_batch_counts_nothing_twice(r: redis.Redis, names: dict[str, str]) -> None:
    rules, keys = Rules(), Keys(names["prefix"])
    applier = Applier(r, rules, keys)
    _, events = synthetic([300, 200, 100], random.Random(4), minutes=5)
    now = datetime.now(UTC)

    first = applier.apply(harness.aggregate_records(events[:400], rules, now))
    assert (first.applied, first.duplicates) == (400, 0)
    after_first = scores(r, names["prefix"])

    # the crash case: Redis applied the batch, the commit never happened, the batch comes again
    replay = applier.apply(harness.aggregate_records(events[:400], rules, now))
    assert (replay.applied, replay.duplicates) == (0, 400)
    assert scores(r, names["prefix"]) == after_first

    # a batch that overlaps the last one (rebalance/replay boundaries never align)
    overlap = applier.apply(harness.aggregate_records(events[300:], rules, now))
    assert (overlap.applied, overlap.duplicates) == (200, 100)
    assert scores(r, names["prefix"]) == expected_scores(events)

    buckets = {b for b, _ in expected_scores(events)}
    for bucket in buckets:
        assert abs(r.ttl(keys.minute(bucket)) - (rules.expire_at(bucket) - time.time())) <= 2
    # the ids' one bitmap lives as long as the latest bucket they went to
    (bitmap,) = {keys.seen_bit(e["event_id"])[0] for e in events}
    assert abs(r.ttl(bitmap) - (max(rules.expire_at(b) for b in buckets) - time.time())) <= 2
    stored = r.hgetall(keys.content)
    assert {orjson.loads(v)["title"] for v in stored.values()} == {e["title"] for e in events}


def test_a_bitmap_lives_as_long_as_the_latest_bucket_its_ids_went_to(
    r: redis.Redis, names: dict[str, str]
) -> None:
    """An older bucket written later (a late event, accepted) never shortens a bitmap's expiry;
    a newer one lengthens it."""
    rules, keys = Rules(), Keys(names["prefix"])
    applier = Applier(r, rules, keys)
    content = make_contents(1, random.Random(7))[0]
    now = datetime.now(UTC).replace(second=30)
    rng = random.Random(7)

    def at(event_id: int, minutes_ago: int) -> dict[str, Any]:
        return harness.enriched_event(event_id, content, now - timedelta(minutes=minutes_ago), rng)

    def remaining(bucket_of_event: dict[str, Any]) -> float:
        return rules.expire_at(minute_bucket(bucket_of_event["event_ts"])) - time.time()

    (bitmap,) = {keys.seen_bit(i)[0] for i in (1, 2, 3)}
    middle, older, newer = at(1, 30), at(2, 90), at(3, 0)
    applier.apply(harness.aggregate_records([middle], rules, now))
    assert abs(r.ttl(bitmap) - remaining(middle)) <= 2
    applier.apply(harness.aggregate_records([older], rules, now))
    assert abs(r.ttl(bitmap) - remaining(middle)) <= 2  # not shortened to the older bucket's
    applier.apply(harness.aggregate_records([newer], rules, now))
    assert abs(r.ttl(bitmap) - remaining(newer)) <= 2
    assert counted(r, keys, [1, 2, 3, 4]) == [True, True, True, False]


def test_replay_with_engagement_seconds_metric(r: redis.Redis, names: dict[str, str]) -> None:
    rules = Rules(metric=METRIC_ENGAGEMENT_SECONDS)
    applier = Applier(r, rules, Keys(names["prefix"]))
    _, events = synthetic([50, 30], random.Random(5), minutes=3)
    now = datetime.now(UTC)
    want: Counter[tuple[str, str]] = Counter()
    for e in events:
        want[(minute_bucket(e["event_ts"]), e["content_id"])] += e["engagement_seconds"] or 0.0
    applier.apply(harness.aggregate_records(events, rules, now))
    applier.apply(harness.aggregate_records(events, rules, now))
    got = scores(r, names["prefix"])
    # a bucket of clicks only adds nothing: compare the non-zero entries
    assert {k for k, v in got.items() if v} == {k for k, v in want.items() if v}
    for k, v in want.items():
        assert got.get(k, 0.0) == pytest.approx(v)


def test_big_batch_in_one_bucket_crosses_lua_unpack_limits(r: redis.Redis, names: dict[str, str]) -> None:
    """10,000 ids in one bucket, past Lua's unpack() limit, with ids too big for Lua's doubles."""
    rules, applier = Rules(), Applier(r, Rules(), Keys(names["prefix"]))
    contents = make_contents(1, random.Random(6))
    ts = datetime.now(UTC).replace(second=1)
    rng = random.Random(6)
    events = [
        harness.enriched_event(10**15 + i, contents[0], ts, rng) for i in range(10_000)
    ]  # ids past 2**53/1000
    assert applier.apply(harness.aggregate_records(events, rules, ts)).applied == 10_000
    assert applier.apply(harness.aggregate_records(events, rules, ts)).duplicates == 10_000
    assert sum(scores(r, names["prefix"]).values()) == 10_000
    keys = Keys(names["prefix"])
    asked = [10**15, 10**15 + 9999, 10**15 + 10_000, 10**15 - 1]
    assert counted(r, keys, asked) == [True, True, False, False]


def test_top_content_window_ranking_and_cache(r: redis.Redis, names: dict[str, str]) -> None:
    rules, keys = Rules(), Keys(names["prefix"])
    applier = Applier(r, rules, keys)
    now = datetime.now(UTC)
    a, b, c = make_contents(3, random.Random(7))
    rng = random.Random(7)
    ids = iter(range(1, 10_000))

    def at(content: Content, minutes_ago: int, n: int) -> list[dict[str, Any]]:
        return [
            harness.enriched_event(next(ids), content, now - timedelta(minutes=minutes_ago), rng)
            for _ in range(n)
        ]

    # c is the biggest overall, but most of it is 20 minutes old
    events = at(a, 0, 5) + at(a, 4, 5) + at(b, 2, 7) + at(c, 1, 2) + at(c, 20, 50)
    missing = harness.enriched_event(next(ids), a, now, rng)
    missing.update(content_id="no-title-yet", content_missing=True, title=None, content_type=None)
    applier.apply(harness.aggregate_records([*events, missing], rules, now))

    rows = top_content(10, 10, client=r, key_prefix=names["prefix"], now=now, max_age_ms=0)
    assert [(x.rank, x.content_id, x.score) for x in rows] == [
        (1, str(a.id), 10.0),
        (2, str(b.id), 7.0),
        (3, str(c.id), 2.0),
        (4, "no-title-yet", 1.0),
    ]
    assert (rows[0].title, rows[0].content_type) == (a.title, a.content_type)
    assert (rows[3].title, rows[3].content_type) == (None, None)
    assert rows[0].as_dict()["title"] == a.title
    wide = top_content(30, 1, client=r, key_prefix=names["prefix"], now=now, max_age_ms=0)
    assert [(x.content_id, x.score) for x in wide] == [(str(c.id), 52.0)]
    assert not list(r.scan_iter(match=f"{names['prefix']}cache:*"))  # max_age_ms=0 leaves no cache

    # cached: a second reader within max_age reuses the union; it expires on its own
    cached = top_content(10, 2, client=r, key_prefix=names["prefix"], now=now, max_age_ms=5000)
    cache_keys = list(r.scan_iter(match=f"{names['prefix']}cache:*"))
    assert len(cache_keys) == 1 and 0 < r.pttl(cache_keys[0]) <= 5000
    assert top_content(10, 2, client=r, key_prefix=names["prefix"], now=now, max_age_ms=5000) == cached
    assert top_content(10, 5, client=r, key_prefix="nothing-here:", now=now) == []


# --- unique users: the HyperLogLogs beside the counts --------------------------------------------


def hll_state(r: redis.Redis, prefix: str) -> dict[str, tuple[bytes, int]]:
    """Every unique-user HyperLogLog under ``prefix``: its raw bytes and TTL."""
    head = Keys(prefix).users("")
    return {key.decode(): (r.get(key), r.ttl(key)) for key in r.scan_iter(match=f"{head}*", count=1000)}


def test_a_replayed_batch_adds_no_user_twice(r: redis.Redis, names: dict[str, str]) -> None:
    rules, keys = Rules(), Keys(names["prefix"])
    applier = Applier(r, rules, keys)
    _, events = synthetic([120, 80, 40], random.Random(11), minutes=4)
    now = datetime.now(UTC)

    applier.apply(harness.aggregate_records(events[:150], rules, now))
    first = hll_state(r, names["prefix"])
    # Redis applied it, the commit was lost: the same batch again leaves every register as it was
    assert applier.apply(harness.aggregate_records(events[:150], rules, now)).applied == 0
    again = hll_state(r, names["prefix"])
    assert {k: v[0] for k, v in again.items()} == {k: v[0] for k, v in first.items()}
    # and the same expiry (TTL is read in whole seconds, a second apart at most)
    assert all(abs(again[k][1] - ttl) <= 1 for k, (_, ttl) in first.items())
    applier.apply(harness.aggregate_records(events, rules, now))  # overlapping the first

    buckets = {minute_bucket(e["event_ts"]) for e in events}
    want = {keys.users(b) for b in buckets} | {
        keys.users(minute_bucket(e["event_ts"]), e["content_id"]) for e in events
    }
    assert set(hll_state(r, names["prefix"])) == want
    for bucket in buckets:
        users = {e["user_id"] for e in events if minute_bucket(e["event_ts"]) == bucket}
        assert r.pfcount(keys.users(bucket)) == pytest.approx(len(users), abs=1)
        for key in (keys.users(bucket), *(keys.users(bucket, e["content_id"]) for e in events)):
            if r.exists(key):  # each expires with its minute bucket
                assert abs(r.ttl(key) - (rules.expire_at(bucket) - time.time())) <= 2
    everyone = {e["user_id"] for e in events}
    assert r.pfcount(*(keys.users(b) for b in buckets)) == pytest.approx(len(everyone), abs=2)


def test_the_seconds_leaderboard_leaves_the_users_to_the_events_one(
    r: redis.Redis, names: dict[str, str]
) -> None:
    """Users do not depend on the metric: one copy of the HyperLogLogs, written by the events
    leaderboard, and the seconds one's top rows read it through ``users_prefix``."""
    events_prefix = names["prefix"]
    seconds_prefix = metric_key_prefix(METRIC_ENGAGEMENT_SECONDS, events_prefix)
    _, events = synthetic([30, 20], random.Random(5), minutes=2)
    now = datetime.now(UTC)
    for prefix, metric in ((seconds_prefix, METRIC_ENGAGEMENT_SECONDS), (events_prefix, METRIC_EVENTS)):
        rules = Rules(metric=metric)
        Applier(r, rules, Keys(prefix)).apply(harness.aggregate_records(events, rules, now))
    assert hll_state(r, seconds_prefix) == {} and hll_state(r, events_prefix)
    rows = top_content(
        5, 2, client=r, key_prefix=seconds_prefix, users_prefix=events_prefix, now=now, max_age_ms=0
    )
    for row in rows:
        users = {e["user_id"] for e in events if e["content_id"] == row.content_id}
        assert row.score > 0 and row.unique_users == pytest.approx(len(users), abs=1)


def test_the_hyperloglog_error_on_the_simulators_data_stays_within_2_percent(
    r: redis.Redis, names: dict[str, str]
) -> None:
    """60,000 simulated events of 40 titles by up to 30,000 users, through the consumer's own
    decode, aggregate and apply: PFCOUNT against the exact distinct users, overall and per title."""
    from engagement_platform.bench.data import synthetic_enriched
    from engagement_platform.serving.top_content import unique_users

    contents, records = synthetic_enriched(40, 60_000, seed=23, users=30_000)
    values = [value for _key, value in records]
    rules, keys = Rules(), Keys(names["prefix"])
    applier, read, now = Applier(r, rules, keys), decoder(rules.metric), datetime.now(UTC)
    for start in range(0, len(values), 5000):
        applier.apply(aggregate([read(v) for v in values[start : start + 5000]], rules, now))

    exact: dict[str, set[str]] = {}
    for value in values:
        record = orjson.loads(value)
        exact.setdefault(record["content_id"], set()).add(record["user_id"])
    everyone = set().union(*exact.values())
    window = 32  # the data spans the last 30 minutes
    overall = unique_users(window, client=r, key_prefix=names["prefix"], now=now)
    rows = {
        row.content_id: row
        for row in top_content(
            window, len(contents), client=r, key_prefix=names["prefix"], now=now, max_age_ms=0
        )
    }
    assert set(rows) == set(exact)
    errors = {cid: rows[cid].unique_users / len(users) - 1 for cid, users in exact.items()}
    worst = max(errors, key=lambda cid: abs(errors[cid]))
    print(
        f"HyperLogLog: {overall:,} unique users estimated of {len(everyone):,} exact "
        f"({100 * (overall / len(everyone) - 1):+.2f}%); per title, {len(exact)} titles of "
        f"{min(map(len, exact.values())):,} to {max(map(len, exact.values())):,} users: worst "
        f"{100 * errors[worst]:+.2f}% ({rows[worst].unique_users:,} of {len(exact[worst]):,}), "
        f"mean |error| {100 * sum(map(abs, errors.values())) / len(errors):.2f}%"
    )
    assert abs(overall / len(everyone) - 1) <= 0.02
    assert abs(errors[worst]) <= 0.02
