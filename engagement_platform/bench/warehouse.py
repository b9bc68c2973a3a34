"""Benchmark the warehouse: bridge ingest rate vs a per-message insert baseline, and dashboard queries.

Runs against the configured ClickHouse and Kafka (the local stack by default), in a
database of its own (``--database``, dropped and recreated; the local-mode schema, i.e. a
Null queue, whatever EP_MODE says -- a second Kafka-engine consumer of the real topic
would be the last thing a benchmark should create).

1. Ingest: ``--messages`` enriched records (built with the enricher's own ``enrich``) are
   produced to a fresh topic, then ``WarehouseBridge`` -- the object ``consume warehouse``
   runs -- loads them with its default batching. The baseline is the same bridge with
   ``--batch-size 1`` (one insert and one commit per message) over the first
   ``--baseline-messages`` records of the same topic, because at its rate the full set would
   take minutes. Rates are measured from the first record received (group join excluded)
   to the last commit, and include the whole materialized-view chain.
2. Queries: ``--query-rows`` events are generated server-side with ``numbers()`` straight
   into ``engagement_enriched`` (the minute rollup's view fires as usual), spread over the
   past 7 days; the daily rollup is rebuilt for those days; then each dashboard query runs
   ``--repeat`` times and the median and best times are reported.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from confluent_kafka import Producer

from engagement_platform.argtypes import positive_int
from engagement_platform.settings import Settings
from engagement_platform.streaming import enrich, kafka_io
from engagement_platform.streaming.topics import TopicSpec, ensure_topics, settings_bounds
from engagement_platform.streaming.warehouse_runner import Config, WarehouseBridge
from engagement_platform.warehouse import ddl, rollup
from engagement_platform.warehouse.queries import MAIN_QUERIES

DEFAULT_DATABASE = "engagement_bench"
CONTENT = 200
USERS = 50_000
DAYS = 7


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# --- ingest -----------------------------------------------------------------------------


def make_messages(count: int) -> list[bytes]:
    """Realistic enriched records with distinct event ids 1..count, via the enricher itself."""
    contents = [
        enrich.Content(
            str(uuid.UUID(int=i + 1, version=4)),
            f"podcast-bench-{i}",
            f"Bench Title #{i}",
            ("podcast", "newsletter", "video")[i % 3],
            None if i % 7 == 0 else 300 + i,
            "2026-01-01T00:00:00.000Z",
        )
        for i in range(CONTENT)
    ]
    users = [str(uuid.UUID(int=10**6 + i, version=4)) for i in range(USERS)]
    types = ("play", "play", "pause", "finish", "click")
    base = datetime.now(UTC) - timedelta(hours=1)
    enriched_at = enrich.now_iso_ms()
    out = []
    for n in range(1, count + 1):
        content = contents[(n * 7919) % CONTENT]
        event_type = types[n % len(types)]
        ts = enrich.format_utc_ms(base + timedelta(milliseconds=n * 17 % 3_600_000))
        event = enrich.Event(
            n,
            content.id,
            users[(n * 104729) % USERS],
            event_type,
            ts,
            None if event_type == "click" else (n * 31) % 600_000,
            ("ios", "android", "web")[n % 3],
            ts,
        )
        out.append(enrich.enrich_bytes(event, content, enriched_at))
    return out


def produce(settings: Settings, topic: str, messages: list[bytes]) -> float:
    producer = Producer(kafka_io.producer_config(settings))
    started = time.monotonic()
    for i, value in enumerate(messages):
        while True:
            try:
                producer.produce(topic, value=value, key=str(i % 64).encode())
                break
            except BufferError:
                producer.poll(0.05)
        if i % 50_000 == 0:
            producer.poll(0)
    left = producer.flush(60)
    if left:
        raise RuntimeError(f"{left} messages not delivered to {topic}")
    return time.monotonic() - started


def run_bridge(
    settings: Settings, topic: str, database: str, target: int, batch_size: int, label: str
) -> dict[str, Any]:
    config = Config(
        topic=topic,
        group=f"bench-warehouse-{uuid.uuid4().hex[:8]}",
        database=database,
        batch_size=batch_size,
        summary_every=3600.0,
        create_topic=False,
    )
    bridge = WarehouseBridge(settings, config)
    last_report = [time.monotonic()]

    def until() -> bool:
        now = time.monotonic()
        if now - last_report[0] >= 2.0:
            say(f"  {label}: {bridge.inserted:,}/{target:,} rows")
            last_report[0] = now
        return bridge.inserted >= target

    try:
        bridge.open()
        bridge.loop(until=until)
        finished = time.monotonic()
    finally:
        bridge.close()
    assert bridge.first_record_at is not None
    elapsed = finished - bridge.first_record_at
    return {
        "rows": bridge.inserted,
        "seconds": round(elapsed, 3),
        "rows_per_s": round(bridge.inserted / elapsed),
    }


# --- queries ----------------------------------------------------------------------------

GENERATE = f"""
INSERT INTO {ddl.ENRICHED} (event_id, content_id, user_id, event_type, event_ts, device, duration_ms,
    engagement_seconds, engagement_pct, content_type, title, slug, length_seconds, publish_ts, source_ts,
    enriched_at, content_missing)
