"""The live leaderboard: Redis through ``serving.top_content`` and ``serving.rising_content``, in
rank order, by title and type, with each title's unique users and the window's overall unique
users, beside a bar chart (SVG, ``dashboard.svg``); refreshed in place by a fragment. Each
title links to its own view, ``?content=<id>`` with the rest of the view (the content id is in
the link and the chart's tooltip, not in a column of its own). The tables are Markdown tables
(st.table), as the analytics' top content: every column shows at any width, and the page needs
no data-grid script (docs/performance.md)."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
import redis
import streamlit as st

from engagement_platform.dashboard import services, svg
from engagement_platform.dashboard.view import METRIC_LABELS, View, title_link
from engagement_platform.serving.rising import DEFAULT_MIN_COUNT, RisingRow, rising_content
from engagement_platform.serving.top_content import TopRow, top_content, unique_users
from engagement_platform.settings import Settings
from engagement_platform.streaming.leaderboard import METRIC_EVENTS, metric_key_prefix

REFRESH_S = 5
NO_TITLE = "(title not known yet)"
CHART_TITLE = "Live leaderboard"
USERS = "unique users"


@dataclass(frozen=True)
class Live:
    """What the live section shows for one view: the top N, the rising titles, and the window's
    distinct users."""

    top: list[TopRow]
    rising: list[RisingRow]
    unique_users: int


def min_count(metric: str) -> float:
    """Least score a rising title needs: ten events, or ten minutes of engagement."""
    return DEFAULT_MIN_COUNT if metric == METRIC_EVENTS else DEFAULT_MIN_COUNT * 60.0


def fetch(client: redis.Redis, settings: Settings, view: View) -> Live:
    """The rows ``top_content`` and ``rising_content`` rank for the view's window, metric and N,
    and the window's unique users."""
    prefix = metric_key_prefix(view.metric, settings.leaderboard_key_prefix)
    users = settings.leaderboard_key_prefix  # the events leaderboard keeps the users of both
    return Live(
        top=top_content(
            window_minutes=view.window, n=view.top_n, client=client, key_prefix=prefix, users_prefix=users
        ),
        rising=rising_content(
            view.window, view.top_n, min_count=min_count(view.metric), client=client, key_prefix=prefix
        ),
        unique_users=unique_users(view.window, client=client, key_prefix=users),
    )


def score_text(score: float, metric: str) -> str:
    return f"{score:,.0f}" if metric == METRIC_EVENTS else f"{score / 60:,.1f} min"


def table(rows: list[TopRow], view: View) -> pd.DataFrame:
    """What the table shows, in rank order: rank, title (a link to its view), type, the score as
    text and unique users."""
    return pd.DataFrame(
        {
            "rank": [r.rank for r in rows],
            "title": [title_link(r.title or NO_TITLE, r.content_id, view) for r in rows],
            "type": [r.content_type or "" for r in rows],
            METRIC_LABELS[view.metric]: [score_text(r.score, view.metric) for r in rows],
            USERS: [f"{r.unique_users:,}" for r in rows],
        }
    ).set_index("rank")


def growth_text(row: RisingRow) -> str:
    return "new" if row.growth_pct is None else f"{row.growth_pct:+,.0f}%"


def rising_table(rows: list[RisingRow], view: View) -> pd.DataFrame:
    """Rising titles, fastest first: the title (a link to its view), the score of the last
    window, of the one before, the growth."""
    window, metric = view.window, view.metric
    return pd.DataFrame(
        {
            "rank": [r.rank for r in rows],
            "title": [title_link(r.title or NO_TITLE, r.content_id, view) for r in rows],
            "type": [r.content_type or "" for r in rows],
            f"last {window} min": [score_text(r.current, metric) for r in rows],
            f"{window} min before": [score_text(r.previous, metric) for r in rows],
            "growth": [growth_text(r) for r in rows],
        }
    ).set_index("rank")


def chart(rows: list[TopRow], metric: str) -> str:
    """Bars in rank order (a label per rank, so equal titles stay apart), coloured by type; the
    id on hover."""
    unit = "events" if metric == METRIC_EVENTS else "engagement minutes"
    marks = []
    for r in rows:
        value = r.score if metric == METRIC_EVENTS else r.score / 60
        fields = {
            "title": r.title or NO_TITLE,
            "type": r.content_type or "unknown",
            "content_id": r.content_id,
        }
        marks.append(svg.Mark(value, r.content_type or "unknown", fields | {unit: f"{value:,.1f}"}))
    labels = [f"#{r.rank} {r.title or NO_TITLE}" for r in rows]
    return svg.hbars(CHART_TITLE, labels, marks, unit, svg.number, legend="type")


@st.fragment(run_every=REFRESH_S)
def section(settings: Settings, view: View) -> None:
    """Re-runs alone every few seconds: the rest of the page is not reloaded."""
    label = METRIC_LABELS[view.metric]
    st.subheader(f"Top content in the last {view.window} minutes, by {label}")
    with services.unavailable("Redis", settings.redis_url_for("reader"), "the live leaderboard"):
        live = fetch(services.redis_client(settings), settings, view)
        if not live.top:
            st.info(f"No engagement in the last {view.window} minutes yet. Is the simulator running?")
            return
        services.show_metric(
            st.container(), f"Unique users, last {view.window} minutes", f"{live.unique_users:,}"
        )
        top, rising = st.tabs([f"Top {view.top_n}", "Rising"])
        with top:
            left, right = st.columns(2)
            left.table(table(live.top, view))
            services.show_chart(right, chart(live.top, view.metric))
        with rising:
            if live.rising:
                st.table(rising_table(live.rising, view))
            else:
                least = score_text(min_count(view.metric), view.metric)
                least += " events" if view.metric == METRIC_EVENTS else " of engagement"
                st.info(
                    f"Nothing is rising: no title has at least {least} in the last {view.window} "
                    f"minutes and more than in the {view.window} before."
                )
