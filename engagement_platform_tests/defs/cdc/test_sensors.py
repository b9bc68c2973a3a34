"""connector_health_sensor: the registered connector passes, a missing one fails with Connect's
answer, a FAILED one carries Debezium's trace."""

from __future__ import annotations

import uuid

import dagster as dg
import pytest

from engagement_platform.defs.alerts import Level
from engagement_platform.defs.cdc import sensors
from engagement_platform.defs.cdc.resources import KafkaConnectResource
from engagement_platform.defs.cdc.sensors import CHECK_KEY, connector_verdict
from engagement_platform_tests.defs import resources as test_resources
from engagement_platform_tests.harness import materialize

TRACE = (
    "org.apache.kafka.connect.errors.ConnectException: An exception occurred in the change event producer.\n"
    "\tat io.debezium.pipeline.ErrorHandler.setProducerThrowable(ErrorHandler.java:67)\n"
    'Caused by: org.postgresql.util.PSQLException: ERROR: replication slot "engagement_slot" is active'
)

# --------------------------------------------------------------------------- pure


def test_running_with_running_tasks_passes() -> None:
    status = {
        "name": "c",
        "connector": {"state": "RUNNING", "worker_id": "w:1"},
        "tasks": [{"id": 0, "state": "RUNNING", "worker_id": "w:1"}],
    }
    verdict = connector_verdict("c", status)
    assert verdict.passed and verdict.metadata["worker"] == "w:1"


def test_a_failed_task_is_an_error_carrying_the_trace() -> None:
    status = {
        "connector": {"state": "RUNNING", "worker_id": "w:1"},
        "tasks": [{"id": 0, "state": "FAILED", "worker_id": "w:1", "trace": TRACE}],
    }
    verdict = connector_verdict("c", status)
    assert verdict.level is Level.ERROR
    assert verdict.severity is dg.AssetCheckSeverity.ERROR
    assert verdict.metadata["trace"].value == TRACE
    assert "task 0 FAILED: org.apache.kafka.connect.errors.ConnectException" in verdict.description
    assert "trace" not in verdict.metadata["tasks"].value[0]  # once, in its own entry


@pytest.mark.parametrize(
    "status",
    [
        {"connector": {"state": "PAUSED"}, "tasks": [{"id": 0, "state": "PAUSED"}]},
        {"connector": {"state": "RUNNING"}, "tasks": []},
        {"connector": {"state": "UNASSIGNED"}, "tasks": [{"id": 0, "state": "RUNNING"}]},
    ],
)
def test_anything_else_short_of_running_warns(status: dict) -> None:  # type: ignore[type-arg]
    assert connector_verdict("c", status).level is Level.WARN


# --------------------------------------------------------------------------- real Connect


@pytest.fixture(scope="module")
def connector(source_schema):  # type: ignore[no-untyped-def]
    result = materialize(source_schema, "postgres/schema,cdc/connector")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return source_schema


def resources(stack) -> dict[str, object]:  # type: ignore[no-untyped-def]
    s = stack.settings
    return {
        "connect": test_resources.connect(s),
        "kafka": test_resources.kafka(s),
        "postgres": test_resources.postgres(s),
    }


def evaluate(stack, sensor: dg.SensorDefinition) -> dg.AssetCheckEvaluation:  # type: ignore[no-untyped-def]
    result = sensor(dg.build_sensor_context(resources=resources(stack)))
    assert isinstance(result, dg.SensorResult)
    [evaluation] = result.asset_events
    assert isinstance(evaluation, dg.AssetCheckEvaluation)
    assert evaluation.asset_check_key == CHECK_KEY
    return evaluation


def test_the_registered_connector_passes(connector) -> None:  # type: ignore[no-untyped-def]
    evaluation = evaluate(connector, sensors.connector_health_sensor)
    assert evaluation.passed, evaluation.description
    assert evaluation.metadata["connector"].value == "engagement-postgres-cdc"
    assert evaluation.metadata["state"].value == "RUNNING"
    assert [t["state"] for t in evaluation.metadata["tasks"].value] == ["RUNNING"]


def test_a_missing_connector_fails_with_connects_answer(connector) -> None:  # type: ignore[no-untyped-def]
    name = f"no-such-connector-{uuid.uuid4().hex[:8]}"
    sensor = sensors.build_connector_health_sensor(
        name=f"health_{uuid.uuid4().hex[:8]}", connector_name_override=name
    )
    evaluation = evaluate(connector, sensor)
    assert not evaluation.passed
    assert evaluation.severity is dg.AssetCheckSeverity.ERROR
    assert name in (evaluation.description or "") and "not registered" in (evaluation.description or "")
    assert "404" in evaluation.metadata["error"].value
    assert "engagement-postgres-cdc" in evaluation.metadata["registered_connectors"].value


def test_unreachable_connect_is_an_error_not_a_crash(connector) -> None:  # type: ignore[no-untyped-def]
    from engagement_platform_tests.harness import free_ports

    [port] = free_ports(1)
    res = {**resources(connector), "connect": KafkaConnectResource(url=f"http://127.0.0.1:{port}")}
    result = sensors.connector_health_sensor(dg.build_sensor_context(resources=res))
    assert isinstance(result, dg.SensorResult)
    [evaluation] = result.asset_events
    assert not evaluation.passed and "did not answer" in (evaluation.description or "")


def test_executing_the_check_from_dagster_asks_connect_once(connector) -> None:  # type: ignore[no-untyped-def]
    job = dg.define_asset_job(
        "connector_check", selection=dg.AssetSelection.checks(sensors.connector_health_check)
    )
    defs = dg.Definitions(
        asset_checks=[sensors.connector_health_check], jobs=[job], resources=resources(connector)
    )
    result = defs.resolve_job_def("connector_check").execute_in_process()
    [evaluation] = result.get_asset_check_evaluations()
    assert evaluation.passed and evaluation.asset_check_key == CHECK_KEY
