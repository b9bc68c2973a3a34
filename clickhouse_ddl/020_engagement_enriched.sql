-- Enriched events, typed, one row per event_id once deduplicated: read with FINAL.
--
-- Replays are normal (at-least-once upstream, bridge restarts, a reset consumer group), so
-- the same event_id arrives many times. ReplacingMergeTree keeps one row per sorting key
-- within a partition. Both the partition (month of event_ts) and the sorting key
-- (event_ts, event_id) are functions of the event itself: every copy of an event carries
-- the same event_ts (the immutable source timestamp, truncated to ms by the enricher), so
-- the effective identity is event_id alone. `SELECT ... FROM engagement_enriched FINAL`
-- therefore returns each event exactly once, also before background merges ran.
--
-- Which copy survives: `version` prefers a copy enriched WITH its content over one that
-- timed out waiting for it (content_missing), then the most recent enrichment.
--
-- Nullable only where the enriched record can carry null: user_id, device and duration_ms
-- are nullable in the source; the content columns are null when content_missing; the
-- engagement figures are null when their inputs are unknown.
CREATE TABLE IF NOT EXISTS engagement_enriched
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
ENGINE = ReplacingMergeTree(version)
PARTITION BY toYYYYMM(event_ts)
ORDER BY (event_ts, event_id);