SELECT
    number + 1 AS event_id,
    toUUID(concat('00000000-0000-4000-8000-', leftPad(toString(c), 12, '0'))) AS content_id,
    toUUID(concat('00000000-0000-4000-9000-', leftPad(toString(intHash64(number) % {USERS}), 12, '0')))
        AS user_id,
    ['play', 'play', 'pause', 'finish', 'click'][cityHash64(number, 1) % 5 + 1] AS event_type,
    now64(3, 'UTC') - toIntervalMillisecond(cityHash64(number, 2) % ({DAYS} * 86400000)) AS event_ts,
    ['ios', 'android', 'web', 'desktop'][cityHash64(number, 3) % 4 + 1] AS device,
    if(event_type = 'click', NULL, cityHash64(number, 4) % 600000) AS duration_ms,
    duration_ms / 1000 AS engagement_seconds,
    round(100 * engagement_seconds / 600, 2) AS engagement_pct,
    ['podcast', 'newsletter', 'video'][c % 3 + 1] AS content_type,
    concat('Bench Title #', toString(c)) AS title,
    concat('bench-', toString(c)) AS slug,
    600 AS length_seconds,
    toDateTime64('2026-01-01 00:00:00', 3, 'UTC') AS publish_ts,
    event_ts AS source_ts,
    event_ts + toIntervalMillisecond(50) AS enriched_at,
    false AS content_missing
