"""The dashboard in a browser: how long after navigation each section of the page shows.

Playwright drives Debian's Chromium (no browser download) to a running dashboard (`up`'s by
default) ``--runs`` times, each in a fresh browser context (a new Streamlit session, as a new
visitor gets), and prints per navigation and as medians the time from navigation start to the
moment each section first holds its content: the page's title, the leaderboard's table, the
analytics' figures, the health table, and every chart drawn; and, for scale, when Streamlit's
own frontend finished loading (its scripts, before the page's Python can draw anything). The
moments are taken inside the page (a MutationObserver reading ``performance.now()``, whose
origin is the navigation's start), so they do not depend on how fast this process polls. The
page shares results between sessions for a few seconds: ``--pause`` longer than that makes
every navigation measure anew. The browser test prints the same figures.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import TYPE_CHECKING

from engagement_platform.argtypes import positive_int
from engagement_platform.dashboard import svg
from engagement_platform.dashboard.view import METRIC_CLASS
from engagement_platform.settings import Settings

if TYPE_CHECKING:  # Playwright is a dev dependency: imported only when a browser is driven
    from playwright.sync_api import Browser, Page

CHROMIUM = Path("/usr/bin/chromium")
ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
    "--disable-sync", "--no-first-run",
]  # fmt: skip
CHARTS = 4  # the leaderboard's and the analytics' three
# a headline figure's label: the page's own (view.metric_html), or st.metric's in earlier versions
LABELS = f".{METRIC_CLASS}-label, [data-testid=stMetricLabel]"
# section -> a JavaScript expression, true once the section shows its content (markers that need
# no change to the page, so any version of it is measured alike)
SECTIONS = {
    "shell": "[...document.querySelectorAll('h1')].some(h => h.textContent.includes('Content engagement'))",
    "leaderboard": f"[...document.querySelectorAll({LABELS!r})]"
    ".some(m => m.textContent.trim().startsWith('Unique users, last'))"
    " || [...document.querySelectorAll('[data-testid=stAlert]')]"
    ".some(a => a.textContent.includes('No engagement in the last'))",
    "analytics": f"[...document.querySelectorAll({LABELS!r})].some(m => m.textContent.trim() === 'Events')",
    "health": "[...document.querySelectorAll('[data-testid=stMarkdownContainer] td')]"
    ".some(td => td.textContent.startsWith('consumer '))",
    # the page's SVG charts (dashboard.svg), or the Vega charts earlier versions drew
    "charts": f"document.querySelectorAll('svg.{svg.CLASS}').length"
    " + [...document.querySelectorAll('.vega-embed')].filter(e => e.querySelector('.marks')).length"
    f" >= {CHARTS}",
}
# records, in window.__epShown, when each marker first holds (ms since navigation start): checked
# once per frame after the DOM changed (textContent, which needs no layout: the measuring must not
# slow the page it measures)
OBSERVER = (
    "window.__epShown = {};\n"
    "const __epMarkers = {" + ", ".join(f"{name!r}: () => {expr}" for name, expr in SECTIONS.items()) + "};\n"
    """let __epPending = false;
const __epCheck = () => {
  __epPending = false;
  for (const [name, test] of Object.entries(__epMarkers)) {
    if (!(name in window.__epShown) && test()) window.__epShown[name] = performance.now();
  }
};
new MutationObserver(() => {
  if (!__epPending) { __epPending = true; requestAnimationFrame(__epCheck); }
}).observe(document, {childList: true, subtree: true, characterData: true});
"""
)


@contextmanager
def chromium() -> Iterator[Browser]:
    """Debian's Chromium under Playwright; a clear error when either is missing."""
    if not CHROMIUM.exists():
        raise SystemExit(f"error: {CHROMIUM} is missing: `apt-get install chromium`")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as exc:
        raise SystemExit("error: playwright is missing: `pip install -e '.[dev]'`") from exc
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        try:
            yield browser
        finally:
            browser.close()


def navigate(page: Page, url: str, timeout_s: float = 60) -> dict[str, float]:
    """Open ``url`` in ``page`` and return, per section, the seconds from navigation start until
    it showed; fails (AssertionError, naming them) when some do not show within ``timeout_s``."""
    page.add_init_script(OBSERVER)
    page.goto(url, wait_until="commit")
    every = " && ".join(f"({name!r} in (window.__epShown || {{}}))" for name in SECTIONS)
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    with suppress(PlaywrightTimeout):  # said below, by name (the last ones may have shown since)
        page.wait_for_function(f"() => {every}", timeout=timeout_s * 1000, polling=100)
    shown: dict[str, float] = page.evaluate("window.__epShown || {}")
    if missing := [name for name in SECTIONS if name not in shown]:
        raise AssertionError(f"{url}: not shown within {timeout_s:.0f} s: {', '.join(missing)}")
    loaded = page.evaluate("performance.getEntriesByType('navigation')[0].loadEventEnd")
    return {"frontend": loaded / 1000} | {name: shown[name] / 1000 for name in SECTIONS}


def measure(browser: Browser, url: str, runs: int, timeout_s: float = 60) -> list[dict[str, float]]:
    """``runs`` navigations, each in a new context (a new session, with nothing cached)."""
    results = []
    for _ in range(runs):
        context = browser.new_context(viewport={"width": 1440, "height": 2500})
        try:
            results.append(navigate(context.new_page(), url, timeout_s))
        finally:
            context.close()
    return results


def medians(results: Sequence[dict[str, float]]) -> dict[str, float]:
    return {name: statistics.median(r[name] for r in results) for name in results[0]}


def line(times: dict[str, float]) -> str:
    """``shell 0.41 s · leaderboard 0.62 s · ...``: one navigation, or the medians."""
    return " · ".join(f"{name} {seconds:.2f} s" for name, seconds in times.items())


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--runs", type=positive_int, default=7, help="navigations (default 7)")
    parser.add_argument(
        "--url", default="", help="the dashboard to open (default: up's, http://127.0.0.1:DASHBOARD_PORT)"
    )
    parser.add_argument(
        "--timeout", type=positive_int, default=60, help="seconds a section may take to show (default 60)"
    )
    parser.add_argument(
        "--pause",
        type=float,
        default=0.0,
        help="seconds between navigations (default 0; above the page's few seconds of shared "
        "results, every navigation queries anew)",
    )


def run(args: argparse.Namespace, settings: Settings) -> int:
    url = (args.url or f"http://127.0.0.1:{settings.dashboard_port}").rstrip("/") + "/"
    print(f"{args.runs} navigations to {url}, each a new browser session; seconds until each shows:")
    with chromium() as browser:
        results = []
        for i in range(args.runs):
            if i and args.pause:
                time.sleep(args.pause)
            [times] = measure(browser, url, 1, args.timeout)
            results.append(times)
            print(f"  run {i + 1}: {line(times)}", flush=True)
    print(f"median: {line(medians(results))}")
    return 0
