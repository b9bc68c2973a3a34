"""The connector verdict from Kafka Connect's status body."""

from __future__ import annotations

import dagster as dg
import pytest

from engagement_platform.defs.monitoring import severity
from engagement_platform.monitoring.connector import connector_verdict
from engagement_platform.monitoring.verdict import Level

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
    assert severity(verdict.level) is dg.AssetCheckSeverity.ERROR
    assert verdict.metadata["trace"] == TRACE
    assert "task 0 FAILED: org.apache.kafka.connect.errors.ConnectException" in verdict.description
    assert "trace" not in verdict.metadata["tasks"][0]  # once, in its own entry


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
