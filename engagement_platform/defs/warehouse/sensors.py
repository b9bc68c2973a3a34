"""Life in the warehouse: every 30 s a runless materialization of each streaming table that moved
(or whose writer was caught up), and a freshness check on the tables that must keep up."""

import dagster as dg

from engagement_platform.defs.monitoring import (
    Monitor,
    MonitorContext,
    Readings,
    StreamAsset,
    activity_monitor,
)
from engagement_platform.defs.warehouse.assets import (
    ENRICHED_TABLE_KEY,
    enriched_errors_table,
    minute_rollup_table,
)
from engagement_platform.monitoring import lag
from engagement_platform.monitoring.activity import Activity, table_activity
from engagement_platform.monitoring.freshness import DEFAULT_FRESH
from engagement_platform.warehouse import ddl


def stream_assets(fresh: tuple[float, float] = DEFAULT_FRESH) -> list[StreamAsset]:
    return [
        StreamAsset(ENRICHED_TABLE_KEY, ddl.ENRICHED, fresh),
        StreamAsset(minute_rollup_table.key, ddl.MINUTE, fresh),
        StreamAsset(enriched_errors_table.key, ddl.ERRORS, None),  # quiet is good
    ]


def measure(ctx: MonitorContext) -> Readings:
    clickhouse, kafka = ctx.resources.clickhouse, ctx.resources.kafka
    # which group fills the table depends on the mode (the bridge, or ClickHouse's Kafka engine)
    warehouse_group = lag.consumer_groups(clickhouse.mode)[-1]
    [consumed] = lag.measure_lag(kafka.bootstrap_servers, [warehouse_group], with_age=False)
    caught_up = bool(consumed.committed) and consumed.total == 0
    committed = {"committed_offsets": {str(p): o for p, o in sorted(consumed.committed.items())}}
    client = clickhouse.reader_client()
    try:
        # rows merge away in these engines, so "written" counts what the group consumed
        enriched = table_activity(client, ddl.ENRICHED, "count()", "max(event_ts)")
        minute = table_activity(client, ddl.MINUTE, "count()", "max(minute)")
        errors = table_activity(client, ddl.ERRORS, "count()", "max(received_at)")
    finally:
        client.close()
    written = sum(consumed.committed.values())
    return {
        ddl.ENRICHED: (
            Activity(written, enriched.newest, {**committed, "rows": enriched.written}),
            caught_up,
        ),
        ddl.MINUTE: (Activity(written, minute.newest, {"rows": minute.written}), caught_up),
        ddl.ERRORS: (errors, False),
    }


def warehouse_activity_monitor(fresh: tuple[float, float] = DEFAULT_FRESH) -> Monitor:
    return activity_monitor(
        "warehouse_activity",
        stream_assets(fresh),
        measure,
        frozenset({"clickhouse", "kafka"}),
        "Records the streaming tables' growth as runless materializations and checks they stay fresh.",
    )


MONITOR = warehouse_activity_monitor()
warehouse_activity_sensor = MONITOR.sensor()
warehouse_freshness_checks = MONITOR.check()

defs = dg.Definitions(asset_checks=[warehouse_freshness_checks], sensors=[warehouse_activity_sensor])
