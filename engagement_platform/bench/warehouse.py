"""Benchmark the warehouse: bridge ingest vs per-message inserts and the transport ceiling; dashboard queries.

Ingest variants, each ``--runs`` times side by side: ours (the ``consume warehouse`` bridge),
one insert per message, and the transport ceiling; then each query of the dashboard's page,
in a database of its own. How each is measured, and the figures: docs/performance.md.
"""

from __future__ import annotations

import argparse
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

from confluent_kafka import Message

from engagement_platform.argtypes import positive_int
from engagement_platform.bench import report, transport
from engagement_platform.bench.data import synthetic_enriched
from engagement_platform.bench.report import Bar, Run, say
from engagement_platform.migrations import clickhouse as migrations
from engagement_platform.settings import Settings
from engagement_platform.warehouse import ddl, rollup, title
from engagement_platform.warehouse.bridge import Config, WarehouseBridge
from engagement_platform.warehouse.queries import DEFAULT_DAYS, page_queries

DEFAULT_DATABASE = "engagement_bench"
CONTENT = 200
USERS = 50_000
DAYS = 7
OURS, BASELINE = "bridge (batched)", "baseline (one insert per message)"  # the JSON's ingest keys
PAGE = "the dashboard's page: all its queries in a row"
TITLE_PAGE = "a title's page: all its queries in a row"
GENERATE_CHUNK = 1_000_000
# the most engaged content of GENERATE (c = 0 of its skew): the title page's worst case
TOP_CONTENT = uuid.UUID("00000000-0000-4000-8000-000000000000")
# issue 13: 100,000 rows/s through the whole view chain; no ratio to the ceiling is asked
TARGETS = report.Targets(ours_vs_baseline=10.0, ours_vs_ceiling=None, ours_rate=100_000)


# --- ingest -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Input:
    """The pre-loaded topic every variant reads, the scratch database, and where groups go."""

    settings: Settings
    scratch: transport.Scratch
    topic: str
    database: str

    def group(self, variant: str, i: int) -> str:
        return self.scratch.group(f"bench-warehouse-{self.scratch.run_id}-{variant}{i}")


def run_bridge(inp: Input, variant: str, target: int, batch_size: int, i: int, bar: Bar) -> Run:
    config = Config(
        topic=inp.topic,
        group=inp.group(variant, i),
        database=inp.database,
        batch_size=batch_size,
        summary_every=3600.0,
        create_topic=False,
    )
    bridge = WarehouseBridge(inp.settings, config)

    def until() -> bool:
        bar.update(bridge.inserted)
        return bridge.inserted >= target

    try:
        bridge.open()
        bridge.loop(until=until)
        finished = time.monotonic()
    finally:
        bridge.close()
    assert bridge.first_record_at is not None
    return Run(bridge.inserted, finished - bridge.first_record_at)


def distinct_events(settings: Settings, database: str) -> int:
    client = ddl.connect_settings(settings, database)
    try:
        return ddl.scalar_int(client, f"SELECT count() FROM {ddl.ENRICHED} FINAL")
    finally:
        client.close()


def run_ours(inp: Input, n: int, i: int, bar: Bar) -> Run:
    """Into emptied tables, so that every run does the same work."""
    client = ddl.connect_settings(inp.settings, inp.database)
    try:
        for table in (ddl.ENRICHED, ddl.MINUTE, ddl.ERRORS):
            client.command(f"TRUNCATE TABLE {table}")
    finally:
        client.close()
    run = run_bridge(inp, "ours", n, Config.batch_size, i, bar)
    loaded = distinct_events(inp.settings, inp.database)
    if loaded != n:
        raise RuntimeError(f"bridge loaded {loaded:,} distinct events, expected {n:,}")
    return run


def run_baseline(inp: Input, n: int, i: int, bar: Bar) -> Run:
    """The bridge with one insert and one commit per message. Ours runs first in the first
    round and never empties the tables after itself, so every baseline run is a replay."""
    return run_bridge(inp, "baseline", n, 1, i, bar)


def bridge_values(records: list[Message]) -> list[bytes]:
    """All the bridge does to a batch before its insert (it never looks inside a message)."""
    return [m.value() or b"" for m in records]


def run_ceiling(inp: Input, n: int, i: int, bar: Bar) -> Run:
    return transport.drain(
        inp.settings, inp.topic, inp.group("ceiling", i), n, Config.batch_size, bar, bridge_values
    )


def ingest(args: argparse.Namespace, settings: Settings, scratch: transport.Scratch) -> dict[str, Any]:
    n, n_baseline = args.messages, min(args.baseline_messages, args.messages)
    inp = Input(settings, scratch, scratch.topic(f"bench.warehouse.{scratch.run_id}"), args.database)
    say(f"ingest: {n:,} enriched records into {inp.topic} ...")
    _contents, records = synthetic_enriched(CONTENT, n, users=USERS)
    transport.preload(settings, inp.topic, records, n)
    variants = report.compare(
        args.runs, inp, n, n_baseline, ours=run_ours, baseline=run_baseline, ceiling=run_ceiling
    )
    figures = report.figures("warehouse", variants, TARGETS, messages=n, baseline_messages=n_baseline)

    def legacy(v: report.Variant, batch_size: int) -> dict[str, Any]:
        m = v.median
        return {
            "rows": m.events,
            "seconds": round(m.seconds, 3),
            "rows_per_s": round(m.rate),
            "batch_size": batch_size,
        }

    # the ingest section of earlier versions, kept: figures of the median runs
    figures["ingest"] = {
        OURS: legacy(variants["ours"], Config.batch_size),
        BASELINE: legacy(variants["baseline"], 1),
        "speedup": figures["ratios"]["ours_vs_baseline"],
        # the baseline runs replayed a prefix of ours' events: a replay must change nothing
        "distinct_events_after_both": distinct_events(settings, inp.database),
    }
    report.print_results(
        f"warehouse ingest into ClickHouse, full materialized-view chain: {n:,} messages, "
        f"{args.runs} run(s) each",
        figures,
        variants,
        unit="rows",
        notes=["ceiling: consume and batch exactly as the bridge does, no insert; the transport limit"],
    )
    return figures


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
    FROM numbers({{first:UInt64}}, {{rows:UInt64}})
)
"""


def timed(fn: Callable[[], Any], repeat: int) -> dict[str, float]:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return in_ms(times)


def run_each(queries: list[Callable[[Any], Any]], client: Any) -> None:
    """Run each query in a row, as the dashboard's page does."""
    for query in queries:
        query(client)


