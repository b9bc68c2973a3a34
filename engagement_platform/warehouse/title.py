"""One title's history for its page: events by type, completion, devices, audience, over the UTC
days of a ``Filters`` (its content type and device do not apply: the page is one title).

Every query reads the rollups of clickhouse_ddl/140_title_and_users_rollups.sql, keyed by
content id first, never engagement_enriched: sets of event ids (uniqExact) and per-user bits,
so each figure is exact under replays, and a title's rows are all its page reads. Values are
bound query parameters.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from clickhouse_connect.driver.client import Client

from engagement_platform.warehouse.queries import Filters, _frame

if TYPE_CHECKING:  # pandas only when a query runs (see queries.py)
    import pandas as pd

EVENTS = "title_engagement_minute"
COMPLETION = "title_completion_hour"
USERS = "title_users_daily"
NAMES = "title_names"
TABLES = (EVENTS, COMPLETION, USERS, NAMES)


def _range(column: str) -> str:
    """The content and the filters' UTC days, as a condition on a rollup's time ``column``."""
    return (
        f"content_id = {{content:UUID}} AND {column} >= toDateTime({{start:Date}}, 'UTC')"
        f" AND {column} < toDateTime({{end:Date}} + 1, 'UTC')"
    )


def _params(content_id: uuid.UUID, f: Filters, **extra: Any) -> dict[str, Any]:
    return {"content": content_id, "start": f.start, "end": f.end, **extra}


@dataclass(frozen=True)
class Title:
    """What the warehouse knows of a content id: its latest title and type (None when every event
    of it was enriched without its content)."""

    content_id: uuid.UUID
    title: str | None
    content_type: str | None


def find(client: Client, content_id: uuid.UUID) -> Title | None:
    """The content's name, or None when the warehouse has no event of it at all."""
    rows = client.query(
        f"SELECT title, content_type FROM {NAMES} FINAL WHERE content_id = {{content:UUID}}",
        parameters={"content": content_id},
    ).result_rows
    if not rows:
        return None
    title, content_type = rows[0]
    return Title(content_id, title, content_type)


EVENTS_BY_TYPE = f"""
SELECT toStartOfInterval(minute, toIntervalSecond({{bucket:UInt32}})) AS bucket, event_type,
       uniqExactMerge(events) AS events
FROM {EVENTS}
WHERE {_range("minute")}
GROUP BY bucket, event_type ORDER BY bucket, event_type
"""


def events_by_type(client: Client, content_id: uuid.UUID, f: Filters) -> pd.DataFrame:
    """Events per bucket (minutes for one day, hours for more) and type, as the analytics' chart
    wants them (columns bucket, event_type, events, per_minute)."""
    frame = _frame(
        client,
        EVENTS_BY_TYPE,
        _params(content_id, f, bucket=f.bucket_seconds),
        "bucket event_type events",
    )
    frame["per_minute"] = frame["events"] / (f.bucket_seconds / 60)
    return frame


COMPLETION_SQL = f"""
SELECT pct_bucket, uniqExactMerge(events) AS events
FROM {COMPLETION}
WHERE {_range("hour")}
GROUP BY pct_bucket ORDER BY pct_bucket
"""


def completion(client: Client, content_id: uuid.UUID, f: Filters) -> pd.DataFrame:
    """Events per completion decile (``pct_bucket`` 0, 10, ... 90); events without a known
    ``engagement_pct`` are left out."""
    return _frame(client, COMPLETION_SQL, _params(content_id, f), "pct_bucket events")


DEVICES_SQL = f"""
SELECT if(device = '', 'unknown', device) AS device, uniqExactMerge(events) AS events
FROM {EVENTS}
WHERE {_range("minute")}
GROUP BY device ORDER BY events DESC, device
"""


def devices(client: Client, content_id: uuid.UUID, f: Filters) -> pd.DataFrame:
    """Events per device ('unknown' when the event had none)."""
    return _frame(client, DEVICES_SQL, _params(content_id, f), "device events")


@dataclass(frozen=True)
class Summary:
    """A title's headline figures over a range: events, distinct users, and of those the users who
    played it and those who played it and also finished it (both within the range)."""

    events: int
    users: int
    played: int
    played_and_finished: int


SUMMARY_SQL = f"""
SELECT
    (SELECT uniqExactMerge(events) FROM {EVENTS}
     WHERE {_range("minute")}) AS events,
    count() AS users,
    countIf(bitAnd(f, 1) = 1) AS played,
    countIf(bitAnd(f, 3) = 3) AS played_and_finished
FROM (
    SELECT user_id, groupBitOr(flags) AS f FROM {USERS}
    WHERE content_id = {{content:UUID}} AND day BETWEEN {{start:Date}} AND {{end:Date}}
    GROUP BY user_id
)
"""


def summary(client: Client, content_id: uuid.UUID, f: Filters) -> Summary:
    [row] = client.query(SUMMARY_SQL, parameters=_params(content_id, f)).result_rows
    return Summary(*(int(v) for v in row))


def page_queries(content_id: uuid.UUID, f: Filters) -> dict[str, Callable[[Client], Any]]:
    """Every query the title page runs for a range, by name (``bench warehouse`` times them);
    the summary runs for the previous range too, for the comparison."""
    return {
        "title: name": lambda c: find(c, content_id),
        "title: events by type": lambda c: events_by_type(c, content_id, f),
        "title: completion": lambda c: completion(c, content_id, f),
        "title: device split": lambda c: devices(c, content_id, f),
        "title: summary": lambda c: summary(c, content_id, f),
        "title: summary, previous period": lambda c: summary(c, content_id, f.previous()),
    }
