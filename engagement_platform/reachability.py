"""Is the stack up? One check per service, before a command that needs it starts its work.

Without it a user who forgot `make up` met the first client library's error (``cimpl.
KafkaException: ... Broker transport failure`` after a traceback, or a command that waited
forever). :func:`require` says in one line which service is not reachable, where (no
password), and how to start it. Each check is cheap and short: a TCP connect of at most
CONNECT_TIMEOUT_S to each endpoint, and for Kafka a metadata request too (its port opens
before the broker serves). Kafka is reachable when any broker of KAFKA_BOOTSTRAP_SERVERS
answers, as for its clients: a cluster with one broker down still serves. Standard library
only, apart from Kafka's client for that request.
"""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlsplit

from engagement_platform.settings import Settings, split_host_port

CONNECT_TIMEOUT_S = 2.0
KAFKA_METADATA_TIMEOUT_S = 5.0

Service = Literal["postgres", "kafka", "cdc", "clickhouse", "redis"]
COMPOSE_NAMES = {"cdc": "connect"}  # docker-compose.yml's service names where they differ


class ServiceUnreachable(RuntimeError):
    """A service a command needs does not answer; the message is the one line to show."""


@dataclass(frozen=True)
class Endpoint:
    """Where a service listens, as shown to a user (never with a password)."""

    service: Service
    host: str
    port: int
    shown: str


def endpoint(settings: Settings, service: Service) -> Endpoint:
    """The endpoint of ``service`` in ``settings``."""
    if service == "postgres":
        host, port = settings.postgres_host, settings.postgres_port
        return Endpoint(service, host, port, f"{host}:{port}")
    if service == "kafka":
        host, port = split_host_port(settings.kafka_bootstrap_servers, "KAFKA_BOOTSTRAP_SERVERS")
        return Endpoint(service, host, port, settings.kafka_bootstrap_servers)
    if service == "cdc":
        url = urlsplit(settings.connect_url)
        return Endpoint(service, url.hostname or "", settings.connect_port, f"{url.scheme}://{url.netloc}")
    if service == "clickhouse":
        host, port = settings.clickhouse_host, settings.clickhouse_port
        return Endpoint(service, host, port, f"http://{host}:{port}")
    host, port = settings.redis_host, settings.redis_port
    return Endpoint(service, host, port, f"{host}:{port}")


def how_to_start(settings: Settings, service: Service) -> str:
    """The command that starts ``service`` in this mode."""
    if settings.mode == "compose":
        return f"start it with `docker compose up -d {COMPOSE_NAMES.get(service, service)}`"
    return f"start it with `engagement-platform stack up {service}` (the whole platform: `make up`)"


def _tcp(ep: Endpoint) -> str | None:
    """Why a TCP connection to ``ep`` failed, or None when it opened."""
    try:
        with socket.create_connection((ep.host, ep.port), timeout=CONNECT_TIMEOUT_S):
            return None
    except TimeoutError:
        return f"no answer within {CONNECT_TIMEOUT_S:g} s"
    except ConnectionRefusedError:
        return "connection refused"
    except OSError as exc:
        return exc.strerror or type(exc).__name__


def _kafka_tcp(settings: Settings) -> str | None:
    """Why no broker of the bootstrap list took a TCP connection, or None when one did."""
    reasons = []
    for address in settings.kafka_bootstrap_servers.split(","):
        host, port = split_host_port(address, "KAFKA_BOOTSTRAP_SERVERS")
        why = _tcp(Endpoint("kafka", host, port, address))
        if why is None:
            return None
        reasons.append(why)
    return reasons[0] if len(set(reasons)) == 1 else "; ".join(reasons)


def _kafka_metadata(settings: Settings) -> str | None:
    """Why the broker served no metadata, or None when it did (its port opens earlier)."""
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import AdminClient

    from engagement_platform.kafka_config import client_config

    quiet = logging.getLogger("engagement_platform.reachability.kafka")
    quiet.propagate = False  # librdkafka's own retries would print a line each
    quiet.addHandler(logging.NullHandler())
    admin = AdminClient(client_config(settings.kafka_bootstrap_servers, extra={"logger": quiet}))
    try:
        admin.list_topics(timeout=KAFKA_METADATA_TIMEOUT_S)
    except KafkaException:
        return f"no metadata within {KAFKA_METADATA_TIMEOUT_S:g} s"
    return None


def problem(settings: Settings, service: Service) -> str | None:
    """The one line saying ``service`` is not reachable and how to start it, or None when it is."""
    ep = endpoint(settings, service)
    why = _kafka_tcp(settings) if service == "kafka" else _tcp(ep)
    if why is None and service == "kafka":
        why = _kafka_metadata(settings)
    if why is None:
        return None
    return f"{service} is not reachable at {ep.shown} ({why}); {how_to_start(settings, service)}"


def require(settings: Settings, services: Iterable[Service]) -> None:
    """Raise :class:`ServiceUnreachable` naming the first of ``services`` that does not answer."""
    for service in services:
        if (line := problem(settings, service)) is not None:
            raise ServiceUnreachable(line)


def wait(
    settings: Settings, services: Iterable[Service], say: Callable[[str], None], every: float = 2.0
) -> None:
    """What an always-on consumer does instead of :func:`require`: wait until every one of
    ``services`` answers, saying once per cause which one it waits for (a consumer started
    before its stack, as ``up`` and compose may, simply starts later)."""
    wanted = list(services)
    said: str | None = None
    while True:
        line = next((found for s in wanted if (found := problem(settings, s)) is not None), None)
        if line is None:
            if said is not None:
                say(f"{', '.join(wanted)} reachable: starting")
            return
        if line != said:
            say(f"{line}; waiting for it")
            said = line
        time.sleep(every)  # polls a condition: the service answering
