"""Issue 4's end-to-end check on the shared stack: Postgres -> CDC -> enrich -> leaderboard.

Derived fields are recomputed by Postgres itself (not by the enrichment code under test),
and the leaderboard's minute buckets are compared with a GROUP BY over Postgres.
"""

from __future__ import annotations

import json
import signal
import subprocess
import time
import uuid

import psycopg2
import pytest
import redis

from engagement_platform_tests.harness import CLI, materialize, read_topic

RECOMPUTE = """
SELECT e.id, e.content_id::text, e.user_id::text, e.event_type, e.device, e.duration_ms,
       e.duration_ms / 1000.0 AS engagement_seconds,
       round(100 * (e.duration_ms / 1000.0) / c.length_seconds, 2) AS engagement_pct,
       c.content_type, c.title, c.slug, c.length_seconds,
       to_char(e.event_ts AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') AS event_ts
FROM engagement_events e JOIN content c ON c.id = e.content_id
WHERE e.id > %s
"""

# events per UTC minute bucket (YYYYMMDDHHMM, the leaderboard's key suffix)
PER_MINUTE = """
SELECT minute, count(*) FROM (
    SELECT to_char(date_trunc('minute', event_ts AT TIME ZONE 'UTC'), 'YYYYMMDDHH24MI') AS minute
    FROM engagement_events
) m WHERE minute = ANY(%s) GROUP BY minute
"""


@pytest.mark.slow
def test_5000_events_enriched_exactly_and_counted_once_on_the_leaderboard(source_schema) -> None:
    stack = source_schema
    assert materialize(stack, "cdc/connector").returncode == 0
    run = uuid.uuid4().hex[:8]
    enriched_topic, prefix = f"test.enriched.{run}", f"test{run}:"
    consumers = [
        subprocess.Popen(
            [*CLI, "consume", *args], env=stack.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        for args in (
            ["enrich", "--group", f"e-{run}", "--output-topic", enriched_topic, "--dlq-topic", f"dlq.{run}"],
            ["leaderboard", "--group", f"l-{run}", "--topic", enriched_topic, "--key-prefix", prefix],
        )
    ]  # fmt: skip
    conn = psycopg2.connect(stack.settings.postgres_dsn)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT coalesce(max(id), 0) FROM engagement_events")
            before = cur.fetchone()[0]
        stack.cli("simulate", "--content", "30", "--events", "5000", "--seed", "11")
        with conn.cursor() as cur:
            cur.execute(RECOMPUTE, (before,))
            columns = [d.name for d in cur.description]
            expected = {row[0]: dict(zip(columns, row, strict=True)) for row in cur.fetchall()}
        assert len(expected) == 5000

        def enriched_ids(messages) -> set[int]:  # type: ignore[no-untyped-def]
            return {json.loads(m.value())["event_id"] for m in messages}

        messages = read_topic(
            stack.settings.kafka_bootstrap_servers,
            enriched_topic,
            until=lambda ms: set(expected) <= enriched_ids(ms),
            timeout=180,
        )
        got = {}
        for m in messages:
            value = json.loads(m.value())
            if value["event_id"] in expected:
                got[value["event_id"]] = value
        assert set(got) == set(expected)
        for event_id, want in expected.items():
            have = got[event_id]
            assert have["content_missing"] is False
            for field in ("content_id", "user_id", "event_type", "device", "duration_ms", "content_type",
                          "title", "slug", "length_seconds", "event_ts"):  # fmt: skip
                assert have[field] == want[field], (event_id, field, have[field], want[field])
            for field in ("engagement_seconds", "engagement_pct"):
                if want[field] is None:
                    assert have[field] is None, (event_id, field)
                else:
                    assert abs(have[field] - float(want[field])) <= 0.0100001, (event_id, field, have[field])

        # every event of Postgres that falls in the affected minutes, counted exactly once
        buckets = sorted(
            {v["event_ts"][:16].replace("-", "").replace("T", "").replace(":", "") for v in expected.values()}
        )
        with conn.cursor() as cur:
            cur.execute(PER_MINUTE, (buckets,))
            per_bucket = dict(cur.fetchall())
        client = redis.Redis.from_url(stack.settings.redis_url)
        keys = [f"{prefix}zset:eng:minute:{b}" for b in buckets]

        def totals() -> dict[str, float]:
            return {k: sum(score for _, score in client.zrange(k, 0, -1, withscores=True)) for k in keys}

        deadline = time.monotonic() + 120
        while sum(totals().values()) < sum(per_bucket.values()) and time.monotonic() < deadline:
            time.sleep(1)
        time.sleep(2)  # anything still arriving would be a double count
        got_totals = totals()
        want_totals = {f"{prefix}zset:eng:minute:{b}": n for b, n in per_bucket.items()}
        assert got_totals == want_totals
        assert sum(got_totals.values()) >= 5000
        assert all(client.ttl(k) > 0 for k in keys)
        client.close()
    finally:
        conn.close()
        for proc in consumers:
            proc.send_signal(signal.SIGTERM)
        for proc in consumers:
            assert proc.wait(timeout=60) == 0
