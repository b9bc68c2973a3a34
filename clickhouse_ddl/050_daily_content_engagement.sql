-- Per UTC day and content; written only by the Dagster asset
-- clickhouse/daily_content_engagement, which rebuilds one day at a time from
-- engagement_enriched FINAL into a staging table and swaps it in with
-- ALTER TABLE ... REPLACE PARTITION (atomic: readers see the old day or the new day,
-- never a half-built one). One partition per day is what makes that swap possible; at a
-- few hundred rows a day per content, a few thousand partitions over years stay cheap.
CREATE TABLE IF NOT EXISTS daily_content_engagement
(
    day                Date,
    content_id         UUID,
    content_type       LowCardinality(Nullable(String)),
    title              Nullable(String),
    events             UInt64,
    plays              UInt64,
    pauses             UInt64,
    finishes           UInt64,
    clicks             UInt64,
    unique_users       UInt64,
    engagement_seconds Float64,
    avg_engagement_pct Nullable(Float64),
    built_at           DateTime64(3, 'UTC')
)
ENGINE = MergeTree
PARTITION BY day
ORDER BY content_id;
