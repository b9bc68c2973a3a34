-- Cluster variant of 020_engagement_enriched.sql (WAREHOUSE_VARIANT=cluster,
-- docker-compose.cluster.yml): the events live in engagement_enriched_local, a
-- ReplicatedReplacingMergeTree on every replica, and `engagement_enriched` is a Distributed table
-- in front of it, so everything that reads or writes engagement_enriched by name (the parse
-- chain's view, the rollups, the dashboard, the checks) goes through it unchanged.
-- The database is a Replicated one (created by compose/clickhouse-cluster/), so this DDL reaches
-- every replica by itself; deduplication and `version` are as in 020_engagement_enriched.sql.
--
-- Writes: the parse chain's view inserts into the Distributed table, which hands the block to
-- one replica of the shard (internal_replication: the replicated table copies it to the others;
-- distributed_foreground_insert=1 in compose/clickhouse-cluster/ makes that insert synchronous,
-- so a block is stored before the Kafka engine commits its offsets). Views on engagement_enriched
-- (the minute rollup) fire on that insert, on the replica that made it, once.
-- Reads: `SELECT ... FROM engagement_enriched FINAL` is sent to one replica of each shard. The
-- sharding key is the event's identity, so with more shards every copy of an event still lands
-- on one shard and FINAL stays exact there (the compose cluster runs one shard, two replicas).
CREATE TABLE IF NOT EXISTS engagement_enriched_local
(
    event_id           UInt64,
    content_id         UUID,
    user_id            Nullable(UUID),
    event_type         LowCardinality(String),
    event_ts           DateTime64(3, 'UTC'),
    device             LowCardinality(Nullable(String)),
    duration_ms        Nullable(UInt64),
    engagement_seconds Nullable(Float64),
    engagement_pct     Nullable(Float64),
    content_type       LowCardinality(Nullable(String)),
    title              Nullable(String),
    slug               Nullable(String),
    length_seconds     Nullable(UInt32),
    publish_ts         Nullable(DateTime64(3, 'UTC')),
    source_ts          Nullable(DateTime64(3, 'UTC')),
    enriched_at        DateTime64(3, 'UTC'),
    content_missing    Bool,
    ingested_at        DateTime64(3, 'UTC') DEFAULT now64(3),
    version            UInt64 MATERIALIZED
        (toUInt64(NOT content_missing) * 10000000000000) + toUInt64(toUnixTimestamp64Milli(enriched_at))
)
ENGINE = ReplicatedReplacingMergeTree(version)
PARTITION BY toYYYYMM(event_ts)
ORDER BY (event_ts, event_id);

CREATE TABLE IF NOT EXISTS engagement_enriched AS engagement_enriched_local
ENGINE = Distributed(engagement, currentDatabase(), engagement_enriched_local, cityHash64(event_id));
