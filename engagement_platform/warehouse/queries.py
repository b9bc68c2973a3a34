"""The dashboard's warehouse queries, as functions: the app renders them and `bench warehouse`
times exactly these (``page_queries``).

Every value is a bound query parameter, never formatted into the SQL. Each query reads the
days already built from the daily rollups and the rest from ``engagement_enriched FINAL``, so
it is exact and fast (docs/design/warehouse.md).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any

from clickhouse_connect.driver.client import Client

from engagement_platform.warehouse.ddl import BREAKDOWN, BY_DEVICE, ENRICHED, USERS_DAILY, scalar_int
from engagement_platform.warehouse.rollup import PCT_BUCKET

if TYPE_CHECKING:  # query_df imports pandas when a query runs: importing this module must not
    import pandas as pd  # (``bench warehouse`` imports it, and so the CLI of every consumer)

# the rollups hold hours: finer buckets come from FINAL alone
HOUR = 3600
DEFAULT_DAYS = 7


@dataclass(frozen=True)
class Filters:
    """What the analytics are filtered by: UTC days ``start``..``end`` (both included), and a
    content type and a device ('' for all)."""

    start: date
    end: date
    content_type: str = ""
    device: str = ""

    @classmethod
    def last_days(cls, days: int = DEFAULT_DAYS, today: date | None = None) -> Filters:
        end = today or datetime.now(UTC).date()
        return cls(end - timedelta(days=days - 1), end)

    @property
    def days(self) -> int:
        return (self.end - self.start).days + 1

    def previous(self) -> Filters:
        """The same filters over the range of the same length that ends the day before this one
        starts: what the page compares each figure with."""
        return replace(self, start=self.start - timedelta(days=self.days), end=self.start - timedelta(days=1))

    @property
    def bucket_seconds(self) -> int:
        """The resolution of the events chart: minutes for one day, hours for more."""
        return 60 if self.days <= 1 else HOUR

    def parameters(self) -> dict[str, Any]:
        return {
            "start": self.start,
            "end": self.end,
            "content_type": self.content_type,
            "device": self.device,
        }


def _frame(client: Client, sql: str, parameters: dict[str, Any], columns: str) -> pd.DataFrame:
    """The query's rows as a frame that has its ``columns`` (space-separated) also when there are
    none: query_df then returns a frame without columns, which the page's code cannot index."""
    frame = client.query_df(sql, parameters=parameters)
    return frame.reindex(columns=columns.split()) if frame.empty else frame


FILTER = """({content_type:String} = '' OR content_type = {content_type:String})
        AND ({device:String} = '' OR device = {device:String})"""


def _built(table: str, usable: str = "1") -> str:
    """WITH expressions: ``built``, the days of the range ``table`` holds (none unless ``usable``),
    and ``todo``, the other days of the range, which FINAL must cover."""
    return f"""
    (SELECT groupArray(day) FROM (
        SELECT day FROM {table} WHERE day BETWEEN {{start:Date}} AND {{end:Date}} AND {usable} GROUP BY day
    )) AS built,
    arrayFilter(d -> NOT has(built, d),
        arrayMap(i -> toDate({{start:Date}} + i), range(toUInt32({{end:Date}} - {{start:Date}} + 1)))) AS todo
    """


# the days of ``todo`` as a time range the primary key can prune with, then exactly those days
TODO_ROWS = f"""{ENRICHED} FINAL
    WHERE event_ts >= toDateTime64(arrayMin(todo), 3, 'UTC')
      AND event_ts < toDateTime64(arrayMax(todo) + 1, 3, 'UTC')
      AND has(todo, toDate(event_ts))"""


def _hybrid(table: str, group_by: str, rollup_select: str, final_select: str, usable: str = "1") -> str:
    """The UNION ALL of ``table`` over its built days and FINAL over the rest, filtered alike and
    both grouped by ``group_by``; the caller aggregates the two sides once more. Aggregates take
    aliases that are not column names (``n``, ``secs``...): ClickHouse resolves a SELECT alias
    in WHERE too, where it would shadow the column the filter means."""
    return f"""
    WITH {_built(table, usable)}
    SELECT * FROM (
        SELECT {rollup_select} FROM {table}
        WHERE has(built, day) AND {FILTER}
        GROUP BY {group_by}
        UNION ALL
        SELECT {final_select} FROM {TODO_ROWS} AND {FILTER}
        GROUP BY {group_by}
    )
    """


