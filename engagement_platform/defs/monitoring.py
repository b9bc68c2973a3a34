"""One monitoring check, three faces, from one evaluate function: the asset check specs, a sensor
that evaluates them on a timer (runless check evaluations plus observations of the figures),
and the check a user executes from the UI.

The measurements and verdicts themselves live in ``engagement_platform.monitoring``; this
module only turns a verdict into what Dagster shows.
"""

import json
import logging
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import dagster as dg

from engagement_platform.monitoring.activity import Activity
from engagement_platform.monitoring.freshness import freshness_verdict
from engagement_platform.monitoring.verdict import Level, Verdict

ctx_log = logging.getLogger("engagement_platform.monitoring")

Finding = tuple[dg.AssetCheckKey, Verdict]


@dataclass(frozen=True)
class Report:
    """What one evaluation found: a verdict per check, and asset events worth recording
    (observations of the figures, or runless materializations of streaming assets)."""

    findings: Sequence[Finding]
    observations: Sequence[dg.AssetObservation | dg.AssetMaterialization] = ()
    # what the sensor remembers until its next tick (its cursor); None keeps the previous
    state: dict[str, Any] | None = None


@dataclass(frozen=True)
class MonitorContext:
    """What an evaluation may use: the resources, the instance (last updates of assets), and the
    sensor's memory of earlier ticks (empty when a user executes the check by hand)."""

    resources: Any
    # called only by the monitors that read the instance (a test context may have none)
    get_instance: Callable[[], dg.DagsterInstance] | None = None
    state: dict[str, Any] = field(default_factory=dict)
    from_sensor: bool = False

    @property
    def instance(self) -> dg.DagsterInstance:
        if self.get_instance is None:
            raise RuntimeError("this evaluation has no Dagster instance")
        return self.get_instance()


def severity(level: Level) -> dg.AssetCheckSeverity:
    # a passed check carries WARN so the UI never paints a green result as if it were critical
    return dg.AssetCheckSeverity.ERROR if level is Level.ERROR else dg.AssetCheckSeverity.WARN


def _fields(key: dg.AssetCheckKey, verdict: Verdict) -> dict[str, Any]:
    return {
        "asset_key": key.asset_key,
        "check_name": key.name,
        "passed": verdict.passed,
        "severity": severity(verdict.level),
        "description": verdict.description,
        "metadata": dict(verdict.metadata),
    }


def evaluation(key: dg.AssetCheckKey, verdict: Verdict) -> dg.AssetCheckEvaluation:
    return dg.AssetCheckEvaluation(**_fields(key, verdict))


def result(key: dg.AssetCheckKey, verdict: Verdict) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(**_fields(key, verdict))


def sensor_report(context: dg.SensorEvaluationContext, report: Report) -> dg.SensorResult:
    """One check evaluation per verdict (failures also logged on the tick), plus observations."""
    events: list[dg.AssetCheckEvaluation | dg.AssetObservation] = []
    for key, verdict in report.findings:
        if not verdict.passed:
            context.log.warning(f"{key.to_user_string()}: {verdict.description}")
        events.append(evaluation(key, verdict))
    return dg.SensorResult(asset_events=[*events, *report.observations])


@dataclass(frozen=True)
class Monitor:
    """A measurement reported as asset checks. ``evaluate`` receives a MonitorContext and returns
    a Report covering every spec."""

    name: str  # of the multi-asset check; the sensor is `<name>_sensor` unless told otherwise
    specs: Sequence[dg.AssetCheckSpec]
    evaluate: Callable[[MonitorContext], Report]
    resource_keys: frozenset[str]
    interval_seconds: int = 30
    description: str = ""
    sensor_name: str = ""

    def sensor(self, name: str | None = None) -> dg.SensorDefinition:
        sensor_name = name or self.sensor_name or f"{self.name}_sensor"
        checks = ", ".join(dg.AssetCheckKey(s.asset_key, s.name).to_user_string() for s in self.specs)

        @dg.sensor(
            name=sensor_name,
            minimum_interval_seconds=self.interval_seconds,
            default_status=dg.DefaultSensorStatus.RUNNING,
            required_resource_keys=set(self.resource_keys),
            description=f"Evaluates {checks} every {self.interval_seconds} s. {self.description}",
        )
        def _sensor(context: dg.SensorEvaluationContext, **_resources: Any) -> dg.SensorResult:
            # a direct call (tests) also passes each required resource by name; context has them all
            state = json.loads(context.cursor) if context.cursor else {}
            report = self.evaluate(
                MonitorContext(context.resources, lambda: context.instance, state, from_sensor=True)
            )
            if report.state is not None:
                context.update_cursor(json.dumps(report.state, sort_keys=True))
            return sensor_report(context, report)

        return _sensor

    def check(self) -> dg.AssetChecksDefinition:
        @dg.multi_asset_check(
            name=self.name,
            specs=list(self.specs),
            required_resource_keys=set(self.resource_keys),
            description=f"{self.description} Executed here it measures once; its sensor every "
            f"{self.interval_seconds} s.",
        )
        def _check(context: dg.AssetCheckExecutionContext) -> Iterator[dg.AssetCheckResult]:
            for key, verdict in self.evaluate(
                MonitorContext(context.resources, lambda: context.instance)
            ).findings:
                yield result(key, verdict)

        return _check


