"""History from ClickHouse over the view's date range, content type and device: events per
minute by event type, completion by content type, the device split and the top content. The
queries are ``warehouse.queries`` (deduplicated; built days from the daily rollups); here they
only become charts (SVG, ``dashboard.svg``) and tables."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import pandas as pd
import streamlit as st
from clickhouse_connect.driver.client import Client

from engagement_platform.dashboard import period, services, svg
from engagement_platform.dashboard.view import View, title_link
from engagement_platform.settings import Settings
from engagement_platform.warehouse import queries

EVENTS_TITLE = "Events per minute by event type"
COMPLETION_TITLE = "Completion (engagement_pct) by content type"
DEVICES_TITLE = "Device split"
DEVICES_WIDTH = 360  # its column is a third of the page: a narrower chart keeps its text readable


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
    """The section's queries (``queries.analytics_queries``), all at once (the client is
    thread-safe): the slowest sets the time."""
    found = services.query_all(client, queries.analytics_queries(view.filters, view.top_n))
    return Analytics(
        events=found["events by type"],
        completion=found["completion by content type"],
        devices=found["device split"],
        top=found["top content"],
        users=found["unique users"],
        previous_devices=found["device split, previous period"],
        previous_users=found["unique users, previous period"],
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


DOTS_BELOW = 200  # points: fewer get a dot each, with its tooltip


def events_chart(frame: pd.DataFrame, bucket_seconds: int, width: float = svg.WIDTH) -> str:
    """One line per event type; a point is the average rate over its bucket (minute or hour)."""
    per = "minute" if bucket_seconds == 60 else "hour, averaged"
    points = []
    for bucket, event_type, rate, events in zip(
        frame["bucket"], frame["event_type"], frame["per_minute"], frame["events"], strict=True
    ):
        at = pd.Timestamp(bucket).to_pydatetime()
        fields = {"bucket": f"{at:%Y-%m-%d %H:%M} UTC", "event_type": str(event_type)}
        fields |= {"per_minute": f"{rate:,.1f}", "events": f"{int(events):,}"}
        points.append((at, svg.Mark(float(rate), str(event_type), fields)))
    title = f"{EVENTS_TITLE} (per {per}, UTC)"
    dots = len(frame) < DOTS_BELOW
    return svg.lines(title, points, "events / minute", svg.number, "event type", dots=dots, width=width)


def decile(pct_bucket: float) -> str:
    """A completion decile's label: "0–10 %" for the bucket 0 ... "90–100 %"."""
    return f"{int(pct_bucket)}–{int(pct_bucket) + 10} %"


DECILES = tuple(decile(b) for b in range(0, 100, 10))


def completion_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """Deciles as labels ("0–10 %" ... "90–100 %") and each content type's share of its events,
    so types of different sizes compare."""
    out = frame.copy()
    out["completion"] = [decile(b) for b in out["pct_bucket"]]
    totals = out.groupby("content_type")["events"].transform("sum")
    out["share"] = out["events"] / totals.where(totals > 0, 1)
    return out


def completion_chart(frame: pd.DataFrame) -> str:
    """Per completion decile, each content type's share of its events (side by side)."""
    data = completion_frame(frame)
    marks: dict[str, list[svg.Mark]] = {}
    for row in data.itertuples(index=False):
        fields = {"content_type": str(row.content_type), "completion": row.completion}
        fields |= {"events": f"{int(row.events):,}", "share": f"{row.share:.1%}"}
        marks.setdefault(row.completion, []).append(svg.Mark(float(row.share), str(row.content_type), fields))
    axis = "share of the type's events"
    return svg.columns(COMPLETION_TITLE, DECILES, marks, axis, lambda v: f"{v:.0%}", "content type")


def devices_chart(frame: pd.DataFrame, title: str = DEVICES_TITLE, width: float = DEVICES_WIDTH) -> str:
    """Events per device, most first (a title's page draws it too, without hours engaged)."""
    ordered = frame.sort_values("events", ascending=False, kind="stable")
    marks, labels = [], []
    for row in ordered.to_dict("records"):
        fields = {"device": str(row["device"]), "events": f"{int(row['events']):,}"}
        if "hours_engaged" in row:
            fields["hours_engaged"] = f"{row['hours_engaged']:,.1f}"
        labels.append(str(row["device"]))
        marks.append(svg.Mark(float(row["events"]), "", fields))
    return svg.hbars(title, labels, marks, "events", svg.number, width=width)


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
            services.show_metric(column, label, figure.value, figure.delta)
        if data.events.empty:  # the device split ignores the device filter: it may still have rows
            st.info("No events in this range and filter.")
            return
        left, right = st.columns(2)
        services.show_chart(left, events_chart(data.events, view.filters.bucket_seconds))
        services.show_chart(right, completion_chart(data.completion))
        left, right = st.columns([1, 2])
        services.show_chart(left, devices_chart(data.devices))
        right.markdown(f"**Top content, {describe(view)}**")
        right.table(top_table(data.top, view))
