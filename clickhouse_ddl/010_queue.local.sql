-- The landing table, local mode: ENGINE = Null, one column `raw`.
--
-- The embedded engine (chdb) cannot run the Kafka engine (creating one corrupts its data
-- directory), so in local mode `engagement-platform consume warehouse` reads the topic and
-- INSERTs each message, byte for byte, into this table. A Null table stores nothing: the
-- insert only fires the materialized views attached to it (090_consume.sql), exactly as
-- a Kafka-engine table's consumption does in compose mode (010_queue.compose.sql).
--
-- Deliberate deviation from "JSONEachRow with the typed columns": both modes land the
-- message as one opaque String and all parsing happens in SQL after the queue
-- (060_parse.sql). That keeps everything downstream identical in both modes, and a
-- message that does not parse still reaches engagement_enriched_errors with its raw text
-- and a reason, instead of being skipped (or stalling) inside the Kafka engine.
CREATE TABLE IF NOT EXISTS engagement_enriched_queue
(
    raw String
)
ENGINE = Null;