FROM (
    -- a Zipf-like skew: a few pieces of content get most of the events
    SELECT number, toUInt32(floor({CONTENT} * pow((intHash32(number) % 100000) / 100000, 3))) AS c
    FROM numbers({{rows:UInt64}})
)
"""


def timed(fn: Callable[[], Any], repeat: int) -> dict[str, float]:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return {"median_ms": round(statistics.median(times) * 1000, 1), "best_ms": round(min(times) * 1000, 1)}


def run_queries(settings: Settings, database: str, rows: int, repeat: int) -> dict[str, Any]:
    client = ddl.connect_settings(settings, database)
    try:
        for table in (ddl.ENRICHED, ddl.MINUTE, ddl.DAILY):
            client.command(f"TRUNCATE TABLE {table}")
        say(f"queries: generating {rows:,} events server-side over the past {DAYS} days ...")
        started = time.monotonic()
        client.command(GENERATE, parameters={"rows": rows})
        generate_s = time.monotonic() - started
        say(
            f"queries: generated in {generate_s:.1f}s "
            f"({rows / generate_s:,.0f} rows/s incl. the minute rollup)"
        )
        today = datetime.now(UTC).date()
        rebuild_times = []
        for offset in range(DAYS, -1, -1):
            day = today - timedelta(days=offset)
            start = datetime(day.year, day.month, day.day, tzinfo=UTC)
            t0 = time.perf_counter()
            rollup.rebuild_daily(client, day, start, start + timedelta(days=1))
            rebuild_times.append(time.perf_counter() - t0)
        say(f"queries: daily rollup rebuilt for {DAYS + 1} days")
        results: dict[str, Any] = {
            "generate_s": round(generate_s, 2),
            "daily rebuild, one day (FINAL -> REPLACE PARTITION)": {
                "median_ms": round(statistics.median(rebuild_times) * 1000, 1),
                "best_ms": round(min(rebuild_times) * 1000, 1),
            },
        }
        for name, query in MAIN_QUERIES.items():
            results[name] = timed(lambda query=query: query(client), repeat)
            say(f"queries: {name}: {results[name]['median_ms']} ms")
        return results
    finally:
        client.close()


# --- the command ------------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--messages", type=positive_int, default=200_000, help="bridge ingest (default 200,000)"
    )
    parser.add_argument(
        "--baseline-messages",
        type=positive_int,
        default=1_000,
        help="per-message insert baseline, a prefix of the same topic (default 1,000)",
    )
    parser.add_argument(
        "--query-rows",
        type=positive_int,
        default=5_000_000,
        help="rows for the query timings (default 5,000,000)",
    )
    parser.add_argument("--repeat", type=positive_int, default=5, help="runs per query (default 5)")
    parser.add_argument(
        "--database",
        default=DEFAULT_DATABASE,
        help=f"scratch database, recreated (default {DEFAULT_DATABASE})",
    )
    parser.add_argument("--skip-ingest", action="store_true", help="only the query timings")
    parser.add_argument("--skip-queries", action="store_true", help="only the ingest comparison")
    parser.add_argument("--keep", action="store_true", help="keep the scratch database and topic afterwards")
    parser.add_argument("--json", metavar="FILE", help="also write the results as JSON")


def print_table(results: dict[str, Any]) -> None:
    ingest = results.get("ingest")
    if ingest:
        print(f"\nIngest into ClickHouse ({results['clickhouse']}), full materialized-view chain")
        print(f"{'path':<44} {'rows':>10} {'seconds':>9} {'rows/s':>10}")
        for label in ("bridge (batched)", "baseline (one insert per message)"):
            r = ingest[label]
            print(f"{label:<44} {r['rows']:>10,} {r['seconds']:>9.2f} {r['rows_per_s']:>10,}")
        print(f"speed-up: {ingest['speedup']:.0f}x")
    queries = results.get("queries")
    if queries:
        print(f"\nDashboard queries over {results['query_rows']:,} rows ({DAYS} days)")
        print(f"{'query':<58} {'median ms':>10} {'best ms':>9}")
        for name, r in queries.items():
            if isinstance(r, dict):
                print(f"{name:<58} {r['median_ms']:>10.1f} {r['best_ms']:>9.1f}")
        print(f"(generation of the rows took {queries['generate_s']}s)")


def run(args: argparse.Namespace, settings: Settings) -> int:
    database = args.database
    admin = ddl.connect_settings(settings, "default")
    try:
        version = admin.command("SELECT version()")
        say(
            f"bench warehouse: ClickHouse {version} at "
            f"{settings.clickhouse_host}:{settings.clickhouse_port}, "
            f"database {database} (recreated)"
        )
        admin.command("DROP DATABASE IF EXISTS {db:Identifier}", parameters={"db": database})
        ddl.ensure_database(admin, database)
    finally:
        admin.close()
    client = ddl.connect_settings(settings, database)
    try:
        ddl.apply(client, "local")
    finally:
        client.close()

    results: dict[str, Any] = {
        "clickhouse": str(version),
        "database": database,
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    topic = f"bench.warehouse.{uuid.uuid4().hex[:8]}"
    try:
        if not args.skip_ingest:
            say(f"ingest: building {args.messages:,} enriched records ...")
            messages = make_messages(args.messages)
            ensure_topics(
                settings.kafka_bootstrap_servers,
                [TopicSpec(topic, settings.topic_partitions)],
                bounds=settings_bounds(settings),
            )
            seconds = produce(settings, topic, messages)
            say(f"ingest: produced to {topic} in {seconds:.1f}s; running the bridge ...")
            bridge = run_bridge(settings, topic, database, args.messages, Config.batch_size, "bridge")
            check = ddl.connect_settings(settings, database)
            try:
                final = int(check.command(f"SELECT count() FROM {ddl.ENRICHED} FINAL"))
            finally:
                check.close()
            if final != args.messages:
                raise RuntimeError(f"bridge loaded {final:,} distinct events, expected {args.messages:,}")
            baseline_n = min(args.baseline_messages, args.messages)
            say(f"ingest: bridge {bridge['rows_per_s']:,} rows/s; baseline over {baseline_n:,} messages ...")
            baseline = run_bridge(settings, topic, database, baseline_n, 1, "baseline")
            # the baseline re-inserted a prefix of the same events: a replay, which must change nothing
            check = ddl.connect_settings(settings, database)
            try:
                final = int(check.command(f"SELECT count() FROM {ddl.ENRICHED} FINAL"))
            finally:
                check.close()
            results["ingest"] = {
                "bridge (batched)": {**bridge, "batch_size": Config.batch_size},
                "baseline (one insert per message)": {**baseline, "batch_size": 1},
                "speedup": round(bridge["rows_per_s"] / max(baseline["rows_per_s"], 1), 1),
                "distinct_events_after_both": final,
            }
        if not args.skip_queries:
            results["query_rows"] = args.query_rows
            results["queries"] = run_queries(settings, database, args.query_rows, args.repeat)
    finally:
        if not args.keep:
            _cleanup(settings, database, topic, created_topic=not args.skip_ingest)
    print_table(results)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(results, fh, indent=2)
        say(f"results written to {args.json}")
    return 0


def _cleanup(settings: Settings, database: str, topic: str, created_topic: bool) -> None:
    admin = ddl.connect_settings(settings, "default")
    try:
        admin.command("DROP DATABASE IF EXISTS {db:Identifier}", parameters={"db": database})
    finally:
        admin.close()
    if created_topic:
        from confluent_kafka.admin import AdminClient

        admin_client = AdminClient({"bootstrap.servers": settings.kafka_bootstrap_servers})
        futures = admin_client.delete_topics([topic])
        for future in futures.values():
            try:
                future.result(30)
            except Exception as exc:  # a leftover scratch topic is not worth failing the run
                say(f"could not delete topic {topic}: {exc}")
