"""When change data capture is really flowing: each registered connector's tasks RUNNING and its
Postgres replication slot held by a walsender.

A restarted Connect worker answers its REST API seconds before Debezium opens its replication
stream; events committed in between wait for it, which made the first minute after `stack up`
30-60x slower at the CDC hop than the steady state. `stack up` waits on this instead.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import psycopg2

from engagement_platform.cdc.connect_client import ConnectClient, ConnectError
from engagement_platform.monitoring.replication_slot import read_slot


def slot_active(postgres_dsn: str, slot: str) -> bool:
    """True when a walsender holds ``slot`` (Debezium streams from it)."""
    conn = psycopg2.connect(postgres_dsn, connect_timeout=2)
    try:
        state = read_slot(conn, slot)
    finally:
        conn.close()
    return state is not None and state.active


def wait_streaming(
    connect_url: str,
    postgres_dsn: str,
    timeout: float = 60.0,
    active: Callable[[str, str], bool] = slot_active,
) -> list[str]:
    """Wait until every registered connector streams; return what did not within ``timeout``
    (empty: all stream, or none is registered yet -- the `cdc/connector` asset registers it)."""
    deadline = time.monotonic() + timeout
    client = ConnectClient(connect_url, timeout=5.0)
    problems: list[str] = []
    for name in client.connectors():
        try:
            client.wait_running(name, timeout=max(deadline - time.monotonic(), 1.0))
        except ConnectError as exc:
            problems.append(str(exc).splitlines()[0])
            continue
        slot = client.config(name).get("slot.name")
        if not slot:
            continue
        while not active(postgres_dsn, slot):
            if time.monotonic() > deadline:
                problems.append(f"connector {name}: replication slot {slot} not active after {timeout:.0f}s")
                break
            time.sleep(0.2)
    return problems
