"""The page's clients, and the one way a section says that the service it needs is down: a
notice naming the service and its endpoint, then the rest of the page renders on.

Speed (docs/performance.md, "The dashboard"): the clients are made once per endpoint and shared
by every session (a ClickHouse client costs a few round trips to make); a section's results are
cached for a few seconds, so sessions opened together share one measurement; and the page starts
its slow sections' work in the background before it draws the fast ones (``prefetch``), so a
section waits for its own queries only, not for those of the sections above it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from functools import partial
from typing import TypeVar

import redis
import streamlit as st
from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.exceptions import ClickHouseError
from confluent_kafka import KafkaException
from streamlit.delta_generator import DeltaGenerator

from engagement_platform.cdc.connect_client import ConnectError
from engagement_platform.dashboard.period import Delta
from engagement_platform.dashboard.view import metric_html
from engagement_platform.settings import Settings, masked
from engagement_platform.warehouse.ddl import connect_settings

# what each service's client raises when the service is down or refuses (OSError: sockets)
ERRORS: dict[str, tuple[type[BaseException], ...]] = {
    "Redis": (redis.RedisError, OSError),
    "ClickHouse": (ClickHouseError, OSError),
    "Kafka": (KafkaException, OSError),
    "Kafka Connect": (ConnectError, OSError),
}
TIMEOUT_S = 3  # a service that is down costs the page seconds, not the clients' defaults
# how long sessions share a section's results: below the refresh of the live sections, so a
# refresh still measures anew
RESULTS_TTL_S = 5
VOCABULARY_TTL_S = 60  # the content types and devices of a date range change rarely
T = TypeVar("T")


@st.cache_resource(show_spinner=False)
def _redis(url: str) -> redis.Redis:
    # thread-safe (a connection pool), so one per endpoint serves every session
    return redis.Redis.from_url(url, socket_timeout=TIMEOUT_S, socket_connect_timeout=TIMEOUT_S)


def redis_client(settings: Settings) -> redis.Redis:
    """The page's Redis client, as the read-only ACL user (REDIS_READER_USER)."""
    return _redis(settings.redis_url_for("reader"))


@st.cache_resource(show_spinner=False)
def _clickhouse(settings: Settings) -> Client:
    # no session id: without one a client is thread-safe (a urllib3 pool), so one per endpoint
    # serves every session and the queries of a page run concurrently
    return connect_settings(
        settings,
        role="reader",
        connect_timeout=TIMEOUT_S,
        send_receive_timeout=30,
        autogenerate_session_id=False,
    )


@contextmanager
def warehouse(settings: Settings) -> Iterator[Client]:
    """The page's ClickHouse client, as the read-only reader: made once per endpoint (a client
    that could not connect is not kept, so the next run tries again)."""
    yield _clickhouse(settings)


@st.cache_resource(show_spinner=False)
def _pool() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=8, thread_name_prefix="dashboard")


def prefetch(function: Callable[..., object], *args: object) -> Future[object]:
    """Start a cached function (``st.cache_data``) in the background: the section that later
    calls it with the same arguments waits for this computation instead of starting its own
    (Streamlit computes one value per key at a time). Errors stay in the future: the section's
    own call raises them where it can say so."""
    return _pool().submit(function, *args)


def concurrently(calls: Mapping[str, Callable[[], T]]) -> dict[str, T]:
    """Every call at once, each in a thread of its own; their results by name (the first error
    raised, if any). For independent round trips: the slowest sets the time, not their sum."""
    with ThreadPoolExecutor(max_workers=len(calls) or 1, thread_name_prefix="dashboard-call") as pool:
        futures = {name: pool.submit(call) for name, call in calls.items()}
        return {name: future.result() for name, future in futures.items()}


def query_all(client: Client, queries: Mapping[str, Callable[[Client], T]]) -> dict[str, T]:
    """Every query of ``queries`` on ``client`` at once (a client without a session id is
    thread-safe), their results by name."""
    return concurrently({name: partial(query, client) for name, query in queries.items()})


def describe(exc: BaseException) -> str:
    """The first line of an error: the cause without a traceback or a server's stack."""
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0][:300]


@contextmanager
def unavailable(service: str, endpoint: str, what: str) -> Iterator[None]:
    """Run a section; if ``service`` fails, say so in place of ``what`` and carry on (the
    endpoint shown with its password masked)."""
    try:
        yield
    except ERRORS[service] as exc:
        st.warning(
            f"**{service} is unavailable** ({masked(endpoint)}), so {what} cannot be shown right now. "
            f"The rest of the page is live.\n\n`{describe(exc)}`"
        )


def show_metric(target: DeltaGenerator, label: str, value: str, delta: Delta | None = None) -> None:
    """Draw a headline figure (``view.metric_html``) in ``target``."""
    target.markdown(metric_html(label, value, delta), unsafe_allow_html=True)


def show_chart(target: DeltaGenerator, chart: str) -> None:
    """Draw a chart of ``dashboard.svg`` in ``target`` (the page, a column, a tab).

    Through Markdown's raw HTML: st.html would be lighter, but its sanitizer keeps HTML only and
    drops every SVG element. The SVG is the page's own markup (every text in it escaped)."""
    target.markdown(chart, unsafe_allow_html=True)
