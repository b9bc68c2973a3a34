"""The dashboard's ASGI app (dashboard/server.py): `streamlit run` serves it as one, and a request
for the page starts the sections' work for the view its URL names. Pure: the middleware around
a recording app; the browser test runs the whole of it against a stack."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from streamlit.web.server.app_discovery import discover_asgi_app

from engagement_platform.dashboard import analytics, health, server, services, title


def test_streamlit_run_finds_the_app() -> None:
    found = discover_asgi_app(server.APP.with_name("server.py"))
    assert found.is_asgi_app and found.app_name == "app"


@pytest.mark.parametrize(
    ("scope", "expected"),
    [
        ({"type": "http", "method": "GET", "path": "/"}, True),
        ({"type": "http", "method": "GET", "path": ""}, True),
        ({"type": "http", "method": "GET", "path": "/static/js/index.js"}, False),
        ({"type": "http", "method": "GET", "path": "/_stcore/health"}, False),
        ({"type": "http", "method": "HEAD", "path": "/"}, False),
        ({"type": "websocket", "path": "/_stcore/stream"}, False),
    ],
)
def test_only_the_page_s_own_request_starts_work(scope: dict[str, Any], expected: bool) -> None:
    assert server.page_request(scope) is expected


def serve(
    query_string: bytes, monkeypatch: pytest.MonkeyPatch, fail: bool = False
) -> tuple[list[str], list[str]]:
    """One request through the middleware: (what it prefetched for, what the app served)."""
    started: list[str] = []
    served: list[str] = []

    def prefetch(query: str) -> None:
        started.append(query)
        if fail:
            raise RuntimeError("ClickHouse is down")

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        served.append(scope["path"])

    monkeypatch.setattr(server, "prefetch", prefetch)
    scope = {"type": "http", "method": "GET", "path": "/", "query_string": query_string}
    asyncio.run(server.PrefetchPage(app)(scope, None, None))  # type: ignore[arg-type]
    return started, served


def test_the_page_request_starts_the_work_of_its_view_then_is_served(monkeypatch: pytest.MonkeyPatch) -> None:
    assert serve(b"window=60&type=video", monkeypatch) == (["window=60&type=video"], ["/"])


def test_a_failure_to_start_the_work_still_serves_the_page(monkeypatch: pytest.MonkeyPatch) -> None:
    assert serve(b"window=60", monkeypatch, fail=True) == (["window=60"], ["/"])


def test_the_work_started_is_the_sections_for_the_url_s_view(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[object, ...]] = []
    monkeypatch.setattr(services, "prefetch", lambda function, *args: calls.append((function, *args)))
    server.prefetch("window=60&from=2026-03-01&to=2026-03-07&type=video")
    (load, settings, view), (measured, settings_again, window) = calls
    assert (load, measured) == (analytics.load, health.measured) and settings == settings_again
    assert view.window == window == 60 and view.filters.content_type == "video"
    assert (view.filters.start.isoformat(), view.filters.end.isoformat()) == ("2026-03-01", "2026-03-07")

    calls.clear()
    content = "0b3c1a52-6f0e-4c41-9d2a-2d5f6f8a9e01"
    server.prefetch(f"content={content}&from=2026-03-01&to=2026-03-07")  # a title's page: its history
    [(title_load, _settings, content_id, filters)] = calls
    assert (title_load, str(content_id), filters.start.isoformat()) == (title.load, content, "2026-03-01")

    calls.clear()
    server.prefetch("content=not-a-uuid")  # the page says it is malformed; nothing to start
    assert calls == []
