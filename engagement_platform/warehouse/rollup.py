"""Rebuilding one day of the daily rollups from engagement_enriched FINAL (no Dagster here, so the
benchmark times exactly what the asset runs): daily_content_engagement, and the two breakdowns the
dashboard reads for built days (daily_engagement_breakdown, daily_content_by_device)."""

from __future__ import annotations

from datetime import date, datetime

from clickhouse_connect.driver.client import Client

from engagement_platform.warehouse import ddl

_DAY_ROWS = f"""
FROM {ddl.ENRICHED} FINAL
WHERE event_ts >= {{start:DateTime64(3, 'UTC')}} AND event_ts < {{end:DateTime64(3, 'UTC')}}
"""

DAILY_SELECT = f"""
SELECT
    toDate(event_ts) AS day,
    content_id,
    argMaxIf(content_type, enriched_at, NOT content_missing) AS content_type,
    argMaxIf(title, enriched_at, NOT content_missing) AS title,
    count() AS events,
    sumMap(map(event_type, toUInt64(1))) AS events_by_type,  -- whatever types the day holds
    uniqExact(user_id) AS unique_users,
    sum(ifNull(duration_ms, 0)) / 1000 AS engagement_seconds,
    avgOrNull(engagement_pct) AS avg_engagement_pct,
    now64(3, 'UTC') AS built_at
{_DAY_ROWS}
GROUP BY day, content_id
"""

# the completion decile (0, 10, ... 90; 100 % falls in 90), NULL when engagement_pct is; the
# dashboard's FINAL side uses the same expression. (least() would turn a NULL into its 9.)
PCT_BUCKET = (
    "if(engagement_pct IS NULL, NULL,"
    " toUInt8(least(intDiv(toUInt32(floor(assumeNotNull(engagement_pct))), 10), 9) * 10))"
)

BREAKDOWN_SELECT = f"""
SELECT
    toDate(event_ts) AS day,
    toHour(event_ts) AS hour,
    content_type,
    device,
    event_type,
    {PCT_BUCKET} AS pct_bucket,
    count() AS events,
    sum(ifNull(engagement_seconds, 0)) AS engagement_seconds,
    now64(3, 'UTC') AS built_at
{_DAY_ROWS}
GROUP BY day, hour, content_type, device, event_type, pct_bucket
"""

BY_DEVICE_SELECT = f"""
SELECT
    toDate(event_ts) AS day,
    content_id,
    device,
    argMaxIf(content_type, enriched_at, NOT content_missing) AS content_type,
    argMaxIf(title, enriched_at, NOT content_missing) AS title,
    count() AS events,
    sum(ifNull(engagement_seconds, 0)) AS engagement_seconds,
    sum(ifNull(engagement_pct, 0)) AS pct_sum,
    count(engagement_pct) AS pct_count,
    now64(3, 'UTC') AS built_at
{_DAY_ROWS}
GROUP BY day, content_id, device
"""

# table -> the SELECT that builds one of its days, in build order: the breakdowns first, since the
# dashboard reads a day from them once it is there, and daily_content_engagement last, since a day
# there means "built" (its check) only once all are
DAY_TABLES = {
    ddl.BREAKDOWN: BREAKDOWN_SELECT,
    ddl.BY_DEVICE: BY_DEVICE_SELECT,
    ddl.DAILY: DAILY_SELECT,
}


def rebuild_day(client: Client, table: str, day: date, start: datetime, end: datetime) -> int:
    """Rebuild one day (partition) of ``table`` atomically from its SELECT; returns its rows.

    The day is built in its own staging table and swapped in with REPLACE PARTITION, so
    readers never see it half-built and re-runs are idempotent. A day without events
    drops the partition instead (REPLACE from an empty source is refused by newer
    ClickHouse and silently drops on older ones, so do it explicitly).
    """
    # Identifiers cannot be query parameters in ALTER ... FROM; this name is built from our
    # constants and a date object, never from user text.
    stage = f"{table}_stage_{day:%Y%m%d}"
    client.command(f"DROP TABLE IF EXISTS {stage}")
    client.command(f"CREATE TABLE {stage} AS {table}")
    try:
        client.command(f"INSERT INTO {stage} {DAY_TABLES[table]}", parameters={"start": start, "end": end})
        rows = ddl.scalar_int(client, f"SELECT count() FROM {stage}")
        if rows:
            client.command(
                f"ALTER TABLE {table} REPLACE PARTITION {{day:Date}} FROM {stage}", parameters={"day": day}
            )
        else:
            client.command(f"ALTER TABLE {table} DROP PARTITION {{day:Date}}", parameters={"day": day})
    finally:
        client.command(f"DROP TABLE IF EXISTS {stage}")
    return rows


def rebuild_daily(client: Client, day: date, start: datetime, end: datetime) -> dict[str, int]:
    """Rebuild one day of every daily rollup, in ``DAY_TABLES`` order; returns the rows and
    events of daily_content_engagement."""
    rows = {table: rebuild_day(client, table, day, start, end) for table in DAY_TABLES}[ddl.DAILY]
    if not rows:
        return {"rows": 0, "events": 0}
    events = ddl.scalar_int(
        client, f"SELECT sum(events) FROM {ddl.DAILY} WHERE day = {{day:Date}}", {"day": day}
    )
    return {"rows": rows, "events": events}
