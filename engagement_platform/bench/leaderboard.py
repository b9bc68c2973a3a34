"""Measure the leaderboard consumer against the original design and against the transport ceiling.

Variants, each ``--runs`` times side by side: ours (the ``consume leaderboard`` consumer), the
original design's baseline and the transport ceiling. How each is measured, and the figures:
docs/performance.md.
"""

from __future__ import annotations

import argparse
import json
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import cast

import redis
from confluent_kafka import Consumer, Message

from engagement_platform.argtypes import positive_int
from engagement_platform.bench import report, transport
from engagement_platform.bench.data import synthetic_enriched
from engagement_platform.bench.report import Bar, Run
from engagement_platform.settings import Settings
from engagement_platform.streaming import kafka_io
from engagement_platform.streaming.leaderboard import Keys, Rules, decoder
from engagement_platform.streaming.leaderboard_runner import (
    DEFAULT_BATCH_SIZE,
    Config,
    LeaderboardConsumer,
    redis_client,
)

TARGETS = report.Targets(ours_vs_baseline=10.0, ours_vs_ceiling=0.8, ours_rate=200_000)  # issue 13


def redis_total(client: redis.Redis, prefix: str) -> float:
    total = 0.0
    for key in client.scan_iter(match=Keys(prefix).minute("*"), count=1000):
        pairs = cast(list[tuple[bytes, float]], client.zrange(key, 0, -1, withscores=True))
        total += sum(score for _member, score in pairs)
    return total


@dataclass(frozen=True)
class Input:
    """The pre-loaded topic every variant reads, and where its own scratch goes."""

    settings: Settings
    scratch: transport.Scratch
    topic: str
    batch_size: int

    @property
    def prefix(self) -> str:
        """Every Redis key of this benchmark run starts with it."""
        return f"bench:{self.scratch.run_id}:"

    def names(self, variant: str, i: int) -> tuple[str, str]:
        """The consumer group and the Redis key prefix of run ``i`` of ``variant``."""
        group = self.scratch.group(f"bench-leaderboard-{self.scratch.run_id}-{variant}{i}")
        return group, f"{self.prefix}{variant}{i}:"


def measure_ours(inp: Input, events: int, i: int, bar: Bar) -> Run:
    group, prefix = inp.names("ours", i)
    runner = LeaderboardConsumer(
        inp.settings,
        Config(
            topic=inp.topic,
            group=group,
            batch_size=inp.batch_size,
            key_prefix=prefix,
            create_topic=False,
            summary_every=3600,
        ),
    )
    consumer = runner.open()
    try:
        # the production path: aggregate the next batch while one EVALSHA is in flight, commit
        got = transport.consume_n(
            consumer, events, inp.batch_size, lambda msgs: runner.submit(kafka_io.records_of(msgs)), bar
        )
        runner.settle()
        seconds = got.since_first()
    finally:
        runner.close()
    total = redis_total(runner.redis, prefix)
    return Run(got.records, seconds, {"redis_round_trips": got.batches, "redis_total_score": total})


def measure_baseline(inp: Input, events: int, i: int, bar: Bar) -> Run:
    """The original: one message at a time, stdlib json, a pipeline executed per event."""
    group, prefix = inp.names("baseline", i)
    client = redis_client(inp.settings)
    consumer = Consumer(
        kafka_io.consumer_config(
            inp.settings, group, **{"enable.auto.commit": True, "enable.auto.offset.store": True}
        )
    )
    consumer.subscribe([inp.topic])
    ttl = Rules().ttl_seconds
    titles = f"{prefix}hash:eng:content"
    done = 0
    t0: float | None = None
    try:
        while done < events:
            msg = consumer.poll(0.5)
            if msg is None or msg.error() or (value := msg.value()) is None:
                continue
            if t0 is None:
                t0 = time.monotonic()
            event = json.loads(value)
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
            if done % 500 == 0:
                bar.update(done)
        elapsed = time.monotonic() - (t0 or time.monotonic())
    finally:
        consumer.close()
    total = redis_total(client, prefix)
    return Run(done, elapsed, {"redis_round_trips": done, "redis_total_score": total})


_read = decoder(Config().rules.metric)  # ours' metric


def decode_batch(records: list[Message]) -> list[object]:
    """What ours does to every record before any aggregation: the consumer's own decode."""
    read = _read
    return [read(m.value()) for m in records]


def measure_ceiling(inp: Input, events: int, i: int, bar: Bar) -> Run:
    group, _prefix = inp.names("ceiling", i)
    run = transport.drain(inp.settings, inp.topic, group, events, inp.batch_size, bar, decode_batch)
    return Run(run.events, run.seconds, {"redis_round_trips": 0, "redis_total_score": 0.0})


def delete_keys(settings: Settings, prefix: str) -> int:
    """Remove the run's Redis keys; returns how many."""
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
    return deleted


def add_arguments(parser: argparse.ArgumentParser) -> None:
    report.add_arguments(parser, "events", 200_000, 20_000)
    parser.add_argument(
        "--contents", type=positive_int, default=200, help="distinct content ids (default 200)"
    )
    parser.add_argument(
        "--batch-size",
        type=positive_int,
        default=DEFAULT_BATCH_SIZE,
        help=f"records per consumed batch (default {DEFAULT_BATCH_SIZE})",
    )
    parser.add_argument("--seed", type=int, default=7, help="random seed of the synthetic events (default 7)")
    parser.add_argument(
        "--shuffle",
        action="store_true",
        help="scatter event times at random over 30 minutes instead of time order (worst case)",
    )


def run(args: argparse.Namespace, settings: Settings) -> int:
    report.setup_logging()
    n, n_baseline = args.events, min(args.baseline_events, args.events)
    scratch = transport.Scratch(settings, uuid.uuid4().hex[:10])
    inp = Input(settings, scratch, f"bench.leaderboard.{scratch.run_id}", args.batch_size)
    try:
        scratch.topic(inp.topic)
        report.say(
            f"bench leaderboard: {n:,} events, {args.contents} contents, topic {inp.topic}, "
            f"Redis key prefix {inp.prefix!r}"
        )
        _contents, records = synthetic_enriched(args.contents, n, seed=args.seed, shuffle=args.shuffle)
        transport.preload(settings, inp.topic, records, n)
        variants = report.compare(
            args.runs,
            inp,
            n,
            n_baseline,
            ours=measure_ours,
            baseline=measure_baseline,
            ceiling=measure_ceiling,
        )
    finally:
        scratch.close()
        deleted = delete_keys(settings, inp.prefix)
        report.say(f"cleaned up {deleted} Redis keys, topic and groups of run {scratch.run_id}")

    counted = [r for name in ("ours", "baseline") for r in variants[name].runs]
    exact = all(r.extra["redis_total_score"] == r.events for r in counted)
    if not exact:
        report.say("WARNING: a run's Redis total differs from the number of events it consumed")
    figures = report.figures(
        "leaderboard",
        variants,
        TARGETS,
        events=n,
        contents=args.contents,
        batch_size=args.batch_size,
        event_order="shuffled" if args.shuffle else "time-ordered",
        totals_exact=exact,
    )
    report.print_results(
        f"leaderboard: {n:,} events, {args.contents} contents, batch {args.batch_size:,}, "
        f"{figures['event_order']}, {args.runs} run(s) each",
        figures,
        variants,
        columns={"redis_round_trips": "round trips", "redis_total_score": "Redis total"},
        notes=["ceiling: consume + the consumer's own decode of every record, no Redis; the transport limit"],
    )
    report.write_json(args.json, figures)
    return 0
