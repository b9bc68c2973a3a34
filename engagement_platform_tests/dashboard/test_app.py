"""The Streamlit dashboard, run headless with Streamlit's AppTest against the real stack with data."""

from __future__ import annotations

import re
import uuid
from datetime import timedelta
from urllib.parse import parse_qsl

import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from engagement_platform import settings as settings_module
from engagement_platform.dashboard import analytics, leaderboard, title
from engagement_platform.serving.top_content import top_content
from engagement_platform.settings import PROJECT_ROOT
from engagement_platform.streaming.leaderboard import METRIC_ENGAGEMENT_SECONDS, metric_key_prefix
from engagement_platform.warehouse import ddl
from engagement_platform_tests.dashboard.seed import CONTENT, DEVICES, EVENT_TYPES, Seeded
from engagement_platform_tests.harness import charts, free_ports, metrics

APP = str(PROJECT_ROOT / "engagement_platform" / "dashboard" / "app.py")


def run(query: dict[str, str] | None = None) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=90)
    at.query_params.update(query or {})
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def chart(at: AppTest, prefix: str) -> pd.DataFrame:
    [frame] = [f for title, f in charts(at).items() if title.startswith(prefix)]
    return frame


def url(at: AppTest) -> dict[str, str]:
    """The page's query parameters (AppTest keeps one string, or a list, per key)."""
    return {k: v[-1] if isinstance(v, list) else v for k, v in at.query_params.items()}


def live(table: pd.DataFrame) -> bool:
    """Whether ``table`` is one of the live section's (top N: unique users; rising: growth)."""
    return leaderboard.USERS in table or "growth" in table


def tables(at: AppTest) -> list[pd.DataFrame]:
    """The analytics' tables (the live section's are ``boards``)."""
    return [t.value for t in at.table if not live(t.value)]


def live_tables(at: AppTest) -> list[pd.DataFrame]:
    """The live section's tables as drawn: the top N, then rising (titles as Markdown links)."""
    assert not at.dataframe, "the page draws no data grid: its tables are Markdown tables"
    return [t.value for t in at.table if live(t.value)]


def boards(at: AppTest) -> list[pd.DataFrame]:
    """The live section's tables, their titles as their text."""
    return [b.assign(title=[text for text, _q in links(b["title"])]) for b in live_tables(at)]


def board_links(at: AppTest) -> list[dict[str, str]]:
    """The query parameters of the top N's title links."""
    return [query for _text, query in links(live_tables(at)[0]["title"])]


def warnings(at: AppTest) -> str:
    return "\n".join(w.value for w in at.warning)


def links(column: pd.Series) -> list[tuple[str, dict[str, str]]]:
    """A table column of Markdown links as (text, the link's query parameters)."""
    found = [re.fullmatch(r"\[(.*)\]\(\?(.*)\)", cell) for cell in column]
    assert all(found), list(column)
    return [(m[1], dict(parse_qsl(m[2]))) for m in found if m]


def test_the_page_shows_the_leaderboard_analytics_and_health(app_env: Seeded) -> None:
    at = run()
    settings = settings_module.load()
    expected = top_content(10, 10, settings=settings, key_prefix=app_env.key_prefix)
    board, rising = boards(at)
    assert list(board["title"]) == [r.title for r in expected] == [t for t, _type, _n in CONTENT]
    assert list(board.index) == [r.rank for r in expected]
    assert list(board["type"]) == [r.content_type for r in expected]
    # the seed's users are event id % 7: each title's first (up to) 7 events bring new ones
    assert list(board[leaderboard.USERS]) == [f"{r.unique_users:,}" for r in expected] == ["7", "7", "5", "3"]
    assert metrics(at)["Unique users, last 10 minutes"].value == "7"  # the window's unique users
    bars = chart(at, leaderboard.CHART_TITLE)
    assert list(bars["content_id"]) == [r.content_id for r in expected]  # ids: on hover
    linked = board_links(at)  # and the links: each title's view, with the rest of the view
    assert [q["content"] for q in linked] == [r.content_id for r in expected]
    assert all(q["window"] == url(at)["window"] and q["from"] == url(at)["from"] for q in linked)
    # all of it is new in the last 10 minutes; only Alpha's 12 events reach the minimum of 10
    assert list(rising["title"]) == ["Alpha Podcast"] and list(rising["growth"]) == ["new"]

    assert set(chart(at, analytics.EVENTS_TITLE)["event_type"]) == set(EVENT_TYPES)
    assert set(chart(at, analytics.COMPLETION_TITLE)["content_type"]) == {t for _n, t, _c in CONTENT}
    assert set(chart(at, analytics.DEVICES_TITLE)["device"]) == set(DEVICES)
    top = tables(at)[0]
    # two days of the same events: one built into the rollups, today's from FINAL
    titled = links(top["title"])  # each title links to its page, with the rest of the view
    assert [t for t, _q in titled] == [t for t, _type, _n in CONTENT]
    assert [q["content"] for _t, q in titled] == [app_env.ids[t] for t, _type, _n in CONTENT]
    assert all(q["from"] == url(at)["from"] and q["window"] == url(at)["window"] for _t, q in titled)
    assert list(top["events"]) == [f"{2 * n}" for _t, _type, n in CONTENT]

    health = "\n".join(m.value for m in at.markdown)
    for group in ("enrich", "leaderboard", "warehouse", "leaderboard_seconds"):
        assert f"consumer `{group}`" in health
    assert "/assets/kafka/engagement_enriched" in health and "connector `engagement-postgres-cdc`" in health
    assert not warnings(at), warnings(at)


