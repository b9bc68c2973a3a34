"""Streamlit dashboard: the live leaderboard (Redis), analytics (ClickHouse) and pipeline health.

Run by `engagement-platform up`, or by hand:
    streamlit run engagement_platform/dashboard/app.py
Endpoints come from the same environment variables as everything else. The view (window,
metric, top N, date range, content type, device, and ``content`` for one title's page) lives in the URL,
so a link shares it.
"""

from __future__ import annotations

import streamlit as st

from engagement_platform import settings as settings_module
from engagement_platform.dashboard import analytics, controls, health, leaderboard, title
from engagement_platform.dashboard.view import View

st.set_page_config(page_title="Engagement", page_icon="📈", layout="wide")
settings = settings_module.load()

view = controls.sidebar(
    View.from_query(st.query_params.to_dict()),
    lambda start, end: analytics.vocabulary(settings, start, end),
)
st.query_params.from_dict(view.to_query())

if view.content:  # ?content=<uuid>: one title's page
    title.page(settings, view)
else:
    st.title("Content engagement")
    leaderboard.section(settings, view)
    analytics.section(settings, view)
    health.section(settings, view)
