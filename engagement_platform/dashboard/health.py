"""Pipeline health, measured by the same functions the Dagster checks call (``monitoring.*``):
lag per consumer group, the newest event in Redis and in ClickHouse, DLQ records and parse
errors in the window, the connector's state; each row links to its asset in the Dagster UI.

A service that does not answer turns its rows into "not measured" and is named in a notice;
the other rows are measured all the same.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import redis
import streamlit as st
from clickhouse_connect.driver.client import Client

from engagement_platform.cdc.connect_client import ConnectClient
from engagement_platform.cdc.connector import connector_name
from engagement_platform.dashboard import services
from engagement_platform.dashboard.view import View, escape_colons
from engagement_platform.monitoring import lag, quality
from engagement_platform.monitoring.activity import leaderboard_activity, table_activity
from engagement_platform.monitoring.connector import evaluate_connector
from engagement_platform.monitoring.freshness import DEFAULT_FRESH, freshness_verdict
from engagement_platform.monitoring.verdict import Level, Verdict
from engagement_platform.settings import Settings
from engagement_platform.streaming import topics
from engagement_platform.streaming.leaderboard import METRIC_EVENTS, Keys, metric_key_prefix
from engagement_platform.warehouse import ddl

REFRESH_S = 15
# the assets the checks are on, as Dagster keys them (a test holds them to the definitions)
TOPIC_ASSETS = {
    topics.EVENTS_FLAT: ("kafka", "engagement_events_flat"),
    topics.ENRICHED: ("kafka", "engagement_enriched"),
}
LEADERBOARD_ASSET = ("redis", "leaderboard")
WAREHOUSE_ASSET = ("clickhouse", "engagement_enriched")
CONNECTOR_ASSET = ("cdc", "connector")
# Streamlit's coloured text, not emoji: a browser without an emoji font draws those as boxes
ICONS = {
    Level.OK: ":green[**ok**]",
    Level.WARN: ":orange[**warn**]",
    Level.ERROR: ":red[**error**]",
    None: ":gray[not measured]",
}


@dataclass(frozen=True)
class Row:
    """One line of the panel: a verdict (None: its service did not answer) and its figures."""

    name: str
    level: Level | None
    summary: str
    asset: tuple[str, ...]
    figures: dict[str, str] = field(default_factory=dict)
    down: str = ""  # the service that did not answer, if any

    @classmethod
    def of(cls, name: str, verdict: Verdict, asset: tuple[str, ...], **figures: str) -> Row:
        return cls(name, verdict.level, verdict.description, asset, dict(figures))


def consumer_groups(mode: str) -> tuple[lag.ConsumerGroup, ...]:
    """The checked groups, and `up`'s engagement-seconds leaderboard."""
    return (*lag.consumer_groups(mode), lag.ConsumerGroup(lag.SECONDS_GROUP, topics.ENRICHED))


def consumer_rows(settings: Settings, timeout: float = services.TIMEOUT_S) -> list[Row]:
    groups = consumer_groups(settings.mode)
    verdicts = lag.evaluate_lag(settings.kafka_bootstrap_servers, groups, lag.LagThresholds(), timeout)
    rows = []
    for g, (verdict, measured) in zip(groups, verdicts, strict=True):
        name, asset = f"consumer `{g.group}`", TOPIC_ASSETS[g.topic]
        if measured is None:
            rows.append(Row(name, None, verdict.description, asset, down="Kafka"))
            continue
        behind = {"messages behind": f"{measured.total:,}", "seconds behind": f"{measured.max_seconds:,.1f}"}
        rows.append(Row.of(name, verdict, asset, **behind))
    return rows


def age_row(name: str, newest: datetime | None, now: datetime, asset: tuple[str, ...]) -> Row:
    """The newest event's age, graded by the bounds of the streaming assets' freshness checks."""
    age = None if newest is None else max((now - newest).total_seconds(), 0.0)
    verdict = freshness_verdict(name, age, *DEFAULT_FRESH)
    shown = "none yet" if newest is None else f"{newest:%H:%M:%S} UTC ({age:,.0f} s ago)"
    return Row.of(name, verdict, asset, **{"newest event": shown})


def redis_row(client: redis.Redis, settings: Settings, now: datetime) -> Row:
    """Redis keeps minutes: the newest bucket's start is the newest event's time, to the minute."""
    keys = Keys(metric_key_prefix(METRIC_EVENTS, settings.leaderboard_key_prefix))
    activity = leaderboard_activity(client, now, {}, keys, minutes=60)
    return age_row("newest event in Redis (minute bucket)", activity.newest, now, LEADERBOARD_ASSET)


def clickhouse_row(client: Client, now: datetime) -> Row:
    activity = table_activity(client, ddl.ENRICHED, "count()", "max(event_ts)")
    return age_row("newest event in ClickHouse", activity.newest, now, WAREHOUSE_ASSET)


