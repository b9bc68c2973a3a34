"""The dashboard in a real browser: Playwright driving Debian's Chromium loads the page served by
`streamlit run`, waits for it to render, prints how long after navigation each section showed
(speed is reported, not asserted: `bench dashboard` measures it), reads the top title, changes
the window, screenshots it.

By default the page runs as a child process against the session stack's seeded data. With
``EP_DASHBOARD_URL`` set it drives that running dashboard instead (e.g. `make up`'s, with the
simulator's live data; the environment must then reach the same Redis), and ``EP_SCREENSHOT``
names where the screenshot goes (the README's is ``docs/dashboard.png``), ``EP_TITLE_SCREENSHOT``
the title page's (``docs/title_page.png``).
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urljoin

import pytest
from playwright.sync_api import Page

from engagement_platform import settings as settings_module
from engagement_platform.bench.dashboard import CHROMIUM, chromium, line, navigate
from engagement_platform.dashboard import svg
from engagement_platform.dashboard.period import delta
from engagement_platform.dashboard.view import METRIC_CLASS, View
from engagement_platform.local_stack.apps import DashboardService
from engagement_platform.serving.top_content import top_content
from engagement_platform.settings import Settings
from engagement_platform.streaming.leaderboard import metric_key_prefix
from engagement_platform.warehouse import ddl, queries
from engagement_platform_tests.harness import free_ports, wait_for


@pytest.fixture
def dashboard(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, Settings]]:
    """(URL, settings the page reads): the given dashboard, or one started here on a free port."""
    given = os.environ.get("EP_DASHBOARD_URL")
    if given:
        yield given.rstrip("/"), settings_module.load()
        return
    stack, seeded = request.getfixturevalue("stack"), request.getfixturevalue("seeded")
    [port] = free_ports(1)
    env = {**stack.env, **seeded.env(), "DASHBOARD_PORT": str(port)}
    service = DashboardService(settings_module.load(env))  # the command line `up` runs
    log = (tmp_path / "streamlit.log").open("wb")
    child = subprocess.Popen(service.argv(tmp_path), env=env, stdout=log, stderr=subprocess.STDOUT)
    url = service.endpoint
    try:
        wait_for(
            service.healthy,
            90,
            "streamlit to serve the dashboard",
            alive=lambda: child.poll() is None,
            describe=lambda: (tmp_path / "streamlit.log").read_text(errors="replace")[-3000:],
        )
        yield url, settings_module.load(env)
    finally:
        child.terminate()
        child.wait(30)
        log.close()


def test_a_browser_renders_the_page_and_changes_the_window(
    dashboard: tuple[str, Settings], tmp_path: Path
) -> None:
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: `apt-get install chromium` (make test does it when root)")
    url, settings = dashboard
    prefix = metric_key_prefix("events", settings.leaderboard_key_prefix)
    [top] = top_content(10, 1, settings=settings, key_prefix=prefix) or [None]
    assert top is not None and top.title, "the leaderboard is empty: nothing to look for"
    shot = Path(os.environ.get("EP_SCREENSHOT") or tmp_path / "dashboard.png")
    with chromium() as browser:
        # tall enough for the whole page: Streamlit scrolls inside its own container, so a
        # full-page screenshot is only ever the viewport
        page = browser.new_page(viewport={"width": 1440, "height": 2500})
        times = navigate(page, f"{url}/", timeout_s=120)  # every section shows, or this fails
        print(f"\nseconds after navigation until each section showed: {line(times)}")
        page.get_by_text("Top content in the last 10 minutes").first.wait_for(timeout=60_000)
        live_title(page, top.title)
        page.get_by_text("Pipeline health").first.wait_for(timeout=60_000)
        assert "Traceback" not in page.inner_text("body")

        page.get_by_role("radio", name="60 min").click()  # the window's segmented control
        page.get_by_text("Top content in the last 60 minutes").first.wait_for(timeout=60_000)
        page.wait_for_url("**window=60**", timeout=30_000)
        live_title(page, top.title)
        # the charts (SVG drawn by the server) are in the page before the picture is taken
        page.locator(CHART).first.wait_for(timeout=60_000)
        body = page.inner_text("body")
        assert "Traceback" not in body and "Analytics" in body
        shot.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000


METRIC = f".{METRIC_CLASS}"
CHART = f"svg.{svg.CLASS}"


def live_title(page: Page, title: str) -> None:
    """Wait for ``title`` in the live section's table (the page's first), as a link to its view."""
    table = page.locator('[data-testid="stTable"]').first
    table.get_by_role("link", name=title, exact=True).first.wait_for(timeout=60_000)


def metrics(page: Page) -> dict[str, tuple[str, str]]:
    """Each headline figure on the page: label -> (value, delta text without its arrow, '' when
    none)."""
    shown = {}
    for metric in page.locator(METRIC).all():
        delta = metric.locator(f".{METRIC_CLASS}-delta")
        shown[metric.locator(f".{METRIC_CLASS}-label").inner_text().strip()] = (
            metric.locator(f".{METRIC_CLASS}-value").inner_text().strip(),
            delta.inner_text().strip().removeprefix("↑ ").removeprefix("↓ ") if delta.count() else "",
        )
    return shown


TITLE_FIGURES = """
SELECT count(), uniqExact(user_id), uniqExactIf(user_id, event_type = 'play'),
       length(arrayIntersect(groupUniqArrayIf(user_id, event_type = 'play'),
                             groupUniqArrayIf(user_id, event_type = 'finish')))
