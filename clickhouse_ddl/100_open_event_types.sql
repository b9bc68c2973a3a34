-- An open event vocabulary: the parse view accepts any event_type of 1-32 characters of
-- [a-z0-9_] (the enricher's rule), so a new type needs only the Postgres migration that
-- widens engagement_events' CHECK. Anything else is still `unknown_event_type`, at the same
-- place in the checks; every other reason is unchanged from 060_parse.sql.
--
-- Replaced as DROP + CREATE: between the two, an insert into engagement_enriched_ingest would
-- reach no parser, so the migration runner pauses ingestion around this file (local mode: the
-- bridge stops between commits; compose mode: the queue's view is detached). Safe to run
-- twice: the second run drops and recreates the same view.
DROP VIEW IF EXISTS engagement_enriched_parse_mv;

-- The one definition of "valid": the first failed check names the reason. A field whose
-- JSON type is wrong is an error, never a silent NULL or a truncated number.
CREATE MATERIALIZED VIEW IF NOT EXISTS engagement_enriched_parse_mv TO engagement_enriched_parsed AS
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
FROM engagement_enriched_ingest;
