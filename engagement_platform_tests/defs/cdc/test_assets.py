"""`cdc/connector`: connector.json registered through Dagster; CDC records in the flat topics."""

from __future__ import annotations

import json
import uuid

import psycopg2
import pytest

from engagement_platform.cdc.connect_client import ConnectClient
from engagement_platform.cdc.connector import CONNECTOR_FILE
from engagement_platform.streaming import topics
from engagement_platform_tests.harness import materialize, read_topic

EVENT_FIELDS = {
    "id",
    "content_id",
    "user_id",
    "event_type",
    "event_ts",
    "duration_ms",
    "device",
    "raw_payload",
}


@pytest.fixture(scope="module")
def connector(source_schema):  # type: ignore[no-untyped-def]
    result = materialize(source_schema, "postgres/schema,cdc/connector")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return source_schema


def connector_name() -> str:
    return json.loads(CONNECTOR_FILE.read_text())["name"]


def max_event_id(stack) -> int:  # type: ignore[no-untyped-def]
    conn = psycopg2.connect(stack.settings.postgres_dsn)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT coalesce(max(id), 0) FROM engagement_events")
            return cur.fetchone()[0]
    finally:
        conn.close()


def test_connector_is_running_and_topics_have_the_configured_partitions(connector) -> None:
    client = ConnectClient(connector.settings.connect_url)
    status = client.status(connector_name())
    assert status["connector"]["state"] == "RUNNING"
    assert [t["state"] for t in status["tasks"]] == ["RUNNING"]
    from engagement_platform.streaming.topics import partition_counts

    counts = partition_counts(
        connector.settings.kafka_bootstrap_servers, [topics.CONTENT_FLAT, topics.EVENTS_FLAT]
    )
    assert counts == {topics.CONTENT_FLAT: connector.settings.topic_partitions,
                      topics.EVENTS_FLAT: connector.settings.topic_partitions}  # fmt: skip


def test_flat_topics_are_bounded_or_compacted(connector) -> None:
    from confluent_kafka.admin import AdminClient, ConfigResource

    s = connector.settings
    admin = AdminClient({"bootstrap.servers": s.kafka_bootstrap_servers})
    resources = [ConfigResource("topic", t) for t in (topics.CONTENT_FLAT, topics.EVENTS_FLAT)]
    configs = {r.name: f.result(10) for r, f in admin.describe_configs(resources).items()}
    events = configs[topics.EVENTS_FLAT]
    assert events["cleanup.policy"].value == "delete"
    assert events["retention.ms"].value == str(s.topic_retention_ms)
    assert events["retention.bytes"].value == str(s.topic_retention_bytes)
    # content is a changelog: compaction keeps the last row per id, whatever its age
    assert configs[topics.CONTENT_FLAT]["cleanup.policy"].value == "compact"


def test_simulated_events_arrive_exactly_in_the_events_topic(connector) -> None:
    stack = connector
    before = max_event_id(stack)
    stack.cli("simulate", "--content", "25", "--events", "1000")
    after = max_event_id(stack)
    expected = set(range(before + 1, after + 1))
    assert len(expected) == 1000

    def ids(messages) -> set[int]:  # type: ignore[no-untyped-def]
        return {json.loads(m.value())["id"] for m in messages if m.value() is not None}

    messages = read_topic(
        stack.settings.kafka_bootstrap_servers, topics.EVENTS_FLAT, until=lambda ms: expected <= ids(ms)
    )
    ours = [m for m in messages if m.value() is not None and json.loads(m.value())["id"] in expected]
    assert {json.loads(m.value())["id"] for m in ours} == expected
    for m in ours[:50]:
        value = json.loads(m.value())
        assert set(value) >= EVENT_FIELDS
        assert value["__op"] in ("c", "r")
        assert isinstance(value["__source_ts_ms"], int) and value["__source_ts_ms"] > 1.7e12
        assert value["event_ts"].endswith("Z") and "T" in value["event_ts"]  # UTC ISO-8601
        assert json.loads(m.key()) == {"content_id": value["content_id"]}
        assert isinstance(json.loads(value["raw_payload"]), dict)
        uuid.UUID(value["user_id"])


def test_content_rows_are_keyed_by_id_and_updates_are_new_records(connector) -> None:
    stack = connector
    conn = psycopg2.connect(stack.settings.postgres_dsn)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute("SELECT id::text FROM content ORDER BY slug LIMIT 1")
        content_id = cur.fetchone()[0]
        new_title = f"Retitled {uuid.uuid4().hex[:6]}"
        cur.execute("UPDATE content SET title = %s WHERE id = %s", (new_title, content_id))
    conn.close()

    def updated(messages) -> bool:  # type: ignore[no-untyped-def]
        return any(m.value() and json.loads(m.value()).get("title") == new_title for m in messages)

    messages = read_topic(stack.settings.kafka_bootstrap_servers, topics.CONTENT_FLAT, until=updated)
    mine = [
        json.loads(m.value()) for m in messages if m.value() and json.loads(m.key()) == {"id": content_id}
    ]
    assert len(mine) >= 2  # the snapshot/insert and the update
    assert mine[-1]["title"] == new_title and mine[-1]["__op"] == "u"
    assert all(
        set(v) >= {"id", "slug", "title", "content_type", "length_seconds", "publish_ts"} for v in mine
    )


def test_registering_twice_changes_nothing(connector) -> None:
    stack = connector
    client = ConnectClient(stack.settings.connect_url)
    connectors_before = client.connectors()
    count_before = len(read_topic(stack.settings.kafka_bootstrap_servers, topics.CONTENT_FLAT, until=bool))
    result = materialize(stack, "cdc/connector")
    assert result.returncode == 0, result.stderr[-2000:]
    assert client.connectors() == connectors_before
    # no restart, so no new snapshot: the content topic holds exactly what it held
    count_after = len(
        read_topic(stack.settings.kafka_bootstrap_servers, topics.CONTENT_FLAT, until=bool, settle=2.0)
    )
    assert count_after == count_before


def test_a_wrong_password_fails_the_materialization_naming_the_cause(connector) -> None:
    stack = connector
    result = materialize(stack, "cdc/connector", env={"POSTGRES_CDC_PASSWORD": "definitely-wrong"})
    assert result.returncode != 0
    assert "password authentication failed" in result.stdout + result.stderr
    # the running connector is untouched
    status = ConnectClient(stack.settings.connect_url).status(connector_name())
    assert status["connector"]["state"] == "RUNNING"
