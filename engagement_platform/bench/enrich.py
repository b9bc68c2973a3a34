"""Benchmark the enrichment consumer against the original design and against the broker ceiling.

One run pre-loads a fresh events topic (default 200,000 synthetic Debezium flat events
plus their content) once, then measures, each with its own group and output topic:

* ours: the real ``EnrichRunner`` code path, consume -> enrich -> produce -> flush ->
  commit, exactly as ``consume enrich`` runs it;
* baseline: written the way the original did it: one ``poll()`` per message, stdlib
  ``json``, ``produce`` + ``flush`` per message, auto-commit. It is thousands of times
  slower per message than the rest, so by default it runs over a fixed subset
  (``--baseline-events``) and the output says so;
* ceiling: consume -> produce of the raw bytes with no processing at all (batch consume,
  same producer settings as ours, one flush + commit at the end).

Rates are events per second from the first event received to the last commit, so group
join time (the same for all three) is not counted. Figures depend on the machine and on
whatever else shares its cores: read them as ratios measured side by side.
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient

from engagement_platform.settings import Settings
from engagement_platform.source.simulator import Content, Event, EventGenerator, make_content
from engagement_platform.streaming import kafka_io, topics
from engagement_platform.streaming.enrich_runner import EnrichOptions, EnrichRunner

log = logging.getLogger("engagement_platform.bench.enrich")

TARGET_VS_BASELINE = 10.0
TARGET_VS_CEILING = 0.5


# --- synthetic Debezium flat records (also used by the tests) -----------------------------


def iso_micros(ts: datetime) -> str:
    """How Debezium renders a timestamptz (ZonedTimestamp): UTC, 'Z', microseconds."""
    return ts.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def flat_content(
    c: Content, *, op: str = "r", source_ts_ms: int | None = None, lsn: int = 0
) -> tuple[bytes, bytes]:
    """(key, value) of a ``content.flat`` record."""
    value = {
        "id": str(c.id),
        "slug": c.slug,
        "title": c.title,
        "content_type": c.content_type,
        "length_seconds": c.length_seconds,
        "publish_ts": iso_micros(c.publish_ts),
        "__op": op,
        "__source_ts_ms": source_ts_ms if source_ts_ms is not None else int(time.time() * 1000),
        "__lsn": lsn,
        "__deleted": "false",
    }
    return orjson.dumps({"id": str(c.id)}), orjson.dumps(value)


def flat_event(
    event_id: int, e: Event, *, op: str = "c", source_ts_ms: int | None = None, lsn: int = 0
) -> tuple[bytes, bytes]:
    """(key, value) of an ``engagement_events.flat`` record."""
    value = {
        "id": event_id,
        "content_id": str(e.content_id),
        "user_id": str(e.user_id),
        "event_type": e.event_type,
        "event_ts": iso_micros(e.event_ts),
        "duration_ms": e.duration_ms,
        "device": e.device,
        "raw_payload": orjson.dumps(e.raw_payload).decode(),
        "__op": op,
        "__source_ts_ms": source_ts_ms if source_ts_ms is not None else int(time.time() * 1000),
        "__lsn": lsn,
        "__deleted": "false",
    }
    return orjson.dumps({"content_id": str(e.content_id)}), orjson.dumps(value)


def synthetic(
    n_content: int, n_events: int, *, seed: int = 7, first_id: int = 1
) -> tuple[list[Content], Iterator[tuple[bytes, bytes]]]:
    """Content rows and a generator of ``n_events`` flat event records with ids from ``first_id``."""
    rng = random.Random(seed)
    now = datetime.now(UTC)
    contents = [make_content(rng, i, now) for i in range(n_content)]
    gen = EventGenerator(contents, users=2000, seed=seed)
    start = now - timedelta(hours=1)

    def events() -> Iterator[tuple[bytes, bytes]]:
        done = 0
        source_ms = int(now.timestamp() * 1000)
        while done < n_events:
            count = min(10_000, n_events - done)
            step = iter(range(done, done + count))
            batch = gen.batch(count, lambda step=step: start + timedelta(milliseconds=137 * next(step)))
            for i, e in enumerate(batch):
                eid = first_id + done + i
                yield flat_event(eid, e, source_ts_ms=source_ms + eid // 50, lsn=eid)
            done += count

    return contents, events()


def produce_all(producer: Producer, topic: str, records: Iterator[tuple[bytes, bytes]] | list) -> int:
    n = 0
    for key, value in records:
        while True:
            try:
                producer.produce(topic, value, key)
                break
            except BufferError:
                producer.poll(0.05)
        n += 1
        if n % 20_000 == 0:
            producer.poll(0)
    left = producer.flush(60)
    if left:
        raise RuntimeError(f"{left} records not acknowledged while pre-loading {topic}")
    return n


# --- the three contenders -------------------------------------------------------------


def _result(events: int, seconds: float, **extra: Any) -> dict[str, Any]:
    return {
        "events": events,
        "seconds": round(seconds, 3),
        "events_per_s": round(events / seconds, 1),
        **extra,
    }


def _progress(name: str, done: int, total: int, started: float) -> None:
    rate = done / max(time.monotonic() - started, 1e-9)
    print(f"  {name}: {done:,}/{total:,} events ({rate:,.0f}/s)", file=sys.stderr, flush=True)


def run_ours(
    settings: Settings, run_id: str, events_topic: str, content_topic: str, n: int
) -> dict[str, Any]:
    options = EnrichOptions(
        group=f"bench-enrich-ours-{run_id}",
        events_topic=events_topic,
        content_topic=content_topic,
        output_topic=f"bench-enrich-{run_id}.ours",
        dlq_topic=f"bench-enrich-{run_id}.ours.dlq",
        summary_every=1.0,
    )
    runner = EnrichRunner(settings, options, stop_when=lambda r: r.processed >= n and not r.pending)
    code = runner.run()
    end = time.monotonic()
    if code != 0 or runner.first_event_at is None:
        raise RuntimeError(f"the enrichment runner failed (exit {code})")
    if runner.emitted != n:
        raise RuntimeError(f"ours emitted {runner.emitted:,} of {n:,} events")
    return _result(n, end - runner.first_event_at)


def run_baseline(
    settings: Settings, run_id: str, events_topic: str, content_topic: str, n: int
) -> dict[str, Any]:
    """The original shape: per-message poll, stdlib json, produce + flush per event."""
    consumer = Consumer(
        {
            "bootstrap.servers": settings.kafka_bootstrap_servers,
            "group.id": f"bench-enrich-baseline-{run_id}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": True,
            "session.timeout.ms": 6000,
        }
    )
    producer = Producer({"bootstrap.servers": settings.kafka_bootstrap_servers})
    out = f"bench-enrich-{run_id}.baseline"
    topics.ensure_topics(
        settings.kafka_bootstrap_servers,
        [topics.TopicSpec(out, settings.topic_partitions)],
        bounds=topics.settings_bounds(settings),
    )
    cache: dict[str, dict[str, Any]] = {}
    consumer.subscribe([content_topic, events_topic])
    done, started, last = 0, None, time.monotonic()
    try:
        while done < n:
            msg = consumer.poll(1.0)
            if msg is None or msg.error() is not None:
                continue
            if msg.topic() == content_topic:
                row = json.loads(msg.value())
                cache[row["id"]] = row
                continue
            if started is None:
                started = time.monotonic()
            event = json.loads(msg.value())
            content = cache.get(event["content_id"], {})
            duration = event.get("duration_ms")
            length = content.get("length_seconds")
            seconds = duration / 1000 if duration is not None else None
            record = {
                "event_id": event["id"],
                "content_id": event["content_id"],
                "user_id": event["user_id"],
                "event_type": event["event_type"],
                "event_ts": event["event_ts"],
                "device": event["device"],
                "duration_ms": duration,
                "engagement_seconds": seconds,
                "engagement_pct": round(100 * seconds / length, 2)
                if seconds is not None and length
                else None,
                "content_type": content.get("content_type"),
                "title": content.get("title"),
                "slug": content.get("slug"),
                "length_seconds": length,
                "publish_ts": content.get("publish_ts"),
                "enriched_at": datetime.now(UTC).isoformat(),
            }
            producer.produce(out, json.dumps(record).encode(), event["content_id"].encode())
            producer.flush()
            done += 1
            if time.monotonic() - last >= 1.0:
                _progress("baseline", done, n, started)
                last = time.monotonic()
        end = time.monotonic()
    finally:
        consumer.close()
    assert started is not None
    return _result(done, end - started)


def run_ceiling(
    settings: Settings, run_id: str, events_topic: str, n: int, batch_size: int, attempt: int
) -> dict[str, Any]:
    """Raw bytes in, raw bytes out: what the broker and the client library allow at best."""
    group = f"bench-enrich-ceiling-{run_id}-{attempt}"
    consumer = Consumer(kafka_io.consumer_config(settings, group))
    producer = Producer(kafka_io.producer_config(settings))
    out = f"bench-enrich-{run_id}.ceiling{attempt}"
    topics.ensure_topics(
        settings.kafka_bootstrap_servers,
        [topics.TopicSpec(out, settings.topic_partitions)],
        bounds=topics.settings_bounds(settings),
    )
    consumer.subscribe([events_topic])
    produce = producer.produce
    nxt: dict[int, int] = {}
    done, started, last = 0, None, time.monotonic()
    try:
        while done < n:
            msgs = consumer.consume(batch_size, 0.1)
            if not msgs:
                continue
            if started is None:
                started = time.monotonic()
            for m in msgs:
                if m.error() is not None:
                    continue
                nxt[m.partition()] = m.offset() + 1
                try:
                    produce(out, m.value(), m.key())
                except BufferError:
                    producer.poll(0.05)
                    produce(out, m.value(), m.key())
                done += 1
            producer.poll(0)
            if time.monotonic() - last >= 1.0:
                _progress("ceiling", done, n, started)
                last = time.monotonic()
        if producer.flush(60):
            raise RuntimeError("ceiling: records not acknowledged")
        consumer.commit(
            offsets=[TopicPartition(events_topic, p, o) for p, o in nxt.items()], asynchronous=False
        )
        end = time.monotonic()
    finally:
        consumer.close()
    assert started is not None
    return _result(done, end - started)


# --- the command ----------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--events", type=int, default=200_000, help="events to pre-load and enrich (default 200,000)"
    )
    parser.add_argument("--content", type=int, default=500, help="content rows (default 500)")
    parser.add_argument(
        "--baseline-events",
        type=int,
        default=10_000,
        help="events the per-message-flush baseline processes (default 10,000; capped at --events)",
    )
    parser.add_argument("--json", type=Path, metavar="FILE", help="also write the figures as JSON")


def _delete_topics(settings: Settings, names: list[str]) -> None:
    """Free the broker's memory (the local broker keeps every message in RAM)."""
    admin = AdminClient({"bootstrap.servers": settings.kafka_bootstrap_servers})
    try:
        for future in admin.delete_topics(names, operation_timeout=30).values():
            future.result(30)
    except KafkaException as exc:
        log.info("could not delete benchmark topics: %s", exc)


