"""The warehouse domain's definitions, merged into the code location by engagement_platform.definitions."""

import dagster as dg

from engagement_platform.defs.warehouse import assets, checks

defs = dg.Definitions(
    assets=[
        assets.clickhouse_schema,
        assets.engagement_enriched_topic,
        assets.engagement_enriched_table,
        assets.leaderboard,
        assets.history_backfill,
        assets.daily_content_engagement,
    ],
    asset_checks=[
        checks.no_recent_parse_errors,
        checks.minute_rollup_matches_final,
        checks.daily_matches_final,
    ],
    jobs=[assets.daily_content_engagement_job],
    schedules=[assets.daily_content_engagement_schedule],
)
