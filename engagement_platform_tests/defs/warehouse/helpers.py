"""What the warehouse tests share: a stack with ClickHouse, a fresh database per test, and records.

Each test gets its own ClickHouse database with the schema applied, so tests never see each
other's rows and can run against one stack.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import orjson
from clickhouse_connect.driver.client import Client

from engagement_platform.defs.warehouse.resources import ClickHouseResource
from engagement_platform.migrations import clickhouse as migrations
from engagement_platform.migrations.files import CLICKHOUSE_DIR, clickhouse_migrations
from engagement_platform.settings import Settings
from engagement_platform.streaming import enrich
from engagement_platform.warehouse import ddl
from engagement_platform_tests.defs import resources as test_resources

CONTENT_ID = "4819a3ff-8df3-46eb-8f8d-9d838a7fe39d"
USER_ID = "da968c47-5573-4ac3-99b2-b4849132695b"


def resource(settings: Settings, database: str, mode: str = "local") -> ClickHouseResource:
    return test_resources.clickhouse(settings, database, mode)


@contextmanager
def fresh_database(
    settings: Settings, prefix: str = "t", directory: Path = CLICKHOUSE_DIR
) -> Iterator[tuple[str, Client]]:
    """A new database with the local-mode schema of ``directory`` applied; dropped afterwards."""
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    admin = ddl.connect_settings(settings, "default")
    ddl.ensure_database(admin, name)
    client = ddl.connect_settings(settings, name)
    try:
        migrations.apply(client, "local", settings.ep_home, clickhouse_migrations("local", directory))
        yield name, client
    finally:
        client.close()
        admin.command("DROP DATABASE IF EXISTS {db:Identifier}", parameters={"db": name})
        admin.close()


def content(length_seconds: int | None = 300, content_id: str = CONTENT_ID) -> enrich.Content:
    return enrich.Content(
        content_id, "podcast-test", "A Test Title", "podcast", length_seconds, "2026-10-01T08:00:00.000Z"
    )


def event(
    event_id: int,
    event_type: str = "play",
    event_ts: str = "2026-11-29T19:46:13.123Z",
    duration_ms: int | None = 1500,
    content_id: str = CONTENT_ID,
    user_id: str | None = USER_ID,
) -> enrich.Event:
    return enrich.Event(
        event_id, content_id, user_id, event_type, event_ts, duration_ms, "ios", "2026-11-29T19:46:13.200Z"
    )


def enriched(id_: int, **overrides: Any) -> dict[str, Any]:
    """A valid enriched record, as the enrich consumer writes it, with fields overridden."""
    record = enrich.enrich(event(id_), content(), "2026-11-29T19:46:13.300Z")
    record.update(overrides)
    return record


def raw(record: dict[str, Any]) -> bytes:
    return orjson.dumps(record)


def count(client: Client, sql: str, **parameters: Any) -> int:
    return int(client.command(sql, parameters=parameters))
