"""The CDC topics, as external assets: Debezium writes them, Dagster shows their lineage."""

import dagster as dg

from engagement_platform.streaming import topics

content_flat = dg.AssetSpec(
    key=["kafka", "content_flat"],
    deps=[dg.AssetKey(["postgres", "content"]), dg.AssetKey(["cdc", "connector"])],
    group_name="streaming",
    kinds={"kafka"},
    description=f"Topic `{topics.CONTENT_FLAT}`: content rows as flattened change records, "
    "keyed by id; compacted.",
)

engagement_events_flat = dg.AssetSpec(
    key=["kafka", "engagement_events_flat"],
    deps=[dg.AssetKey(["postgres", "engagement_events"]), dg.AssetKey(["cdc", "connector"])],
    group_name="streaming",
    kinds={"kafka"},
    description=f"Topic `{topics.EVENTS_FLAT}`: engagement events as flattened change records, "
    "keyed by content_id.",
)

defs = dg.Definitions(assets=[content_flat, engagement_events_flat])
