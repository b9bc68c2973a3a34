"""Do the sinks hold exactly what the source holds? Event ids, and counts per minute and content.

Postgres is the truth; ClickHouse is read with ``FINAL`` (one row per event id); Redis minute
buckets hold one count per (minute, content) for the events of that UTC minute. The same
comparisons back the tests that crash and restart processes, and the reconciliation checks.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

import redis
from clickhouse_connect.driver.client import Client
from psycopg2.extensions import connection as PgConnection

from engagement_platform.monitoring.verdict import Level, Verdict
from engagement_platform.streaming.leaderboard import Keys, bucket_start
from engagement_platform.warehouse import ddl

# (YYYYMMDDHHMM in UTC, content_id): the leaderboard's bucket and member
MinuteKey = tuple[str, str]

PG_MINUTE = "to_char(date_trunc('minute', event_ts AT TIME ZONE 'UTC'), 'YYYYMMDDHH24MI')"
CH_MINUTE = "formatDateTime(toStartOfMinute(event_ts), '%Y%m%d%H%i')"


@dataclass(frozen=True)
class IdDiff:
    source: int
    sink: int
    missing: frozenset[int]  # in the source, not in the sink
    extra: frozenset[int]  # in the sink, not in the source

    @property
    def exact(self) -> bool:
        return not self.missing and not self.extra


def diff_ids(source: Iterable[int], sink: Iterable[int]) -> IdDiff:
    src, dst = set(source), set(sink)
    return IdDiff(len(src), len(dst), frozenset(src - dst), frozenset(dst - src))


def clickhouse_duplicates(client: Client) -> int:
    """Event ids stored more than once even under FINAL (must be 0)."""
    return ddl.scalar_int(client, "SELECT count() - uniqExact(event_id) FROM engagement_enriched FINAL")


def postgres_minute_counts(conn: PgConnection, after_id: int = 0) -> Counter[MinuteKey]:
    with conn.cursor() as cur:
        cur.execute(
            f"SELECT {PG_MINUTE}, content_id::text, count(*) FROM engagement_events "
            "WHERE id > %s GROUP BY 1, 2",
            (after_id,),
        )
        return Counter({(minute, content): n for minute, content, n in cur.fetchall()})


def clickhouse_minute_counts(client: Client, after_id: int = 0) -> Counter[MinuteKey]:
    result = client.query(
        f"SELECT {CH_MINUTE}, toString(content_id), count() FROM engagement_enriched FINAL "
        "WHERE event_id > {after:UInt64} GROUP BY 1, 2",
        parameters={"after": after_id},
    )
    return Counter({(minute, content): n for minute, content, n in result.result_rows})


def redis_minute_counts(
    client: redis.Redis, minutes: Iterable[str], keys: Keys | None = None
) -> Counter[MinuteKey]:
    """Scores of the given minute buckets (the ``events`` metric: one per counted event)."""
    keys = keys or Keys()
    wanted = sorted(set(minutes))
    pipe = client.pipeline(transaction=False)
    for minute in wanted:
        pipe.zrange(keys.minute(minute), 0, -1, withscores=True)
    counts: Counter[MinuteKey] = Counter()
    for minute, members in zip(wanted, pipe.execute(), strict=True):
        for member, score in members:
            name = member.decode() if isinstance(member, bytes) else member
            counts[(minute, name)] = int(score)
    return counts


def count_diff(expected: Counter[MinuteKey], got: Counter[MinuteKey]) -> dict[MinuteKey, tuple[int, int]]:
    """(expected, got) for every key where they differ."""
    return {k: (expected[k], got[k]) for k in expected.keys() | got.keys() if expected[k] != got[k]}


# --- closed windows, for the checks that run on their own -------------------------------------
# Events younger than the settle time may still be on their way between source and sink; older
# than the look-back is history a check need not re-read every few minutes.


def window_ids_postgres(conn: PgConnection, start: datetime, end: datetime) -> set[int]:
    with conn.cursor() as cur:
        cur.execute("SELECT id FROM engagement_events WHERE event_ts >= %s AND event_ts < %s", (start, end))
        return {row[0] for row in cur.fetchall()}


def window_ids_clickhouse(client: Client, start: datetime, end: datetime) -> set[int]:
    result = client.query(
        "SELECT event_id FROM engagement_enriched FINAL "
        "WHERE event_ts >= {start:DateTime64(3, 'UTC')} AND event_ts < {end:DateTime64(3, 'UTC')}",
        parameters={"start": start, "end": end},
    )
    return {row[0] for row in result.result_rows}


# per minute of event_ts: (count, sum of ids, sum of their squares). Equal fingerprints mean the
# same ids but for a loss and a gain that keep all three sums, which real faults do not make.
Fingerprint = tuple[int, int, int]


def window_fingerprints_postgres(
    conn: PgConnection, start: datetime, end: datetime
) -> dict[str, Fingerprint]:
    with conn.cursor() as cur:
        cur.execute(
            f"SELECT {PG_MINUTE}, count(*), sum(id), sum(id::numeric * id) FROM engagement_events "
            "WHERE event_ts >= %s AND event_ts < %s GROUP BY 1",
            (start, end),
        )
        return {minute: (int(n), int(total), int(squares)) for minute, n, total, squares in cur.fetchall()}


def window_fingerprints_clickhouse(client: Client, start: datetime, end: datetime) -> dict[str, Fingerprint]:
    result = client.query(
        f"SELECT {CH_MINUTE}, count(), sum(event_id), sum(toUInt128(event_id) * event_id) "
        "FROM engagement_enriched FINAL "
        "WHERE event_ts >= {start:DateTime64(3, 'UTC')} AND event_ts < {end:DateTime64(3, 'UTC')} GROUP BY 1",
        parameters={"start": start, "end": end},
    )
    return {minute: (int(n), int(total), int(squares)) for minute, n, total, squares in result.result_rows}


def differing_minutes(source: dict[str, Fingerprint], sink: dict[str, Fingerprint]) -> list[str]:
    """The YYYYMMDDHHMM minutes whose ids differ between the two sides, in order."""
    return sorted(m for m in source.keys() | sink.keys() if source.get(m) != sink.get(m))


def window_diff(conn: PgConnection, client: Client, start: datetime, end: datetime) -> IdDiff:
    """Postgres's event ids of ``[start, end)`` against ClickHouse FINAL's, reading ids only of
    the minutes whose fingerprints differ: an hour at 1,000 events/s is 3.6 M ids per side,
    ~0.5 GB of Python sets in the process that runs the check, every minute. The ids of all
    differing minutes are compared together, so an event whose timestamp lands in the next
    minute on one side (microseconds against ClickHouse's milliseconds) is neither missing nor
    extra."""
    source = window_fingerprints_postgres(conn, start, end)
    sink = window_fingerprints_clickhouse(client, start, end)
    src: set[int] = set()
    dst: set[int] = set()
    for minute in differing_minutes(source, sink):
        at = bucket_start(minute)
        lo, hi = max(start, at), min(end, at + timedelta(minutes=1))
        src |= window_ids_postgres(conn, lo, hi)
        dst |= window_ids_clickhouse(client, lo, hi)
    diff = diff_ids(src, dst)
    return IdDiff(
        sum(f[0] for f in source.values()), sum(f[0] for f in sink.values()), diff.missing, diff.extra
    )


def window_minute_counts_clickhouse(client: Client, start: datetime, end: datetime) -> Counter[MinuteKey]:
    result = client.query(
        f"SELECT {CH_MINUTE}, toString(content_id), count() FROM engagement_enriched FINAL "
        "WHERE event_ts >= {start:DateTime64(3, 'UTC')} AND event_ts < {end:DateTime64(3, 'UTC')} "
        "GROUP BY 1, 2",
        parameters={"start": start, "end": end},
    )
    return Counter({(minute, content): n for minute, content, n in result.result_rows})


def minutes_between(start: datetime, end: datetime) -> list[str]:
    """The YYYYMMDDHHMM buckets of the whole minutes in ``[start, end)``."""
    first = start.replace(second=0, microsecond=0)
    if first < start:
        first += timedelta(minutes=1)
    minutes, at = [], first
    while at + timedelta(minutes=1) <= end:
        minutes.append(at.strftime("%Y%m%d%H%M"))
        at += timedelta(minutes=1)
    return minutes


def ids_verdict(diff: IdDiff, start: datetime, end: datetime, sample: int = 20) -> Verdict:
    metadata = {
        "window_start": start.isoformat(),
        "window_end": end.isoformat(),
        "postgres_events": diff.source,
        "clickhouse_events": diff.sink,
        "missing": len(diff.missing),
        "extra": len(diff.extra),
        "missing_sample": sorted(diff.missing)[:sample],
        "extra_sample": sorted(diff.extra)[:sample],
    }
    span = f"{start:%H:%M}–{end:%H:%M} UTC"
    if diff.missing:
        return Verdict(
            Level.ERROR,
            f"{len(diff.missing):,} of {diff.source:,} Postgres events of {span} are missing",
            metadata,
        )
    if diff.extra:
        return Verdict(
            Level.WARN, f"{len(diff.extra):,} events of {span} are in ClickHouse, not Postgres", metadata
        )
    return Verdict(
        Level.OK, f"ClickHouse holds exactly the {diff.source:,} Postgres events of {span}.", metadata
    )


def counts_verdict(
    expected: Counter[MinuteKey], got: Counter[MinuteKey], minutes: list[str], sample: int = 20
) -> Verdict:
    diff = count_diff(expected, got)
    metadata = {
        "minutes": len(minutes),
        "first_minute": minutes[0] if minutes else "",
        "last_minute": minutes[-1] if minutes else "",
        "warehouse_events": sum(expected.values()),
        "leaderboard_events": sum(got.values()),
        "mismatched": len(diff),
        "mismatch_sample": [[m, c, e, g] for (m, c), (e, g) in sorted(diff.items())[:sample]],
    }
    if diff:
        return Verdict(
            Level.ERROR,
            f"{len(diff):,} (minute, content) counts of the leaderboard differ from the warehouse",
            metadata,
        )
    return Verdict(
        Level.OK,
        f"the leaderboard counts what the warehouse holds for {len(minutes)} closed minutes.",
        metadata,
    )


def duplicates_verdict(duplicates: int) -> Verdict:
    if duplicates:
        return Verdict(
            Level.ERROR,
            f"{duplicates:,} event ids appear more than once even under FINAL",
            {"duplicates": duplicates},
        )
    return Verdict(Level.OK, "every event id appears once under FINAL.", {"duplicates": 0})
