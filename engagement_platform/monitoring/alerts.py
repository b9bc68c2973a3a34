"""Alerts: one message when something goes wrong, one when it is right again, never one per tick.

Whatever can go wrong is an *incident* with a stable key (a check of an asset, a job's runs).
``transitions`` compares what is failing now with what was failing before and yields only
the changes; ``Webhook`` posts each one as Slack-compatible JSON (``{"text": ...}``, which
Slack, Mattermost, Rocket.Chat and most chat webhooks accept).
"""

from __future__ import annotations

import json
import logging
import urllib.error
import urllib.request
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

log = logging.getLogger("engagement_platform.alerts")


@dataclass(frozen=True)
class Alert:
    key: str  # the incident, e.g. "kafka/engagement_enriched:freshness"
    firing: bool  # True: it started; False: it recovered
    severity: str  # "ERROR" or "WARN" (the severity of the failure, also on its recovery)
    summary: str
    link: str = ""

    @property
    def text(self) -> str:
        if self.firing:
            head = f":rotating_light: {self.severity} {self.key}"
        else:
            head = f":white_check_mark: RECOVERED {self.key}"
        body = f"{head}: {self.summary}"
        return f"{body} <{self.link}>" if self.link else body


@dataclass(frozen=True)
class Status:
    """The latest verdict on one incident key."""

    failing: bool
    severity: str
    summary: str
    link: str = ""


# the processes whose trouble shows on several checks at once: a stopped consumer falls behind
# on the topic it reads and lets the asset it writes go stale -- one incident, not two
PROCESSES = ("enrich", "leaderboard", "warehouse", "debezium")


def incident_of(asset: str, check: str, writer: str | None) -> str:
    """The incident a check's failure belongs to: the process behind it, or the check itself."""
    if check.endswith("_consumer_lag"):
        return f"consumer {check.removesuffix('_consumer_lag')}"
    if check == "connector_running" or (check == "freshness" and writer in PROCESSES):
        return f"consumer {writer if check == 'freshness' else 'debezium'}"
    return f"{asset}:{check}"


def merge(statuses: Mapping[str, Status]) -> Status:
    """One status for the checks of an incident: failing while any fails, at the worst severity."""
    failing = {k: s for k, s in sorted(statuses.items()) if s.failing}
    if not failing:
        return Status(False, "WARN", "all of " + ", ".join(sorted(statuses)) + " pass again")
    severity = "ERROR" if any(s.severity == "ERROR" for s in failing.values()) else "WARN"
    summary = "; ".join(f"{k}: {s.summary}" for k, s in failing.items())
    return Status(True, severity, summary, next(iter(failing.values())).link)


def transitions(open_incidents: Mapping[str, str], now: Mapping[str, Status]) -> list[Alert]:
    """Alerts for what changed: keys failing now but not open before, and open keys passing now.

    ``open_incidents`` maps each open incident to its severity. A key absent from ``now`` keeps
    its state (nothing new was learned about it).
    """
    alerts = []
    for key, status in sorted(now.items()):
        was_open = key in open_incidents
        if status.failing and not was_open:
            alerts.append(Alert(key, True, status.severity, status.summary, status.link))
        elif not status.failing and was_open:
            alerts.append(Alert(key, False, open_incidents[key], status.summary, status.link))
    return alerts


def still_open(open_incidents: Mapping[str, str], alerts: Iterable[Alert]) -> dict[str, str]:
    """The open incidents once ``alerts`` are delivered."""
    result = dict(open_incidents)
    for alert in alerts:
        if alert.firing:
            result[alert.key] = alert.severity
        else:
            result.pop(alert.key, None)
    return result


class Webhook:
    """Posts alerts to ``url``; with no url it only logs. A failed post is logged, not raised:
    the UI and the log still carry the alert, and a chat outage must not stop the monitoring."""

    def __init__(self, url: str, timeout: float = 5.0) -> None:
        self.url = url
        self.timeout = timeout

    def send(self, alert: Alert) -> bool:
        (log.warning if alert.firing else log.info)("alert: %s", alert.text)
        if not self.url:
            return False
        body = json.dumps({"text": alert.text}).encode()
        request = urllib.request.Request(
            self.url, data=body, method="POST", headers={"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:  # noqa: S310
                return 200 <= response.status < 300
        except (urllib.error.URLError, OSError, ValueError) as exc:
            log.warning("alert webhook %s failed: %s", self.url, exc)
            return False
