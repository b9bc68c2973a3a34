"""The code location's resources configured for a test stack.

Production wires them with ``dg.EnvVar``; tests point them at a stack's settings directly,
from this one place.
"""

from __future__ import annotations

from engagement_platform.defs.cdc.resources import KafkaConnectResource
from engagement_platform.defs.kafka.resources import KafkaResource
from engagement_platform.defs.postgres.resources import PostgresResource
from engagement_platform.defs.serving.resources import RedisResource
from engagement_platform.defs.warehouse.resources import ClickHouseResource
from engagement_platform.settings import Settings


def postgres(s: Settings) -> PostgresResource:
    return PostgresResource(
        host=s.postgres_host,
        port=s.postgres_port,
        dbname=s.postgres_db,
        user=s.postgres_user,
        password=s.postgres_password,
        cdc_user=s.cdc_user,
        cdc_password=s.cdc_password,
        writer_user=s.postgres_writer_user,
        writer_password=s.postgres_writer_password,
        reader_user=s.postgres_reader_user,
        reader_password=s.postgres_reader_password,
    )


def kafka(s: Settings) -> KafkaResource:
    return KafkaResource(
        bootstrap_servers=s.kafka_bootstrap_servers,
        topic_partitions=s.topic_partitions,
        retention_ms=s.topic_retention_ms,
        retention_bytes=s.topic_retention_bytes,
    )


def connect(s: Settings) -> KafkaConnectResource:
    return KafkaConnectResource(url=s.connect_url)


def clickhouse(s: Settings, database: str, mode: str = "local") -> ClickHouseResource:
    return ClickHouseResource(
        host=s.clickhouse_host,
        port=s.clickhouse_port,
        username=s.clickhouse_user,
        password=s.clickhouse_password,
        reader_username=s.clickhouse_reader_user,
        reader_password=s.clickhouse_reader_password,
        database=database,
        mode=mode,
        ep_home=str(s.ep_home),
    )


def redis(s: Settings) -> RedisResource:
    user, password = s.redis_login("reader")
    return RedisResource(
        host=s.redis_host, port=s.redis_port, db=s.redis_db, username=user or "", password=password
    )
