"""Rising content: the titles whose score grew most from the window before to the last one.

The top N of a window is mostly the same titles all day; a title that went from 5 to 80 plays
in ten minutes is the news. Both windows come from the leaderboard's minute buckets (so from
Redis, live): the last ``window_minutes`` minutes, the current partial one included as in
``top_content``, against the ``window_minutes`` before them (which makes the last window a
little shorter: growth reads at most one partial minute low, for every title alike). A title
needs ``min_count`` in the last window to rank, so one event does not make a trend.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

import orjson
import redis

from engagement_platform.serving.top_content import reader_client
from engagement_platform.settings import Settings
from engagement_platform.streaming.leaderboard import Keys, last_buckets, utcnow

DEFAULT_MIN_COUNT = 10


@dataclass(frozen=True)
class Growth:
    """A title's score in the last window and in the one before; ``growth_pct`` is None when it
    had nothing before (new)."""

    content_id: str
    current: float
    previous: float
    growth_pct: float | None


@dataclass(frozen=True)
class RisingRow:
    rank: int
    content_id: str
    current: float
    previous: float
    growth_pct: float | None  # None: nothing in the window before (a new title)
    title: str | None
    content_type: str | None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def rank_rising(
    current: Mapping[str, float], previous: Mapping[str, float], n: int, min_count: float
) -> list[Growth]:
    """The ``n`` titles that grew most, best first. Only titles with at least ``min_count`` now
    and more than before count. The order is the relative growth, a new title's taken against
    one (so 0 -> 10 ranks below 5 -> 80, not above everything); then the larger current score,
    then the content id, so equal rows keep one order."""
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    if min_count < 0:
        raise ValueError(f"min_count must not be negative, got {min_count}")
    rows = []
    for content_id, now in current.items():
        before = previous.get(content_id, 0.0)
        if now < min_count or now <= before:
            continue
        growth = None if before <= 0 else 100.0 * (now - before) / before
        rows.append(
            (-(now - before) / max(before, 1.0), -now, content_id, Growth(content_id, now, before, growth))
        )
    rows.sort(key=lambda row: row[:3])
    return [row[3] for row in rows[:n]]


def rising_content(
    window_minutes: int = 10,
    n: int = 10,
    *,
    min_count: float = DEFAULT_MIN_COUNT,
    client: redis.Redis | None = None,
    settings: Settings | None = None,
    key_prefix: str = "",
    now: datetime | None = None,
) -> list[RisingRow]:
    """The ``n`` titles rising fastest over the last ``window_minutes`` against the window
    before (``rank_rising``), with titles. Two round trips: both windows' unions (ZUNION, no
    key written), then the titles of the ranked few. Both windows together must fit in the
    consumer's retention (120 minutes by default: windows up to 60)."""
    if window_minutes < 1:
        raise ValueError(f"window_minutes must be at least 1, got {window_minutes}")
    r, owned = reader_client(client, settings)
    try:
        keys = Keys(key_prefix)
        buckets = [keys.minute(b) for b in last_buckets(now or utcnow(), 2 * window_minutes)]
        pipe = r.pipeline(transaction=False)
        pipe.zunion(buckets[:window_minutes], aggregate="SUM", withscores=True)
        pipe.zunion(buckets[window_minutes:], aggregate="SUM", withscores=True)
        last, before = ({_text(m): float(s) for m, s in pairs} for pairs in pipe.execute())
        ranked = rank_rising(last, before, n, min_count)
        if not ranked:
            return []
        metas = r.hmget(keys.content, [g.content_id for g in ranked])
        rows = []
        for rank, (g, meta) in enumerate(zip(ranked, metas, strict=True), start=1):
            info = orjson.loads(meta) if meta else {}
            rows.append(
                RisingRow(
                    rank,
                    g.content_id,
                    g.current,
                    g.previous,
                    g.growth_pct,
                    info.get("title"),
                    info.get("content_type"),
                )
            )
        return rows
    finally:
        if owned:
            r.close()


def _text(member: bytes | str) -> str:
    return member.decode() if isinstance(member, bytes) else str(member)
