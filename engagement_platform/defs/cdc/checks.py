"""Health of the Debezium connector, as an asset check on `cdc/connector`.

The verdict (with Debezium's trace when FAILED) is ``monitoring.connector``; the check, its
sensor (every 30 s) and the by-hand execution come from ``defs.monitoring.Monitor``.
"""

import dagster as dg

from engagement_platform.cdc import connector
from engagement_platform.defs.cdc.assets import cdc_connector, connector_values
from engagement_platform.defs.kafka.resources import KafkaResource
from engagement_platform.defs.monitoring import Monitor, MonitorContext, Report
from engagement_platform.defs.postgres.resources import PostgresResource
from engagement_platform.monitoring.connector import evaluate_connector

CHECK_KEY = dg.AssetCheckKey(cdc_connector.key, "connector_running")
CHECK_SPEC = dg.AssetCheckSpec(
    CHECK_KEY.name,
    asset=cdc_connector.key,
    description="The connector of connector.json and all its tasks are RUNNING in Kafka Connect. "
    "FAILED or missing is an ERROR carrying Debezium's trace; paused, restarting or task-less is a "
    "WARN.",
)


def connector_name(postgres: PostgresResource, kafka: KafkaResource) -> str:
    """The name connector.json registers, rendered exactly as `cdc/connector` renders it."""
    return connector.load(connector_values(postgres, kafka)).name


def connector_monitor(name_override: str | None = None) -> Monitor:
    def evaluate(ctx: MonitorContext) -> Report:
        r = ctx.resources
        name = name_override or connector_name(r.postgres, r.kafka)
        return Report([(CHECK_KEY, evaluate_connector(r.connect.client(), name))])

    return Monitor(
        name="connector_health",
        sensor_name="connector_health_sensor",
        specs=[CHECK_SPEC],
        evaluate=evaluate,
        resource_keys=frozenset({"connect", "postgres", "kafka"}),
        interval_seconds=30,
        description="Asks Kafka Connect for the connector's status.",
    )


connector_health_sensor = connector_monitor().sensor()
connector_health_check = connector_monitor().check()


defs = dg.Definitions(asset_checks=[connector_health_check], sensors=[connector_health_sensor])
