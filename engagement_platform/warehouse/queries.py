"""The dashboard's warehouse queries, as functions: the app renders them and
`bench warehouse` times exactly these.

Windows are parameters (``{name:Type}``), never formatted into the SQL.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from clickhouse_connect.driver.client import Client

from engagement_platform.warehouse.ddl import DAILY, ENRICHED, ERRORS, MINUTE

if TYPE_CHECKING:  # query_df imports pandas when a query runs: importing this module must not
    import pandas as pd  # (``bench warehouse`` imports it, and so the CLI of every consumer)


def top_content(client: Client, hours: int = 24, n: int = 10) -> pd.DataFrame:
    """Most engaged content over the last ``hours``, exact (deduplicated with FINAL)."""
    return client.query_df(
        f"""
        SELECT toString(content_id) AS content_id, any(title) AS title, any(content_type) AS content_type,
               count() AS events, uniqExact(user_id) AS users,
               round(sum(ifNull(engagement_seconds, 0)) / 3600, 2) AS hours_engaged
        FROM {ENRICHED} FINAL
        WHERE event_ts >= now64(3) - toIntervalHour({{hours:UInt32}})
        GROUP BY content_id ORDER BY events DESC LIMIT {{n:UInt32}}
        """,
        parameters={"hours": hours, "n": n},
    )


def events_per_minute(client: Client, minutes: int = 60) -> pd.DataFrame:
    """Events by type per minute, from the minute rollup (replay-safe states)."""
    return client.query_df(
        f"""
        SELECT minute,
               uniqExactIfMerge(plays) AS play, uniqExactIfMerge(pauses) AS pause,
               uniqExactIfMerge(finishes) AS finish, uniqExactIfMerge(clicks) AS click
        FROM {MINUTE}
        WHERE minute >= now() - toIntervalMinute({{minutes:UInt32}})
        GROUP BY minute ORDER BY minute
        """,
        parameters={"minutes": minutes},
    )


def daily_totals(client: Client, days: int = 14) -> pd.DataFrame:
    """Per-day totals from the daily rollup (the Dagster-materialized partitions)."""
    return client.query_df(
        f"""
        SELECT day, sum(events) AS events, sum(plays) AS plays, sum(finishes) AS finishes,
               sum(clicks) AS clicks, round(sum(engagement_seconds) / 3600, 1) AS hours_engaged
        FROM {DAILY}
        WHERE day >= today() - {{days:UInt32}}
        GROUP BY day ORDER BY day
        """,
        parameters={"days": days},
    )


def headline(client: Client, minutes: int = 60) -> dict[str, Any]:
    """Events, users, average completion and parse errors over the last ``minutes``."""
    row = client.query(
        f"""
        SELECT count() AS events, uniqExact(user_id) AS users,
               round(avg(engagement_pct), 1) AS avg_pct,
               (SELECT count() FROM {ERRORS}
                WHERE received_at >= now64(3) - toIntervalMinute({{minutes:UInt32}})) AS errors
        FROM {ENRICHED} FINAL
        WHERE event_ts >= now64(3) - toIntervalMinute({{minutes:UInt32}})
        """,
        parameters={"minutes": minutes},
    ).named_results()
    return next(iter(row))


# what `bench warehouse` times: the dashboard's main queries at their default windows
MAIN_QUERIES: dict[str, Callable[[Client], Any]] = {
    "top content, last 24 h (FINAL)": lambda c: top_content(c, hours=24),
    "top content, last 1 h (FINAL)": lambda c: top_content(c, hours=1),
    "events by type per minute, last 1 h (minute rollup)": lambda c: events_per_minute(c, minutes=60),
    "daily totals, last 14 days (daily rollup)": lambda c: daily_totals(c, days=14),
    "headline, last 1 h (FINAL + errors)": lambda c: headline(c, minutes=60),
}
