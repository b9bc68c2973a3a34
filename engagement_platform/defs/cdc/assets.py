"""Registering connector.json with Kafka Connect."""

import dagster as dg

from engagement_platform.cdc import connector
from engagement_platform.cdc.connect_client import ConnectError
from engagement_platform.defs.cdc.resources import KafkaConnectResource
from engagement_platform.defs.config import OWNERS, writer
from engagement_platform.defs.kafka.resources import KafkaResource
from engagement_platform.defs.postgres.resources import PostgresResource
from engagement_platform.streaming.topics import flat_topic_specs


def connector_values(postgres: PostgresResource, kafka: KafkaResource) -> dict[str, str]:
    """What connector.json's placeholders stand for, from the resources' configuration."""
    return {
        "KAFKA_TOPIC_PARTITIONS": str(kafka.topic_partitions),
        "KAFKA_RETENTION_MS": str(kafka.retention_ms),
        "KAFKA_RETENTION_BYTES": str(kafka.retention_bytes),
        "KAFKA_REPLICATION_FACTOR": str(kafka.replication.factor),
        "KAFKA_MIN_INSYNC_REPLICAS": str(kafka.replication.min_insync),
        "POSTGRES_HOST": postgres.host,
        "POSTGRES_PORT": str(postgres.port),
        "POSTGRES_DB": postgres.dbname,
        "POSTGRES_CDC_USER": postgres.cdc_user,
        "POSTGRES_CDC_PASSWORD": postgres.cdc_password,
    }


@dg.asset(
    key=["cdc", "connector"],
    owners=OWNERS,
    tags=writer("dagster"),
    deps=[dg.AssetKey(["postgres", "schema"])],
    group_name="source",
    kinds={"debezium"},
    description="Creates the flat topics, registers connector.json (idempotent PUT) and waits "
    "until the connector and its task are RUNNING.",
)
def cdc_connector(
    context: dg.AssetExecutionContext,
    postgres: PostgresResource,
    kafka: KafkaResource,
    connect: KafkaConnectResource,
) -> dg.MaterializeResult:
    spec = connector.load(connector_values(postgres, kafka))
    created_topics = kafka.ensure_topics(flat_topic_specs(kafka.topic_partitions))
    if created_topics:
        context.log.info(f"created topics {created_topics}")
    client = connect.client()
    try:
        created = client.put_config(spec.name, spec.config)
        status = client.wait_running(spec.name, timeout=connect.running_timeout_s)
    except ConnectError as exc:
        raise dg.Failure(description=str(exc)) from None
    context.log.info(f"connector {spec.name} {'created' if created else 'updated'} and RUNNING")
    return dg.MaterializeResult(
        metadata={
            "connector": spec.name,
            "state": status["connector"]["state"],
            "worker": status["connector"].get("worker_id", ""),
            "tasks": dg.MetadataValue.json(status.get("tasks", [])),
            "topics": dg.MetadataValue.json(spec.topics),
            "partitions": dg.MetadataValue.json(kafka.partition_counts(spec.topics)),
        }
    )


defs = dg.Definitions(assets=[cdc_connector])
