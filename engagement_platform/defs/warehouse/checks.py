"""Checks that the warehouse is telling the truth: nothing failing to parse, rollups agreeing with FINAL."""

from datetime import UTC, datetime, timedelta

import dagster as dg

from engagement_platform.defs.monitoring import Monitor, MonitorContext, Report
from engagement_platform.defs.warehouse.assets import ENRICHED_TABLE_KEY, daily_content_engagement
from engagement_platform.defs.warehouse.resources import ClickHouseResource
from engagement_platform.monitoring import reconcile
from engagement_platform.warehouse import ddl

# Rows younger than this may still be in flight between the two reads a check compares.
SETTLE = "INTERVAL 2 MINUTE"


@dg.asset_check(
    asset=ENRICHED_TABLE_KEY,
    description="No message landed in engagement_enriched_errors in the last hour. A failure means the "
    "enricher and the warehouse disagree on the record format; the rows keep the raw message and reason.",
)
def no_recent_parse_errors(clickhouse: ClickHouseResource) -> dg.AssetCheckResult:
    rows = clickhouse.rows(
        f"SELECT reason, count() AS n, any(raw) FROM {ddl.ERRORS} "
        "WHERE received_at >= now64(3) - INTERVAL 1 HOUR GROUP BY reason ORDER BY n DESC LIMIT 10"
    )
    total = sum(int(r[1]) for r in rows)
    return dg.AssetCheckResult(
        passed=total == 0,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={
            "errors_last_hour": total,
            "by_reason": dg.MetadataValue.json({r[0]: int(r[1]) for r in rows}),
            "samples": dg.MetadataValue.json({r[0]: r[2][:500] for r in rows}),
        },
    )


@dg.asset_check(
    asset=ENRICHED_TABLE_KEY,
    description="content_engagement_minute (fed by a materialized view, replay-idempotent states) counts "
    "the same events per minute and event type as engagement_enriched FINAL over the last 24 hours.",
)
def minute_rollup_matches_final(clickhouse: ClickHouseResource) -> dg.AssetCheckResult:
    rows = clickhouse.rows(
        f"""
        WITH
            now64(3) - INTERVAL 1 DAY AS lo,
            now64(3) - {SETTLE} AS hi
        SELECT minute, event_type, f.events, r.events
        FROM (
            SELECT toStartOfMinute(event_ts) AS minute, event_type, count() AS events
            FROM {ddl.ENRICHED} FINAL
            WHERE event_ts >= toStartOfMinute(lo) AND event_ts < toStartOfMinute(hi)
            GROUP BY minute, event_type
        ) AS f
        FULL OUTER JOIN (
            SELECT minute, event_type, uniqExactMerge(events) AS events
            FROM {ddl.MINUTE}
            WHERE minute >= toStartOfMinute(lo) AND minute < toStartOfMinute(hi)
            GROUP BY minute, event_type
        ) AS r USING (minute, event_type)
        WHERE f.events != r.events
        ORDER BY minute, event_type
        LIMIT 20
        """
    )
    return dg.AssetCheckResult(
        passed=not rows,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={
            "mismatched_minutes": len({r[0] for r in rows}),
            "samples": dg.MetadataValue.json([[str(m), t, int(f), int(r)] for m, t, f, r in rows]),
        },
    )


@dg.asset_check(
    asset=daily_content_engagement,
    description="Each day built in the last 30 days still totals the events engagement_enriched FINAL "
    "holds for it. A mismatch means events arrived after the build (late data, a history backfill): "
    "re-run that partition.",
)
def daily_matches_final(clickhouse: ClickHouseResource) -> dg.AssetCheckResult:
    rows = clickhouse.rows(
        f"""
        SELECT d.day, d.events, f.events
        FROM (
            SELECT day, sum(events) AS events FROM {ddl.DAILY}
            WHERE day >= today() - 30 GROUP BY day
        ) AS d
        LEFT JOIN (
            SELECT toDate(event_ts) AS day, count() AS events FROM {ddl.ENRICHED} FINAL
            WHERE event_ts >= toDateTime64(today() - 30, 3, 'UTC') GROUP BY day
        ) AS f USING (day)
        WHERE d.events != f.events
        ORDER BY day
        """
    )
    return dg.AssetCheckResult(
        passed=not rows,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={
            "stale_days": dg.MetadataValue.json([str(r[0]) for r in rows]),
            "samples": dg.MetadataValue.json([[str(d), int(a), int(b)] for d, a, b in rows]),
        },
    )


WAREHOUSE_CHECKS = [no_recent_parse_errors, minute_rollup_matches_final, daily_matches_final]

warehouse_checks_job = dg.define_asset_job(
    "warehouse_checks_job",
    selection=dg.AssetSelection.checks(*WAREHOUSE_CHECKS),
    description="The warehouse's own checks: parse errors, minute rollup and daily rollup vs FINAL.",
)

# the minute rollup and parse errors change by the minute; a quarter hour keeps the history readable
warehouse_checks_schedule = dg.ScheduleDefinition(
    name="warehouse_checks_schedule",
    job=warehouse_checks_job,
    cron_schedule="*/15 * * * *",
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.RUNNING,
)


# --- reconciliation with the source, evaluated by a sensor -------------------------------------

MATCHES_POSTGRES = dg.AssetCheckKey(ENRICHED_TABLE_KEY, "matches_postgres")
NO_DUPLICATES = dg.AssetCheckKey(ENRICHED_TABLE_KEY, "no_duplicate_event_ids")
# closed windows: an hour back, leaving the last two minutes to events still on their way
LOOK_BACK = timedelta(hours=1)
IN_FLIGHT = timedelta(minutes=2)


def reconciliation_monitor(look_back: timedelta = LOOK_BACK, settle: timedelta = IN_FLIGHT) -> Monitor:
    def evaluate(ctx: MonitorContext) -> Report:
        end = datetime.now(UTC) - settle
        start = end - look_back
        conn = ctx.resources.postgres.reader_connect()
        client = ctx.resources.clickhouse.reader_client()
        try:
            diff = reconcile.window_diff(conn, client, start, end)
            duplicates = reconcile.clickhouse_duplicates(client)
        finally:
            client.close()
            conn.close()
        ids = reconcile.ids_verdict(diff, start, end)
        return Report([(MATCHES_POSTGRES, ids), (NO_DUPLICATES, reconcile.duplicates_verdict(duplicates))])

    return Monitor(
        name="warehouse_reconciliation",
        specs=[
            dg.AssetCheckSpec(
                MATCHES_POSTGRES.name,
                asset=ENRICHED_TABLE_KEY,
                description="For the last closed hour (up to two minutes ago), engagement_enriched FINAL "
                "holds exactly the event ids Postgres holds: ERROR for any missing (with a sample), WARN "
                "for any extra.",
            ),
            dg.AssetCheckSpec(
                NO_DUPLICATES.name,
                asset=ENRICHED_TABLE_KEY,
                description="No event id appears twice in engagement_enriched FINAL.",
            ),
        ],
        evaluate=evaluate,
        resource_keys=frozenset({"postgres", "clickhouse"}),
        interval_seconds=60,
        description="Compares the warehouse with the source by event id.",
    )


RECONCILIATION = reconciliation_monitor()
warehouse_reconciliation_sensor = RECONCILIATION.sensor()
warehouse_reconciliation_checks = RECONCILIATION.check()


defs = dg.Definitions(
    asset_checks=[*WAREHOUSE_CHECKS, warehouse_reconciliation_checks],
    jobs=[warehouse_checks_job],
    schedules=[warehouse_checks_schedule],
    sensors=[warehouse_reconciliation_sensor],
)
