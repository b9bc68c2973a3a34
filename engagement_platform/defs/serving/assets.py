"""The live leaderboard in Redis, as an external asset: `consume leaderboard` writes it."""

import dagster as dg

from engagement_platform.defs.config import OWNERS, writer
from engagement_platform.defs.kafka.assets import engagement_enriched_topic

leaderboard = dg.AssetSpec(
    key=["redis", "leaderboard"],
    owners=OWNERS,
    tags=writer("leaderboard"),
    deps=[engagement_enriched_topic],
    group_name="serving",
    kinds={"redis"},
    description="Redis minute buckets `zset:eng:minute:<YYYYMMDDHHMM>` of engagement per content, "
    "written by `engagement-platform consume leaderboard`; `serving.top_content` ranks the last N "
    "minutes for the dashboard.",
)

defs = dg.Definitions(assets=[leaderboard])
