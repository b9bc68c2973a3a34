"""Growth of Debezium's replication slot, as an asset check on `postgres/engagement_events`.

The check sits on the event table because its inserts are what fills the WAL. The verdict is
``monitoring.replication_slot``; the check, its sensor (every 60 s) and the by-hand execution
come from ``defs.monitoring.Monitor``.
"""

from collections.abc import Mapping

import dagster as dg

from engagement_platform.cdc import connector
from engagement_platform.defs.cdc.assets import connector_values
from engagement_platform.defs.kafka.resources import KafkaResource
from engagement_platform.defs.monitoring import Monitor, MonitorContext, Report
from engagement_platform.defs.postgres.assets import engagement_events_table
from engagement_platform.defs.postgres.resources import PostgresResource
from engagement_platform.monitoring.replication_slot import (
    DEFAULT_SLOT,
    SlotState,
    SlotThresholds,
    evaluate_slot,
    size,
)

DEFAULT_THRESHOLDS = SlotThresholds()
CHECK_KEY = dg.AssetCheckKey(engagement_events_table.key, "replication_slot")


def check_spec(thresholds: SlotThresholds) -> dg.AssetCheckSpec:
    return dg.AssetCheckSpec(
        CHECK_KEY.name,
        asset=engagement_events_table.key,
        description="Debezium's replication slot (connector.json `slot.name`) exists, is active and "
        f"retains at most {size(thresholds.warn_bytes)} of WAL (WARN above; ERROR above "
        f"{size(thresholds.error_bytes)}, when inactive over {thresholds.inactive_error_s:.0f} s, "
        "or when Postgres already removed WAL it needs).",
    )


def slot_name(postgres: PostgresResource, kafka: KafkaResource) -> str:
    config: Mapping[str, str] = connector.load(connector_values(postgres, kafka)).config
    return config.get("slot.name", DEFAULT_SLOT)


def slot_observation(slot: str, state: SlotState) -> dg.AssetObservation:
    """The byte figures as an observation, so the asset's plots chart retention over time."""
    return dg.AssetObservation(
        asset_key=engagement_events_table.key,
        metadata={
            "replication_slot": slot,
            "retained_wal_bytes": dg.MetadataValue.int(state.retained_bytes or 0),
            "confirmed_flush_lag_bytes": dg.MetadataValue.int(state.flush_lag_bytes or 0),
        },
    )


def slot_monitor(
    thresholds: SlotThresholds = DEFAULT_THRESHOLDS, slot_override: str | None = None
) -> Monitor:
    def evaluate(ctx: MonitorContext) -> Report:
        r = ctx.resources
        slot = slot_override or slot_name(r.postgres, r.kafka)
        verdict, state = evaluate_slot(r.postgres.reader_connect, slot, thresholds)
        return Report([(CHECK_KEY, verdict)], [slot_observation(slot, state)] if state is not None else [])

    return Monitor(
        name="replication_slot_check",
        sensor_name="replication_slot_sensor",
        specs=[check_spec(thresholds)],
        evaluate=evaluate,
        resource_keys=frozenset({"postgres", "kafka"}),
        interval_seconds=60,
        description="Reads pg_replication_slots: WAL retained by Debezium's slot, and how long it has "
        "been inactive.",
    )


replication_slot_sensor = slot_monitor().sensor()
replication_slot_check = slot_monitor().check()


defs = dg.Definitions(asset_checks=[replication_slot_check], sensors=[replication_slot_sensor])
