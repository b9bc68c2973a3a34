"""Growth of Debezium's replication slot, reported as an asset check on `postgres/engagement_events`.

A logical slot makes Postgres keep every WAL segment from the slot's restart_lsn on. When the
connector stops confirming (stopped, failed, stuck), WAL piles up until the source database's
disk is full: the one failure of this platform that takes the product down with it, not just
the analytics. The check sits on the event table because its inserts are what fills the WAL.
"""

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import dagster as dg
import psycopg2

from engagement_platform.cdc import connector
from engagement_platform.defs.alerts import Level, Verdict, grade, sensor_report
from engagement_platform.defs.cdc.assets import connector_values
from engagement_platform.defs.kafka.resources import KafkaResource
from engagement_platform.defs.postgres.assets import engagement_events_table
from engagement_platform.defs.postgres.resources import PostgresResource

GIB = 1024**3
# Debezium's default when connector.json names none.
DEFAULT_SLOT = "debezium"


@dataclass(frozen=True)
class SlotThresholds:
    """Retained WAL in bytes, inactivity in seconds. Debezium confirms continuously (and its
    heartbeat advances the slot on an idle database), so a healthy slot retains megabytes; a
    restart of the cdc service leaves it inactive for seconds, not minutes."""

    warn_bytes: int = 1 * GIB
    error_bytes: int = 8 * GIB
    inactive_warn_s: float = 60.0
    inactive_error_s: float = 15 * 60.0


DEFAULT_THRESHOLDS = SlotThresholds()

CHECK_KEY = dg.AssetCheckKey(engagement_events_table.key, "replication_slot")


def check_spec(thresholds: SlotThresholds) -> dg.AssetCheckSpec:
    return dg.AssetCheckSpec(
        CHECK_KEY.name,
        asset=engagement_events_table.key,
        description="Debezium's replication slot (connector.json `slot.name`) exists, is active and "
        f"retains at most {_size(thresholds.warn_bytes)} of WAL (WARN above; ERROR above "
        f"{_size(thresholds.error_bytes)}, when inactive over {thresholds.inactive_error_s:.0f} s, "
        "or when Postgres already removed WAL it needs). Evaluated every 60 s by "
        "`replication_slot_sensor`; executing it here measures once.",
    )


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


def _size(n: float) -> str:
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
            "retained_wal_bytes": dg.MetadataValue.int(state.retained_bytes or 0),
            "confirmed_flush_lag_bytes": dg.MetadataValue.int(state.flush_lag_bytes or 0),
            "inactive_seconds": dg.MetadataValue.float(float(state.inactive_seconds or 0.0)),
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
    notes = [f"slot {slot} retains {_size(state.retained_bytes)} of WAL"]
    if state.flush_lag_bytes is not None:
        notes.append(f"{_size(state.flush_lag_bytes)} not yet confirmed by Debezium")
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


def read_slot(postgres: PostgresResource, slot: str) -> SlotState | None:
    conn = postgres.connect()
    try:
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(SLOT_SQL, (slot,))
            row = cur.fetchone()
    finally:
        conn.close()
    if row is None:
        return None
    active, pid, wal_status, retained, flush_lag, inactive = row
    return SlotState(bool(active), pid, wal_status, retained, flush_lag, None if active else inactive)


def slot_name(postgres: PostgresResource, kafka: KafkaResource) -> str:
    config: Mapping[str, str] = connector.load(connector_values(postgres, kafka)).config
    return config.get("slot.name", DEFAULT_SLOT)


def evaluate_slot(
    postgres: PostgresResource, slot: str, thresholds: SlotThresholds
) -> tuple[Verdict, SlotState | None]:
    try:
        state = read_slot(postgres, slot)
    except psycopg2.Error as exc:
        message = str(exc).strip() or type(exc).__name__
        return Verdict(Level.ERROR, f"Postgres did not answer: {message}", {"slot": slot}), None
    return slot_verdict(slot, state, thresholds), state


def slot_observation(slot: str, state: SlotState) -> dg.AssetObservation:
    """The byte figures as an observation, so the asset's plots chart retention over time."""
    return dg.AssetObservation(
        asset_key=engagement_events_table.key,
        metadata={
            "replication_slot": slot,
            "retained_wal_bytes": dg.MetadataValue.int(state.retained_bytes or 0),
            "confirmed_flush_lag_bytes": dg.MetadataValue.int(state.flush_lag_bytes or 0),
        },
    )


def build_replication_slot_sensor(
    name: str = "replication_slot_sensor",
    thresholds: SlotThresholds = DEFAULT_THRESHOLDS,
    slot_name_override: str | None = None,
    minimum_interval_seconds: int = 60,
) -> dg.SensorDefinition:
    @dg.sensor(
        name=name,
        minimum_interval_seconds=minimum_interval_seconds,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Reports the WAL retained by Debezium's replication slot as the asset check "
        f"{CHECK_KEY.to_user_string()} and observes the byte figures.",
    )
    def replication_slot(
        context: dg.SensorEvaluationContext, postgres: PostgresResource, kafka: KafkaResource
    ) -> dg.SensorResult:
        slot = slot_name_override or slot_name(postgres, kafka)
        verdict, state = evaluate_slot(postgres, slot, thresholds)
        observations = [slot_observation(slot, state)] if state is not None else []
        return sensor_report(context, [(CHECK_KEY, verdict)], observations)

    return replication_slot


replication_slot_sensor = build_replication_slot_sensor()


@dg.multi_asset_check(
    name="replication_slot_check",
    specs=[check_spec(DEFAULT_THRESHOLDS)],
    description="Reads pg_replication_slots now; replication_slot_sensor does it every 60 s.",
)
def replication_slot_check(postgres: PostgresResource, kafka: KafkaResource) -> dg.AssetCheckResult:
    verdict, _state = evaluate_slot(postgres, slot_name(postgres, kafka), DEFAULT_THRESHOLDS)
    return verdict.result(CHECK_KEY)


defs = dg.Definitions(asset_checks=[replication_slot_check], sensors=[replication_slot_sensor])