EVENTS_BY_TYPE = f"""
SELECT bucket, event_type, sum(n) AS events
FROM ({
    _hybrid(
        BREAKDOWN,
        "bucket, event_type",
        "toStartOfInterval(toDateTime(day, 'UTC') + toIntervalHour(hour), toIntervalSecond({bucket:UInt32}))"
        " AS bucket, event_type, sum(events) AS n",
        "toStartOfInterval(toDateTime(event_ts, 'UTC'), toIntervalSecond({bucket:UInt32})) AS bucket,"
        " event_type, count() AS n",
        usable=f"{{bucket:UInt32}} >= {HOUR}",
    )
})
GROUP BY bucket, event_type ORDER BY bucket, event_type
"""


def events_by_type(client: Client, f: Filters) -> pd.DataFrame:
    """Events per time bucket and event type (columns bucket, event_type, events, per_minute)."""
    frame = _frame(
        client, EVENTS_BY_TYPE, {**f.parameters(), "bucket": f.bucket_seconds}, "bucket event_type events"
    )
    frame["per_minute"] = frame["events"] / (f.bucket_seconds / 60)
    return frame


COMPLETION = f"""
SELECT ifNull(content_type, 'unknown') AS content_type, pct_bucket, sum(n) AS events
FROM ({
    _hybrid(
        BREAKDOWN,
        "content_type, pct_bucket",
        "content_type, pct_bucket, sum(events) AS n",
        f"content_type, {PCT_BUCKET} AS pct_bucket, count() AS n",
    )
})
WHERE pct_bucket IS NOT NULL
GROUP BY content_type, pct_bucket ORDER BY content_type, pct_bucket
"""


def completion_distribution(client: Client, f: Filters) -> pd.DataFrame:
    """Events per completion decile (``pct_bucket`` 0, 10, ... 90) and content type; events
    without a known ``engagement_pct`` (clicks, unknown length) are left out."""
    return _frame(client, COMPLETION, f.parameters(), "content_type pct_bucket events")


DEVICES = f"""
SELECT ifNull(device, 'unknown') AS device, sum(n) AS events, round(sum(secs) / 3600, 2) AS hours_engaged
FROM ({
    _hybrid(
        BY_DEVICE,
        "device",
        "device, sum(events) AS n, sum(engagement_seconds) AS secs",
        "device, count() AS n, sum(ifNull(engagement_seconds, 0)) AS secs",
    )
})
GROUP BY device ORDER BY events DESC, device
"""


def device_split(client: Client, f: Filters) -> pd.DataFrame:
    """Events and engagement hours per device. The device filter does not apply: the split is
    what it chooses from."""
    return _frame(client, DEVICES, replace(f, device="").parameters(), "device events hours_engaged")


# on the FINAL side any() is enough: FINAL kept the copy enriched with its content, and any()
# skips the NULLs of a copy without
TOP_CONTENT = f"""
SELECT toString(content_id) AS content_id, any(ttl) AS title, any(ctype) AS content_type,
       sum(n) AS events, round(sum(secs) / 3600, 2) AS hours_engaged,
       round(sum(psum) / nullIf(sum(pn), 0), 1) AS avg_completion_pct
FROM ({
    _hybrid(
        BY_DEVICE,
        "content_id",
        "content_id, any(title) AS ttl, any(content_type) AS ctype, sum(events) AS n,"
        " sum(engagement_seconds) AS secs, sum(pct_sum) AS psum, sum(pct_count) AS pn",
        "content_id, any(title) AS ttl, any(content_type) AS ctype, count() AS n,"
        " sum(ifNull(engagement_seconds, 0)) AS secs, sum(ifNull(engagement_pct, 0)) AS psum,"
        " count(engagement_pct) AS pn",
    )
})
GROUP BY content_id ORDER BY events DESC, content_id LIMIT {{n:UInt32}}
"""


