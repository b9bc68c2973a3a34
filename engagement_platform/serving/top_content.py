"""The leaderboard read API: rolling top-N over the last minute buckets, with titles.

The dashboard refreshes often and several viewers ask for the same window, so the union of
the window's buckets is stored under a short-lived cache key named after the window and its
newest minute; readers within ``max_age_ms`` reuse it instead of re-merging up to
``retention`` sorted sets each time. Unique users come from the consumer's per-minute
HyperLogLogs: PFCOUNT over a window's minute keys counts the union (Redis's standard error,
0.81%), pipelined so the N titles cost one round trip.
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
    """One ranked title; ``unique_users``: distinct user ids of its events over the window
    (a HyperLogLog estimate)."""

    rank: int
    content_id: str
    score: float
    title: str | None
    content_type: str | None
    unique_users: int = 0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def reader_client(client: redis.Redis | None, settings: Settings | None) -> tuple[redis.Redis, bool]:
    """``client``, or one logged in as the read API's ACL user from ``settings`` (the process
    environment when neither is given); the flag says whether the caller must close it."""
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
    users_prefix: str | None = None,
    now: datetime | None = None,
    max_age_ms: int = 1000,
) -> list[TopRow]:
    """The ``n`` content items with the highest score over the last ``window_minutes`` UTC minutes.

    The window includes the current (partial) minute. Ties are ordered as Redis orders them
    (higher content_id first). ``max_age_ms=0`` always re-merges (tests that just wrote).
    Pass a redis ``client`` or ``settings`` (the process environment when neither is given).
    ``users_prefix``: where the unique-user HyperLogLogs live (the events leaderboard's prefix,
    which alone writes them); default ``key_prefix``.
    """
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    r, owned = reader_client(client, settings)
    try:
        keys = Keys(key_prefix)
        users = keys if users_prefix is None else Keys(users_prefix)
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
        ids = [member.decode() if isinstance(member, bytes) else str(member) for member, _ in rows]
        pipe = r.pipeline(transaction=False)
        pipe.hmget(keys.content, ids)
        for content_id in ids:
            pipe.pfcount(*(users.users(b, content_id) for b in buckets))
        metas, *uniques = pipe.execute()
        result = []
        for rank, ((_member, score), content_id, meta, users) in enumerate(
            zip(rows, ids, metas, uniques, strict=True), start=1
        ):
            info = orjson.loads(meta) if meta else {}
            result.append(
                TopRow(
                    rank=rank,
                    content_id=content_id,
                    score=float(score),
                    title=info.get("title"),
                    content_type=info.get("content_type"),
                    unique_users=int(users),
                )
            )
        return result
    finally:
        if owned:
            r.close()


def unique_users(
    window_minutes: int = 10,
    *,
    client: redis.Redis | None = None,
    settings: Settings | None = None,
    key_prefix: str = "",
    now: datetime | None = None,
) -> int:
    """Distinct user ids over the last ``window_minutes`` UTC minutes, all content together (the
    current minute included, as in ``top_content``): one PFCOUNT of the window's overall
    HyperLogLogs, an estimate within Redis's standard error (0.81%)."""
    r, owned = reader_client(client, settings)
    try:
        keys = Keys(key_prefix)
        return int(r.pfcount(*(keys.users(b) for b in last_buckets(now or utcnow(), window_minutes))))
    finally:
        if owned:
            r.close()
