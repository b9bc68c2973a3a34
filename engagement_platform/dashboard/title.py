"""One title's page (``?content=<uuid>``): its history over the view's date range from the
warehouse's per-title rollups (``warehouse.title``: events by type, completion, devices, unique
users, who played it and also finished it, each headline figure against the range before), and
its last hour live from Redis (``serving.title_live``). A malformed or unknown id gets a notice."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import pandas as pd
import streamlit as st
from clickhouse_connect.driver.client import Client

from engagement_platform.dashboard import analytics, period, services, svg
from engagement_platform.dashboard.view import View
from engagement_platform.serving.title_live import title_last_hour
from engagement_platform.settings import Settings
from engagement_platform.streaming.leaderboard import METRIC_EVENTS, metric_key_prefix
from engagement_platform.warehouse import title
from engagement_platform.warehouse.queries import Filters

COMPLETION_TITLE = "Completion (engagement_pct)"
DEVICES_TITLE = "Devices"
LIVE_TITLE = "Last hour, live: events per minute"
UNKNOWN = "(title unknown)"


@dataclass(frozen=True)
class History:
    """What the page shows from the warehouse for one title and range."""

    found: title.Title | None
    now: title.Summary
    before: title.Summary  # the same length of range just before
    events: pd.DataFrame
    completion: pd.DataFrame
    devices: pd.DataFrame


def fetch(client: Client, content_id: uuid.UUID, f: Filters) -> History:
    """The page's queries (``title.page_queries``), all at once: the slowest sets the time."""
    found = services.query_all(client, title.page_queries(content_id, f))
    return History(
        found=found["title: name"],
        now=found["title: summary"],
        before=found["title: summary, previous period"],
        events=found["title: events by type"],
        completion=found["title: completion"],
        devices=found["title: device split"],
    )


@st.cache_data(ttl=services.RESULTS_TTL_S, show_spinner=False)
def load(settings: Settings, content_id: uuid.UUID, f: Filters) -> History:
    """``fetch`` as the page runs it: shared by sessions for a few seconds, and started when the
    browser asks for the page (dashboard/server.py)."""
    with services.warehouse(settings) as client:
        return fetch(client, content_id, f)


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


def completion_chart(frame: pd.DataFrame) -> str:
    marks: dict[str, list[svg.Mark]] = {}
    for bucket, events in zip(frame["pct_bucket"], frame["events"], strict=True):
        label = analytics.decile(bucket)
        fields = {"completion": label, "events": f"{int(events):,}"}
        marks.setdefault(label, []).append(svg.Mark(float(events), "", fields))
    return svg.columns(COMPLETION_TITLE, analytics.DECILES, marks, "events", svg.number)


def live_chart(frame: pd.DataFrame) -> str:
    """A bar per minute of the last hour (labels in UTC)."""
    marks: dict[str, list[svg.Mark]] = {}
    labels = []
    for minute, events in zip(frame["minute"], frame["events"], strict=True):
        at = pd.Timestamp(minute).to_pydatetime()
        label = f"{at:%H:%M}"
        labels.append(label)
        fields = {"minute": f"{at:%Y-%m-%d %H:%M} UTC", "events": f"{int(events):,}"}
        marks[label] = [svg.Mark(float(events), "", fields)]
    return svg.columns(LIVE_TITLE, labels, marks, "events", svg.number, width=svg.FULL_WIDTH)


def page(settings: Settings, view: View) -> None:
    """The whole page of ``view.content``; the rest of the dashboard is one link away."""
    st.markdown(f"[← All content]({view.link(content='')})")
    content_id = view.content_uuid()
    if content_id is None:
        st.warning(f"`{view.content}` is not a content id (a UUID), so there is no title to show.")
        return
    f = view.filters
    endpoint = f"{settings.clickhouse_host}:{settings.clickhouse_port}"
    with services.unavailable("ClickHouse", endpoint, "this title's history"):
        history = load(settings, content_id, f)
        found = history.found
        if found is None:
            st.warning(f"No content with id `{content_id}` has any event in the warehouse.")
            return
        st.title(found.title or UNKNOWN)
        st.caption(
            f"{found.content_type or 'unknown type'} · `{content_id}` · {period.span(f)} (UTC); changes are "
            f"against {period.span(f.previous())}. The type and device filters do not apply here."
        )
        figures = summary_figures(history.now, history.before)
        for column, (label, figure) in zip(st.columns(4), figures.items(), strict=True):
            services.show_metric(column, label, figure.value, figure.delta)
        if history.events.empty:
            st.info("No events of this title in this range.")
        else:
            across = analytics.events_chart(history.events, f.bucket_seconds, svg.FULL_WIDTH)
            services.show_chart(st.container(), across)
            left, right = st.columns(2)
            services.show_chart(left, completion_chart(history.completion))
            services.show_chart(right, analytics.devices_chart(history.devices, DEVICES_TITLE, svg.WIDTH))
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
        services.show_metric(st.container(), "Events in the last hour", f"{int(frame['events'].sum()):,}")
        services.show_chart(st.container(), live_chart(frame))
