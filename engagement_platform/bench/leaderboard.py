"""Measure the leaderboard consumer against the original design and against a no-dedupe ceiling.

Pre-loads a fresh topic with synthetic enriched events once, then consumes all of it three
times, each in its own consumer group and under its own Redis key prefix:

- ours:     the real consumer (``LeaderboardConsumer.process``): batch consume, orjson,
            validation, late rules, in-batch dedupe, ONE EVALSHA per batch that dedupes by
            event id, increments, sets TTLs and titles; then a synchronous offset commit;
- baseline: the original design: ``poll()`` one message, stdlib ``json``, datetime parsing,
            one pipeline (ZINCRBY + EXPIRE + HSET) executed per event, auto-commit;
- ceiling:  batch consume, orjson, one pipelined ZINCRBY per event and one pipeline execute
            per batch -- no dedupe, no validation, no TTL, no titles: the fastest loop that
            still ranks correctly when nothing is ever delivered twice.

Each rate is timed from the first record received to the last one applied, so consumer-group
joins (seconds on the local broker) do not count. Everything the run created -- topic,
groups, Redis keys -- is removed at the end.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import redis
from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient

from engagement_platform.argtypes import positive_int
from engagement_platform.settings import Settings
from engagement_platform.streaming import kafka_io
from engagement_platform.streaming.leaderboard import Keys, Rules, minute_bucket
from engagement_platform.streaming.leaderboard_runner import (
    DEFAULT_BATCH_SIZE,
    Config,
    LeaderboardConsumer,
    redis_client,
)
from engagement_platform.streaming.topics import TopicSpec, ensure_topics, settings_bounds

CONTENT_TYPES = ("video", "podcast", "newsletter")
EVENT_TYPES = ("play", "pause", "finish", "click")
DEVICES = ("ios", "android", "web-safari", "web-chrome", "tv")
TARGET_VS_BASELINE = 10.0
TARGET_VS_CEILING = 0.5
SPAN_SECONDS = 30 * 60


# --- synthetic enriched events (also used by the tests) -----------------------------------------


@dataclass(frozen=True)
class SyntheticContent:
    content_id: str
    title: str
    content_type: str
    slug: str
    length_seconds: int | None


def make_contents(count: int, rng: random.Random) -> list[SyntheticContent]:
    contents = []
    for i in range(count):
        ctype = CONTENT_TYPES[i % len(CONTENT_TYPES)]
        contents.append(
            SyntheticContent(
                content_id=str(uuid.UUID(int=rng.getrandbits(128), version=4)),
                title=f"Synthetic {ctype} #{i}",
                content_type=ctype,
                slug=f"synthetic-{ctype}-{i}",
                length_seconds=None if ctype == "newsletter" else rng.randint(60, 3600),
            )
        )
    return contents


def iso_ms(ts: datetime) -> str:
    return ts.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{ts.microsecond // 1000:03d}Z"


def make_event(
    event_id: int, content: SyntheticContent, event_ts: datetime, rng: random.Random
) -> dict[str, Any]:
    """One record shaped like the enrichment's output."""
    event_type = rng.choice(EVENT_TYPES)
    duration_ms = None if event_type == "click" else rng.randint(0, 600_000)
    seconds = None if duration_ms is None else duration_ms / 1000
    pct = (
        None
        if seconds is None or not content.length_seconds
        else round(100 * seconds / content.length_seconds, 2)
    )
    return {
        "event_id": event_id,
        "content_id": content.content_id,
        "user_id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
        "event_type": event_type,
        "event_ts": iso_ms(event_ts),
        "device": rng.choice(DEVICES),
        "duration_ms": duration_ms,
        "engagement_seconds": seconds,
        "engagement_pct": pct,
        "content_type": content.content_type,
        "title": content.title,
        "slug": content.slug,
        "length_seconds": content.length_seconds,
        "publish_ts": "2026-01-01T00:00:00.000Z",
        "source_ts": iso_ms(event_ts),
        "enriched_at": iso_ms(event_ts),
        "content_missing": False,
    }


