"""Life on the leaderboard: every 30 s a runless materialization of `redis/leaderboard` when its
consumer counted new events (or had none left to count), and a freshness check on it."""

from datetime import UTC, datetime

import dagster as dg

from engagement_platform.defs.monitoring import (
    Monitor,
    MonitorContext,
    Readings,
    StreamAsset,
    activity_monitor,
)
from engagement_platform.defs.serving.assets import leaderboard
from engagement_platform.monitoring.activity import leaderboard_activity
from engagement_platform.monitoring.freshness import DEFAULT_FRESH
from engagement_platform.monitoring.lag import ConsumerGroup, measure_lag
from engagement_platform.streaming import topics


def stream_assets(fresh: tuple[float, float] = DEFAULT_FRESH) -> list[StreamAsset]:
    return [StreamAsset(leaderboard.key, "leaderboard", fresh)]


def measure(ctx: MonitorContext) -> Readings:
    group = ConsumerGroup("leaderboard", topics.ENRICHED)
    [consumed] = measure_lag(ctx.resources.kafka.bootstrap_servers, [group], with_age=False)
    client = ctx.resources.redis.client()
    try:
        activity = leaderboard_activity(client, datetime.now(UTC), consumed.committed)
    finally:
        client.close()
    return {"leaderboard": (activity, bool(consumed.committed) and consumed.total == 0)}


def leaderboard_activity_monitor(fresh: tuple[float, float] = DEFAULT_FRESH) -> Monitor:
    return activity_monitor(
        "leaderboard_activity",
        stream_assets(fresh),
        measure,
        frozenset({"redis", "kafka"}),
        "Records the leaderboard's progress as runless materializations and checks it stays fresh.",
    )


MONITOR = leaderboard_activity_monitor()
leaderboard_activity_sensor = MONITOR.sensor()
leaderboard_freshness_checks = MONITOR.check()

defs = dg.Definitions(asset_checks=[leaderboard_freshness_checks], sensors=[leaderboard_activity_sensor])
