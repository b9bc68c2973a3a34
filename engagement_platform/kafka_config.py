"""Every Kafka client's configuration, made in one place.

``client_config`` gives each client the platform, its monitors, the local stack and the benchmarks
open: the endpoint, its role's preset (the tuned consumer and producer of the data path, or
nothing for admin clients and probes) and the caller's own keys on top. Standard library only, so
the benchmark peers, which run in a venv of their own, use it too.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

# how long the broker may hold a fetch waiting for data: the latency floor of an idle hop
FETCH_WAIT_MS = 100

Role = Literal["plain", "consumer", "producer"]

_PRESETS: dict[Role, dict[str, Any]] = {
    # admin clients, probes and one-off readers: the endpoint and the caller's keys only
    "plain": {},
    # the data path's consumers: manual commits after the output is acknowledged
    "consumer": {
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "auto.offset.reset": "earliest",
        # a short session makes group joins and rebalances take seconds, not tens of seconds
        "session.timeout.ms": 6000,
        "heartbeat.interval.ms": 1500,
        "max.poll.interval.ms": 300000,
        "fetch.wait.max.ms": FETCH_WAIT_MS,
        # a small prefetch queue per partition, refilled at once: librdkafka's default waits 1 s
        # once 100,000 records are queued (measurements: docs and the commit that set it)
        "queued.min.messages": 20_000,
        "fetch.queue.backoff.ms": 10,
        "partition.assignment.strategy": "cooperative-sticky",
        "statistics.interval.ms": 0,
    },
    # acks=all and retries without the idempotent producer: after a broker restart a new
    # producer id can be refused for minutes, and every sink dedupes by event id anyway
    "producer": {
        "enable.idempotence": False,
        "acks": "all",
        "linger.ms": 5,
        "batch.num.messages": 10000,
        "compression.type": "lz4",
        "queue.buffering.max.messages": 500000,
    },
}


# A consumer whose group coordinator's broker dies keeps fetching, but gives up its partitions
# once its session passes without an answered heartbeat, then rejoins and waits for its old
# member to expire. On a cluster the coordinator moves to another broker (the dead one fenced
# after broker.session.timeout.ms, then the group loaded), which under load took longer than
# 6 s: the leaderboard stalled 14 s after a kill -9 of a broker. A session that outlasts the
# move keeps the assignment, so the stall is only the partition leaders' move.
CLUSTER_SESSION_TIMEOUT_MS = 15_000


def client_config(
    bootstrap_servers: str, role: Role = "plain", extra: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """The librdkafka config of a ``role`` client of ``bootstrap_servers``, with ``extra``'s keys
    (``group.id``, ``logger``, ...) over the preset's. A new dict each call. A consumer of more
    than one broker gets CLUSTER_SESSION_TIMEOUT_MS (one broker has no coordinator to move)."""
    config: dict[str, Any] = {"bootstrap.servers": bootstrap_servers, **_PRESETS[role]}
    if role == "consumer" and "," in bootstrap_servers:
        config["session.timeout.ms"] = CLUSTER_SESSION_TIMEOUT_MS
    config.update(extra or {})
    return config
