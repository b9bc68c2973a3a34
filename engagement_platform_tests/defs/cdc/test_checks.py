"""connector_health_sensor: the registered connector passes, a missing one fails with Connect's
answer, Connect unreachable is an error; the check also executes from Dagster."""

from __future__ import annotations

import uuid

import dagster as dg
import pytest

from engagement_platform.defs.cdc import checks
from engagement_platform.defs.cdc.checks import CHECK_KEY
from engagement_platform.defs.cdc.resources import KafkaConnectResource
from engagement_platform_tests import harness
from engagement_platform_tests.defs import resources as test_resources
from engagement_platform_tests.harness import materialize

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
    evaluation = evaluate(connector, checks.connector_health_sensor)
    assert evaluation.passed, evaluation.description
    assert evaluation.metadata["connector"].value == "engagement-postgres-cdc"
    assert evaluation.metadata["state"].value == "RUNNING"
    assert [t["state"] for t in evaluation.metadata["tasks"].value] == ["RUNNING"]


def test_a_missing_connector_fails_with_connects_answer(connector) -> None:  # type: ignore[no-untyped-def]
    name = f"no-such-connector-{uuid.uuid4().hex[:8]}"
    sensor = harness.build_connector_health_sensor(
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
    result = checks.connector_health_sensor(dg.build_sensor_context(resources=res))
    assert isinstance(result, dg.SensorResult)
    [evaluation] = result.asset_events
    assert not evaluation.passed and "did not answer" in (evaluation.description or "")


def test_executing_the_check_from_dagster_asks_connect_once(connector) -> None:  # type: ignore[no-untyped-def]
    job = dg.define_asset_job(
        "connector_check", selection=dg.AssetSelection.checks(checks.connector_health_check)
    )
    defs = dg.Definitions(
        asset_checks=[checks.connector_health_check], jobs=[job], resources=resources(connector)
    )
    result = defs.resolve_job_def("connector_check").execute_in_process()
    [evaluation] = result.get_asset_check_evaluations()
    assert evaluation.passed and evaluation.asset_check_key == CHECK_KEY
