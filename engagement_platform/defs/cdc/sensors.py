"""Health of the Debezium connector, reported as an asset check on `cdc/connector`.

`cdc/connector` only proves the connector was RUNNING when it was registered; a connector
can fail hours later (the database restarted, the slot was dropped, a password rotated) while
every consumer just sees an idle topic. The sensor asks Kafka Connect every 30 s and carries
Debezium's own stack trace into the check, so the UI shows the cause, not just "FAILED".
"""

from collections.abc import Mapping, Sequence
from typing import Any

import dagster as dg

from engagement_platform.cdc import connector
from engagement_platform.cdc.connect_client import ConnectError
from engagement_platform.defs.alerts import Level, Verdict, sensor_report
from engagement_platform.defs.cdc.assets import cdc_connector, connector_values
from engagement_platform.defs.cdc.resources import KafkaConnectResource
from engagement_platform.defs.kafka.resources import KafkaResource
from engagement_platform.defs.postgres.resources import PostgresResource

CHECK_KEY = dg.AssetCheckKey(cdc_connector.key, "connector_running")
CHECK_SPEC = dg.AssetCheckSpec(
    CHECK_KEY.name,
    asset=cdc_connector.key,
    description="The connector of connector.json and all its tasks are RUNNING in Kafka Connect. "
    "FAILED or missing is an ERROR carrying Debezium's trace; paused, restarting or task-less is a "
    "WARN. Evaluated every 30 s by `connector_health_sensor`; executing it here asks once.",
)

# Connect's traces run to hundreds of lines; the head names the exception, the tail its root cause.
TRACE_LIMIT = 20_000


def _clip(trace: str) -> str:
    if len(trace) <= TRACE_LIMIT:
        return trace
    half = TRACE_LIMIT // 2
    return f"{trace[:half]}\n… ({len(trace) - TRACE_LIMIT:,} characters cut) …\n{trace[-half:]}"


def connector_verdict(name: str, status: Mapping[str, Any]) -> Verdict:
    """A verdict from the body of ``GET /connectors/{name}/status``."""
    conn = status.get("connector", {})
    tasks: Sequence[Mapping[str, Any]] = status.get("tasks", [])
    state = conn.get("state", "UNKNOWN")
    task_states = [str(t.get("state", "UNKNOWN")) for t in tasks]
    metadata: dict[str, Any] = {
        "connector": name,
        "state": state,
        "worker": conn.get("worker_id", ""),
        "tasks": dg.MetadataValue.json([{k: v for k, v in t.items() if k != "trace"} for t in tasks]),
    }
    failed = [(f"connector {name}", conn)] if state == "FAILED" else []
    failed += [(f"task {t.get('id', '?')}", t) for t in tasks if t.get("state") == "FAILED"]
    if failed:
        what, failure = failed[0]
        trace = str(failure.get("trace") or "(Kafka Connect gave no trace)")
        metadata["trace"] = dg.MetadataValue.text(_clip(trace))
        first_line = trace.strip().splitlines()[0] if trace.strip() else trace
        return Verdict(Level.ERROR, f"{what} FAILED: {first_line}", metadata)
    if state == "RUNNING" and tasks and all(s == "RUNNING" for s in task_states):
        return Verdict(Level.OK, f"connector {name} and its {len(tasks)} task(s) are RUNNING.", metadata)
    detail = f"tasks {task_states}" if tasks else "no task assigned yet"
    return Verdict(Level.WARN, f"connector {name} is {state}, {detail}: no change events flow.", metadata)


def missing_verdict(name: str, error: str, registered: Sequence[str] | None) -> Verdict:
    """The connector could not be read: not registered, or Connect itself unreachable."""
    metadata: dict[str, Any] = {"connector": name, "error": dg.MetadataValue.text(error)}
    if registered is None:
        return Verdict(Level.ERROR, f"Kafka Connect did not answer for {name}: {error}", metadata)
    metadata["registered_connectors"] = dg.MetadataValue.json(list(registered))
    return Verdict(
        Level.ERROR,
        f"connector {name} is not registered in Kafka Connect (materialize cdc/connector): {error}",
        metadata,
    )


def evaluate_connector(connect: KafkaConnectResource, name: str) -> Verdict:
    client = connect.client()
    try:
        return connector_verdict(name, client.status(name))
    except ConnectError as exc:
        try:
            registered: list[str] | None = client.connectors()
        except ConnectError:
            registered = None
        if registered is not None and name in registered:  # registered, yet its status failed
            return Verdict(Level.ERROR, f"status of connector {name} unavailable: {exc}", {"connector": name})
        return missing_verdict(name, str(exc), registered)


def connector_name(postgres: PostgresResource, kafka: KafkaResource) -> str:
    """The name connector.json registers, rendered exactly as `cdc/connector` renders it."""
    return connector.load(connector_values(postgres, kafka)).name


def build_connector_health_sensor(
    name: str = "connector_health_sensor",
    connector_name_override: str | None = None,
    minimum_interval_seconds: int = 30,
) -> dg.SensorDefinition:
    @dg.sensor(
        name=name,
        minimum_interval_seconds=minimum_interval_seconds,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Reports the Debezium connector's state as the asset check "
        f"{CHECK_KEY.to_user_string()}.",
    )
    def connector_health(
        context: dg.SensorEvaluationContext,
        connect: KafkaConnectResource,
        postgres: PostgresResource,
        kafka: KafkaResource,
    ) -> dg.SensorResult:
        verdict = evaluate_connector(connect, connector_name_override or connector_name(postgres, kafka))
        return sensor_report(context, [(CHECK_KEY, verdict)])

    return connector_health


connector_health_sensor = build_connector_health_sensor()


@dg.multi_asset_check(
    name="connector_health",
    specs=[CHECK_SPEC],
    description="Asks Kafka Connect for the connector's status now; connector_health_sensor does it "
    "every 30 s.",
)
def connector_health_check(
    connect: KafkaConnectResource, postgres: PostgresResource, kafka: KafkaResource
) -> dg.AssetCheckResult:
    return evaluate_connector(connect, connector_name(postgres, kafka)).result(CHECK_KEY)


defs = dg.Definitions(asset_checks=[connector_health_check], sensors=[connector_health_sensor])
