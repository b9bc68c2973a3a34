"""The one factory of Kafka client configs: presets per role, the caller's keys on top."""

from __future__ import annotations

import subprocess
import sys

from engagement_platform.kafka_config import CLUSTER_SESSION_TIMEOUT_MS, FETCH_WAIT_MS, client_config
from engagement_platform.settings import load
from engagement_platform.streaming import kafka_io


def test_plain_is_the_endpoint_and_the_extras_only() -> None:
    assert client_config("k:1") == {"bootstrap.servers": "k:1"}
    assert client_config("k:1", extra={"log_level": 2}) == {"bootstrap.servers": "k:1", "log_level": 2}


def test_the_data_path_presets_commit_by_hand_and_ack_all() -> None:
    consumer = client_config("k:1", "consumer", {"group.id": "g"})
    assert consumer["enable.auto.commit"] is False and consumer["enable.auto.offset.store"] is False
    assert consumer["fetch.wait.max.ms"] == FETCH_WAIT_MS and consumer["group.id"] == "g"
    assert client_config("k:1", "producer")["acks"] == "all"


def test_a_consumer_of_a_cluster_outlasts_a_coordinator_move() -> None:
    assert client_config("k:1", "consumer")["session.timeout.ms"] == 6000
    cluster = client_config("k:1,k:2,k:3", "consumer")
    assert cluster["session.timeout.ms"] == CLUSTER_SESSION_TIMEOUT_MS > 4000 + 6000
    assert "session.timeout.ms" not in client_config("k:1,k:2", "plain")


def test_extras_win_and_each_call_gets_its_own_dict() -> None:
    first = client_config("k:1", "consumer", {"fetch.wait.max.ms": 10})
    assert first["fetch.wait.max.ms"] == 10
    first["group.id"] = "mutated"
    assert "group.id" not in client_config("k:1", "consumer")


def test_the_consumers_configs_come_from_it() -> None:
    s = load({"KAFKA_BOOTSTRAP_SERVERS": "broker:29092"})
    made = kafka_io.consumer_config(s, "g", **{"linger.ms": 1})
    assert made == client_config(
        "broker:29092", "consumer", {"group.id": "g", "logger": kafka_io.CLIENT_LOG, "linger.ms": 1}
    )
    assert kafka_io.producer_config(s)["bootstrap.servers"] == "broker:29092"


def test_it_needs_only_the_standard_library() -> None:
    """The benchmark peers import it from a venv without the platform's dependencies."""
    code = (
        "import sys, engagement_platform.kafka_config;"
        "print(sorted(m for m in ('confluent_kafka', 'pydantic') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