FROM engagement_enriched FINAL
WHERE content_id = {c:UUID} AND toDate(event_ts) BETWEEN {start:Date} AND {end:Date}
"""
USERS = """
SELECT uniqExact(user_id) FROM engagement_enriched FINAL
WHERE toDate(event_ts) BETWEEN {start:Date} AND {end:Date}
"""


def test_a_title_s_page_opens_from_the_top_table_and_matches_the_warehouse(
    dashboard: tuple[str, Settings], tmp_path: Path
) -> None:
    """The analytics' unique users and comparison, then the top title's page by its link: each
    figure against the same figure read from engagement_enriched FINAL, and its comparison."""
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: `apt-get install chromium` (make test does it when root)")
    url, settings = dashboard
    shot = Path(os.environ.get("EP_TITLE_SCREENSHOT") or tmp_path / "title_page.png")
    f = View.from_query({}).filters
    client = ddl.connect_settings(settings)
    try:
        users_now = ddl.scalar_int(client, USERS, {"start": f.start, "end": f.end})
        users_before = ddl.scalar_int(client, USERS, {"start": f.previous().start, "end": f.previous().end})
        top = queries.top_content(client, f, 1)
        [content_id, title] = top.loc[0, ["content_id", "title"]]
        [now] = client.query(TITLE_FIGURES, parameters={"c": content_id, **f.parameters()}).result_rows
        [before] = client.query(
            TITLE_FIGURES, parameters={"c": content_id, **f.previous().parameters()}
        ).result_rows
    finally:
        client.close()
    with chromium() as browser:
        page = browser.new_page(viewport={"width": 1440, "height": 1800})
        page.goto(f"{url}/", wait_until="networkidle")
        link = page.get_by_role("link", name=title, exact=True).first
        page.get_by_text("Top content, ").first.wait_for(timeout=90_000)
        link.wait_for(timeout=60_000)
        page.locator(METRIC).filter(has=page.get_by_text("Unique users", exact=True)).wait_for(timeout=60_000)
        headline = metrics(page)
        expected = delta(users_now, users_before, f"{users_before:,}").text
        assert headline["Unique users"] == (f"{users_now:,}", expected), headline
        assert headline["Events"][1], "the events figure has no comparison"

        href = link.get_attribute("href") or ""
        assert f"content={content_id}" in href, href
        page.goto(urljoin(page.url, href), wait_until="networkidle")
        page.get_by_role("heading", name=title).wait_for(timeout=60_000)
        page.get_by_text("Last hour, live").first.wait_for(timeout=60_000)
        page.locator(CHART).nth(3).wait_for(timeout=60_000)  # events, completion, devices, live
        page.locator(METRIC, has_text="Played and also finished").wait_for(timeout=60_000)
        shown = metrics(page)
        labels = ("Events", "Unique users", "Users who played", "Played and also finished")
        for label, value, previous in zip(labels, now, before, strict=True):
            assert shown[label] == (f"{value:,}", delta(value, previous, f"{previous:,}").text), label
        assert "Traceback" not in page.inner_text("body")
        shot.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(shot), full_page=True)

        page.goto(f"{url}/?content=not-a-uuid", wait_until="networkidle")
        page.get_by_text("is not a content id").first.wait_for(timeout=60_000)
    assert shot.stat().st_size > 10_000
