"""History from ClickHouse over the view's date range, content type and device: events per
minute by event type, completion by content type, the device split and the top content. The
queries are ``warehouse.queries`` (deduplicated; built days from the daily rollups); here they
only become charts and tables."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import altair as alt
import pandas as pd
import streamlit as st
from clickhouse_connect.driver.client import Client

from engagement_platform.dashboard import period, services
from engagement_platform.dashboard.view import View, title_link
from engagement_platform.settings import Settings
from engagement_platform.warehouse import queries

EVENTS_TITLE = "Events per minute by event type"
COMPLETION_TITLE = "Completion (engagement_pct) by content type"
DEVICES_TITLE = "Device split"


@dataclass(frozen=True)
class Analytics:
    """Every frame the section shows, as the queries return them."""

    events: pd.DataFrame
    completion: pd.DataFrame
    devices: pd.DataFrame
    top: pd.DataFrame
    users: int
    # the same range's length just before (``Filters.previous``): the headline's comparison
    previous_devices: pd.DataFrame
    previous_users: int


def fetch(client: Client, view: View) -> Analytics:
    f = view.filters
    return Analytics(
        events=queries.events_by_type(client, f),
        completion=queries.completion_distribution(client, f),
        devices=queries.device_split(client, f),
        top=queries.top_content(client, f, view.top_n),
        users=queries.unique_users(client, f),
        previous_devices=queries.device_split(client, f.previous()),
        previous_users=queries.unique_users(client, f.previous()),
    )


@st.cache_data(ttl=services.RESULTS_TTL_S, show_spinner=False)
def load(settings: Settings, view: View) -> Analytics:
    """``fetch`` as the page runs it: shared by sessions for a few seconds, and started in the
    background by the page before the sections above this one (services.prefetch)."""
    with services.warehouse(settings) as client:
        return fetch(client, view)


def vocabulary(settings: Settings, start: date, end: date) -> queries.Vocabulary:
    """What the filters offer for the dates; none while ClickHouse is down (the section below
    says so, and the sidebar still renders)."""
    try:
        return _vocabulary(settings, start, end)
    except services.ERRORS["ClickHouse"]:
        return queries.Vocabulary()


@st.cache_data(ttl=services.VOCABULARY_TTL_S, show_spinner=False)
def _vocabulary(settings: Settings, start: date, end: date) -> queries.Vocabulary:
    with services.warehouse(settings) as client:
        return queries.vocabulary(client, start, end)


def events_chart(frame: pd.DataFrame, bucket_seconds: int) -> alt.Chart:
    """One line per event type; a point is the average rate over its bucket (minute or hour)."""
    per = "minute" if bucket_seconds == 60 else "hour, averaged"
    return (
        alt.Chart(frame, title=f"{EVENTS_TITLE} (per {per}, UTC)")
        .mark_line(point=len(frame) < 200)
        .encode(
            x=alt.X("bucket:T", title=None),
            y=alt.Y("per_minute:Q", title="events / minute"),
            color=alt.Color("event_type:N", title="event type"),
            tooltip=["bucket:T", "event_type", alt.Tooltip("per_minute:Q", format=",.1f"), "events"],
        )
    )


def completion_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """Deciles as labels ("0–10 %" ... "90–100 %") and each content type's share of its events,
    so types of different sizes compare."""
    out = frame.copy()
    out["completion"] = [f"{int(b)}–{int(b) + 10} %" for b in out["pct_bucket"]]
    totals = out.groupby("content_type")["events"].transform("sum")
    out["share"] = out["events"] / totals.where(totals > 0, 1)
    return out


def completion_chart(frame: pd.DataFrame) -> alt.Chart:
    data = completion_frame(frame)
    order = [f"{b}–{b + 10} %" for b in range(0, 100, 10)]
    return (
        alt.Chart(data, title=COMPLETION_TITLE)
        .mark_bar()
        .encode(
            x=alt.X("completion:N", sort=order, title="completion", axis=alt.Axis(labelAngle=0)),
            xOffset="content_type:N",
            y=alt.Y("share:Q", axis=alt.Axis(format="%"), title="share of the type's events"),
            color=alt.Color("content_type:N", title="content type"),
            tooltip=["content_type", "completion", "events", alt.Tooltip("share:Q", format=".1%")],
        )
    )


def devices_chart(frame: pd.DataFrame, title: str = DEVICES_TITLE) -> alt.Chart:
    """Events per device, most first (a title's page draws it too, without hours engaged)."""
    return (
        alt.Chart(frame, title=title)
        .mark_bar()
        .encode(
            x=alt.X("events:Q", title="events"),
            y=alt.Y("device:N", sort="-x", title=None),
            tooltip=[c for c in ("device", "events", "hours_engaged") if c in frame.columns],
        )
    )


def top_table(frame: pd.DataFrame, view: View) -> pd.DataFrame:
    """The top content as shown: rank, title (a link to its page), type and figures (ids only in
    the links)."""
    out = pd.DataFrame(
        {
            "rank": range(1, len(frame) + 1),
            "title": [
                title_link(t, c, view) for t, c in zip(frame["title"], frame["content_id"], strict=True)
            ],
            "type": frame["content_type"].fillna(""),
            "events": [f"{int(n):,}" for n in frame["events"]],
            "hours engaged": [f"{h:,.1f}" for h in frame["hours_engaged"]],
            "avg completion": ["" if pd.isna(p) else f"{p:.1f} %" for p in frame["avg_completion_pct"]],
        }
    )
    return out.set_index("rank")


@dataclass(frozen=True)
class Figure:
    """One headline figure: its value for the range, and against the range before."""

    value: str
    delta: period.Delta


def _totals(devices: pd.DataFrame) -> tuple[int, float]:
    """Events and hours of a range, from its device split (every event has one row there)."""
    if devices.empty:
        return 0, 0.0
    return int(devices["events"].sum()), float(devices["hours_engaged"].sum())


def headline(data: Analytics) -> dict[str, Figure]:
    """The range's totals, each with its change against the previous range."""
    (events, hours), (events_before, hours_before) = _totals(data.devices), _totals(data.previous_devices)
    return {
        "Events": Figure(f"{events:,}", period.delta(events, events_before, f"{events_before:,}")),
        "Unique users": Figure(
            f"{data.users:,}", period.delta(data.users, data.previous_users, f"{data.previous_users:,}")
        ),
        "Hours engaged": Figure(f"{hours:,.1f}", period.delta(hours, hours_before, f"{hours_before:,.1f}")),
    }


def describe(view: View) -> str:
    f = view.filters
    parts = [period.span(f) + " (UTC)", f.content_type or "all content types", f.device or "all devices"]
    return " · ".join(parts)


def section(settings: Settings, view: View) -> None:
    st.header("Analytics")
    st.caption(f"{describe(view)} — deduplicated: daily rollups for built days, FINAL for the rest")
    endpoint = f"{settings.clickhouse_host}:{settings.clickhouse_port}"
    with services.unavailable("ClickHouse", endpoint, "the analytics"):
        data = load(settings, view)
        st.caption(
            f"Changes are against {period.span(view.filters.previous())}, the same number of days before."
        )
        for column, (label, figure) in zip(st.columns(4), headline(data).items(), strict=False):
            column.metric(label, figure.value, figure.delta.text, delta_color=figure.delta.color)
        if data.events.empty:  # the device split ignores the device filter: it may still have rows
            st.info("No events in this range and filter.")
            return
        left, right = st.columns(2)
        left.altair_chart(events_chart(data.events, view.filters.bucket_seconds), width="stretch")
        right.altair_chart(completion_chart(data.completion), width="stretch")
        left, right = st.columns([1, 2])
        left.altair_chart(devices_chart(data.devices), width="stretch")
        right.markdown(f"**Top content, {describe(view)}**")
        right.table(top_table(data.top, view))
