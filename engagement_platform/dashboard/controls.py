"""The sidebar: one widget per part of the view. Widgets start from the URL's view the first
time a session runs and keep their own state afterwards; the app writes the result back to the
URL. The content types and devices offered are those the data holds over the chosen dates."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import date

import streamlit as st

from engagement_platform.dashboard.view import METRIC_LABELS, TOP_N, WINDOWS, View
from engagement_platform.warehouse.queries import Filters, Vocabulary

ALL = ""  # the option that filters nothing


def _start(key: str, value: object) -> None:
    """Seed a widget from the URL once; later runs keep what the user chose."""
    if key not in st.session_state:
        st.session_state[key] = value


def _label(value: str) -> str:
    return value or "all"


def options(values: tuple[str, ...], current: str) -> tuple[str, ...]:
    """The options of a filter: all, the values, then the current choice if the data lacks it (a
    link's, or one from other dates), so a selection is never silently replaced."""
    return (ALL, *values, *((current,) if current and current not in values else ()))


def sidebar(view: View, vocabulary: Callable[[date, date], Vocabulary]) -> View:
    """The view as the widgets set it; ``vocabulary`` gives the values the data holds over a
    date range (the dates are chosen first, so the lists follow them)."""
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
    with st.sidebar:
        st.subheader("Live leaderboard")
        window = st.segmented_control(
            "Window (minutes)", WINDOWS, key="window", format_func=lambda m: f"{m} min"
        )
        metric = st.radio("Metric", tuple(METRIC_LABELS), key="metric", format_func=METRIC_LABELS.get)
        top_n = st.select_slider("Top N", TOP_N, key="top_n")
        st.subheader("Analytics")
        dates = st.date_input("Date range (UTC)", key="dates")
        start, end = _range(dates, f)
        found = vocabulary(start, end)
        content_type = st.selectbox(
            "Content type",
            options(found.content_types, st.session_state["content_type"]),
            key="content_type",
            format_func=_label,
        )
        device = st.selectbox(
            "Device", options(found.devices, st.session_state["device"]), key="device", format_func=_label
        )
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
