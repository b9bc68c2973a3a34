"""Kafka Connect (a real worker, or the local cdc service) as a Dagster resource."""

from __future__ import annotations

import dagster as dg

from engagement_platform.cdc.connect_client import ConnectClient


class KafkaConnectResource(dg.ConfigurableResource):
    url: str
    running_timeout_s: float = 120.0

    def client(self) -> ConnectClient:
        return ConnectClient(self.url)


def connect_resource() -> KafkaConnectResource:
    return KafkaConnectResource(url=dg.EnvVar("CONNECT_URL"))
