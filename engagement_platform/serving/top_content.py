"""The leaderboard read API: rolling top-N over the last minute buckets, with titles.

The dashboard refreshes often and several viewers ask for the same window, so the union of
the window's buckets is stored under a short-lived cache key named after the window and its
newest minute; readers within ``max_age_ms`` reuse it instead of re-merging up to
``retention`` sorted sets each time.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

import orjson
import redis

from engagement_platform import settings as settings_module
from engagement_platform.settings import Settings
from engagement_platform.streaming.leaderboard import Keys, last_buckets, utcnow


@dataclass(frozen=True)
class TopRow:
    rank: int
    content_id: str
    score: float
    title: str | None
    content_type: str | None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _client(client: redis.Redis | None, settings: Settings | None) -> tuple[redis.Redis, bool]:
    if client is not None:
        return client, False
    s = settings if settings is not None else settings_module.load()
    user, password = s.redis_login("reader")  # the read API's own ACL user
    made = redis.Redis(
        host=s.redis_host,
        port=s.redis_port,
        db=s.redis_db,
        username=user,
        password=password or None,
        socket_connect_timeout=5,
        socket_timeout=10,
    )
    return made, True


def top_content(
    window_minutes: int = 10,
    n: int = 10,
    *,
    client: redis.Redis | None = None,
    settings: Settings | None = None,
    key_prefix: str = "",
    now: datetime | None = None,
    max_age_ms: int = 1000,
) -> list[TopRow]:
    """The ``n`` content items with the highest score over the last ``window_minutes`` UTC minutes.

    The window includes the current (partial) minute. Ties are ordered as Redis orders them
    (higher content_id first). ``max_age_ms=0`` always re-merges (tests that just wrote).
    Pass a redis ``client`` or ``settings`` (the process environment when neither is given).
    """
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    r, owned = _client(client, settings)
    try:
        keys = Keys(key_prefix)
        buckets = last_buckets(now or utcnow(), window_minutes)
        cache = keys.top_cache(window_minutes, buckets[0])
        rows: list[tuple[bytes, float]] = []
        fresh = False
        if max_age_ms > 0:
            pipe = r.pipeline(transaction=False)
            pipe.exists(cache)
            pipe.zrevrange(cache, 0, n - 1, withscores=True)
            exists, rows = pipe.execute()
            fresh = bool(exists)
        if not fresh:
            pipe = r.pipeline(transaction=True)
            pipe.zunionstore(cache, [keys.minute(b) for b in buckets], aggregate="SUM")
            pipe.pexpire(cache, max(max_age_ms, 1))
            pipe.zrevrange(cache, 0, n - 1, withscores=True)
            if max_age_ms <= 0:
                pipe.delete(cache)
            rows = pipe.execute()[2]
        if not rows:
            return []
        ids = [member for member, _ in rows]
        metas = r.hmget(keys.content, ids)
        result = []
        for rank, ((member, score), meta) in enumerate(zip(rows, metas, strict=True), start=1):
            info = orjson.loads(meta) if meta else {}
            result.append(
                TopRow(
                    rank=rank,
                    content_id=member.decode() if isinstance(member, bytes) else str(member),
                    score=float(score),
                    title=info.get("title"),
                    content_type=info.get("content_type"),
                )
            )
        return result
    finally:
        if owned:
            r.close()
