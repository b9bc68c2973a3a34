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
ENGINE = MergeTree
PARTITION BY toYYYYMM(received_at)
ORDER BY received_at
TTL toDateTime(received_at) + INTERVAL 90 DAY;
