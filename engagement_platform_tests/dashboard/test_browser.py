"""The dashboard in a real browser: Playwright driving Debian's Chromium loads the page served by
`streamlit run`, waits for it to render, prints how long after navigation each section showed
(speed is reported, not asserted: `bench dashboard` measures it), reads the top title, changes
the window, screenshots it.

By default the page runs as a child process against the session stack's seeded data. With
``EP_DASHBOARD_URL`` set it drives that running dashboard instead (e.g. `make up`'s, with the
simulator's live data; the environment must then reach the same Redis), and ``EP_SCREENSHOT``
names where the screenshot goes (the README's is ``docs/dashboard.png``).
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from engagement_platform import settings as settings_module
from engagement_platform.bench.dashboard import CHROMIUM, chromium, line, navigate
from engagement_platform.local_stack.apps import DashboardService
from engagement_platform.serving.top_content import top_content
from engagement_platform.settings import Settings
from engagement_platform.streaming.leaderboard import metric_key_prefix
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
        page.get_by_text("Top content in the last 10 minutes").wait_for(timeout=60_000)
        page.get_by_text(top.title, exact=True).first.wait_for(timeout=60_000)
        page.get_by_text("Pipeline health").wait_for(timeout=60_000)
        assert "Traceback" not in page.inner_text("body")

        page.get_by_role("radio", name="60 min").click()  # the window's segmented control
        page.get_by_text("Top content in the last 60 minutes").wait_for(timeout=60_000)
        page.wait_for_url("**window=60**", timeout=30_000)
        page.get_by_text(top.title, exact=True).first.wait_for(timeout=60_000)
        # the charts are drawn (canvas or SVG) before the picture is taken
        page.locator(".vega-embed").first.wait_for(timeout=60_000)
        body = page.inner_text("body")
        assert "Traceback" not in body and "Analytics" in body
        shot.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000