def zipf_weights(count: int) -> list[float]:
    """A few hits and a long tail, like real engagement (and so the ranking is not a coin toss)."""
    return [1.0 / (i + 1) for i in range(count)]


# --- measuring ----------------------------------------------------------------------------------


@dataclass
class Measurement:
    name: str
    events: int
    seconds: float
    round_trips: int
    redis_total: float

    @property
    def rate(self) -> float:
        return self.events / self.seconds if self.seconds > 0 else 0.0

    def as_json(self) -> dict[str, Any]:
        return {
            "events": self.events,
            "seconds": round(self.seconds, 4),
            "events_per_s": round(self.rate, 1),
            "redis_round_trips": self.round_trips,
            "redis_total_score": self.redis_total,
        }


class Progress:
    """One stderr line per couple of seconds: a benchmark that goes quiet looks hung."""

    def __init__(self, label: str, total: int, every: float = 2.0) -> None:
        self.label, self.total, self.every = label, total, every
        self._last = time.monotonic()

    def update(self, done: int, force: bool = False) -> None:
        now = time.monotonic()
        if force or now - self._last >= self.every:
            print(
                f"  {self.label}: {done:,}/{self.total:,} ({100 * done / self.total:.0f}%)", file=sys.stderr
            )
            self._last = now


def preload(settings: Settings, topic: str, events: int, contents: int, seed: int, shuffle: bool) -> None:
    """Events over the last 30 minutes, in time order with a few seconds of jitter, like a live
    stream replayed; ``shuffle`` scatters them at random over the 30 minutes instead (the worst
    case for per-batch aggregation: every batch touches every bucket)."""
    ensure_topics(
        settings.kafka_bootstrap_servers,
        [TopicSpec(topic, settings.topic_partitions)],
        bounds=settings_bounds(settings),
    )
    rng = random.Random(seed)
    pool = make_contents(contents, rng)
    weights = zipf_weights(contents)
    now = datetime.now(UTC)
    producer = Producer(kafka_io.producer_config(settings))
    progress = Progress("pre-load", events)
    chosen = rng.choices(pool, weights=weights, k=events)
    failed: list[str] = []

    def on_delivery(err: Any, _msg: Any) -> None:
        if err is not None:
            failed.append(str(err))

    for i, content in enumerate(chosen, start=1):
        if shuffle:
            age = rng.uniform(0, SPAN_SECONDS)
        else:
            age = min(max(SPAN_SECONDS * (1 - i / events) + rng.uniform(-5, 5), 0), SPAN_SECONDS)
        ts = now - timedelta(seconds=age)
        value = orjson.dumps(make_event(i, content, ts, rng))
        while True:
            try:
                producer.produce(topic, value=value, key=content.content_id, on_delivery=on_delivery)
                break
            except BufferError:
                producer.poll(0.05)
        if i % 10000 == 0:
            producer.poll(0)
            progress.update(i)
    if producer.flush(60) != 0 or failed:
        raise RuntimeError(f"pre-load failed: {failed[:3] or 'flush timed out'}")
    progress.update(events, force=True)


def redis_total(client: redis.Redis, prefix: str) -> float:
    total = 0.0
    for key in client.scan_iter(match=Keys(prefix).minute("*"), count=1000):
        total += sum(score for _m, score in client.zrange(key, 0, -1, withscores=True))
    return total


def measure_ours(
    settings: Settings, topic: str, group: str, prefix: str, events: int, batch_size: int
) -> Measurement:
    runner = LeaderboardConsumer(
        settings,
        Config(
            topic=topic,
            group=group,
            batch_size=batch_size,
            key_prefix=prefix,
            create_topic=False,
            summary_every=3600,
        ),
    )
    consumer = runner.open()
    progress = Progress("ours", events)
    done = batches = 0
    t0: float | None = None
    try:
        while done < events:
            msgs = consumer.consume(num_messages=batch_size, timeout=0.5)
            if not msgs:
                continue
            if t0 is None:
                t0 = time.perf_counter()
            runner.process(msgs)  # the production path: aggregate, one EVALSHA, commit
            done += len(msgs)
            batches += 1
            progress.update(done)
        elapsed = time.perf_counter() - (t0 or time.perf_counter())
    finally:
        runner.close()
    return Measurement("ours", done, elapsed, batches, redis_total(runner.redis, prefix))


