"""Streamlit dashboard: the live leaderboard (Redis) beside the warehouse's history (ClickHouse).

Run by `engagement-platform up`, or by hand:
    streamlit run engagement_platform/dashboard/app.py
Endpoints come from the same environment variables as everything else.
"""

from __future__ import annotations

import pandas as pd
import redis
import streamlit as st

from engagement_platform import settings as settings_module
from engagement_platform.serving.top_content import top_content
from engagement_platform.warehouse import queries
from engagement_platform.warehouse.ddl import connect_settings

st.set_page_config(page_title="Engagement", page_icon="📈", layout="wide")
settings = settings_module.load()


# clients are cached per endpoint, so a changed environment gets new ones
@st.cache_resource
def redis_client(url: str) -> redis.Redis:
    return redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5)


@st.cache_resource
def warehouse(endpoint: str):  # type: ignore[no-untyped-def]
    return connect_settings(settings)


st.title("Content engagement")
with st.sidebar:
    window = st.select_slider("Leaderboard window (minutes)", options=[1, 5, 10, 30, 60, 120], value=10)
    top_n = st.slider("Top N", min_value=5, max_value=25, value=10)
    hours = st.select_slider("Warehouse window (hours)", options=[1, 6, 24, 72, 168], value=24)
    refresh = st.select_slider("Refresh every (s)", options=[2, 5, 10, 30], value=5)


@st.fragment(run_every=refresh)
def live() -> None:
    st.subheader(f"Live leaderboard: last {window} min")
    try:
        rows = top_content(window_minutes=window, n=top_n, client=redis_client(settings.redis_url))
    except redis.RedisError as exc:
        st.error(f"Redis is not reachable ({settings.redis_url}): {exc}")
        return
    if not rows:
        st.info("No engagement in this window yet. Is the simulator running?")
        return
    frame = pd.DataFrame([r.as_dict() for r in rows])
    left, right = st.columns([3, 2])
    left.dataframe(frame, hide_index=True, width="stretch")
    frame["title"] = frame["title"].fillna(frame["content_id"])
    right.bar_chart(frame.set_index("title")["score"])


@st.fragment(run_every=max(refresh, 10))
def history() -> None:
    try:
        client = warehouse(settings.clickhouse_url)
        head = queries.headline(client, minutes=60)
        per_minute = queries.events_per_minute(client, minutes=60)
        top = queries.top_content(client, hours=hours, n=top_n)
        daily = queries.daily_totals(client, days=14)
    except Exception as exc:  # noqa: BLE001 - the page says what is wrong instead of crashing
        st.error(f"ClickHouse is not reachable or not set up ({settings.clickhouse_host}:"
                 f"{settings.clickhouse_port}): {exc}")  # fmt: skip
        return
    st.subheader("Last hour (warehouse)")
    a, b, c, d = st.columns(4)
    a.metric("Events", f"{head['events']:,}")
    b.metric("Users", f"{head['users']:,}")
    c.metric("Avg completion", f"{head['avg_pct'] or 0:.1f} %")
    d.metric("Parse errors", f"{head['errors']:,}")
    if not per_minute.empty:
        st.area_chart(per_minute.set_index("minute"))
    st.subheader(f"Top content: last {hours} h (deduplicated)")
    st.dataframe(top, hide_index=True, width="stretch")
    st.subheader("Daily rollup (materialized by Dagster)")
    if daily.empty:
        st.info("No daily partitions yet: materialize clickhouse/daily_content_engagement in Dagster.")
    else:
        st.bar_chart(daily.set_index("day")[["plays", "finishes", "clicks"]])


live()
history()
