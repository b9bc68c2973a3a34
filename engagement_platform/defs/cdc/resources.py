"""Kafka Connect as a Dagster resource."""

from __future__ import annotations

import dagster as dg

from engagement_platform.cdc.connect_client import ConnectClient
from engagement_platform.defs.config import setting


class KafkaConnectResource(dg.ConfigurableResource):
    url: str
    running_timeout_s: float = 120.0

    def client(self) -> ConnectClient:
        return ConnectClient(self.url)


def connect_resource() -> KafkaConnectResource:
    return KafkaConnectResource(url=setting("connect_url"))
