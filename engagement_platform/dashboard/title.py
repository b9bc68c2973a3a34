"""One title's page (``?content=<uuid>``): its history over the view's date range from the
warehouse's per-title rollups (``warehouse.title``: events by type, completion, devices, unique
users, who played it and also finished it, each headline figure against the range before), and
its last hour live from Redis (``serving.title_live``). A malformed or unknown id gets a notice."""

from __future__ import annotations

import altair as alt
import pandas as pd
import streamlit as st

from engagement_platform.dashboard import analytics, period, services
from engagement_platform.dashboard.view import View
from engagement_platform.serving.title_live import title_last_hour
from engagement_platform.settings import Settings
from engagement_platform.streaming.leaderboard import METRIC_EVENTS, metric_key_prefix
from engagement_platform.warehouse import title

COMPLETION_TITLE = "Completion (engagement_pct)"
DEVICES_TITLE = "Devices"
LIVE_TITLE = "Last hour, live: events per minute"
UNKNOWN = "(title unknown)"


def summary_figures(now: title.Summary, before: title.Summary) -> dict[str, analytics.Figure]:
    """The headline figures with their change against the previous range."""
    labels = {
        "events": "Events",
        "users": "Unique users",
        "played": "Users who played",
        "played_and_finished": "Played and also finished",
    }
    figures = {}
    for name, label in labels.items():
        value, previous = getattr(now, name), getattr(before, name)
        figures[label] = analytics.Figure(f"{value:,}", period.delta(value, previous, f"{previous:,}"))
    return figures


def completion_chart(frame: pd.DataFrame) -> alt.Chart:
    data = frame.assign(completion=[f"{int(b)}–{int(b) + 10} %" for b in frame["pct_bucket"]])
    order = [f"{b}–{b + 10} %" for b in range(0, 100, 10)]
    return (
        alt.Chart(data, title=COMPLETION_TITLE)
        .mark_bar()
        .encode(
            x=alt.X("completion:N", sort=order, title="completion", axis=alt.Axis(labelAngle=0)),
            y=alt.Y("events:Q", title="events"),
            tooltip=["completion", "events"],
        )
    )


def live_chart(frame: pd.DataFrame) -> alt.Chart:
    return (
        alt.Chart(frame, title=LIVE_TITLE)
        .mark_bar()
        .encode(
            x=alt.X("minute:T", title=None),
            y=alt.Y("events:Q", title="events"),
            tooltip=["minute:T", "events"],
        )
    )


def page(settings: Settings, view: View) -> None:
    """The whole page of ``view.content``; the rest of the dashboard is one link away."""
    st.markdown(f"[← All content]({view.link(content='')})")
    content_id = view.content_uuid()
    if content_id is None:
        st.warning(f"`{view.content}` is not a content id (a UUID), so there is no title to show.")
        return
    f = view.filters
    endpoint = f"{settings.clickhouse_host}:{settings.clickhouse_port}"
    with (
        services.unavailable("ClickHouse", endpoint, "this title's history"),
        services.warehouse(settings) as client,
    ):
        found = title.find(client, content_id)
        if found is None:
            st.warning(f"No content with id `{content_id}` has any event in the warehouse.")
            return
        st.title(found.title or UNKNOWN)
        st.caption(
            f"{found.content_type or 'unknown type'} · `{content_id}` · {period.span(f)} (UTC); changes are "
            f"against {period.span(f.previous())}. The type and device filters do not apply here."
        )
        now, before = title.summary(client, content_id, f), title.summary(client, content_id, f.previous())
        for column, (label, figure) in zip(st.columns(4), summary_figures(now, before).items(), strict=True):
            column.metric(label, figure.value, figure.delta.text, delta_color=figure.delta.color)
        events = title.events_by_type(client, content_id, f)
        if events.empty:
            st.info("No events of this title in this range.")
        else:
            st.altair_chart(analytics.events_chart(events, f.bucket_seconds), width="stretch")
            left, right = st.columns(2)
            left.altair_chart(completion_chart(title.completion(client, content_id, f)), width="stretch")
            right.altair_chart(
                analytics.devices_chart(title.devices(client, content_id, f), DEVICES_TITLE), width="stretch"
            )
    live(settings, str(content_id))


def live(settings: Settings, content_id: str) -> None:
    """The last hour from the leaderboard's minute buckets (all event types together)."""
    st.subheader("Last hour, live")
    with services.unavailable("Redis", settings.redis_url_for("reader"), "the last hour"):
        minutes = title_last_hour(
            services.redis_client(settings),
            content_id,
            key_prefix=metric_key_prefix(METRIC_EVENTS, settings.leaderboard_key_prefix),
        )
        frame = pd.DataFrame(minutes, columns=["minute", "events"])
        st.metric("Events in the last hour", f"{int(frame['events'].sum()):,}")
        st.altair_chart(live_chart(frame), width="stretch")
