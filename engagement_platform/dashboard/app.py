"""Streamlit dashboard: the live leaderboard (Redis), analytics (ClickHouse) and pipeline health.

Run by `engagement-platform up` (through dashboard/serve.py, which warms it), or by hand:
    streamlit run engagement_platform/dashboard/app.py
Endpoints come from the same environment variables as everything else. The view (window,
metric, top N, date range, content type, device, and ``content`` for one title's page) lives in
the URL, so a link shares it.

The order is the page's speed: the title first (the page shows at once); the slow sections'
work started in the background (services.prefetch) before the fast leaderboard is drawn, so
each section waits for its own queries only; the sidebar's widgets last, since the browser
loads each kind of widget's script on its first use, and the sections should not wait behind
those (docs/performance.md).
"""

from __future__ import annotations

import streamlit as st

from engagement_platform import settings as settings_module
from engagement_platform.dashboard import analytics, controls, health, leaderboard, services, title
from engagement_platform.dashboard.view import View

st.set_page_config(page_title="Engagement", page_icon="📈", layout="wide")
if not st.query_params.get("content"):  # a title's page has its own title
    st.title("Content engagement")
settings = settings_module.load()

view = controls.chosen(View.from_query(st.query_params.to_dict()))
st.query_params.from_dict(view.to_query())

if view.content:  # ?content=<uuid>: one title's page
    title.page(settings, view)
else:
    services.prefetch(analytics.load, settings, view)
    services.prefetch(health.measured, settings, view.window)
    leaderboard.section(settings, view)
    analytics.section(settings, view)
    health.section(settings, view)
controls.sidebar(view, lambda start, end: analytics.vocabulary(settings, start, end))