def run(args: argparse.Namespace, settings: Settings) -> int:
    kafka_io.setup_logging()
    if args.events < 1 or args.content < 1 or args.baseline_events < 1:
        raise LookupError("--events, --content and --baseline-events must be positive")
    n = args.events
    n_baseline = min(args.baseline_events, n)
    run_id = uuid.uuid4().hex[:8]
    events_topic = f"bench-enrich-{run_id}.engagement_events.flat"
    content_topic = f"bench-enrich-{run_id}.content.flat"
    parts = settings.topic_partitions
    topics.ensure_topics(
        settings.kafka_bootstrap_servers,
        [
            topics.TopicSpec(content_topic, parts, {"cleanup.policy": "compact"}),
            topics.TopicSpec(events_topic, parts),
        ],
        bounds=topics.settings_bounds(settings),
    )
    print(
        f"pre-loading {n:,} events and {args.content} content rows into {events_topic} ...", file=sys.stderr
    )
    t0 = time.monotonic()
    producer = Producer(kafka_io.producer_config(settings))
    contents, records = synthetic(args.content, n)
    produce_all(producer, content_topic, [flat_content(c) for c in contents])
    produce_all(producer, events_topic, records)
    print(f"pre-loaded in {time.monotonic() - t0:.1f}s", file=sys.stderr)

    try:
        # the ceiling runs before and after ours and the faster run counts, so the order
        # (a warmer broker, a busier machine) cannot flatter our ratio
        batch_size = EnrichOptions().batch_size
        print("measuring ceiling (raw consume -> produce), run 1 of 2 ...", file=sys.stderr)
        ceilings = [run_ceiling(settings, run_id, events_topic, n, batch_size, 1)]
        print("measuring ours (EnrichRunner, end to end) ...", file=sys.stderr)
        ours = run_ours(settings, run_id, events_topic, content_topic, n)
        print("measuring ceiling, run 2 of 2 ...", file=sys.stderr)
        ceilings.append(run_ceiling(settings, run_id, events_topic, n, batch_size, 2))
        ceiling = max(ceilings, key=lambda r: r["events_per_s"])
        ceiling["runs_events_per_s"] = [r["events_per_s"] for r in ceilings]
        print(f"measuring baseline over {n_baseline:,} events (per-message flush) ...", file=sys.stderr)
        baseline = run_baseline(settings, run_id, events_topic, content_topic, n_baseline)
    finally:
        _delete_topics(
            settings,
            [events_topic, content_topic]
            + [
                f"bench-enrich-{run_id}.{s}" for s in ("ours", "ours.dlq", "baseline", "ceiling1", "ceiling2")
            ],
        )
    baseline["subset"] = n_baseline < n
    vs_base = ours["events_per_s"] / baseline["events_per_s"]
    vs_ceiling = ours["events_per_s"] / ceiling["events_per_s"]
    figures = {
        "benchmark": "enrich",
        "events": n,
        "content": args.content,
        "partitions": parts,
        # the same shape as `bench leaderboard --json`
        "results": {"ours": ours, "baseline": baseline, "ceiling": ceiling},
        "ratios": {"ours_vs_baseline": round(vs_base, 2), "ours_vs_ceiling": round(vs_ceiling, 3)},
        "targets": {"ours_vs_baseline": TARGET_VS_BASELINE, "ours_vs_ceiling": TARGET_VS_CEILING},
        "targets_met": vs_base >= TARGET_VS_BASELINE and vs_ceiling >= TARGET_VS_CEILING,
    }
    print()
    print(f"enrich benchmark: {n:,} pre-loaded events, {args.content} content rows, {parts} partitions")
    print(f"{'':10} {'events':>9} {'seconds':>9} {'events/s':>11}")
    for name, r in (("ours", ours), ("baseline", baseline), ("ceiling", ceiling)):
        print(f"{name:10} {r['events']:>9,} {r['seconds']:>9.2f} {r['events_per_s']:>11,.0f}")
    runs = ", ".join(f"{c:,.0f}" for c in ceiling["runs_events_per_s"])
    print(f"(ceiling: the faster of {len(ceilings)} runs, before and after ours: {runs} events/s)")
    if baseline["subset"]:
        print(
            f"(baseline ran over the first {n_baseline:,} events only: "
            "one flush per message is too slow for all of them)"
        )
    print(f"ours / baseline = {vs_base:,.1f}x   (target >= {TARGET_VS_BASELINE:g}x)")
    print(f"ours / ceiling  = {vs_ceiling:.2f}x   (target >= {TARGET_VS_CEILING:g}x)")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")
        print(f"wrote {args.json}")
    return 0
