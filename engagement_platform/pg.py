"""Postgres helpers shared by every package that talks to it through psycopg2."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from psycopg2.extensions import cursor as PgCursor
from psycopg2.sql import Composable


def scalar(cur: PgCursor, query: str | Composable, params: Sequence[Any] = ()) -> Any:
    """The first value of the one row ``query`` returns (an aggregate, a function call).

    ``fetchone()`` is typed to return None when no row is left; this says a row is expected,
    and fails naming the query when there is none.
    """
    cur.execute(query, params)
    row = cur.fetchone()
    if row is None:
        raise LookupError(f"no row from {query!r}")
    return row[0]
