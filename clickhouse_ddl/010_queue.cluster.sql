-- Cluster variant of 010_queue.compose.sql (WAREHOUSE_VARIANT=cluster, docker-compose.cluster.yml): each ClickHouse replica
-- runs its own Kafka-engine queue, all in the one group `clickhouse_warehouse`, so the topic's
-- partitions are split between the replicas (2 replicas x 1 consumer <= KAFKA_TOPIC_PARTITIONS) and
-- a replica that stops hands its partitions to the other; the broker list names all three brokers.
-- The database is a Replicated one (created by compose/clickhouse-cluster/), so this DDL reaches
-- every replica by itself; only the table engines differ from 010_queue.compose.sql, whose comments hold.
--
-- The landing table, compose mode: a Kafka-engine consumer of `engagement_enriched`.
--
-- kafka_format = 'RawBLOB': each message arrives whole as the String column `raw`, and all
-- parsing happens in SQL after the queue (060_parse.sql), identical to local mode
-- (010_queue.local.sql, a Null table fed by the bridge consumer). This is a deliberate
-- deviation from JSONEachRow: a message that is not valid JSON, or has a field of the
-- wrong type, still reaches engagement_enriched_errors with its raw text and a reason,
-- rather than being dropped or blocking the partition inside the engine.
-- kafka_handle_error_mode = 'stream' stays on as a second line of defence: a message the
-- engine itself cannot read becomes a row (virtual columns _error/_raw_message) instead
-- of an exception that stops consumption.
--
-- Engine settings are literals (the Kafka engine cannot read environment variables):
--   kafka_broker_list   'kafka:29092' is the broker's INTERNAL listener in docker-compose.yml;
--   kafka_group_name    offsets are committed by ClickHouse under this group, separate from
--                       the local bridge's group "warehouse";
--   kafka_num_consumers 1, which is <= the topic's partitions (KAFKA_TOPIC_PARTITIONS,
--                       default 3); raise it to at most that number if one consumer lags;
--   kafka_flush_interval_ms 1000: a block is flushed to the views at least every second,
--                       which keeps ingestion latency around a second or two.
-- Nothing is consumed until the materialized view in 090_consume.sql exists, which is why
-- that file is applied last, after every table downstream of it.
CREATE TABLE IF NOT EXISTS engagement_enriched_queue
(
    raw String
)
ENGINE = Kafka
SETTINGS
    kafka_broker_list = 'kafka:29092,kafka-2:29092,kafka-3:29092',
    kafka_topic_list = 'engagement_enriched',
    kafka_group_name = 'clickhouse_warehouse',
    kafka_format = 'RawBLOB',
    kafka_num_consumers = 1,
    kafka_handle_error_mode = 'stream',
    kafka_flush_interval_ms = 1000,
    kafka_max_block_size = 65536;
