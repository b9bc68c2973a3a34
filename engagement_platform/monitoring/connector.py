"""Health of the Debezium connector, as Kafka Connect reports it.

`cdc/connector` only proves the connector was RUNNING when it was registered; a connector
can fail hours later (the database restarted, the slot was dropped, a password rotated) while
every consumer just sees an idle topic. The verdict carries Debezium's own stack trace, so
whoever reads it sees the cause, not just "FAILED".
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from engagement_platform.cdc.connect_client import ConnectClient, ConnectError
from engagement_platform.monitoring.verdict import Level, Verdict

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
        "tasks": [{k: v for k, v in t.items() if k != "trace"} for t in tasks],
    }
    failed = [(f"connector {name}", conn)] if state == "FAILED" else []
    failed += [(f"task {t.get('id', '?')}", t) for t in tasks if t.get("state") == "FAILED"]
    if failed:
        what, failure = failed[0]
        trace = str(failure.get("trace") or "(Kafka Connect gave no trace)")
        metadata["trace"] = _clip(trace)
        first_line = trace.strip().splitlines()[0] if trace.strip() else trace
        return Verdict(Level.ERROR, f"{what} FAILED: {first_line}", metadata)
    if state == "RUNNING" and tasks and all(s == "RUNNING" for s in task_states):
        return Verdict(Level.OK, f"connector {name} and its {len(tasks)} task(s) are RUNNING.", metadata)
    detail = f"tasks {task_states}" if tasks else "no task assigned yet"
    return Verdict(Level.WARN, f"connector {name} is {state}, {detail}: no change events flow.", metadata)


def missing_verdict(name: str, error: str, registered: Sequence[str] | None) -> Verdict:
    """The connector could not be read: not registered, or Connect itself unreachable."""
    metadata: dict[str, Any] = {"connector": name, "error": error}
    if registered is None:
        return Verdict(Level.ERROR, f"Kafka Connect did not answer for {name}: {error}", metadata)
    metadata["registered_connectors"] = list(registered)
    return Verdict(
        Level.ERROR,
        f"connector {name} is not registered in Kafka Connect (materialize cdc/connector): {error}",
        metadata,
    )


def evaluate_connector(client: ConnectClient, name: str) -> Verdict:
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
