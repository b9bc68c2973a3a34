-- Cluster variant of 110_minute_rollup_by_type.sql (WAREHOUSE_VARIANT=cluster, docker-compose.cluster.yml): the new table is
-- replicated, as 040's cluster variant made the old one.
-- The database is a Replicated one (created by compose/clickhouse-cluster/), so this DDL reaches
-- every replica by itself; only the table engines differ from 110_minute_rollup_by_type.sql, whose comments hold.
--
-- content_engagement_minute keeps counts per event type as rows: one row per (minute,
-- content_id, event_type) instead of one column per known type, so a new type is counted
-- without a schema change. Each state stays idempotent under replays (see
-- 040_content_engagement_minute.sql). Per (minute, content) across types:
--   events        = sum(uniqExactMerge(events)) over its types (an event has one type);
--   unique users  = uniqExactMerge(unique_users) over all its rows (exact: sets merge);
--   engagement ms = maxMapMerge(engagement_ms) over all its rows.
--
-- Migrated with its history: the new table is rebuilt from engagement_enriched, the rollup's
-- source of truth (the states are idempotent, so rows also counted by the live view count
-- once), then the names are swapped, so the table stays content_engagement_minute and its
-- view content_engagement_minute_mv.
--
-- No insert misses the new table at any moment, even with ingestion running:
--   1. the new table and a view into it start catching live inserts BEFORE the history
--      rebuild reads engagement_enriched, so every event is in one or both;
--   2. the final view is created TO content_engagement_minute while that name is still the
--      old table (a view targets a table by name, and must find its columns there: the old
--      table, discarded afterwards, gets an event_type column for that) ...
--   3. ... so after EXCHANGE it writes into the new table, and only then the temporary view
--      and the old table go.
-- The three SELECTs below are the same rollup and must stay identical (a test compares them).
-- Safe to run twice: leftovers of an interrupted run are dropped first, and a second run
-- rebuilds the new shape from engagement_enriched once more (a full read of it: the
-- migration runner applies this file once).
DROP VIEW IF EXISTS content_engagement_minute_next_mv;

DROP TABLE IF EXISTS content_engagement_minute_next SYNC;

CREATE TABLE IF NOT EXISTS content_engagement_minute_next
(
    minute        DateTime('UTC'),
    content_id    UUID,
    event_type    LowCardinality(String),
    events        AggregateFunction(uniqExact, UInt64),
    unique_users  AggregateFunction(uniqExact, Nullable(UUID)),
    engagement_ms AggregateFunction(maxMap, Map(UInt64, UInt64))
)
ENGINE = ReplicatedAggregatingMergeTree
PARTITION BY toYYYYMM(minute)
ORDER BY (minute, content_id, event_type);

CREATE MATERIALIZED VIEW IF NOT EXISTS content_engagement_minute_next_mv TO content_engagement_minute_next AS
SELECT
    toStartOfMinute(event_ts) AS minute,
    content_id,
    event_type,
    uniqExactState(event_id) AS events,
    uniqExactState(user_id) AS unique_users,
    maxMapState(map(event_id, ifNull(duration_ms, 0))) AS engagement_ms
FROM engagement_enriched
GROUP BY minute, content_id, event_type;

INSERT INTO content_engagement_minute_next
SELECT
    toStartOfMinute(event_ts) AS minute,
    content_id,
    event_type,
    uniqExactState(event_id) AS events,
    uniqExactState(user_id) AS unique_users,
    maxMapState(map(event_id, ifNull(duration_ms, 0))) AS engagement_ms
FROM engagement_enriched
GROUP BY minute, content_id, event_type;

DROP VIEW IF EXISTS content_engagement_minute_mv;

ALTER TABLE content_engagement_minute ADD COLUMN IF NOT EXISTS event_type LowCardinality(String) AFTER content_id;

CREATE MATERIALIZED VIEW IF NOT EXISTS content_engagement_minute_mv TO content_engagement_minute AS
SELECT
    toStartOfMinute(event_ts) AS minute,
    content_id,
    event_type,
    uniqExactState(event_id) AS events,
    uniqExactState(user_id) AS unique_users,
    maxMapState(map(event_id, ifNull(duration_ms, 0))) AS engagement_ms
FROM engagement_enriched
GROUP BY minute, content_id, event_type;

EXCHANGE TABLES content_engagement_minute AND content_engagement_minute_next;

DROP VIEW IF EXISTS content_engagement_minute_next_mv;

DROP TABLE IF EXISTS content_engagement_minute_next SYNC;
