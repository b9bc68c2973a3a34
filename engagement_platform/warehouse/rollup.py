"""Rebuilding one day of daily_content_engagement from engagement_enriched FINAL (no Dagster here,
so the benchmark times exactly what the asset runs)."""

from __future__ import annotations

from datetime import date, datetime

from clickhouse_connect.driver.client import Client

from engagement_platform.warehouse import ddl

DAILY_SELECT = f"""
SELECT
    toDate(event_ts) AS day,
    content_id,
    argMaxIf(content_type, enriched_at, NOT content_missing) AS content_type,
    argMaxIf(title, enriched_at, NOT content_missing) AS title,
    count() AS events,
    countIf(event_type = 'play') AS plays,
    countIf(event_type = 'pause') AS pauses,
    countIf(event_type = 'finish') AS finishes,
    countIf(event_type = 'click') AS clicks,
    uniqExact(user_id) AS unique_users,
    sum(ifNull(duration_ms, 0)) / 1000 AS engagement_seconds,
    avgOrNull(engagement_pct) AS avg_engagement_pct,
    now64(3, 'UTC') AS built_at
FROM {ddl.ENRICHED} FINAL
WHERE event_ts >= {{start:DateTime64(3, 'UTC')}} AND event_ts < {{end:DateTime64(3, 'UTC')}}
GROUP BY day, content_id
"""


def rebuild_daily(client: Client, day: date, start: datetime, end: datetime) -> dict[str, int]:
    """Rebuild one day of daily_content_engagement atomically; returns rows and events written.

    The day is built in its own staging table and swapped in with REPLACE PARTITION, so
    readers never see it half-built and re-runs are idempotent. A day without events
    drops the partition instead (REPLACE from an empty source is refused by newer
    ClickHouse and silently drops on older ones, so do it explicitly).
    """
    # Identifiers cannot be query parameters in ALTER ... FROM; this name is built from a
    # date object, never from user text.
    stage = f"{ddl.DAILY}_stage_{day:%Y%m%d}"
    client.command(f"DROP TABLE IF EXISTS {stage}")
    client.command(f"CREATE TABLE {stage} AS {ddl.DAILY}")
    try:
        client.command(f"INSERT INTO {stage} {DAILY_SELECT}", parameters={"start": start, "end": end})
        rows, events = client.query(f"SELECT count(), sum(events) FROM {stage}").result_rows[0]
        if rows:
            client.command(
                f"ALTER TABLE {ddl.DAILY} REPLACE PARTITION {{day:Date}} FROM {stage}",
                parameters={"day": day},
            )
        else:
            client.command(f"ALTER TABLE {ddl.DAILY} DROP PARTITION {{day:Date}}", parameters={"day": day})
    finally:
        client.command(f"DROP TABLE IF EXISTS {stage}")
    return {"rows": int(rows), "events": int(events)}
