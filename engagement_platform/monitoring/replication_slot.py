"""Growth of Debezium's replication slot in the source database.

A logical slot makes Postgres keep every WAL segment from the slot's restart_lsn on. When the
connector stops confirming (stopped, failed, stuck), WAL piles up until the source database's
disk is full: the one failure of this platform that takes the product down with it, not just
the analytics.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import psycopg2
from psycopg2.extensions import connection as PgConnection

from engagement_platform.monitoring.verdict import Level, Verdict, grade

GIB = 1024**3
# Debezium's default when connector.json names none.
DEFAULT_SLOT = "debezium"


@dataclass(frozen=True)
class SlotThresholds:
    """Retained WAL in bytes, inactivity in seconds. Debezium confirms continuously (and its
    heartbeat advances the slot on an idle database), so a healthy slot retains megabytes; a
    restart of the Connect worker leaves it inactive for seconds, not minutes."""

    warn_bytes: int = 1 * GIB
    error_bytes: int = 8 * GIB
    inactive_warn_s: float = 60.0
    inactive_error_s: float = 15 * 60.0


@dataclass(frozen=True)
class SlotState:
    """One row of pg_replication_slots, with the byte distances already computed by Postgres."""

    active: bool
    active_pid: int | None
    wal_status: str | None
    retained_bytes: int | None  # current WAL position - restart_lsn: what the slot pins on disk
    flush_lag_bytes: int | None  # current WAL position - confirmed_flush_lsn: not yet acknowledged
    inactive_seconds: float | None  # None when active, or when Postgres < 17 cannot say


# Bytes as Postgres computes them, so no LSN arithmetic happens in Python. inactive_since only
# exists from Postgres 17 on; reading it through to_jsonb yields NULL on older servers instead of
# an error.
SLOT_SQL = """
SELECT s.active,
       s.active_pid,
       s.wal_status,
       pg_wal_lsn_diff(pg_current_wal_lsn(), s.restart_lsn)::bigint,
       pg_wal_lsn_diff(pg_current_wal_lsn(), s.confirmed_flush_lsn)::bigint,
       extract(epoch FROM now() - (to_jsonb(s) ->> 'inactive_since')::timestamptz)::float8
FROM pg_replication_slots AS s
WHERE s.slot_name = %s
"""


def size(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:,.0f} {unit}" if unit == "B" else f"{n:,.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


def slot_verdict(slot: str, state: SlotState | None, thresholds: SlotThresholds) -> Verdict:
    metadata: dict[str, Any] = {
        "slot": slot,
        "warn_above_bytes": thresholds.warn_bytes,
        "error_above_bytes": thresholds.error_bytes,
    }
    if state is None:
        return Verdict(
            Level.ERROR,
            f"replication slot {slot} does not exist: no change is being captured "
            "(materialize cdc/connector; Debezium creates the slot).",
            metadata,
        )
    metadata.update(
        {
            "active": state.active,
            "active_pid": state.active_pid or 0,
            "wal_status": state.wal_status or "",
            "retained_wal_bytes": state.retained_bytes or 0,
            "confirmed_flush_lag_bytes": state.flush_lag_bytes or 0,
            "inactive_seconds": float(state.inactive_seconds or 0.0),
        }
    )
    if state.wal_status == "lost" or state.retained_bytes is None:
        return Verdict(
            Level.ERROR,
            f"replication slot {slot} is invalidated (wal_status={state.wal_status}): Postgres removed WAL "
            "it still needed, so changes were lost; the connector must re-snapshot.",
            metadata,
        )
    level = grade(state.retained_bytes, thresholds.warn_bytes, thresholds.error_bytes)
    notes = [f"slot {slot} retains {size(state.retained_bytes)} of WAL"]
    if state.flush_lag_bytes is not None:
        notes.append(f"{size(state.flush_lag_bytes)} not yet confirmed by Debezium")
    if not state.active:
        if state.inactive_seconds is None:
            level = max(level, Level.WARN)
            notes.append("no consumer is attached")
        else:
            level = max(
                level, grade(state.inactive_seconds, thresholds.inactive_warn_s, thresholds.inactive_error_s)
            )
            notes.append(f"no consumer attached for {state.inactive_seconds:,.0f} s")
    if state.wal_status == "unreserved":
        level = max(level, Level.WARN)
        notes.append("WAL beyond max_wal_size is held and may soon be removed")
    return Verdict(level, "; ".join(notes) + ".", metadata)


def read_slot(conn: PgConnection, slot: str) -> SlotState | None:
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(SLOT_SQL, (slot,))
        row = cur.fetchone()
    if row is None:
        return None
    active, pid, wal_status, retained, flush_lag, inactive = row
    return SlotState(bool(active), pid, wal_status, retained, flush_lag, None if active else inactive)


def evaluate_slot(
    connect: Callable[[], PgConnection], slot: str, thresholds: SlotThresholds
) -> tuple[Verdict, SlotState | None]:
    """The slot's verdict and state; a database that does not answer is an ERROR."""
    try:
        conn = connect()
        try:
            state = read_slot(conn, slot)
        finally:
            conn.close()
    except psycopg2.Error as exc:
        message = str(exc).strip() or type(exc).__name__
        return Verdict(Level.ERROR, f"Postgres did not answer: {message}", {"slot": slot}), None
    return slot_verdict(slot, state, thresholds), state
