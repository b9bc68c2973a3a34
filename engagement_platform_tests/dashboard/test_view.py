"""The view in the URL, and the panel's links, without a stack."""

from __future__ import annotations

import re
import uuid
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from urllib.parse import parse_qsl

from engagement_platform.dashboard import health
from engagement_platform.dashboard.view import View, escape_colons, escape_markdown
from engagement_platform.serving.top_content import TopRow
from engagement_platform.settings import Settings
from engagement_platform.warehouse.queries import Filters

TODAY = date(2026, 3, 10)


def test_a_view_round_trips_through_its_query_parameters() -> None:
    view = View(60, "engagement_seconds", 5, Filters(date(2026, 3, 1), date(2026, 3, 4), "video", "ios"))
    assert View.from_query(view.to_query(), TODAY) == view


def test_a_title_s_view_round_trips_and_its_link_keeps_the_rest_of_the_view() -> None:
    content = "0b5e2c4a-8f6e-4d5b-9a3c-2f1e0d9c8b7a"
    view = View(5, "events", 10, Filters(date(2026, 3, 1), date(2026, 3, 4)), content)
    assert View.from_query(view.to_query(), TODAY) == view
    assert view.content_uuid() == uuid.UUID(content)
    dashboard = replace(view, content="")
    assert "content" not in dashboard.to_query()
    link = dashboard.link(content=content)
    assert link.startswith("?") and View.from_query(dict(parse_qsl(link[1:])), TODAY) == view


def test_a_malformed_title_id_is_kept_for_the_page_to_say_so() -> None:
    for raw in ("not-a-uuid", "'; DROP TABLE x", "1234", "x" * 500):
        view = View.from_query({"content": raw}, TODAY)
        assert view.content == raw[:64] and view.content_uuid() is None
    assert View.from_query({"content": "  "}, TODAY).content == ""


def test_defaults_fill_what_a_link_leaves_out_or_gets_wrong() -> None:
    default = View.from_query({}, TODAY)
    assert (default.window, default.metric, default.top_n) == (10, "events", 10)
    assert (default.filters.start, default.filters.end) == (date(2026, 3, 4), TODAY)
    bad = {"window": "7", "metric": "x", "top": "1e9", "from": "soon", "type": "'; DROP", "device": "a b;"}
    assert View.from_query(bad, TODAY) == default
    swapped = View.from_query({"from": "2026-03-09", "to": "2026-03-02"}, TODAY).filters
    assert (swapped.start, swapped.end) == (date(2026, 3, 2), date(2026, 3, 9))


def test_one_day_is_charted_in_minutes_and_longer_ranges_in_hours() -> None:
    assert Filters(TODAY, TODAY).bucket_seconds == 60
    assert Filters(date(2026, 3, 9), TODAY).bucket_seconds == 3600


def test_the_health_panel_links_to_assets_the_definitions_have() -> None:
    from engagement_platform.definitions import defs

    keys = {tuple(spec.key.path) for spec in defs.resolve_all_asset_specs()}
    linked = {health.LEADERBOARD_ASSET, health.WAREHOUSE_ASSET, health.CONNECTOR_ASSET}
    assert keys >= linked | set(health.TOPIC_ASSETS.values())


def test_the_leaderboard_chart_draws_its_bars_in_rank_order_whatever_the_labels() -> None:
    from engagement_platform.dashboard import leaderboard
    from engagement_platform_tests.dashboard.test_svg import tips

    rows = [
        TopRow(rank, f"c{rank}", float(100 - rank), title, "video")
        for rank, title in [(1, "Zed"), (2, "Alpha"), (3, None)]
    ]
    shown = tips(leaderboard.chart(rows, "events"))
    titles = ["title: Zed", "title: Alpha", f"title: {leaderboard.NO_TITLE}"]
    assert [t.splitlines()[0] for t in shown] == titles
    assert all(f"content_id: c{rank}" in t for rank, t in enumerate(shown, 1))


# Streamlit's Markdown loads its emoji plugin (a script fetched and run before the text shows)
# when a text holds what its frontend reads as an emoji code (StreamlitMarkdown's own pattern)
EMOJI_CODE = re.compile(r":(?!material/|streamlit:)[\w+-][\w_+-]*:")


def test_no_text_the_page_writes_looks_like_an_emoji_code_yet_shows_as_itself() -> None:
    assert EMOJI_CODE.search("newest event 15:10:01 UTC")  # a clock time does
    assert escape_colons("15:10:01") == "15\\:10\\:01" and not EMOJI_CODE.search(escape_colons("15:10:01"))
    assert not EMOJI_CODE.search(escape_markdown("Episode :smile: at 15:10:01"))
    now = datetime(2026, 3, 10, 15, 10, 1, tzinfo=UTC)
    row = health.age_row("newest event in Redis", now, now + timedelta(seconds=3), health.LEADERBOARD_ASSET)
    panel = health.markdown([row], Settings())
    assert "15:10:01" not in panel and "15\\:10\\:01" in panel and not EMOJI_CODE.search(panel)