def quality_row(
    client: Client, settings: Settings, since: datetime, timeout: float = services.TIMEOUT_S
) -> Row:
    measured = quality.measure(client, settings.kafka_bootstrap_servers, topics.ENRICHED_DLQ, since, timeout)
    verdict = quality.quality_verdict(measured, since, quality.QualityThresholds())
    figures = {"DLQ records": f"{measured.dlq:,}", "parse errors": f"{measured.parse_errors:,}"}
    return Row.of(
        f"DLQ and parse errors since {since:%H:%M} UTC", verdict, TOPIC_ASSETS[topics.ENRICHED], **figures
    )


def connector_row(settings: Settings, timeout: float = services.TIMEOUT_S) -> Row:
    name = connector_name()
    verdict = evaluate_connector(ConnectClient(settings.connect_url, timeout), name)
    state = {"state": str(verdict.metadata.get("state", "unknown"))}
    row = Row.of(f"connector `{name}`", verdict, CONNECTOR_ASSET, **state)
    # registered_connectors is absent only when Connect itself did not answer (missing_verdict)
    unreachable = "error" in verdict.metadata and "registered_connectors" not in verdict.metadata
    return Row(row.name, None, row.summary, row.asset, {}, "Kafka Connect") if unreachable else row


def guarded(service: str, name: str, asset: tuple[str, ...], measure: Callable[[], Row]) -> Row:
    """``measure()``, or a "not measured" row naming ``service`` when it does not answer."""
    try:
        return measure()
    except services.ERRORS[service] as exc:
        return Row(name, None, f"{service} did not answer: {services.describe(exc)}", asset, down=service)


def measure_all(
    settings: Settings,
    redis_client: redis.Redis,
    clickhouse: Callable[[], AbstractContextManager[Client]],
    window_minutes: int,
) -> list[Row]:
    """Every row, each service asked independently and all at once (the slowest service sets
    the panel's time, not the sum of them). ``clickhouse`` makes a client context."""
    now = datetime.now(UTC)

    def warehouse_rows() -> list[Row]:
        try:
            with clickhouse() as client:
                since = now - timedelta(minutes=window_minutes)
                return [clickhouse_row(client, now), quality_row(client, settings, since)]
        except services.ERRORS["ClickHouse"] as exc:
            reason = f"ClickHouse did not answer: {services.describe(exc)}"
            return [
                Row("newest event in ClickHouse", None, reason, WAREHOUSE_ASSET, down="ClickHouse"),
                Row("DLQ and parse errors", None, reason, TOPIC_ASSETS[topics.ENRICHED], down="ClickHouse"),
            ]

    measured = services.concurrently(
        {
            "consumers": lambda: consumer_rows(settings),
            "redis": lambda: [
                guarded(
                    "Redis",
                    "newest event in Redis",
                    LEADERBOARD_ASSET,
                    lambda: redis_row(redis_client, settings, now),
                )
            ],
            "warehouse": warehouse_rows,
            "connector": lambda: [connector_row(settings)],
        }
    )
    return [row for rows in measured.values() for row in rows]


@st.cache_data(ttl=services.RESULTS_TTL_S, show_spinner=False)
def measured(settings: Settings, window_minutes: int) -> list[Row]:
    """The panel's rows as the page shows them: shared by sessions for a few seconds, and started
    in the background by the page before the sections above this one (services.prefetch)."""
    return measure_all(
        settings, services.redis_client(settings), lambda: services.warehouse(settings), window_minutes
    )


def asset_url(settings: Settings, asset: tuple[str, ...]) -> str:
    return f"{settings.dagster_ui}/assets/{'/'.join(asset)}"


def _cell(text: str) -> str:
    """Text for a cell of the panel's table; its colons escaped (``view.escape_colons``)."""
    return escape_colons(text).replace("|", "\\|").replace("\n", " ")


def markdown(rows: list[Row], settings: Settings) -> str:
    """The panel as a Markdown table: text the browser shows (and a test reads), with links."""
    lines = ["| status | what | figures | verdict | Dagster |", "|---|---|---|---|---|"]
    for r in rows:
        figures = ", ".join(f"{_cell(k)}: **{_cell(v)}**" for k, v in r.figures.items())
        link = f"[{'/'.join(r.asset)}]({asset_url(settings, r.asset)})"
        lines.append(f"| {ICONS[r.level]} | {_cell(r.name)} | {figures} | {_cell(r.summary)} | {link} |")
    return "\n".join(lines)


@st.fragment(run_every=REFRESH_S)
def section(settings: Settings, view: View) -> None:
    st.header("Pipeline health")
    st.caption(f"The measurements of the Dagster checks, every {REFRESH_S} s; window {view.window} min.")
    rows = measured(settings, view.window)
    down = sorted({r.down for r in rows if r.down})
    if down:
        st.warning(f"**Not reachable: {', '.join(down)}** — their rows are not measured; the others are.")
    st.markdown(markdown(rows, settings))
