"""The platform's Kafka topics, as external assets: Debezium and the enrich consumer write them,
Dagster shows their lineage."""

import dagster as dg

from engagement_platform.defs.config import OWNERS, writer
from engagement_platform.streaming import topics

content_flat = dg.AssetSpec(
    key=["kafka", "content_flat"],
    owners=OWNERS,
    tags=writer("debezium"),
    deps=[dg.AssetKey(["postgres", "content"]), dg.AssetKey(["cdc", "connector"])],
    group_name="streaming",
    kinds={"kafka"},
    description=f"Topic `{topics.CONTENT_FLAT}`: content rows as flattened change records, "
    "keyed by id; compacted.",
)

engagement_events_flat = dg.AssetSpec(
    key=["kafka", "engagement_events_flat"],
    owners=OWNERS,
    tags=writer("debezium"),
    deps=[dg.AssetKey(["postgres", "engagement_events"]), dg.AssetKey(["cdc", "connector"])],
    group_name="streaming",
    kinds={"kafka"},
    description=f"Topic `{topics.EVENTS_FLAT}`: engagement events as flattened change records, "
    "keyed by content_id.",
)

engagement_enriched_topic = dg.AssetSpec(
    key=["kafka", "engagement_enriched"],
    owners=OWNERS,
    tags=writer("enrich"),
    deps=[content_flat, engagement_events_flat],
    group_name="streaming",
    kinds={"kafka"},
    description=f"Topic `{topics.ENRICHED}`: one JSON object per event joined with its content; written "
    "by `engagement-platform consume enrich`; at-least-once, so an event id may repeat.",
)

engagement_enriched_dlq = dg.AssetSpec(
    key=["kafka", "engagement_enriched_dlq"],
    owners=OWNERS,
    tags=writer("enrich"),
    deps=[content_flat, engagement_events_flat],
    group_name="streaming",
    kinds={"kafka"},
    description=f"Topic `{topics.ENRICHED_DLQ}`: records the enrich consumer could not process, each with "
    "the reason, where it came from (topic, partition, offset) and the original bytes. Should stay empty.",
)

defs = dg.Definitions(
    assets=[content_flat, engagement_events_flat, engagement_enriched_topic, engagement_enriched_dlq]
)
