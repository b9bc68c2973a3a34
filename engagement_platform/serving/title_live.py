"""One title's last hour from the leaderboard's minute buckets in Redis: what its page shows live
beside the warehouse's history (the buckets hold every event type together, as the leaderboard
counts them)."""

from __future__ import annotations

from datetime import datetime

import redis

from engagement_platform.streaming.leaderboard import Keys, bucket_start, last_buckets, utcnow

HOUR_MINUTES = 60


def title_last_hour(
    client: redis.Redis,
    content_id: str,
    *,
    key_prefix: str = "",
    now: datetime | None = None,
    minutes: int = HOUR_MINUTES,
) -> list[tuple[datetime, float]]:
    """(UTC minute, score) for each of the last ``minutes`` buckets up to the current one, oldest
    first; 0 where the title had nothing (or the bucket expired). ``key_prefix``: the metric's, as
    ``metric_key_prefix`` gives it. One round trip: the ZSCOREs are pipelined."""
    keys = Keys(key_prefix)
    buckets = last_buckets(now or utcnow(), minutes)[::-1]
    pipe = client.pipeline(transaction=False)
    for bucket in buckets:
        pipe.zscore(keys.minute(bucket), content_id)
    scores = pipe.execute()
    return [(bucket_start(b), float(s or 0)) for b, s in zip(buckets, scores, strict=True)]