def in_ms(seconds: list[float]) -> dict[str, float]:
    median, best = report.median_and_best(seconds, higher_is_better=False)
    return {"median_ms": round(median * 1000, 1), "best_ms": round(best * 1000, 1)}


def run_queries(
    settings: Settings, database: str, rows: int, repeat: int, rollups: bool = True
) -> dict[str, Any]:
    client = ddl.connect_settings(settings, database)
    try:
        for table in (ddl.ENRICHED, ddl.MINUTE, *rollup.DAY_TABLES, ddl.USERS_DAILY, *title.TABLES):
            client.command(f"TRUNCATE TABLE {table}")
        say(f"queries: generating {rows:,} events server-side over the past {DAYS} days ...")
        started = time.monotonic()
        # in chunks: one INSERT of 5M rows through every view outlasts the client's read timeout
        for first in range(0, rows, GENERATE_CHUNK):
            client.command(GENERATE, parameters={"first": first, "rows": min(GENERATE_CHUNK, rows - first)})
        generate_s = time.monotonic() - started
        say(
            f"queries: generated in {generate_s:.1f}s "
            f"({rows / generate_s:,.0f} rows/s incl. the minute rollup)"
        )
        today = datetime.now(UTC).date()
        rebuild_times = []
        # closed days only: the schedule builds yesterday, so the page always reads today with FINAL
        for offset in range(DAYS, 0, -1) if rollups else ():
            day = today - timedelta(days=offset)
            start = datetime(day.year, day.month, day.day, tzinfo=UTC)
            t0 = time.perf_counter()
            rollup.rebuild_daily(client, day, start, start + timedelta(days=1))
            rebuild_times.append(time.perf_counter() - t0)
        say(f"queries: daily rollups rebuilt for {len(rebuild_times)} closed days")
        results: dict[str, Any] = {"generate_s": round(generate_s, 2), "rollups": rollups}
        if rebuild_times:
            results["daily rebuild, one day: three rollups (FINAL -> REPLACE PARTITION)"] = in_ms(
                rebuild_times
            )
        page = page_queries(today, TOP_CONTENT)
        for name, query in page.items():
            results[name] = timed(partial(query, client), repeat)
            say(f"queries: {name}: {results[name]['median_ms']} ms")
        for span in (f"last {DEFAULT_DAYS} days", "today"):
            for label, of_title in ((PAGE, False), (TITLE_PAGE, True)):
                together = [
                    q
                    for name, q in page.items()
                    if name.endswith(span) and name.startswith("title:") == of_title
                ]
                results[f"{label}, {span}"] = timed(partial(run_each, together, client), repeat)
                say(f"queries: {label}, {span}: {results[f'{label}, {span}']['median_ms']} ms")
        return results
    finally:
        client.close()


def print_queries(rows: int, queries: dict[str, Any]) -> None:
    timings = [
        (name, f"{r['median_ms']:.1f}", f"{r['best_ms']:.1f}")
        for name, r in queries.items()
        if isinstance(r, dict)
    ]
    report.print_table(
        f"dashboard queries over {rows:,} rows ({DAYS} days)", ("query", "median ms", "best ms"), timings
    )
    report.out.print(f"(generation of the rows took {queries['generate_s']}s)", markup=False)


# --- the command ------------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    report.add_arguments(parser, "messages", 200_000, 300)
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
    parser.add_argument(
        "--skip-rollups",
        action="store_true",
        help="build no day into the daily rollups, so every query reads FINAL (as before the "
        "daily schedule first ran: the page's worst case)",
    )
    parser.add_argument("--skip-queries", action="store_true", help="only the ingest comparison")
    parser.add_argument("--keep", action="store_true", help="keep the scratch database and topic afterwards")


def run(args: argparse.Namespace, settings: Settings) -> int:
    report.setup_logging()
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
        migrations.apply(client, "local", settings.ep_home)  # a fresh database: nothing to pause
    finally:
        client.close()

    results: dict[str, Any] = {
        "benchmark": "warehouse",
        "clickhouse": str(version),
        "database": database,
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    scratch = transport.Scratch(settings, uuid.uuid4().hex[:8])
    try:
        if not args.skip_ingest:
            results.update(ingest(args, settings, scratch))
        if not args.skip_queries:
            results["query_rows"] = args.query_rows
            results["queries"] = run_queries(
                settings, database, args.query_rows, args.repeat, rollups=not args.skip_rollups
            )
    finally:
        if not args.keep:
            scratch.close()
            drop_database(settings, database)
    if not args.skip_queries:
        print_queries(args.query_rows, results["queries"])
    report.write_json(args.json, results)
    return 0


def drop_database(settings: Settings, database: str) -> None:
    admin = ddl.connect_settings(settings, "default")
    try:
        admin.command("DROP DATABASE IF EXISTS {db:Identifier}", parameters={"db": database})
    finally:
        admin.close()
