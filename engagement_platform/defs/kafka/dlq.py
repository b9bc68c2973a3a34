"""Dead letters in Dagster: the `dlq_replay` job (what `engagement-platform dlq replay` does), and a
sensor that shows the DLQ topic's records by reason as observations of its asset.

Both report an AssetObservation whose metadata counts the records by reason code, on
`kafka/engagement_enriched_dlq` (or, for a `warehouse` replay, `clickhouse/engagement_enriched_errors`).
"""

import json

import dagster as dg

from engagement_platform import settings as settings_module
from engagement_platform.argtypes import UsageError
from engagement_platform.defs.kafka.assets import engagement_enriched_dlq
from engagement_platform.defs.kafka.resources import KafkaResource
from engagement_platform.defs.warehouse.assets import enriched_errors_table
from engagement_platform.defs.warehouse.resources import ClickHouseResource
from engagement_platform.monitoring.activity import topic_activity
from engagement_platform.replay import Filters, parse_since, report_metadata
from engagement_platform.streaming import dlq_replay, topics
from engagement_platform.warehouse.gate import IngestGate
from engagement_platform.warehouse.reparse import reparse_errors


class DlqReplayConfig(dg.Config):
    """The CLI's flags: reason prefix, ISO-8601 since (UTC unless it has an offset), dry run, and
    whether to re-parse ClickHouse's errors table instead of the Kafka DLQ (``topic``)."""

    reason: str = ""
    since: str = ""
    dry_run: bool = False
    warehouse: bool = False
    topic: str = topics.ENRICHED_DLQ


@dg.op(
    description="Sends the DLQ records that pass the filters back to their topic (warehouse: re-parses "
    "engagement_enriched_errors); reports the counts by reason as an observation."
)
def replay_dead_letters(
    context: dg.OpExecutionContext,
    config: DlqReplayConfig,
    kafka: KafkaResource,
    clickhouse: ClickHouseResource,
) -> dg.Output[dict[str, int]]:
    try:
        since = parse_since(config.since) if config.since else None
    except UsageError as exc:
        raise dg.Failure(description=str(exc)) from None
    filters = Filters(config.reason, since)
    if config.warehouse:
        client = clickhouse.client()
        try:
            report = reparse_errors(
                client, IngestGate(clickhouse.ep_home_path), filters, dry_run=config.dry_run
            )
        finally:
            client.close()
        asset = enriched_errors_table.key
    else:
        # the project's producer settings, for this resource's broker only (no environment read)
        settings = settings_module.load({"KAFKA_BOOTSTRAP_SERVERS": kafka.bootstrap_servers})
        report = dlq_replay.replay_topic(settings, filters, topic=config.topic, dry_run=config.dry_run)
        asset = engagement_enriched_dlq.key
    metadata = report_metadata(report)
    context.log_event(dg.AssetObservation(asset_key=asset, metadata=metadata))
    verb = "would replay" if report.dry_run else "replayed"
    context.log.info(f"{report.source}: {verb} {report.replayed:,}, skipped {report.skipped:,}")
    totals = {"replayed": report.replayed, "skipped": report.skipped, "still_failing": report.still_failing}
    return dg.Output(totals, metadata=metadata)


@dg.job(
    name="dlq_replay",
    description="Replay dead letters once their cause is fixed: the Kafka DLQ back to the topics its "
    "records came from, or (config warehouse) ClickHouse's errors through the parse view. Repeatable: "
    "every sink dedupes by event id.",
)
def dlq_replay_job() -> None:
    replay_dead_letters()


@dg.sensor(
    name="dlq_records_sensor",
    minimum_interval_seconds=300,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description=f"Every 5 min, when `{topics.ENRICHED_DLQ}` grew, observes its records by reason code.",
)
def dlq_records_sensor(context: dg.SensorEvaluationContext, kafka: KafkaResource) -> dg.SensorResult:
    bootstrap = kafka.bootstrap_servers
    found = topic_activity(bootstrap, [topics.ENRICHED_DLQ])
    if topics.ENRICHED_DLQ not in found:
        return dg.SensorResult(skip_reason=f"{topics.ENRICHED_DLQ} does not exist yet")
    written = found[topics.ENRICHED_DLQ].written
    before = json.loads(context.cursor) if context.cursor else None
    if before is not None and before.get("written") == written:
        return dg.SensorResult(skip_reason=f"{topics.ENRICHED_DLQ} unchanged ({written:,} written)")
    counts = dlq_replay.records_by_reason(bootstrap, topics.ENRICHED_DLQ)
    context.update_cursor(json.dumps({"written": written}))
    metadata = {
        "records": dg.MetadataValue.int(sum(counts.values())),
        "records_by_reason": dg.MetadataValue.json(counts),
        "written_total": dg.MetadataValue.int(written),
    }
    return dg.SensorResult(asset_events=[dg.AssetObservation(engagement_enriched_dlq.key, metadata=metadata)])


defs = dg.Definitions(jobs=[dlq_replay_job], sensors=[dlq_records_sensor])
