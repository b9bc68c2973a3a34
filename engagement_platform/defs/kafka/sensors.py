"""Life on the topics: every 30 s a runless materialization of each topic that moved (or whose
writer had nothing left to do), with what was written since, the end offsets per partition and
the newest record's time; and a freshness check on each, evaluated by the same sensor.
"""

import dagster as dg

from engagement_platform.cdc import connector
from engagement_platform.defs.cdc.assets import connector_values
from engagement_platform.defs.kafka.assets import (
    content_flat,
    engagement_enriched_dlq,
    engagement_enriched_topic,
    engagement_events_flat,
)
from engagement_platform.defs.monitoring import (
    Monitor,
    MonitorContext,
    Readings,
    StreamAsset,
    activity_monitor,
)
from engagement_platform.monitoring.activity import topic_activity
from engagement_platform.monitoring.freshness import DEFAULT_FRESH
from engagement_platform.monitoring.lag import ConsumerGroup, measure_lag
from engagement_platform.streaming import topics


def stream_assets(fresh: tuple[float, float] = DEFAULT_FRESH) -> list[StreamAsset]:
    return [
        StreamAsset(content_flat.key, topics.CONTENT_FLAT, fresh),
        StreamAsset(engagement_events_flat.key, topics.EVENTS_FLAT, fresh),
        StreamAsset(engagement_enriched_topic.key, topics.ENRICHED, fresh),
        StreamAsset(engagement_enriched_dlq.key, topics.ENRICHED_DLQ, None),  # quiet is good
    ]


def heartbeat_topic(ctx: MonitorContext) -> str:
    """Debezium's heartbeat topic: it grows every few seconds while the connector is alive."""
    spec = connector.load(connector_values(ctx.resources.postgres, ctx.resources.kafka))
    return f"__debezium-heartbeat.{spec.config.get('topic.prefix', '')}"


def measure(ctx: MonitorContext) -> Readings:
    bootstrap = ctx.resources.kafka.bootstrap_servers
    heartbeat = heartbeat_topic(ctx)
    found = topic_activity(bootstrap, [a.reading for a in stream_assets()] + [heartbeat])
    before = ctx.state.get("written", {})
    # CDC is caught up when Debezium is alive: its heartbeats only flow while it streams
    cdc_alive = heartbeat in found and found[heartbeat].written > before.get(
        heartbeat, found[heartbeat].written
    )
    [enrich] = measure_lag(bootstrap, [ConsumerGroup("enrich", topics.EVENTS_FLAT)], with_age=False)
    caught_up = {
        topics.CONTENT_FLAT: cdc_alive,
        topics.EVENTS_FLAT: cdc_alive,
        topics.ENRICHED: bool(enrich.committed) and enrich.total == 0,
        topics.ENRICHED_DLQ: False,
        heartbeat: False,
    }
    return {name: (activity, caught_up[name]) for name, activity in found.items()}


def kafka_activity_monitor(fresh: tuple[float, float] = DEFAULT_FRESH) -> Monitor:
    return activity_monitor(
        "kafka_activity",
        stream_assets(fresh),
        measure,
        frozenset({"kafka", "postgres"}),
        "Records each topic's growth as a runless materialization and checks it stays fresh.",
    )


MONITOR = kafka_activity_monitor()
kafka_activity_sensor = MONITOR.sensor()
kafka_freshness_checks = MONITOR.check()

defs = dg.Definitions(asset_checks=[kafka_freshness_checks], sensors=[kafka_activity_sensor])
