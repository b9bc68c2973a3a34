-- Cluster variant of 070_daily_breakdown.sql (WAREHOUSE_VARIANT=cluster, docker-compose.cluster.yml): replicated.
-- The database is a Replicated one (created by compose/clickhouse-cluster/), so this DDL reaches
-- every replica by itself; only the table engines differ from 070_daily_breakdown.sql, whose comments hold.
--
-- Per UTC day, the breakdowns the dashboard filters and charts over a date range; written only
-- by the Dagster asset clickhouse/daily_content_engagement, together with that table and in the
-- same way (one day rebuilt from engagement_enriched FINAL, swapped in with REPLACE PARTITION).
--
-- Why: exact analytics over days need deduplication, and FINAL (or merging uniqExact states)
-- over millions of rows costs most of a second per query. A day is deduplicated once, when it
-- is built; the dashboard reads built days from here and only the days not built yet (today)
-- from engagement_enriched FINAL (warehouse/queries.py).
--
-- daily_engagement_breakdown: per hour, content type, device, event type and completion decile
-- (engagement_pct 0-9.99 -> 0, ..., 90-100 -> 90; NULL when unknown, e.g. clicks). A few
-- thousand rows a day, whatever the traffic.
CREATE TABLE IF NOT EXISTS daily_engagement_breakdown
(
    day                Date,
    hour               UInt8,
    content_type       LowCardinality(Nullable(String)),
    device             LowCardinality(Nullable(String)),
    event_type         LowCardinality(String),
    pct_bucket         Nullable(UInt8),
    events             UInt64,
    engagement_seconds Float64,
    built_at           DateTime64(3, 'UTC')
)
ENGINE = ReplicatedMergeTree
PARTITION BY day
ORDER BY (hour, event_type);

-- daily_content_by_device: per content and device, for the top content of a date range filtered
-- by content type and device. Completion is kept as a sum and a count so days add up exactly.
CREATE TABLE IF NOT EXISTS daily_content_by_device
(
    day                Date,
    content_id         UUID,
    device             LowCardinality(Nullable(String)),
    content_type       LowCardinality(Nullable(String)),
    title              Nullable(String),
    events             UInt64,
    engagement_seconds Float64,
    pct_sum            Float64,
    pct_count          UInt64,
    built_at           DateTime64(3, 'UTC')
)
ENGINE = ReplicatedMergeTree
PARTITION BY day
ORDER BY content_id;