def top_content(client: Client, f: Filters, n: int = 10) -> pd.DataFrame:
    """The ``n`` most engaged content items of the range, by events."""
    return _frame(
        client,
        TOP_CONTENT,
        {**f.parameters(), "n": n},
        "content_id title content_type events hours_engaged avg_completion_pct",
    )


UNIQUE_USERS = f"""
SELECT uniqExactMerge(users) FROM {USERS_DAILY}
WHERE day BETWEEN {{start:Date}} AND {{end:Date}} AND {FILTER}
"""


def unique_users(client: Client, f: Filters) -> int:
    """Distinct user ids of the range's events (of the type and device filtered), exact: the union
    of the per-day sets of ``users_daily`` (clickhouse_ddl/140), never raw rows. Events without a
    user id count no one."""
    return scalar_int(client, UNIQUE_USERS, f.parameters())


@dataclass(frozen=True)
class Vocabulary:
    """The content types and devices the data holds over a range: what the dashboard's filters
    offer, so a value new to the source shows without a code change (the events chart's legend
    is its own data's event types)."""

    content_types: tuple[str, ...] = ()
    devices: tuple[str, ...] = ()


# distinct values need no deduplication, but reusing the hybrid's two sides keeps this as cheap
# as the other queries: built days from the small breakdown, only the others from FINAL
VOCABULARY = f"""
WITH {_built(BREAKDOWN)}
SELECT arraySort(groupUniqArray(content_type)), arraySort(groupUniqArray(device))
FROM (
    SELECT content_type, device FROM {BREAKDOWN} WHERE has(built, day)
    UNION ALL
    SELECT content_type, device FROM {TODO_ROWS}
)
"""


def vocabulary(client: Client, start: date, end: date) -> Vocabulary:
    """The values of the UTC days ``start``..``end`` (NULLs left out), each sorted."""
    [row] = client.query(VOCABULARY, parameters={"start": start, "end": end}).result_rows
    content_types, devices = (tuple(values) for values in row)
    return Vocabulary(content_types, devices)


def analytics_queries(f: Filters, top_n: int = 10) -> dict[str, Callable[[Client], Any]]:
    """The analytics section's queries by name, as the dashboard runs them (all at once) and
    `bench warehouse` times them; the headline figures run for the previous range too (the
    comparison)."""
    return {
        "events by type": lambda c: events_by_type(c, f),
        "completion by content type": lambda c: completion_distribution(c, f),
        "device split": lambda c: device_split(c, f),
        "top content": lambda c: top_content(c, f, top_n),
        "unique users": lambda c: unique_users(c, f),
        "device split, previous period": lambda c: device_split(c, f.previous()),
        "unique users, previous period": lambda c: unique_users(c, f.previous()),
    }


# what `bench warehouse` times: every query the page runs (the sidebar's filter options too), at
# the page's default filters (the last 7 days) and for a single day (the events chart in minutes)
def _page(f: Filters) -> dict[str, Callable[[Client], Any]]:
    return analytics_queries(f) | {"filter options": lambda c: vocabulary(c, f.start, f.end)}


def page_queries(
    today: date | None = None, content_id: uuid.UUID | None = None
) -> dict[str, Callable[[Client], Any]]:
    """The analytics' queries by name, then, given a ``content_id``, its title page's (named
    "title: ...")."""
    from engagement_platform.warehouse import title  # it imports this module

    week, day = Filters.last_days(DEFAULT_DAYS, today), Filters.last_days(1, today)
    queries: dict[str, Callable[[Client], Any]] = {}
    for span, f in ((f"last {DEFAULT_DAYS} days", week), ("today", day)):
        queries |= {f"{name}, {span}": q for name, q in _page(f).items()}
    if content_id is not None:
        for span, f in ((f"last {DEFAULT_DAYS} days", week), ("today", day)):
            queries |= {f"{name}, {span}": q for name, q in title.page_queries(content_id, f).items()}
    return queries
