-- Connects the queue to everything downstream. Applied last on purpose: in compose mode
-- the Kafka engine starts consuming as soon as a materialized view reads from it, so every
-- table and view downstream must already exist.
CREATE MATERIALIZED VIEW IF NOT EXISTS engagement_enriched_queue_mv TO engagement_enriched_ingest AS
SELECT raw
FROM engagement_enriched_queue;