def test_the_view_is_in_the_url_and_a_filter_changes_the_results(app_env: Seeded) -> None:
    at = run()
    assert url(at)["window"] == "10" and "type" not in url(at)
    at.selectbox(key="content_type").select("video").run()
    assert not at.exception
    assert url(at)["type"] == "video"
    assert [t for t, _q in links(tables(at)[0]["title"])] == ["Gamma Video", "Delta Video"]
    assert set(chart(at, analytics.COMPLETION_TITLE)["content_type"]) == {"video"}

    shared = run(url(at) | {"window": "60", "metric": METRIC_ENGAGEMENT_SECONDS})
    assert [t for t, _q in links(tables(shared)[0]["title"])] == ["Gamma Video", "Delta Video"]
    assert any("last 60 minutes, by engagement seconds" in h.value for h in shared.subheader)
    settings = settings_module.load()
    prefix = metric_key_prefix(METRIC_ENGAGEMENT_SECONDS, app_env.key_prefix)
    by_seconds = top_content(60, 10, settings=settings, key_prefix=prefix)
    assert list(boards(shared)[0]["title"]) == [r.title for r in by_seconds]


def test_the_legend_and_the_filters_offer_what_the_data_holds(app_env: Seeded) -> None:
    at = run()
    assert "share" in set(chart(at, analytics.EVENTS_TITLE)["event_type"])
    assert at.selectbox(key="device").options == ["all", *sorted(DEVICES)]
    assert at.selectbox(key="content_type").options == ["all", *sorted({t for _n, t, _c in CONTENT})]
    # a link may name a value the data lacks: it stays selected (and matches nothing)
    linked = run({"device": "car"})
    assert linked.selectbox(key="device").options == ["all", *sorted(DEVICES), "car"]
    assert url(linked)["device"] == "car"
    assert "No events in this range and filter." in [i.value for i in linked.info]


def test_the_headline_compares_each_figure_with_the_range_before(app_env: Seeded) -> None:
    """Seeded: the same events now and two days ago. The two days ending yesterday hold the old
    ones against nothing before (no %); three days around today hold today's against the three
    before, which hold the old ones: equal."""
    today = app_env.now.date()
    before = run({"from": str(today - timedelta(days=2)), "to": str(today - timedelta(days=1))})
    shown = metrics(before)
    total = sum(n for _t, _type, n in CONTENT)
    assert shown["Events"] == (f"{total:,}", "was 0")
    assert shown["Unique users"] == ("7", "was 0")
    after = run({"from": str(today - timedelta(days=1)), "to": str(today + timedelta(days=1))})
    shown = metrics(after)
    assert shown["Events"] == (f"{total:,}", f"+0.0 % vs {total:,}")
    assert shown["Unique users"].delta == "+0.0 % vs 7"


