-- Cluster variant of 140_title_and_users_rollups.sql (WAREHOUSE_VARIANT=cluster, docker-compose.cluster.yml):
-- only the table engines differ (replicated, as the other rollups' cluster variants); the
-- database is a Replicated one, so this DDL reaches every replica. The comments of
-- 140_title_and_users_rollups.sql hold.
-- ClickHouse migration 140: the rollups of unique users and of one title's page (issue 23).
-- Applied once per database by `engagement-platform migrate up` (or the clickhouse/schema asset);
-- never edit it once applied anywhere: add the next migration instead.
-- ClickHouse has no transactions: a statement that fails leaves the ones before it applied,
-- and the whole file runs again next time, so write statements that can run twice.
--
-- Why: the analytics' unique users, and a title's page (its events by type, completion, devices,
-- audience), must answer any date range from rollups, not from engagement_enriched FINAL. The
-- daily rollups hold neither users per content type and device nor anything keyed by title first.
--
-- Every table is fed by a materialized view on engagement_enriched (so streaming, the history
-- backfill and reparse land here too) and, like 040/110, holds only states that a replayed
-- event leaves unchanged: exact, without FINAL, under any replay.
--   * users_daily: per UTC day, content type and device, the exact set of user ids
--     (uniqExact). The analytics' "unique users" merges the sets of the range: exact, and small
--     (a few hundred sets a week, each at most the day's users).
--   * title_engagement_minute: per content FIRST, minute, event type and device, the set of event
--     ids (uniqExact: a replay adds an id already there). Any grouping coarser than the key
--     (per hour, per type, per device, the total) is the union of sets: exact.
--   * title_completion_hour: per content, hour and completion decile, the set of event ids, from
--     the events with a known engagement_pct only (as the analytics' completion chart). A copy
--     enriched without its content has no pct and so never lands in a second decile.
--   * title_users_daily: per content, day and user, the event types seen as bits (groupBitOr:
--     1 played, 2 finished; 0 any other type): OR-ing a replay changes nothing. A title's unique
--     users over a range are its distinct user ids there, "played and also finished" those whose
--     bits OR to 3. Exact set logic; rows per title and day are at most its users that day.
--   * title_names: the title and type of each content (ReplacingMergeTree on content_id,
--     preferring a copy enriched with its content, then the latest, as engagement_enriched
--     does): what the page shows, and whether an id is known at all.
-- Keys hold '' for an unknown device or content type (a Nullable key would need a setting).
--
-- Migrated with history, as 110: each table and its view are created first, so live inserts
-- land from then on, then the history is inserted from engagement_enriched; an event in both is
-- one id in the set (or one OR) either way. Safe to run twice: IF NOT EXISTS, and a second
-- history insert changes no state.
CREATE TABLE IF NOT EXISTS users_daily
(
    day          Date,
    content_type LowCardinality(String),
    device       LowCardinality(String),
    users        AggregateFunction(uniqExact, UUID)
)
ENGINE = ReplicatedAggregatingMergeTree
PARTITION BY toYYYYMM(day)
ORDER BY (day, content_type, device);

CREATE MATERIALIZED VIEW IF NOT EXISTS users_daily_mv TO users_daily AS
SELECT
    toDate(event_ts) AS day,
    ifNull(content_type, '') AS content_type,
    ifNull(device, '') AS device,
    uniqExactState(assumeNotNull(user_id)) AS users
FROM engagement_enriched
WHERE user_id IS NOT NULL
GROUP BY day, content_type, device;

INSERT INTO users_daily
SELECT
    toDate(event_ts) AS day,
    ifNull(content_type, '') AS content_type,
    ifNull(device, '') AS device,
    uniqExactState(assumeNotNull(user_id)) AS users
FROM engagement_enriched
WHERE user_id IS NOT NULL
GROUP BY day, content_type, device;

CREATE TABLE IF NOT EXISTS title_engagement_minute
(
    content_id UUID,
    minute     DateTime('UTC'),
    event_type LowCardinality(String),
    device     LowCardinality(String),
    events     AggregateFunction(uniqExact, UInt64)
)
ENGINE = ReplicatedAggregatingMergeTree
PARTITION BY toYYYYMM(minute)
ORDER BY (content_id, minute, event_type, device);

CREATE MATERIALIZED VIEW IF NOT EXISTS title_engagement_minute_mv TO title_engagement_minute AS
SELECT
    content_id,
    toStartOfMinute(event_ts) AS minute,
    event_type,
    ifNull(device, '') AS device,
    uniqExactState(event_id) AS events
FROM engagement_enriched
GROUP BY content_id, minute, event_type, device;

INSERT INTO title_engagement_minute
SELECT
    content_id,
    toStartOfMinute(event_ts) AS minute,
    event_type,
    ifNull(device, '') AS device,
    uniqExactState(event_id) AS events
FROM engagement_enriched
GROUP BY content_id, minute, event_type, device;

-- pct_bucket: the completion decile as warehouse/rollup.py's PCT_BUCKET (0, 10, ... 90; 100 % in 90)
CREATE TABLE IF NOT EXISTS title_completion_hour
(
    content_id UUID,
    hour       DateTime('UTC'),
    pct_bucket UInt8,
    events     AggregateFunction(uniqExact, UInt64)
)
ENGINE = ReplicatedAggregatingMergeTree
PARTITION BY toYYYYMM(hour)
ORDER BY (content_id, hour, pct_bucket);

CREATE MATERIALIZED VIEW IF NOT EXISTS title_completion_hour_mv TO title_completion_hour AS
SELECT
    content_id,
    toStartOfHour(event_ts) AS hour,
    toUInt8(least(intDiv(toUInt32(floor(assumeNotNull(engagement_pct))), 10), 9) * 10) AS pct_bucket,
    uniqExactState(event_id) AS events
FROM engagement_enriched
WHERE engagement_pct IS NOT NULL
GROUP BY content_id, hour, pct_bucket;

INSERT INTO title_completion_hour
SELECT
    content_id,
    toStartOfHour(event_ts) AS hour,
    toUInt8(least(intDiv(toUInt32(floor(assumeNotNull(engagement_pct))), 10), 9) * 10) AS pct_bucket,
    uniqExactState(event_id) AS events
FROM engagement_enriched
WHERE engagement_pct IS NOT NULL
GROUP BY content_id, hour, pct_bucket;

CREATE TABLE IF NOT EXISTS title_users_daily
(
    content_id UUID,
    day        Date,
    user_id    UUID,
    flags      SimpleAggregateFunction(groupBitOr, UInt8)
)
ENGINE = ReplicatedAggregatingMergeTree
PARTITION BY toYYYYMM(day)
ORDER BY (content_id, day, user_id);

CREATE MATERIALIZED VIEW IF NOT EXISTS title_users_daily_mv TO title_users_daily AS
SELECT
    content_id,
    toDate(event_ts) AS day,
    assumeNotNull(user_id) AS user_id,
    groupBitOr(toUInt8(event_type = 'play') + 2 * toUInt8(event_type = 'finish')) AS flags
FROM (
    -- filtered apart: in one SELECT, WHERE user_id would read the alias above, never NULL
    SELECT content_id, event_ts, user_id, event_type FROM engagement_enriched WHERE user_id IS NOT NULL
)
GROUP BY content_id, day, user_id;

INSERT INTO title_users_daily
SELECT
    content_id,
    toDate(event_ts) AS day,
    assumeNotNull(user_id) AS user_id,
    groupBitOr(toUInt8(event_type = 'play') + 2 * toUInt8(event_type = 'finish')) AS flags
FROM (
    -- filtered apart: in one SELECT, WHERE user_id would read the alias above, never NULL
    SELECT content_id, event_ts, user_id, event_type FROM engagement_enriched WHERE user_id IS NOT NULL
)
GROUP BY content_id, day, user_id;

CREATE TABLE IF NOT EXISTS title_names
(
    content_id   UUID,
    title        Nullable(String),
    content_type LowCardinality(Nullable(String)),
    version      UInt64
)
ENGINE = ReplicatedReplacingMergeTree(version)
ORDER BY content_id;

CREATE MATERIALIZED VIEW IF NOT EXISTS title_names_mv TO title_names AS
SELECT
    content_id,
    argMax(title, v) AS title,
    argMax(content_type, v) AS content_type,
    max(v) AS version
FROM (
    -- engagement_enriched's version, written out: a view's block need not carry MATERIALIZED columns
    SELECT content_id, title, content_type,
        (toUInt64(NOT content_missing) * 10000000000000) + toUInt64(toUnixTimestamp64Milli(enriched_at)) AS v
    FROM engagement_enriched
)
GROUP BY content_id;

INSERT INTO title_names
SELECT
    content_id,
    argMax(title, v) AS title,
    argMax(content_type, v) AS content_type,
    max(v) AS version
FROM (
    -- engagement_enriched's version, written out: a view's block need not carry MATERIALIZED columns
    SELECT content_id, title, content_type,
        (toUInt64(NOT content_missing) * 10000000000000) + toUInt64(toUnixTimestamp64Milli(enriched_at)) AS v
    FROM engagement_enriched
)
GROUP BY content_id;
