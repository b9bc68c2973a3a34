"""The live leaderboard: Redis through ``serving.top_content``, in rank order, by title and type
(content ids only in the chart's tooltip and a detail), refreshed in place by a fragment."""

from __future__ import annotations

import altair as alt
import pandas as pd
import redis
import streamlit as st

from engagement_platform.dashboard import services
from engagement_platform.dashboard.view import METRIC_LABELS, View
from engagement_platform.serving.top_content import TopRow, top_content
from engagement_platform.settings import Settings
from engagement_platform.streaming.leaderboard import METRIC_EVENTS, metric_key_prefix

REFRESH_S = 5
NO_TITLE = "(title not known yet)"
CHART_TITLE = "Live leaderboard"


def fetch(client: redis.Redis, settings: Settings, view: View) -> list[TopRow]:
    """The rows ``top_content`` ranks for the view's window, metric and N."""
    return top_content(
        window_minutes=view.window,
        n=view.top_n,
        client=client,
        key_prefix=metric_key_prefix(view.metric, settings.leaderboard_key_prefix),
    )


def score_text(score: float, metric: str) -> str:
    return f"{score:,.0f}" if metric == METRIC_EVENTS else f"{score / 60:,.1f} min"


def table(rows: list[TopRow], metric: str) -> pd.DataFrame:
    """What the table shows, in rank order: rank, title, type and the score as text."""
    return pd.DataFrame(
        {
            "rank": [r.rank for r in rows],
            "title": [r.title or NO_TITLE for r in rows],
            "type": [r.content_type or "" for r in rows],
            METRIC_LABELS[metric]: [score_text(r.score, metric) for r in rows],
        }
    ).set_index("rank")


def chart(rows: list[TopRow], metric: str) -> alt.Chart:
    """Bars in rank order (a label per rank, so equal titles stay apart); the id on hover.

    The order is the rank, said explicitly: with ``sort=None`` (data order) the browser kept the
    places of labels it had drawn before, so after a refresh moved titles between ranks the
    bars came out of order."""
    frame = pd.DataFrame(
        {
            "rank": [r.rank for r in rows],
            "label": [f"#{r.rank} {r.title or NO_TITLE}" for r in rows],
            "score": [r.score if metric == METRIC_EVENTS else r.score / 60 for r in rows],
            "type": [r.content_type or "unknown" for r in rows],
            "content_id": [r.content_id for r in rows],
        }
    )
    unit = "events" if metric == METRIC_EVENTS else "engagement minutes"
    return (
        alt.Chart(frame, title=CHART_TITLE)
        .mark_bar()
        .encode(
            x=alt.X("score:Q", title=unit),
            y=alt.Y(
                "label:N",
                sort=alt.EncodingSortField("rank", order="ascending"),
                title=None,
                axis=alt.Axis(labelLimit=260),
            ),
            color=alt.Color("type:N", title="type"),
            tooltip=["label", "type", "content_id", alt.Tooltip("score:Q", format=",.1f")],
        )
    )


@st.fragment(run_every=REFRESH_S)
def section(settings: Settings, view: View) -> None:
    """Re-runs alone every few seconds: the rest of the page is not reloaded."""
    label = METRIC_LABELS[view.metric]
    st.subheader(f"Top content in the last {view.window} minutes, by {label}")
    with services.unavailable("Redis", settings.redis_url_for("reader"), "the live leaderboard"):
        rows = fetch(services.redis_client(settings), settings, view)
        if not rows:
            st.info(f"No engagement in the last {view.window} minutes yet. Is the simulator running?")
            return
        left, right = st.columns([2, 3])
        left.table(table(rows, view.metric))
        right.altair_chart(chart(rows, view.metric), width="stretch")
        with st.expander("Content ids"):
            st.table(
                pd.DataFrame({"rank": [r.rank for r in rows], "content_id": [r.content_id for r in rows]})
            )