def measure_baseline(settings: Settings, topic: str, group: str, prefix: str, events: int) -> Measurement:
    """The original: one message at a time, stdlib json, a pipeline executed per event."""
    client = redis_client(settings)
    consumer = Consumer(
        kafka_io.consumer_config(
            settings, group, **{"enable.auto.commit": True, "enable.auto.offset.store": True}
        )
    )
    consumer.subscribe([topic])
    ttl = Rules().ttl_seconds
    titles = f"{prefix}hash:eng:content"
    progress = Progress("baseline", events)
    done = 0
    t0: float | None = None
    try:
        while done < events:
            msg = consumer.poll(0.5)
            if msg is None or msg.error():
                continue
            if t0 is None:
                t0 = time.perf_counter()
            event = json.loads(msg.value())
            ts = datetime.fromisoformat(event["event_ts"].replace("Z", "+00:00")).astimezone(UTC)
            key = f"{prefix}zset:eng:minute:{ts.strftime('%Y%m%d%H%M')}"
            pipe = client.pipeline()
            pipe.zincrby(key, 1, event["content_id"])
            pipe.expire(key, ttl)
            pipe.hset(
                titles,
                event["content_id"],
                json.dumps({"title": event["title"], "type": event["content_type"]}),
            )
            pipe.execute()
            done += 1
            if done % 1000 == 0:
                progress.update(done)
        elapsed = time.perf_counter() - (t0 or time.perf_counter())
    finally:
        consumer.close()
    return Measurement("baseline", done, elapsed, done, redis_total(client, prefix))


def measure_ceiling(
    settings: Settings, topic: str, group: str, prefix: str, events: int, batch_size: int
) -> Measurement:
    """The least work that still ranks: one pipelined ZINCRBY per event, one execute per batch."""
    client = redis_client(settings)
    consumer = Consumer(kafka_io.consumer_config(settings, group))
    consumer.subscribe([topic])
    key_prefix = f"{prefix}zset:eng:minute:"
    progress = Progress("ceiling", events)
    done = batches = 0
    t0: float | None = None
    try:
        while done < events:
            msgs = consumer.consume(num_messages=batch_size, timeout=0.5)
            if not msgs:
                continue
            if t0 is None:
                t0 = time.perf_counter()
            pipe = client.pipeline(transaction=False)
            for msg in msgs:
                event = orjson.loads(msg.value())
                pipe.zincrby(key_prefix + minute_bucket(event["event_ts"]), 1, event["content_id"])
            pipe.execute()
            consumer.commit(offsets=kafka_io.next_offsets(msgs), asynchronous=False)
            done += len(msgs)
            batches += 1
            progress.update(done)
        elapsed = time.perf_counter() - (t0 or time.perf_counter())
    finally:
        consumer.close()
    return Measurement("ceiling", done, elapsed, batches, redis_total(client, prefix))


def cleanup(settings: Settings, topic: str, groups: list[str], prefix: str) -> int:
    """Remove the run's Redis keys, groups and topic; returns the number of keys deleted."""
    client = redis_client(settings)
    deleted = 0
    batch: list[bytes] = []
    for key in client.scan_iter(match=f"{prefix}*", count=1000):
        batch.append(key)
        if len(batch) >= 500:
            deleted += client.delete(*batch)
            batch.clear()
    if batch:
        deleted += client.delete(*batch)
    admin = AdminClient({"bootstrap.servers": settings.kafka_bootstrap_servers})
    for futures in (admin.delete_consumer_groups(groups), admin.delete_topics([topic])):
        for fut in futures.values():
            try:
                fut.result(15)
            except Exception as exc:  # noqa: BLE001 - best effort: the local broker may not support it
                print(f"  cleanup: {exc}", file=sys.stderr)
    return deleted


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--events", type=positive_int, default=200_000, help="events to pre-load (default 200000)"
    )
    parser.add_argument("--json", metavar="FILE", help="also write the figures to FILE as JSON")
    parser.add_argument(
        "--contents", type=positive_int, default=200, help="distinct content ids (default 200)"
    )
    parser.add_argument(
        "--batch-size", type=positive_int, default=DEFAULT_BATCH_SIZE, help="records per consumed batch"
    )
    parser.add_argument("--seed", type=int, default=7, help="random seed of the synthetic events")
    parser.add_argument(
        "--shuffle",
        action="store_true",
        help="scatter event times at random over 30 minutes instead of time order (worst case)",
    )


