"""The sidebar: one widget per part of the view. Widgets start from the URL's view the first
time a session runs and keep their own state afterwards; the app reads their state first
(``chosen``), writes it back to the URL, and draws the widgets last (``sidebar``). The content
types and devices offered are those the data holds over the chosen dates."""

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


def chosen(view: View) -> View:
    """The view the widgets hold: the URL's ``view`` on a session's first run, the user's choices
    afterwards. Read before the widgets are drawn (``sidebar``, at the end of the page), so that
    the sections come first in what the browser receives and draws (docs/performance.md)."""
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
    state = st.session_state
    start, end = _range(state["dates"], f)
    return replace(
        view,
        window=state["window"] or view.window,  # a segmented control can be cleared: keep the window
        metric=state["metric"],
        top_n=state["top_n"],
        filters=Filters(start, end, state["content_type"], state["device"]),
    )


def sidebar(view: View, vocabulary: Callable[[date, date], Vocabulary]) -> None:
    """One widget per part of ``view`` (``chosen``'s), each keeping its choice in the session;
    ``vocabulary`` gives the content types and devices the data holds over the view's dates."""
    f = view.filters
    with st.sidebar:
        st.subheader("Live leaderboard")
        st.segmented_control("Window (minutes)", WINDOWS, key="window", format_func=lambda m: f"{m} min")
        st.radio("Metric", tuple(METRIC_LABELS), key="metric", format_func=METRIC_LABELS.get)
        st.select_slider("Top N", TOP_N, key="top_n")
        st.subheader("Analytics")
        st.date_input("Date range (UTC)", key="dates")
        found = vocabulary(f.start, f.end)
        st.selectbox(
            "Content type",
            options(found.content_types, f.content_type),
            key="content_type",
            format_func=_label,
        )
        st.selectbox("Device", options(found.devices, f.device), key="device", format_func=_label)


def _range(dates: object, f: Filters) -> tuple[date, date]:
    """A date input gives one date while the second is being picked: a one-day range until then."""
    picked = [d for d in (dates if isinstance(dates, tuple | list) else (dates,)) if isinstance(d, date)]
    if not picked:
        return f.start, f.end
    return min(picked), max(picked)
