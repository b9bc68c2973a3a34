-- Cluster variant of 050_daily_content_engagement.sql (WAREHOUSE_VARIANT=cluster, docker-compose.cluster.yml): replicated (the rollup's
-- staging table, CREATE TABLE ... AS this one, gets a Keeper path of its own from its UUID).
-- The database is a Replicated one (created by compose/clickhouse-cluster/), so this DDL reaches
-- every replica by itself; only the table engines differ from 050_daily_content_engagement.sql, whose comments hold.
--
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
ENGINE = ReplicatedMergeTree
PARTITION BY day
ORDER BY content_id;
