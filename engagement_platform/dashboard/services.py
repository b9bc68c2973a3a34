"""The page's clients, and the one way a section says that the service it needs is down: a
notice naming the service and its endpoint, then the rest of the page renders on."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import redis
import streamlit as st
from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.exceptions import ClickHouseError
from confluent_kafka import KafkaException

from engagement_platform.cdc.connect_client import ConnectError
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


@st.cache_resource(show_spinner=False)
def _redis(url: str) -> redis.Redis:
    # thread-safe (a connection pool), so one per endpoint serves every session
    return redis.Redis.from_url(url, socket_timeout=TIMEOUT_S, socket_connect_timeout=TIMEOUT_S)


def redis_client(settings: Settings) -> redis.Redis:
    """The page's Redis client, as the read-only ACL user (REDIS_READER_USER)."""
    return _redis(settings.redis_url_for("reader"))


@contextmanager
def warehouse(settings: Settings) -> Iterator[Client]:
    """A ClickHouse client for one run of a section (clients are not shared between sessions),
    logged in as the read-only reader."""
    client = connect_settings(settings, role="reader", connect_timeout=TIMEOUT_S, send_receive_timeout=30)
    try:
        yield client
    finally:
        client.close()


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
