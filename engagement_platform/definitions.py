"""The Dagster code location: one explicit merge of each domain's definitions and the resources.

An explicit merge rather than ``dg.components.load_defs``: the list below is the whole location
at a glance, and nothing is picked up by accident (a test helper, a factory's extra output).
Importing this module has no side effect: no environment variable is read into or written to
the process; resources read theirs (``dg.EnvVar``) when they are built.
"""

from __future__ import annotations

import dagster as dg

from engagement_platform.defs.alerts import sensors as alert_sensors
from engagement_platform.defs.alerts.resources import alerts_resource
from engagement_platform.defs.cdc import assets as cdc_assets
from engagement_platform.defs.cdc import checks as cdc_checks
from engagement_platform.defs.cdc.resources import connect_resource
from engagement_platform.defs.kafka import assets as kafka_assets
from engagement_platform.defs.kafka import checks as kafka_checks
from engagement_platform.defs.kafka import dlq as kafka_dlq
from engagement_platform.defs.kafka import sensors as kafka_sensors
from engagement_platform.defs.kafka.resources import kafka_resource
from engagement_platform.defs.postgres import assets as postgres_assets
from engagement_platform.defs.postgres import checks as postgres_checks
from engagement_platform.defs.postgres.resources import postgres_resource
from engagement_platform.defs.serving import assets as serving_assets
from engagement_platform.defs.serving import checks as serving_checks
from engagement_platform.defs.serving import sensors as serving_sensors
from engagement_platform.defs.serving.resources import redis_resource
from engagement_platform.defs.warehouse import assets as warehouse_assets
from engagement_platform.defs.warehouse import checks as warehouse_checks
from engagement_platform.defs.warehouse import sensors as warehouse_sensors
from engagement_platform.defs.warehouse.resources import clickhouse_resource

defs = dg.Definitions.merge(
    # source -> cdc -> kafka -> warehouse / serving: the data path, in order
    postgres_assets.defs,
    postgres_checks.defs,
    cdc_assets.defs,
    cdc_checks.defs,
    kafka_assets.defs,
    kafka_checks.defs,
    kafka_sensors.defs,
    kafka_dlq.defs,
    warehouse_assets.defs,
    warehouse_checks.defs,
    warehouse_sensors.defs,
    serving_assets.defs,
    serving_checks.defs,
    serving_sensors.defs,
    # every check and run above, watched for incidents and recoveries
    alert_sensors.defs,
    dg.Definitions(
        resources={
            "postgres": postgres_resource(),
            "kafka": kafka_resource(),
            "connect": connect_resource(),
            "clickhouse": clickhouse_resource(),
            "redis": redis_resource(),
            "alerts": alerts_resource(),
        }
    ),
)
