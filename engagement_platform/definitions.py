"""The Dagster code location: one ``dg.Definitions`` merged from the domain modules."""

from __future__ import annotations

import dagster as dg

from engagement_platform import settings
from engagement_platform.defs.cdc import assets as cdc_assets
from engagement_platform.defs.cdc import sensors as cdc_sensors
from engagement_platform.defs.cdc.resources import connect_resource
from engagement_platform.defs.kafka import assets as kafka_assets
from engagement_platform.defs.kafka import sensors as kafka_sensors
from engagement_platform.defs.kafka.resources import kafka_resource
from engagement_platform.defs.postgres import assets as postgres_assets
from engagement_platform.defs.postgres import sensors as postgres_sensors
from engagement_platform.defs.postgres.resources import postgres_resource
from engagement_platform.defs.warehouse import definitions as warehouse_defs
from engagement_platform.defs.warehouse.resources import clickhouse_resource

# resources read dg.EnvVar; unset variables resolve to the same defaults as everywhere else
settings.export_defaults()

defs = dg.Definitions.merge(
    postgres_assets.defs,
    cdc_assets.defs,
    kafka_assets.defs,
    warehouse_defs.defs,
    # monitoring: asset checks on the external assets, evaluated by sensors
    kafka_sensors.defs,
    cdc_sensors.defs,
    postgres_sensors.defs,
    dg.Definitions(
        resources={
            "postgres": postgres_resource(),
            "kafka": kafka_resource(),
            "connect": connect_resource(),
            "clickhouse": clickhouse_resource(),
        }
    ),
)