def run(args: argparse.Namespace, settings: Settings) -> int:
    run_id = uuid.uuid4().hex[:10]
    topic = f"bench.leaderboard.{run_id}"
    prefix = f"bench:{run_id}:"
    groups = {name: f"bench-leaderboard-{run_id}-{name}" for name in ("ours", "baseline", "ceiling")}
    print(
        f"bench leaderboard: {args.events:,} events, {args.contents} contents, topic {topic}, "
        f"Redis key prefix {prefix!r}",
        file=sys.stderr,
    )
    results: dict[str, Measurement] = {}
    try:
        preload(settings, topic, args.events, args.contents, args.seed, args.shuffle)
        runs: list[tuple[str, Callable[[], Measurement]]] = [
            (
                "ours",
                lambda: measure_ours(
                    settings, topic, groups["ours"], prefix + "ours:", args.events, args.batch_size
                ),
            ),
            (
                "baseline",
                lambda: measure_baseline(
                    settings, topic, groups["baseline"], prefix + "baseline:", args.events
                ),
            ),
            (
                "ceiling",
                lambda: measure_ceiling(
                    settings, topic, groups["ceiling"], prefix + "ceiling:", args.events, args.batch_size
                ),
            ),
        ]
        for name, measure in runs:
            print(f"measuring {name} ...", file=sys.stderr)
            results[name] = measure()
    finally:
        deleted = cleanup(settings, topic, list(groups.values()), prefix)
        print(f"cleaned up {deleted} Redis keys, topic {topic}", file=sys.stderr)

    ours, baseline, ceiling = results["ours"], results["baseline"], results["ceiling"]
    vs_baseline = ours.rate / baseline.rate if baseline.rate else float("inf")
    vs_ceiling = ours.rate / ceiling.rate if ceiling.rate else float("inf")
    header = ("variant", "events", "seconds", "events/s", "round trips", "Redis total")
    print("{:<10} {:>9} {:>9} {:>12} {:>12} {:>12}".format(*header))
    for m in (ours, baseline, ceiling):
        cells = (m.name, m.events, m.seconds, m.rate, m.round_trips, m.redis_total)
        print("{:<10} {:>9,} {:>9.2f} {:>12,.0f} {:>12,} {:>12,.0f}".format(*cells))
    ok_base, ok_ceil = vs_baseline >= TARGET_VS_BASELINE, vs_ceiling >= TARGET_VS_CEILING
    verdict = {True: "met", False: "MISSED"}
    print(f"ours/baseline = {vs_baseline:.1f}x (target >= {TARGET_VS_BASELINE:g}x: {verdict[ok_base]})")
    print(f"ours/ceiling  = {vs_ceiling:.2f}x (target >= {TARGET_VS_CEILING:g}x: {verdict[ok_ceil]})")
    exact = all(m.redis_total == args.events for m in results.values())
    if not exact:
        print("WARNING: a variant's Redis total differs from the number of events", file=sys.stderr)
    if args.json:
        report = {
            "benchmark": "leaderboard",
            "events": args.events,
            "contents": args.contents,
            "batch_size": args.batch_size,
            "event_order": "shuffled" if args.shuffle else "time-ordered",
            "results": {m.name: m.as_json() for m in results.values()},
            "ratios": {"ours_vs_baseline": round(vs_baseline, 2), "ours_vs_ceiling": round(vs_ceiling, 3)},
            "targets": {"ours_vs_baseline": TARGET_VS_BASELINE, "ours_vs_ceiling": TARGET_VS_CEILING},
            "targets_met": ok_base and ok_ceil,
            "totals_exact": exact,
        }
        with open(args.json, "w") as fh:
            json.dump(report, fh, indent=2)
            fh.write("\n")
    return 0
