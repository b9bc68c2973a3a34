-- Cluster variant of 030_engagement_enriched_errors.sql (WAREHOUSE_VARIANT=cluster, docker-compose.cluster.yml): replicated.
-- The database is a Replicated one (created by compose/clickhouse-cluster/), so this DDL reaches
-- every replica by itself; only the table engines differ from 030_engagement_enriched_errors.sql, whose comments hold.
--
-- Messages that could not become an engagement_enriched row: the raw text as received and
-- the first reason found (reason codes as the enricher's: bad_json, wrong_type,
-- missing_field, bad_uuid, unknown_event_type, bad_timestamp, out_of_range,
-- negative_duration). Nothing is dropped silently; kept 90 days.
CREATE TABLE IF NOT EXISTS engagement_enriched_errors
(
    raw         String,
    reason      String,
    received_at DateTime64(3, 'UTC')
)
ENGINE = ReplicatedMergeTree
PARTITION BY toYYYYMM(received_at)
ORDER BY received_at
TTL toDateTime(received_at) + INTERVAL 90 DAY;
