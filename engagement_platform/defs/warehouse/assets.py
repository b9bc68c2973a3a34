"""The ClickHouse warehouse: its schema, the streams that fill it, and the daily assets users run."""

from datetime import UTC, date, datetime, timedelta

import dagster as dg

from engagement_platform.defs.config import OWNERS, writer
from engagement_platform.defs.kafka.assets import engagement_enriched_topic
from engagement_platform.defs.postgres.resources import PostgresResource
from engagement_platform.defs.warehouse.resources import ClickHouseResource
from engagement_platform.migrations import clickhouse as migrations
from engagement_platform.migrations.files import Layout
from engagement_platform.warehouse import backfill, ddl, rollup
from engagement_platform.warehouse.gate import IngestGate

# History before this is not offered in the UI; the simulator's backfills stay well inside it.
DAILY_PARTITIONS = dg.DailyPartitionsDefinition(start_date="2025-01-01", timezone="UTC")

SCHEMA_KEY = dg.AssetKey(["clickhouse", "schema"])
ENRICHED_TABLE_KEY = dg.AssetKey(["clickhouse", "engagement_enriched"])
HISTORY_BACKFILL_KEY = dg.AssetKey(["clickhouse", "history_backfill"])


@dg.asset(
    key=SCHEMA_KEY,
    owners=OWNERS,
    tags=writer("dagster"),
    group_name="warehouse",
    kinds={"clickhouse"},
    description="Creates the database if missing and applies the pending migrations of clickhouse_ddl/ "
    "for the current EP_MODE, each once (recorded in `schema_migrations`; an applied file edited "
    "afterwards is refused). The queue is a Kafka-engine table in compose mode, a Null table fed by "
    "`consume warehouse` in local mode; everything after it is identical. Ingestion is paused while "
    "files run on a live warehouse.",
)
def clickhouse_schema(
    context: dg.AssetExecutionContext, clickhouse: ClickHouseResource
) -> dg.MaterializeResult:
    created = clickhouse.ensure_database()
    client = clickhouse.client()
    try:
        applied, status = migrations.apply(
            client,
            clickhouse.ddl_mode,
            clickhouse.ep_home_path,
            Layout.of(clickhouse.migrations_dir).clickhouse(clickhouse.ddl_mode),
            on_applied=lambda m: context.log.info(f"applied {m.label}"),
            on_wait=context.log.info,
        )
        tables = ddl.tables(client, clickhouse.database)
    finally:
        client.close()
    context.log.info(
        f"{len(applied)} migrations applied ({clickhouse.ddl_mode} files) to {clickhouse.database}; "
        f"{len(status.applied)} in total, {len(status.pending)} pending"
    )
    return dg.MaterializeResult(
        metadata={
            "database": clickhouse.database,
            "database_created": created,
            "mode": clickhouse.ddl_mode,
            "files": dg.MetadataValue.json([m.label for m in applied]),
            "applied_this_run": dg.MetadataValue.json([m.version for m in applied]),
            "versions": dg.MetadataValue.json([a.version for a in status.applied]),
            "pending": len(status.pending),
            "tables": dg.MetadataValue.json({name: t["engine"] for name, t in tables.items()}),
            "table_count": len(tables),
        }
    )


engagement_enriched_table = dg.AssetSpec(
    key=ENRICHED_TABLE_KEY,
    owners=OWNERS,
    tags=writer("warehouse"),
    # streamed from the topic; older days loaded straight from Postgres by history_backfill
    deps=[engagement_enriched_topic, HISTORY_BACKFILL_KEY],
    group_name="warehouse",
    kinds={"clickhouse"},
    description="ClickHouse `engagement_enriched`: typed events, one per event_id when read with FINAL; "
    "filled continuously by the Kafka engine (compose) or `consume warehouse` (local), and for past "
    "days by `clickhouse/history_backfill`. Malformed messages go to `engagement_enriched_errors`; "
    "`content_engagement_minute` rolls it up by minute.",
)

enriched_errors_table = dg.AssetSpec(
    key=["clickhouse", "engagement_enriched_errors"],
    owners=OWNERS,
    tags=writer("warehouse"),
    deps=[engagement_enriched_topic],
    group_name="warehouse",
    kinds={"clickhouse"},
    description="ClickHouse `engagement_enriched_errors`: every message of the topic that could not be "
    "parsed into `engagement_enriched`, with the raw message and the reason. Should stay empty.",
)

minute_rollup_table = dg.AssetSpec(
    key=["clickhouse", "content_engagement_minute"],
    owners=OWNERS,
    tags=writer("warehouse"),
    deps=[ENRICHED_TABLE_KEY],
    group_name="warehouse",
    kinds={"clickhouse"},
    description="ClickHouse `content_engagement_minute`: per minute, content and event type (one row per "
    "type, any type), events, unique users and engagement seconds as replay-safe aggregate states; a "
    "materialized view fills it on every insert into `engagement_enriched`.",
)


