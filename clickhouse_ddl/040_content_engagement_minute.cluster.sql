-- Cluster variant of 040_content_engagement_minute.sql (WAREHOUSE_VARIANT=cluster, docker-compose.cluster.yml): replicated. Its view reads
-- engagement_enriched, the Distributed table (020's cluster variant), on the replica that inserts.
-- The database is a Replicated one (created by compose/clickhouse-cluster/), so this DDL reaches
-- every replica by itself; only the table engines differ from 040_content_engagement_minute.sql, whose comments hold.
--
-- Per minute and content: events (overall and by type), unique users, engagement time.
-- Fed by a materialized view on engagement_enriched, so every path into the warehouse
-- (streaming, history_backfill) lands here too.
--
-- Replays insert the same events again, and a view only sees the block being inserted,
-- so every column is a state that is idempotent under re-insertion of the same event:
--   * counts are uniqExact(event_id) states (overall, and per type with -If): an event
--     counted twice is still one id in the set;
--   * unique users: uniqExact(user_id) (null user ids are not counted);
--   * engagement time: a plain sum(duration_ms) would add a replayed event twice. The exact
--     alternative used here is maxMap(event_id -> duration_ms): one entry per event, and a
--     replay (same id, same duration) leaves it unchanged. Read it as
--     arraySum(mapValues(maxMapMerge(engagement_ms))) / 1000.
--     Trade-off: like the uniqExact sets, this keeps one (id, ms) pair per event, so the
--     rollup does not shrink the data much; what it buys is per-minute/content grouping
--     without FINAL, exact under any replay. The daily table (daily_content_engagement,
--     rebuilt from engagement_enriched FINAL by Dagster) is the compact, exact long-term
--     aggregate.
-- Read with the -Merge functions and GROUP BY (minute, content_id): rows of one key may
-- not be merged yet.
CREATE TABLE IF NOT EXISTS content_engagement_minute
(
    minute        DateTime('UTC'),
    content_id    UUID,
    events        AggregateFunction(uniqExact, UInt64),
    plays         AggregateFunction(uniqExactIf, UInt64, UInt8),
    pauses        AggregateFunction(uniqExactIf, UInt64, UInt8),
    finishes      AggregateFunction(uniqExactIf, UInt64, UInt8),
    clicks        AggregateFunction(uniqExactIf, UInt64, UInt8),
    unique_users  AggregateFunction(uniqExact, Nullable(UUID)),
    engagement_ms AggregateFunction(maxMap, Map(UInt64, UInt64))
)
ENGINE = ReplicatedAggregatingMergeTree
PARTITION BY toYYYYMM(minute)
ORDER BY (minute, content_id);

CREATE MATERIALIZED VIEW IF NOT EXISTS content_engagement_minute_mv TO content_engagement_minute AS
SELECT
    toStartOfMinute(event_ts) AS minute,
    content_id,
    uniqExactState(event_id) AS events,
    uniqExactIfState(event_id, event_type = 'play') AS plays,
    uniqExactIfState(event_id, event_type = 'pause') AS pauses,
    uniqExactIfState(event_id, event_type = 'finish') AS finishes,
    uniqExactIfState(event_id, event_type = 'click') AS clicks,
    uniqExactState(user_id) AS unique_users,
    maxMapState(map(event_id, ifNull(duration_ms, 0))) AS engagement_ms
FROM engagement_enriched
GROUP BY minute, content_id;
