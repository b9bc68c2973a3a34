"""Known data for the dashboard's tests, written the way the platform writes it: enriched rows into
a ClickHouse database of their own (one past day built into the daily rollups by the asset's
code), and the leaderboard's buckets into Redis under a prefix of their own by the consumer's
aggregate-and-apply code, for both metrics."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import redis

from engagement_platform.migrations import clickhouse as migrations
from engagement_platform.settings import Settings
from engagement_platform.streaming.leaderboard import (
    METRICS,
    Keys,
    Rules,
    metric_key_prefix,
)
from engagement_platform.streaming.leaderboard_runner import Applier
from engagement_platform.warehouse import ddl, rollup
from engagement_platform_tests import harness

# title, content type, events in the last minutes (distinct counts: a strict ranking)
CONTENT = (
    ("Alpha Podcast", "podcast", 12),
    ("Gamma Video", "video", 8),
    ("Beta Letter", "newsletter", 5),
    ("Delta Video", "video", 3),
)
# share and tv_box: a type and a device no code lists, which the page must still show and offer
EVENT_TYPES = ("play", "pause", "finish", "click", "share")
DEVICES = ("ios", "web", "android", "tv_box")
LENGTH_S = 600
PAST_DAYS = 2  # one more day of history, built into the daily rollups


@dataclass(frozen=True)
class Seeded:
    database: str
    key_prefix: str
    ids: dict[str, str]  # title -> content id
    now: datetime

    def env(self) -> dict[str, str]:
        return {"CLICKHOUSE_DATABASE": self.database, "LEADERBOARD_KEY_PREFIX": self.key_prefix}


def events(ids: dict[str, str], at: datetime, first_id: int) -> list[dict[str, object]]:
    """Enriched records as the enricher writes them, ``count`` per content, seconds before ``at``."""
    out: list[dict[str, object]] = []
    for title, content_type, count in CONTENT:
        for i in range(count):
            n = first_id + len(out)
            kind = EVENT_TYPES[i % len(EVENT_TYPES)]
            duration = None if kind == "click" else (i * 97 % LENGTH_S) * 1000
            ts = at - timedelta(seconds=1 + i)
            out.append(
                {
                    "event_id": n,
                    "content_id": ids[title],
                    "user_id": str(uuid.UUID(int=n % 7 + 1)),
                    "event_type": kind,
                    "event_ts": ts.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
                    "device": DEVICES[n % len(DEVICES)],
                    "duration_ms": duration,
                    "engagement_seconds": None if duration is None else duration / 1000,
                    "engagement_pct": None
                    if duration is None
                    else round(100 * duration / 1000 / LENGTH_S, 2),
                    "content_type": content_type,
                    "title": title,
                    "slug": title.lower().replace(" ", "-"),
                    "length_seconds": LENGTH_S,
                    "content_missing": False,
                    "_ts": ts,
                }
            )
    return out


COLUMNS = (
    "event_id", "content_id", "user_id", "event_type", "event_ts", "device", "duration_ms",
    "engagement_seconds", "engagement_pct", "content_type", "title", "slug", "length_seconds",
    "enriched_at", "content_missing",
)  # fmt: skip


def row(e: dict[str, object]) -> list[object]:
    values = {
        **e,
        "event_ts": e["_ts"],
        "enriched_at": e["_ts"],
        "content_id": uuid.UUID(str(e["content_id"])),
    }
    values["user_id"] = uuid.UUID(str(e["user_id"]))
    return [values[c] for c in COLUMNS]


def seed(settings: Settings, client: redis.Redis, tag: str) -> Seeded:
    now = datetime.now(UTC).replace(microsecond=0)
    ids = {title: str(uuid.uuid4()) for title, _type, _n in CONTENT}
    live = events(ids, now, 1)
    past_day = now - timedelta(days=PAST_DAYS)
    past = events(ids, past_day.replace(hour=12, minute=0, second=0), 10_000)
    seeded = Seeded(f"dash_{tag}", f"test:{tag}:", ids, now)
    admin = ddl.connect_settings(settings, "default")
    try:
        ddl.ensure_database(admin, seeded.database)
    finally:
        admin.close()
    ch = ddl.connect_settings(settings, seeded.database)
    try:
        migrations.apply(ch, "local", settings.ep_home)
        ch.insert(ddl.ENRICHED, [row(e) for e in live + past], column_names=list(COLUMNS))
        day = past_day.date()
        start = datetime(day.year, day.month, day.day, tzinfo=UTC)
        rollup.rebuild_daily(ch, day, start, start + timedelta(days=1))
    finally:
        ch.close()
    for metric in METRICS:
        rules = Rules(metric=metric)
        applier = Applier(client, rules, Keys(metric_key_prefix(metric, seeded.key_prefix)))
        applier.apply(harness.aggregate_records(live, rules, now))
    return seeded


def unseed(settings: Settings, client: redis.Redis, seeded: Seeded) -> None:
    admin = ddl.connect_settings(settings, "default")
    try:
        admin.command("DROP DATABASE IF EXISTS {db:Identifier}", parameters={"db": seeded.database})
    finally:
        admin.close()
    for key in client.scan_iter(match=f"{seeded.key_prefix}*", count=1000):
        client.delete(key)
