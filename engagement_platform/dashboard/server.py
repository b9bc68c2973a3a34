"""The dashboard as an ASGI app (Streamlit's ``st.App``): the page (app.py) behind one
middleware, which starts the page's slow queries when the browser asks for the page.

Why: a navigation fetches the page's HTML at once, then spends ~1 s loading Streamlit's
scripts before the page's script runs at all; the analytics' and health's work started only
then (``services.prefetch``), and on these machines took several tenths of a second more while
the browser drew. The view lives in the URL, so the HTML request already says what the page
will ask for: started there, the results are ready (``st.cache_data``, shared for a few
seconds) when the script asks (docs/performance.md, "The dashboard in the browser").

``streamlit run engagement_platform/dashboard/server.py`` (dashboard/serve.py, as `up` runs it)
serves it; ``streamlit run engagement_platform/dashboard/app.py`` still serves the page alone.
"""

from __future__ import annotations

import logging
from pathlib import Path
from urllib.parse import parse_qsl

import streamlit as st
from starlette.middleware import Middleware
from starlette.types import ASGIApp, Receive, Scope, Send

LOG = logging.getLogger(__name__)
APP = Path(__file__).with_name("app.py")


def page_request(scope: Scope) -> bool:
    """Whether ``scope`` asks for the page itself (its HTML), not an asset or the WebSocket."""
    return scope["type"] == "http" and scope.get("method") == "GET" and scope.get("path") in ("", "/")


class PrefetchPage:
    """ASGI middleware: on a request for the page, start the sections' cached work for the view
    its query string names; then serve the request as Streamlit does. Best effort: a failure
    is the page's to report when it runs the same work."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if page_request(scope):
            try:
                prefetch(scope.get("query_string", b"").decode("latin-1"))
            except Exception as exc:  # noqa: BLE001 - the page itself says what is wrong
                LOG.info("prefetching the page's queries failed: %s", exc)
        await self.app(scope, receive, send)


def prefetch(query_string: str) -> None:
    """Start, in the page's thread pool, what the page's sections will ask for this view: the
    dashboard's analytics and health, or a title page's history."""
    from engagement_platform import settings as settings_module
    from engagement_platform.dashboard import analytics, health, services, title
    from engagement_platform.dashboard.view import View

    view = View.from_query(dict(parse_qsl(query_string)))
    settings = settings_module.load()
    if view.content:  # a title's page (none for a malformed id: the page says so)
        if (content_id := view.content_uuid()) is not None:
            services.prefetch(title.load, settings, content_id, view.filters)
        return
    services.prefetch(analytics.load, settings, view)
    services.prefetch(health.measured, settings, view.window)


app = st.App(str(APP), middleware=[Middleware(PrefetchPage)])
