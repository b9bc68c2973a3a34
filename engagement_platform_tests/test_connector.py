"""connector.json: one file for local cdc and real Kafka Connect; no secret or host inside."""

from __future__ import annotations

import json

import pytest

from engagement_platform.connector import CONNECTOR_FILE, ConnectorConfigError, load, render

VALUES = {
    "POSTGRES_HOST": "db.example",
    "POSTGRES_PORT": "5433",
    "POSTGRES_DB": "engagement",
    "POSTGRES_CDC_USER": "cdc",
    "POSTGRES_CDC_PASSWORD": "s3cret",
    "KAFKA_TOPIC_PARTITIONS": "3",
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


def test_an_unknown_placeholder_is_an_error() -> None:
    with pytest.raises(ConnectorConfigError, match=r"\$\{NOPE\}"):
        render({"name": "x", "config": {"a": "${NOPE}"}}, VALUES)
    with pytest.raises(ConnectorConfigError, match="lacks 'config'"):
        render({"name": "x"}, VALUES)


def test_topic_creation_makes_content_compacted_and_events_plain() -> None:
    from engagement_platform.local_stack.cdc_engine import topic_creation_settings

    config = load(VALUES).config
    assert topic_creation_settings(config, "content.flat") == (3, {"cleanup.policy": "compact"})
    assert topic_creation_settings(config, "engagement_events.flat") == (3, {})
    assert topic_creation_settings({}, "x") == (1, {})
