-- ClickHouse migration 130: the parse view's typed fast path (issue 22; design: issue 13's note).
-- Applied once per database by `engagement-platform migrate up` (or the clickhouse/schema asset);
-- never edit it once applied anywhere: add the next migration instead.
-- ClickHouse has no transactions: a statement that fails leaves the ones before it applied,
-- and the whole file runs again next time, so write statements that can run twice.
--
-- Why: the per-field checks of 100_open_event_types.sql (a Map of every field's raw JSON, then
-- JSONType of each) cost ~85% of the warehouse's view chain. Almost every message is exactly
-- what the enricher writes, so those take a typed path: one typed JSONExtract reads every
-- field, and the message must start with exactly the bytes the enricher would write for those
-- values (so every field is there, in order, of its JSON type, without escapes). Every other
-- message goes through today's checks unchanged, so each error reason in
-- engagement_enriched_errors stays exactly what it was: the fast path only takes messages
-- those checks accept, and converts their values with the same functions.
-- Measured server-side (INSERT ... SELECT of 100,000 enriched messages, chdb 26.9, CPU time):
-- the whole chain 8.1 us a row instead of 15.1; the parse front 4.2 us instead of 11.3.
--
--   engagement_enriched_ingest
--     -> [engagement_enriched_parse_mv]   -> engagement_enriched_shaped (Null: raw, fast, typed)
--     -> [engagement_enriched_fast_mv]    fast     -> engagement_enriched_parsed (reason '')
--     -> [engagement_enriched_checked_mv] NOT fast -> engagement_enriched_parsed (100's checks)
--     -> engagement_enriched_mv / engagement_enriched_errors_mv, as before
--
-- The view that reads engagement_enriched_ingest keeps its name, engagement_enriched_parse_mv:
-- a later migration that replaces "the parse view" by that name with a view writing
-- engagement_enriched_parsed itself (as 100 did) leaves the two views below idle, never doubled.
-- Sinks are created before the views that write into them. Replaced as DROP + CREATE, with
-- ingestion paused by the migration runner (README "Changing the schema"); safe to run twice.
DROP VIEW IF EXISTS engagement_enriched_parse_mv;

DROP VIEW IF EXISTS engagement_enriched_fast_mv;

DROP VIEW IF EXISTS engagement_enriched_checked_mv;

CREATE TABLE IF NOT EXISTS engagement_enriched_shaped
(
    raw   String,
    fast  Bool,  -- the message has the enricher's exact shape and every value passed its check
    typed Tuple(
        event_id           Nullable(UInt64),
        content_id         Nullable(UUID),
        user_id            Nullable(UUID),
        event_type         String,
        event_ts           Nullable(DateTime64(3, 'UTC')),
        device             Nullable(String),
        duration_ms        Nullable(UInt64),
        engagement_seconds Nullable(Float64),
        engagement_pct     Nullable(Float64),
        content_type       Nullable(String),
        title              Nullable(String),
        slug               Nullable(String),
        length_seconds     Nullable(UInt32),
        publish_ts         Nullable(DateTime64(3, 'UTC')),
        source_ts          Nullable(DateTime64(3, 'UTC')),
        enriched_at        Nullable(DateTime64(3, 'UTC')),
        content_missing    Bool
    )  -- the values when fast; meaningless otherwise
)
ENGINE = Null;

CREATE MATERIALIZED VIEW IF NOT EXISTS engagement_enriched_fast_mv TO engagement_enriched_parsed AS
SELECT
    raw,
    now64(3, 'UTC') AS received_at,
    '' AS reason,
    typed.event_id AS event_id,
    typed.content_id AS content_id,
    typed.user_id AS user_id,
    typed.event_type AS event_type,
    typed.event_ts AS event_ts,
    typed.device AS device,
    typed.duration_ms AS duration_ms,
    typed.engagement_seconds AS engagement_seconds,
    typed.engagement_pct AS engagement_pct,
    typed.content_type AS content_type,
    typed.title AS title,
    typed.slug AS slug,
    typed.length_seconds AS length_seconds,
    typed.publish_ts AS publish_ts,
    typed.source_ts AS source_ts,
    typed.enriched_at AS enriched_at,
    typed.content_missing AS content_missing
FROM engagement_enriched_shaped
WHERE fast;

-- 100_open_event_types.sql's checks, unchanged but for their source: the messages that are not fast.
CREATE MATERIALIZED VIEW IF NOT EXISTS engagement_enriched_checked_mv TO engagement_enriched_parsed AS
WITH
    -- The message is parsed once into field -> raw JSON text of its value; every check and
    -- extraction below then works on those small texts (parsing the whole message once per
    -- field made this view ~5x slower).
    CAST(JSONExtractKeysAndValuesRaw(raw), 'Map(String, String)') AS m,
    -- ISO-8601 as the enricher writes it (best-effort parsing alone would take '12' for a date)
    (s -> if(match(s, '^\\d{4}-\\d{2}-\\d{2}[T ]\\d{2}:\\d{2}:\\d{2}(\\.\\d{1,9})?(Z|[+-]\\d{2}(:?\\d{2})?)?$'),
             parseDateTime64BestEffortOrNull(s, 3, 'UTC'), NULL)) AS parse_ts,
    -- the JSON type of every field, for the checks below ('Null' when absent or null)
    toString(JSONType(m['event_id'])) AS t_event_id,
    toString(JSONType(m['content_id'])) AS t_content_id,
    toString(JSONType(m['user_id'])) AS t_user_id,
    toString(JSONType(m['event_type'])) AS t_event_type,
    toString(JSONType(m['event_ts'])) AS t_event_ts,
    toString(JSONType(m['device'])) AS t_device,
    toString(JSONType(m['duration_ms'])) AS t_duration_ms,
    toString(JSONType(m['engagement_seconds'])) AS t_engagement_seconds,
    toString(JSONType(m['engagement_pct'])) AS t_engagement_pct,
    toString(JSONType(m['content_type'])) AS t_content_type,
    toString(JSONType(m['title'])) AS t_title,
    toString(JSONType(m['slug'])) AS t_slug,
    toString(JSONType(m['length_seconds'])) AS t_length_seconds,
    toString(JSONType(m['publish_ts'])) AS t_publish_ts,
    toString(JSONType(m['source_ts'])) AS t_source_ts,
    toString(JSONType(m['enriched_at'])) AS t_enriched_at,
    toString(JSONType(m['content_missing'])) AS t_content_missing
SELECT
    raw,
    now64(3, 'UTC') AS received_at,
    multiIf(
        NOT isValidJSON(raw), 'bad_json',
        JSONType(raw) != 'Object', 'wrong_type: message must be a JSON object',
        t_event_id = 'Null', 'missing_field: event_id',
        t_event_id != 'Int64' AND t_event_id != 'UInt64', 'wrong_type: event_id',
        t_event_id = 'UInt64' OR JSONExtractInt(m['event_id']) < 0, 'out_of_range: event_id',
        t_content_id = 'Null', 'missing_field: content_id',
        content_id IS NULL, 'bad_uuid: content_id',
        t_user_id NOT IN ('Null', 'String') OR (t_user_id = 'String' AND user_id IS NULL), 'bad_uuid: user_id',
        t_event_type = 'Null', 'missing_field: event_type',
        NOT match(ifNull(event_type, ''), '^[a-z0-9_]{1,32}$'), 'unknown_event_type',
        t_event_ts = 'Null', 'missing_field: event_ts',
        event_ts IS NULL, 'bad_timestamp: event_ts',
        t_device NOT IN ('Null', 'String'), 'wrong_type: device',
        t_duration_ms NOT IN ('Null', 'Int64'), 'wrong_type: duration_ms',
        t_duration_ms = 'Int64' AND JSONExtractInt(m['duration_ms']) < 0, 'negative_duration',
        t_engagement_seconds NOT IN ('Null', 'Int64', 'UInt64', 'Double'), 'wrong_type: engagement_seconds',
        t_engagement_pct NOT IN ('Null', 'Int64', 'UInt64', 'Double'), 'wrong_type: engagement_pct',
        t_content_type NOT IN ('Null', 'String'), 'wrong_type: content_type',
        t_title NOT IN ('Null', 'String'), 'wrong_type: title',
        t_slug NOT IN ('Null', 'String'), 'wrong_type: slug',
        t_length_seconds NOT IN ('Null', 'Int64'), 'wrong_type: length_seconds',
        t_length_seconds = 'Int64' AND (JSONExtractInt(m['length_seconds']) <= 0
                                       OR JSONExtractInt(m['length_seconds']) > 4294967295),
            'out_of_range: length_seconds',
        t_publish_ts != 'Null' AND publish_ts IS NULL, 'bad_timestamp: publish_ts',
        t_source_ts != 'Null' AND source_ts IS NULL, 'bad_timestamp: source_ts',
        t_enriched_at = 'Null', 'missing_field: enriched_at',
        enriched_at IS NULL, 'bad_timestamp: enriched_at',
        t_content_missing = 'Null', 'missing_field: content_missing',
        t_content_missing != 'Bool', 'wrong_type: content_missing',
        ''
    ) AS reason,
    if(t_event_id = 'Int64', toUInt64(greatest(JSONExtractInt(m['event_id']), 0)), NULL) AS event_id,
    toUUIDOrNull(JSONExtractString(m['content_id'])) AS content_id,
    toUUIDOrNull(JSONExtractString(m['user_id'])) AS user_id,
    if(t_event_type = 'String', JSONExtractString(m['event_type']), NULL) AS event_type,
    if(t_event_ts = 'String', parse_ts(JSONExtractString(m['event_ts'])), NULL) AS event_ts,
    if(t_device = 'String', JSONExtractString(m['device']), NULL) AS device,
    if(t_duration_ms = 'Int64', toUInt64(greatest(JSONExtractInt(m['duration_ms']), 0)), NULL) AS duration_ms,
    if(t_engagement_seconds = 'Null', NULL, JSONExtractFloat(m['engagement_seconds'])) AS engagement_seconds,
    if(t_engagement_pct = 'Null', NULL, JSONExtractFloat(m['engagement_pct'])) AS engagement_pct,
    if(t_content_type = 'String', JSONExtractString(m['content_type']), NULL) AS content_type,
    if(t_title = 'String', JSONExtractString(m['title']), NULL) AS title,
    if(t_slug = 'String', JSONExtractString(m['slug']), NULL) AS slug,
    if(t_length_seconds = 'Int64', toUInt32(least(greatest(JSONExtractInt(m['length_seconds']), 0), 4294967295)), NULL)
        AS length_seconds,
    if(t_publish_ts = 'String', parse_ts(JSONExtractString(m['publish_ts'])), NULL) AS publish_ts,
    if(t_source_ts = 'String', parse_ts(JSONExtractString(m['source_ts'])), NULL) AS source_ts,
    if(t_enriched_at = 'String', parse_ts(JSONExtractString(m['enriched_at'])), NULL) AS enriched_at,
    if(t_content_missing = 'Bool', JSONExtractBool(m['content_missing']) = 1, NULL) AS content_missing
FROM engagement_enriched_shaped
WHERE NOT fast;

-- The fast test: one typed parse reads every field, and the message is then written again from
-- those values as the enricher writes it (orjson: no whitespace, fields in this order). Only a
-- message that starts with exactly those bytes is fast, which proves what 100's checks look
-- at: every field is there, in its JSON type (a string in quotes, an integer without a point or
-- exponent, a bool as true/false, null as null), and a number is the one its text says. With
-- no backslash in the message, a string's value is its text. Invalid JSON (anywhere, extra
-- fields too) gives no event_id. The values are then converted by the same functions as in the
-- checks, with the same range tests, so a fast row carries what the checks would have given it.
-- Anything else (an escaped string, a float written 1e16, a field more or fewer than the
-- enricher's before content_missing) is not fast and only costs the checks' time.
CREATE MATERIALIZED VIEW IF NOT EXISTS engagement_enriched_parse_mv TO engagement_enriched_shaped AS
WITH
    JSONExtract(raw, concat(
        'Tuple(event_id Nullable(Int64), content_id String, user_id Nullable(String), ',
        'event_type String, event_ts String, device Nullable(String), duration_ms Nullable(Int64), ',
        'engagement_seconds Nullable(Float64), engagement_pct Nullable(Float64), ',
        'content_type Nullable(String), title Nullable(String), slug Nullable(String), ',
        'length_seconds Nullable(Int64), publish_ts Nullable(String), source_ts Nullable(String), ',
        'enriched_at String, content_missing Bool)')) AS j,
    -- the same as in the checks
    (s -> if(match(s, '^\\d{4}-\\d{2}-\\d{2}[T ]\\d{2}:\\d{2}:\\d{2}(\\.\\d{1,9})?(Z|[+-]\\d{2}(:?\\d{2})?)?$'),
             parseDateTime64BestEffortOrNull(s, 3, 'UTC'), NULL)) AS parse_ts,
    -- a JSON string or null, as orjson writes it (no escapes: checked below)
    (s -> if(s IS NULL, 'null', concat('"', assumeNotNull(s), '"'))) AS text,
    -- a float as orjson writes it: 56.0, 264.296; anything else (1e16, 1e-05) does not match
    (x -> multiIf(x IS NULL, 'null', x = trunc(x) AND abs(x) < 1e16, concat(toString(x), '.0'), toString(x))) AS float,
    toUUIDOrNull(j.content_id) AS content_id,
    toUUIDOrNull(j.user_id) AS user_id,
    parse_ts(j.event_ts) AS event_ts,
    parse_ts(j.publish_ts) AS publish_ts,
    parse_ts(j.source_ts) AS source_ts,
    parse_ts(j.enriched_at) AS enriched_at
SELECT
    raw,
    ifNull(j.event_id >= 0
    AND position(raw, '\\') = 0
    AND startsWith(raw, concat(
        '{"event_id":', toString(j.event_id),
        ',"content_id":"', j.content_id,
        '","user_id":', text(j.user_id),
        ',"event_type":"', j.event_type,
        '","event_ts":"', j.event_ts,
        '","device":', text(j.device),
        ',"duration_ms":', ifNull(toString(j.duration_ms), 'null'),
        ',"engagement_seconds":', float(j.engagement_seconds),
        ',"engagement_pct":', float(j.engagement_pct),
        ',"content_type":', text(j.content_type),
        ',"title":', text(j.title),
        ',"slug":', text(j.slug),
        ',"length_seconds":', ifNull(toString(j.length_seconds), 'null'),
        ',"publish_ts":', text(j.publish_ts),
        ',"source_ts":', text(j.source_ts),
        ',"enriched_at":"', j.enriched_at,
        '","content_missing":', if(j.content_missing, 'true', 'false')))
    AND content_id IS NOT NULL
    AND (j.user_id IS NULL OR user_id IS NOT NULL)
    AND match(j.event_type, '^[a-z0-9_]{1,32}$')
    AND event_ts IS NOT NULL
    AND ifNull(j.duration_ms, 0) >= 0
    AND ifNull(j.length_seconds, 1) BETWEEN 1 AND 4294967295
    AND (j.publish_ts IS NULL OR publish_ts IS NOT NULL)
    AND (j.source_ts IS NULL OR source_ts IS NOT NULL)
    AND enriched_at IS NOT NULL, false) AS fast,  -- NULL when the typed parse failed
    tuple(
        toUInt64(j.event_id),
        content_id,
        user_id,
        j.event_type,
        event_ts,
        j.device,
        toUInt64(j.duration_ms),
        j.engagement_seconds,
        j.engagement_pct,
        j.content_type,
        j.title,
        j.slug,
        toUInt32(j.length_seconds),
        publish_ts,
        source_ts,
        enriched_at,
        j.content_missing
    ) AS typed
FROM engagement_enriched_ingest;
