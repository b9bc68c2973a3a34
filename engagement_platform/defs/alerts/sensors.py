"""One alerting interface for the whole code location.

Every asset check of the location (monitoring sensors, scheduled and hand-run checks alike) and
every job's runs are what this sensor watches; checks that fail together for one cause (a stopped
consumer: its lag and its output's freshness) are one incident. It reads their latest outcome from the
instance every 30 s and reports only changes: one message when an incident starts, one when it
recovers -- on the sensor's tick log in the UI, in the log, and to ``ALERT_WEBHOOK_URL``.
"""

import json
import time
from datetime import UTC, datetime
from typing import Any

import dagster as dg
from dagster._core.storage.asset_check_execution_record import AssetCheckExecutionRecordStatus

from engagement_platform.defs.alerts.resources import AlertsResource
from engagement_platform.monitoring.alerts import Status, incident_of, merge, still_open, transitions

COMPLETED = {AssetCheckExecutionRecordStatus.SUCCEEDED, AssetCheckExecutionRecordStatus.FAILED}
# on the first tick, runs this old are history, not news
FIRST_LOOK_BACK_S = 3600.0


def check_statuses(instance: dg.DagsterInstance, graph: Any, alerts: AlertsResource) -> dict[str, Status]:
    """The latest outcome of every check, merged per incident (see ``incident_of``)."""
    members: dict[str, dict[str, Status]] = {}
    for key in graph.asset_check_keys:
        record = instance.get_latest_asset_check_evaluation_record(key)
        if record is None or record.status not in COMPLETED or record.evaluation is None:
            continue
        evaluation = record.evaluation
        link = f"{alerts.link_base}/assets/{'/'.join(key.asset_key.path)}?view=checks"
        writer = graph.get(key.asset_key).tags.get("writer") if graph.has(key.asset_key) else None
        incident = incident_of(key.asset_key.to_user_string(), key.name, writer)
        members.setdefault(incident, {})[key.to_user_string()] = Status(
            failing=not evaluation.passed,
            severity=evaluation.severity.value,
            summary=evaluation.description or ("failed" if not evaluation.passed else "passed"),
            link=link,
        )
    return {incident: merge(statuses) for incident, statuses in members.items()}


def run_statuses(
    instance: dg.DagsterInstance, since: float, alerts: AlertsResource
) -> tuple[dict[str, Status], float]:
    """The latest finished run of each job that finished after ``since``, and the newest
    update time seen (the next ``since``)."""
    records = instance.get_run_records(
        filters=dg.RunsFilter(
            statuses=[dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.SUCCESS],
            updated_after=datetime.fromtimestamp(since, UTC),
        ),
        limit=500,
    )
    latest: dict[str, Any] = {}
    for record in sorted(records, key=lambda r: r.update_timestamp):
        latest[record.dagster_run.job_name] = record
    statuses = {}
    for job, record in latest.items():
        run = record.dagster_run
        failed = run.status == dg.DagsterRunStatus.FAILURE
        statuses[f"job {job}"] = Status(
            failing=failed,
            severity="ERROR",
            summary=f"run {run.run_id[:8]} {'failed' if failed else 'succeeded'}",
            link=f"{alerts.link_base}/runs/{run.run_id}",
        )
    newest = max((r.update_timestamp.timestamp() for r in records), default=since)
    return statuses, newest


@dg.sensor(
    name="alerts_sensor",
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Watches every asset check's latest outcome and every job's latest run; on each "
    "change posts one message (incident or recovery) to the log, this tick, and ALERT_WEBHOOK_URL.",
)
def alerts_sensor(context: dg.SensorEvaluationContext, alerts: AlertsResource) -> dg.SkipReason:
    state = json.loads(context.cursor) if context.cursor else {}
    open_incidents: dict[str, str] = state.get("open", {})
    instance = context.instance
    repository = context.repository_def
    if repository is None:  # Dagster always passes it; a bare test context might not
        return dg.SkipReason("no code location to read the checks of")
    now: dict[str, Status] = check_statuses(instance, repository.asset_graph, alerts)
    runs, runs_since = run_statuses(
        instance, state.get("runs_since", time.time() - FIRST_LOOK_BACK_S), alerts
    )
    now.update(runs)
    changes = transitions(open_incidents, now)
    webhook = alerts.webhook()
    for alert in changes:
        (context.log.warning if alert.firing else context.log.info)(alert.text)
        webhook.send(alert)
    open_now = still_open(open_incidents, changes)
    context.update_cursor(json.dumps({"open": open_now, "runs_since": runs_since}))
    listed = ", ".join(sorted(open_now)) or "none"
    return dg.SkipReason(f"{len(changes)} alert(s) sent; {len(open_now)} incident(s) open: {listed}")


defs = dg.Definitions(sensors=[alerts_sensor])
