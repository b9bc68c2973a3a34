"""The sidebar: one widget per part of the view. Widgets start from the URL's view the first
time a session runs and keep their own state afterwards; the app writes the result back to the
URL."""

from __future__ import annotations

from dataclasses import replace
from datetime import date

import streamlit as st

from engagement_platform.dashboard.view import METRIC_LABELS, TOP_N, WINDOWS, View
from engagement_platform.source.simulator import CONTENT_TYPES, DEVICES  # the devices it writes
from engagement_platform.warehouse.queries import Filters

ALL = ""  # the option that filters nothing


def _start(key: str, value: object) -> None:
    """Seed a widget from the URL once; later runs keep what the user chose."""
    if key not in st.session_state:
        st.session_state[key] = value


def _label(value: str) -> str:
    return value or "all"


def sidebar(view: View) -> View:
    f = view.filters
    seeds = {
        "window": view.window,
        "metric": view.metric,
        "top_n": view.top_n,
        "dates": (f.start, f.end),
        "content_type": f.content_type,
        "device": f.device,
    }
    for key, value in seeds.items():
        _start(key, value)
    devices = (ALL, *DEVICES, *((f.device,) if f.device and f.device not in DEVICES else ()))
    with st.sidebar:
        st.subheader("Live leaderboard")
        window = st.segmented_control(
            "Window (minutes)", WINDOWS, key="window", format_func=lambda m: f"{m} min"
        )
        metric = st.radio("Metric", tuple(METRIC_LABELS), key="metric", format_func=METRIC_LABELS.get)
        top_n = st.select_slider("Top N", TOP_N, key="top_n")
        st.subheader("Analytics")
        dates = st.date_input("Date range (UTC)", key="dates")
        content_type = st.selectbox(
            "Content type", (ALL, *CONTENT_TYPES), key="content_type", format_func=_label
        )
        device = st.selectbox("Device", devices, key="device", format_func=_label)
    start, end = _range(dates, f)
    return replace(
        view,
        window=window or view.window,  # a segmented control can be cleared: keep the window
        metric=metric,
        top_n=top_n,
        filters=Filters(start, end, content_type, device),
    )


def _range(dates: object, f: Filters) -> tuple[date, date]:
    """A date input gives one date while the second is being picked: a one-day range until then."""
    picked = [d for d in (dates if isinstance(dates, tuple | list) else (dates,)) if isinstance(d, date)]
    if not picked:
        return f.start, f.end
    return min(picked), max(picked)
