"""The leaderboard counts what the warehouse holds, per closed minute and content."""

from datetime import UTC, datetime, timedelta

import dagster as dg

from engagement_platform.defs.monitoring import Monitor, MonitorContext, Report
from engagement_platform.defs.serving.assets import leaderboard
from engagement_platform.monitoring import reconcile

MATCHES_WAREHOUSE = dg.AssetCheckKey(leaderboard.key, "matches_warehouse")
# closed minutes well inside the leaderboard's retention (120 min): what it must still hold
LOOK_BACK = timedelta(minutes=30)
IN_FLIGHT = timedelta(minutes=2)


def leaderboard_reconciliation_monitor(
    look_back: timedelta = LOOK_BACK, settle: timedelta = IN_FLIGHT
) -> Monitor:
    def evaluate(ctx: MonitorContext) -> Report:
        end = (datetime.now(UTC) - settle).replace(second=0, microsecond=0)
        start = end - look_back
        minutes = reconcile.minutes_between(start, end)
        client = ctx.resources.clickhouse.reader_client()
        redis_client = ctx.resources.redis.client()
        try:
            expected = reconcile.window_minute_counts_clickhouse(client, start, end)
            got = reconcile.redis_minute_counts(redis_client, minutes)
        finally:
            client.close()
            redis_client.close()
        return Report([(MATCHES_WAREHOUSE, reconcile.counts_verdict(expected, got, minutes))])

    return Monitor(
        name="leaderboard_reconciliation",
        specs=[
            dg.AssetCheckSpec(
                MATCHES_WAREHOUSE.name,
                asset=leaderboard.key,
                description="For each closed minute of the last half hour, the Redis bucket holds per "
                "content exactly the events engagement_enriched FINAL holds (ERROR with a sample otherwise).",
            )
        ],
        evaluate=evaluate,
        resource_keys=frozenset({"redis", "clickhouse"}),
        interval_seconds=60,
        description="Compares the leaderboard's minute buckets with the warehouse.",
    )


RECONCILIATION = leaderboard_reconciliation_monitor()
leaderboard_reconciliation_sensor = RECONCILIATION.sensor()
leaderboard_reconciliation_checks = RECONCILIATION.check()

defs = dg.Definitions(
    asset_checks=[leaderboard_reconciliation_checks], sensors=[leaderboard_reconciliation_sensor]
)
