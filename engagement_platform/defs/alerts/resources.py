"""Where alerts go besides the Dagster UI and the log: an optional chat webhook."""

from __future__ import annotations

import dagster as dg

from engagement_platform.defs.config import setting
from engagement_platform.monitoring.alerts import Webhook


class AlertsResource(dg.ConfigurableResource):
    webhook_url: str = ""  # Slack-compatible incoming webhook; empty: UI and log only
    ui_url: str = ""  # base of the links in alerts; empty: the local Dagster UI
    dagster_port: int = 3000

    @property
    def link_base(self) -> str:
        return (self.ui_url or f"http://127.0.0.1:{self.dagster_port}").rstrip("/")

    def webhook(self) -> Webhook:
        return Webhook(self.webhook_url)


def alerts_resource() -> AlertsResource:
    return AlertsResource(
        webhook_url=setting("alert_webhook_url"),
        ui_url=setting("dagster_ui_url"),
        dagster_port=setting("dagster_port"),
    )