def test_a_title_s_page_shows_its_figures_and_says_when_an_id_is_wrong(app_env: Seeded) -> None:
    content_id = app_env.ids["Alpha Podcast"]
    at = run({"content": content_id})
    assert [t.value for t in at.title] == ["Alpha Podcast"]
    client = ddl.connect_settings(settings_module.load())
    try:
        [(events, users, played, both)] = client.query(
            "SELECT count(), uniqExact(user_id), uniqExactIf(user_id, event_type = 'play'), "
            "length(arrayIntersect(groupUniqArrayIf(user_id, event_type = 'play'), "
            "groupUniqArrayIf(user_id, event_type = 'finish'))) "
            "FROM engagement_enriched FINAL WHERE content_id = {c:UUID}",
            parameters={"c": content_id},
        ).result_rows
    finally:
        client.close()
    figures = {label: shown.value for label, shown in metrics(at).items()}
    assert figures["Events"] == f"{events:,}" == "24"
    assert (figures["Unique users"], figures["Users who played"]) == (f"{users}", f"{played}")
    assert figures["Played and also finished"] == f"{both}"
    assert figures["Events in the last hour"] == "12"  # the live half: Redis's minute buckets
    assert set(chart(at, analytics.EVENTS_TITLE)["event_type"]) == set(EVENT_TYPES)
    assert int(chart(at, title.DEVICES_TITLE)["events"].sum()) == events
    assert not warnings(at), warnings(at)

    assert "is not a content id" in warnings(run({"content": "not-a-uuid"}))
    assert "has any event in the warehouse" in warnings(run({"content": str(uuid.uuid4())}))


def test_a_malformed_link_opens_the_default_view(app_env: Seeded) -> None:
    at = run({"window": "7", "from": "yesterday", "top": "-1", "type": "'; DROP TABLE x"})
    assert url(at)["window"] == "10" and "type" not in url(at)


@pytest.mark.parametrize(
    ("down", "service", "still_there"),
    [
        ("REDIS_PORT", "Redis", analytics.EVENTS_TITLE),
        ("CLICKHOUSE_PORT", "ClickHouse", leaderboard.CHART_TITLE),
        ("CONNECT_URL", "Kafka Connect", analytics.EVENTS_TITLE),
    ],
)
def test_a_service_down_is_named_and_the_rest_renders(
    app_env: Seeded, monkeypatch: pytest.MonkeyPatch, down: str, service: str, still_there: str
) -> None:
    [port] = free_ports(1)  # nothing listens there
    monkeypatch.setenv(down, f"http://127.0.0.1:{port}" if down == "CONNECT_URL" else str(port))
    at = run()
    assert not at.error
    assert service in warnings(at), warnings(at)
    assert chart(at, still_there) is not None
    assert "Traceback" not in "\n".join(m.value for m in at.markdown)
    if service in ("Redis", "ClickHouse"):
        assert f"{service} is unavailable" in warnings(at)


HOSTILE = {
    "sql-injection": "video' OR '1'='1'; DROP TABLE engagement_enriched; --",
    "sql-comment": "10) UNION SELECT * FROM system.users --",
    "oversized": "9" * 200_000,
    "unicode": "vidéo_日本語",
    "control-characters": "video\x00\r\n\u202e",
}
PARAMETERS = ("window", "metric", "top", "from", "to", "type", "device")


@pytest.mark.parametrize("value", list(HOSTILE.values()), ids=list(HOSTILE))
def test_hostile_url_parameters_never_reach_a_query_unbound_and_the_page_renders(
    app_env: Seeded, monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    """Every parameter at once carries the value: the page renders its default view (or, for a
    word such as Unicode, filters by it), and the value reaches ClickHouse only as a bound
    ``param_*``, never inside a statement's text."""
    from clickhouse_connect.driver._backend.http_sync import HttpSyncBackend

    sent: list[tuple[str, dict[str, object]]] = []
    request = HttpSyncBackend.request

    def spy(
        self: HttpSyncBackend, data: object, params: dict[str, str], *args: object, **kwargs: object
    ) -> object:
        text = data.decode("utf-8", "replace") if isinstance(data, bytes) else str(data)
        sent.append((text, dict(params)))
        return request(self, data, params, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(HttpSyncBackend, "request", spy)  # records, then sends for real
    at = run(dict.fromkeys(PARAMETERS, value))
    assert not at.error, [e.value for e in at.error]
    assert chart(at, leaderboard.CHART_TITLE) is not None
    infos = [i.value for i in at.info]
    assert any(title.startswith(analytics.EVENTS_TITLE) for title in charts(at)) or (
        "No events in this range and filter." in infos
    )
    shown = url(at)
    assert (shown["window"], shown["top"]) == ("10", "10")  # fixed choices: the defaults
    assert sent, "the page sent no query"
    for text, params in sent:
        assert value not in text and value.strip() not in text
        for name, bound in params.items():
            if value in str(bound):
                assert name.startswith("param_"), name
    filtered = shown.get("type")
    assert filtered in (None, value)  # kept only when it is a plain word, then bound
    if filtered:
        assert any(params.get("param_content_type") == value for _, params in sent)