def day_bounds(partition_key: str) -> tuple[date, datetime, datetime]:
    """A partition key as its UTC day and ``[start, end)`` instants."""
    day = date.fromisoformat(partition_key)
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    return day, start, start + timedelta(days=1)


@dg.asset(
    key=HISTORY_BACKFILL_KEY,
    owners=OWNERS,
    tags=writer("dagster"),
    deps=[
        SCHEMA_KEY,
        dg.AssetKey(["postgres", "engagement_events"]),
        dg.AssetKey(["postgres", "content"]),
    ],
    partitions_def=DAILY_PARTITIONS,
    group_name="warehouse",
    kinds={"postgres", "clickhouse"},
    description="Loads one UTC day straight from Postgres (engagement_events JOIN content) into "
    "engagement_enriched, enriched by the enrich consumer's own functions: for history older than "
    "Kafka keeps. Event ids the warehouse already holds for that day are skipped, so re-runs and "
    "overlap with streaming add no duplicates (and FINAL deduplicates any race).",
)
def history_backfill(
    context: dg.AssetExecutionContext, postgres: PostgresResource, clickhouse: ClickHouseResource
) -> dg.MaterializeResult:
    day, start, end = day_bounds(context.partition_key)

    def progress(r: backfill.BackfillResult) -> None:
        context.log.info(f"{day}: {r.source_rows:,} source rows read, {r.inserted:,} inserted so far")

    pg = postgres.connect()
    client = clickhouse.client()
    try:
        result = backfill.backfill_day(pg, client, start, end, IngestGate(clickhouse.ep_home_path), progress)
        loaded = ddl.scalar_int(
            client,
            f"SELECT count() FROM {ddl.ENRICHED} FINAL "
            "WHERE event_ts >= {start:DateTime64(3, 'UTC')} AND event_ts < {end:DateTime64(3, 'UTC')}",
            {"start": start, "end": end},
        )
    finally:
        client.close()
        pg.close()
    if result.invalid:
        context.log.warning(f"{result.invalid} source rows failed enrichment, e.g. {result.invalid_samples}")
    context.log.info(
        f"{day}: {result.source_rows:,} rows in Postgres, {result.already_loaded:,} already loaded, "
        f"{result.inserted:,} inserted, {result.invalid:,} invalid"
    )
    return dg.MaterializeResult(
        metadata={
            "day": str(day),
            "source_rows": result.source_rows,
            "already_loaded": result.already_loaded,
            "inserted": result.inserted,
            "invalid": result.invalid,
            "invalid_samples": dg.MetadataValue.json(result.invalid_samples),
            "events_in_warehouse": loaded,
        }
    )


@dg.asset(
    key=["clickhouse", "daily_content_engagement"],
    owners=OWNERS,
    tags=writer("dagster"),
    deps=[ENRICHED_TABLE_KEY, HISTORY_BACKFILL_KEY],
    partitions_def=DAILY_PARTITIONS,
    group_name="warehouse",
    kinds={"clickhouse"},
    description="Per UTC day and content: events by type, unique users, engagement seconds; with the "
    "day's breakdowns the dashboard reads for built days (`daily_engagement_breakdown`: hour, content "
    "type, device, event type, completion decile; `daily_content_by_device`). Each partition is rebuilt "
    "from `engagement_enriched FINAL` (deduplicated) and swapped in atomically; partitions are "
    "independent and safe to re-run or backfill from the UI.",
)
def daily_content_engagement(
    context: dg.AssetExecutionContext, clickhouse: ClickHouseResource
) -> dg.MaterializeResult:
    day, start, end = day_bounds(context.partition_key)
    client = clickhouse.client()
    try:
        written = rollup.rebuild_daily(client, day, start, end)
    finally:
        client.close()
    context.log.info(f"{day}: {written['rows']:,} content rows, {written['events']:,} events")
    return dg.MaterializeResult(
        metadata={
            "day": str(day),
            "rows": written["rows"],
            "events": written["events"],
        }
    )


daily_content_engagement_job = dg.define_asset_job(
    "daily_content_engagement_job",
    selection=[daily_content_engagement],
    description="Rebuild one day of clickhouse/daily_content_engagement.",
)

# 01:00 UTC: yesterday is complete, and an hour absorbs streaming lag; late events after
# that are picked up by re-running the partition (idempotent).
daily_content_engagement_schedule = dg.build_schedule_from_partitioned_job(
    daily_content_engagement_job,
    hour_of_day=1,
    minute_of_hour=0,
    name="daily_content_engagement_schedule",
    default_status=dg.DefaultScheduleStatus.RUNNING,
)


defs = dg.Definitions(
    assets=[
        clickhouse_schema,
        engagement_enriched_table,
        enriched_errors_table,
        minute_rollup_table,
        history_backfill,
        daily_content_engagement,
    ],
    jobs=[daily_content_engagement_job],
    schedules=[daily_content_engagement_schedule],
)
