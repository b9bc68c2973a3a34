"""Consumer lag of the platform's consumer groups, as asset checks on the topics they read.

The measurement is ``monitoring.lag``; ``defs.monitoring.Monitor`` makes the checks, their
sensor (every 30 s) and the by-hand execution from it.
"""

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import dagster as dg

from engagement_platform.defs.kafka.assets import engagement_enriched_topic, engagement_events_flat
from engagement_platform.defs.monitoring import Monitor, MonitorContext, Report
from engagement_platform.monitoring import lag, quality
from engagement_platform.monitoring.lag import ConsumerGroup, GroupLag, LagThresholds
from engagement_platform.monitoring.quality import QualityThresholds
from engagement_platform.monitoring.verdict import sustained
from engagement_platform.streaming import topics


@dataclass(frozen=True)
class WatchedGroup:
    """A consumer group, the topic it reads, the asset that topic is in the UI, and its check's
    name (by the consumer's role, so it is the same whichever group id a mode uses)."""

    group: str
    topic: str
    asset_key: dg.AssetKey
    role: str = ""

    @property
    def check_key(self) -> dg.AssetCheckKey:
        return dg.AssetCheckKey(self.asset_key, f"{self.role or self.group}_consumer_lag")

    def check_spec(self, thresholds: LagThresholds) -> dg.AssetCheckSpec:
        return dg.AssetCheckSpec(
            self.check_key.name,
            asset=self.asset_key,
            description=f"Consumer group `{self.group}` is at most {thresholds.warn:,} messages and "
            f"{thresholds.warn_seconds:g} s behind `{self.topic}` (WARN above, ERROR above "
            f"{thresholds.error:,} messages or {thresholds.error_seconds:g} s), sustained over "
            "consecutive evaluations of its sensor.",
        )


ROLE_ASSETS = {
    "enrich": engagement_events_flat.key,
    "leaderboard": engagement_enriched_topic.key,
    "warehouse": engagement_enriched_topic.key,
}


def platform_groups(mode: str) -> tuple[WatchedGroup, ...]:
    """The platform's three consumers; in compose mode ClickHouse's Kafka engine is the warehouse's."""
    return tuple(
        WatchedGroup(g.group, g.topic, ROLE_ASSETS[role], role)
        for role, g in zip(ROLE_ASSETS, lag.consumer_groups(mode), strict=True)
    )


DEFAULT_THRESHOLDS = LagThresholds()
# the check names do not depend on the mode; the group of the warehouse does
PLATFORM_SPECS = [g.check_spec(DEFAULT_THRESHOLDS) for g in platform_groups("local")]


def lag_observations(
    results: Iterable[tuple[WatchedGroup, GroupLag | None]],
) -> Iterator[dg.AssetObservation]:
    """One observation per topic with each group's lag, so the asset's plots show lag over time."""
    by_asset: dict[dg.AssetKey, dict[str, float]] = {}
    for g, measured in results:
        if measured is not None:
            by_asset.setdefault(g.asset_key, {})[f"lag_{g.group}"] = measured.total
            by_asset[g.asset_key][f"lag_seconds_{g.group}"] = round(measured.max_seconds, 3)
    for key, figures in by_asset.items():
        yield dg.AssetObservation(asset_key=key, metadata=dict(figures))


# evaluations in a row above a threshold before the check fails: 30 s apart, about a minute
SUSTAIN = 2


def lag_monitor(
    groups: Callable[[Any], Sequence[WatchedGroup]],
    specs: Sequence[dg.AssetCheckSpec],
    thresholds: LagThresholds = DEFAULT_THRESHOLDS,
    resource_keys: frozenset[str] = frozenset({"kafka"}),
    sustain: int = SUSTAIN,
) -> Monitor:
    def evaluate(ctx: MonitorContext) -> Report:
        watched = groups(ctx.resources)
        consumers = [ConsumerGroup(g.group, g.topic) for g in watched]
        measured = lag.evaluate_lag(ctx.resources.kafka.bootstrap_servers, consumers, thresholds)
        # by hand there is no history: the verdict of now is the answer
        required = sustain if ctx.from_sensor else 1
        streaks = dict(ctx.state.get("streaks", {}))
        findings = []
        for g, (raw, _lag) in zip(watched, measured, strict=True):
            key = g.check_key.to_user_string()
            verdict, streaks[key] = sustained(raw, streaks.get(key, 0), required)
            findings.append((g.check_key, verdict))
        observations = list(lag_observations((g, m) for g, (_v, m) in zip(watched, measured, strict=True)))
        return Report(findings, observations, state={"streaks": streaks})

    return Monitor(
        name="consumer_lag",
        specs=specs,
        evaluate=evaluate,
        resource_keys=resource_keys,
        interval_seconds=30,
        description="Messages and seconds each consumer group is behind the topic it reads (committed "
        "offset vs the topic's end; age of its oldest unconsumed record), with the figures observed "
        "on the topic's asset. The sensor fails a check once it stays above its threshold for "
        f"{sustain} evaluations in a row.",
    )


# which group is the warehouse's depends on how ClickHouse ingests (its resource's mode)
PLATFORM_MONITOR = lag_monitor(
    lambda resources: platform_groups(resources.clickhouse.mode),
    PLATFORM_SPECS,
    resource_keys=frozenset({"kafka", "clickhouse"}),
)
consumer_lag_sensor = PLATFORM_MONITOR.sensor()
consumer_lag_checks = PLATFORM_MONITOR.check()


# --- the quality of what the enricher writes ------------------------------------------------------

ENRICHMENT_QUALITY = dg.AssetCheckKey(engagement_enriched_topic.key, "enrichment_quality")
# asked by hand, the span is the last few minutes; the sensor covers the time since its last tick
BY_HAND_SPAN = timedelta(minutes=5)


def enrichment_quality_monitor(thresholds: QualityThresholds = QualityThresholds()) -> Monitor:  # noqa: B008
    def evaluate(ctx: MonitorContext) -> Report:
        now = datetime.now(UTC)
        previous = ctx.state.get("since")
        since = datetime.fromisoformat(previous) if previous else now - BY_HAND_SPAN
        client = ctx.resources.clickhouse.reader_client()
        try:
            measured = quality.measure(
                client, ctx.resources.kafka.bootstrap_servers, topics.ENRICHED_DLQ, since
            )
        finally:
            client.close()
        verdict = quality.quality_verdict(measured, since, thresholds)
        return Report([(ENRICHMENT_QUALITY, verdict)], state={"since": now.isoformat()})

    return Monitor(
        name="enrichment_quality",
        specs=[
            dg.AssetCheckSpec(
                ENRICHMENT_QUALITY.name,
                asset=engagement_enriched_topic.key,
                description="Of the records written since the last evaluation: content_missing share "
                f"(WARN above {thresholds.content_missing_warn:.0%}), DLQ share (WARN above "
                f"{thresholds.dlq_warn:.0%}), warehouse parse-error share (WARN above "
                f"{thresholds.errors_warn:.0%}), and none without engagement_pct where the content's "
                "length is known (ERROR).",
            )
        ],
        evaluate=evaluate,
        resource_keys=frozenset({"clickhouse", "kafka"}),
        interval_seconds=60,
        description="Measures the enricher's output as the warehouse received it, and its DLQ.",
    )


QUALITY = enrichment_quality_monitor()
enrichment_quality_sensor = QUALITY.sensor()
enrichment_quality_check = QUALITY.check()

defs = dg.Definitions(
    asset_checks=[consumer_lag_checks, enrichment_quality_check],
    sensors=[consumer_lag_sensor, enrichment_quality_sensor],
)