@dataclass(frozen=True)
class StreamAsset:
    """An asset an always-on process writes. Each tick it moved (or its writer had nothing left to
    do) it gets a runless materialization; ``fresh`` bounds how old that may get."""

    key: dg.AssetKey
    reading: str  # the name its figures come under from the measure function
    fresh: tuple[float, float] | None = None  # warn, error seconds; None: no check

    @property
    def freshness_key(self) -> dg.AssetCheckKey:
        return dg.AssetCheckKey(self.key, "freshness")


# what a measure function returns: per reading name, the figures and whether its writer is caught up
Readings = Mapping[str, tuple[Activity, bool]]


def last_update(instance: dg.DagsterInstance, key: dg.AssetKey) -> float | None:
    event = instance.get_latest_materialization_event(key)
    return event.timestamp if event is not None else None


def activity_monitor(
    name: str,
    assets: Sequence[StreamAsset],
    measure: Callable[[MonitorContext], Readings],
    resource_keys: frozenset[str],
    description: str,
    interval_seconds: int = 30,
) -> Monitor:
    """Materializations for streaming assets that moved, and a ``freshness`` check on each.

    An asset counts as updated when its counter grew since the last tick, or when its writer is
    caught up with its input (a quiet pipeline is up to date, not stale). A stopped writer with
    input waiting produces no event, so its asset turns stale within ``fresh``.
    """
    specs = [
        dg.AssetCheckSpec(
            "freshness",
            asset=a.key,
            description=f"Updated (it moved, or its writer was caught up) within the last {a.fresh[0]:g} s "
            f"(WARN after, ERROR after {a.fresh[1]:g} s).",
        )
        for a in assets
        if a.fresh is not None
    ]

    def evaluate(ctx: MonitorContext) -> Report:
        now = time.time()
        try:
            readings = measure(ctx)
        except Exception as exc:  # noqa: BLE001 - a service down: nothing moved, freshness tells
            ctx_log.warning(f"{name}: could not read the streaming assets: {exc}")
            readings = {}
        before = dict(ctx.state.get("written", {}))
        written = dict(before)
        events, updated = [], {}
        for a in assets:
            if a.reading not in readings:
                continue
            activity, caught_up = readings[a.reading]
            previous = before.get(a.reading)
            since = activity.written - previous if previous is not None else 0
            written[a.reading] = activity.written
            # by hand there is no earlier reading to compare with: only "caught up" says fresh
            moved = ctx.from_sensor and (since > 0 or previous is None)
            if moved or caught_up:
                metadata = {**activity.metadata(max(since, 0)), "writer_caught_up": caught_up}
                events.append(dg.AssetMaterialization(asset_key=a.key, metadata=metadata))
                updated[a.key] = now
        for reading, (activity, _caught_up) in readings.items():  # readings that are no asset too
            written[reading] = activity.written
        findings = []
        for a in assets:
            if a.fresh is None:
                continue
            stamp = updated.get(a.key) or last_update(ctx.instance, a.key)
            age = now - stamp if stamp is not None else None
            findings.append((a.freshness_key, freshness_verdict(a.key.to_user_string(), age, *a.fresh)))
        return Report(findings, events, state={"written": written} if ctx.from_sensor else None)

    return Monitor(
        name=name,
        specs=specs,
        evaluate=evaluate,
        resource_keys=resource_keys,
        interval_seconds=interval_seconds,
        description=description,
    )
