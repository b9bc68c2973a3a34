"""connector.json: one file for both modes' Kafka Connect; no secret or host inside."""

from __future__ import annotations

import json
import re

import pytest

from engagement_platform.cdc.connector import CONNECTOR_FILE, ConnectorConfigError, load, render

VALUES = {
    "POSTGRES_HOST": "db.example",
    "POSTGRES_PORT": "5433",
    "POSTGRES_DB": "engagement",
    "POSTGRES_CDC_USER": "cdc",
    "POSTGRES_CDC_PASSWORD": "s3cret",
    "KAFKA_TOPIC_PARTITIONS": "3",
    "KAFKA_RETENTION_MS": "86400000",
    "KAFKA_RETENTION_BYTES": "1048576",
    "KAFKA_REPLICATION_FACTOR": "3",
    "KAFKA_MIN_INSYNC_REPLICAS": "2",
}


def test_placeholders_are_filled_from_the_values() -> None:
    spec = load(VALUES)
    assert spec.config["database.hostname"] == "db.example"
    assert spec.config["database.port"] == "5433"
    assert spec.config["database.password"] == "s3cret"
    assert not any("${" in v for v in spec.config.values())


def test_the_file_itself_holds_no_credentials_or_hosts() -> None:
    raw = json.loads(CONNECTOR_FILE.read_text())["config"]
    for key in (
        "database.hostname",
        "database.port",
        "database.user",
        "database.password",
        "database.dbname",
    ):
        assert raw[key].startswith("${") and raw[key].endswith("}"), key


def test_routes_to_the_flat_topics_with_the_required_settings() -> None:
    spec = load(VALUES)
    assert spec.topics == ["content.flat", "engagement_events.flat"]
    c = spec.config
    assert c["plugin.name"] == "pgoutput"
    assert c["snapshot.mode"] == "initial"
    assert c["slot.name"] and c["publication.name"]
    assert c["transforms.unwrap.type"] == "io.debezium.transforms.ExtractNewRecordState"
    assert set(c["transforms.unwrap.add.fields"].split(",")) >= {"op", "source.ts_ms", "lsn"}
    assert c["message.key.columns"] == "public.engagement_events:content_id"
    assert c["value.converter.schemas.enable"] == "false"
    assert c["heartbeat.action.query"]


def test_the_topics_debezium_creates_take_the_replication_from_the_values() -> None:
    c = load(VALUES).config
    assert c["topic.creation.default.replication.factor"] == "3"
    assert c["topic.creation.default.min.insync.replicas"] == "2"
    c = load({**VALUES, "KAFKA_REPLICATION_FACTOR": "1", "KAFKA_MIN_INSYNC_REPLICAS": "1"}).config
    assert c["topic.creation.default.replication.factor"] == "1"


def test_an_unknown_placeholder_is_an_error() -> None:
    with pytest.raises(ConnectorConfigError, match=r"\$\{NOPE\}"):
        render({"name": "x", "config": {"a": "${NOPE}"}}, VALUES)
    with pytest.raises(ConnectorConfigError, match="lacks 'config'"):
        render({"name": "x"}, VALUES)


def test_topics_connect_creates_are_compacted_for_content_and_bounded_otherwise() -> None:
    # the `cdc/connector` asset creates the flat topics first; these apply when Connect does
    c = load(VALUES).config
    compacted = c["topic.creation.compacted.include"]
    assert re.fullmatch(compacted, "content.flat")
    assert not re.fullmatch(compacted, "engagement_events.flat")
    assert c["topic.creation.compacted.cleanup.policy"] == "compact"
    assert c["topic.creation.default.partitions"] == "3"
    assert c["topic.creation.default.retention.ms"] == "86400000"
    assert c["topic.creation.default.retention.bytes"] == "1048576"
