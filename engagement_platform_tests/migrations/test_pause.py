"""The local-mode pause with the real bridge: a migration that replaces the parse view while
`consume warehouse` runs holds the bridge's insert back, and nothing is lost or doubled."""

from __future__ import annotations

import uuid
from contextlib import closing

from confluent_kafka import Producer

from engagement_platform.migrations import clickhouse
from engagement_platform.settings import Settings
from engagement_platform.streaming import kafka_io
from engagement_platform.streaming.topics import TopicSpec, ensure_topics, settings_bounds
from engagement_platform.warehouse import ddl
from engagement_platform.warehouse.gate import gate_path
from engagement_platform_tests import harness
from engagement_platform_tests.defs.warehouse.helpers import enriched, raw
from engagement_platform_tests.harness import Child, StackHandle
from engagement_platform_tests.migrations.conftest import Dirs


def parse_view_swap() -> str:
    """A migration replacing the parse view with its latest definition, as a real change would."""
    *_, create = [
        s
        for m, s in harness.ddl_statements("local")
        if "VIEW IF NOT EXISTS engagement_enriched_parse_mv" in s
    ]
    return f"DROP VIEW IF EXISTS engagement_enriched_parse_mv;\n{create};\n"


def test_the_bridge_waits_while_a_migration_replaces_the_parse_view(
    stack: StackHandle, scratch: Settings, dirs: Dirs
) -> None:
    topic, group = f"t-{uuid.uuid4().hex[:8]}.engagement_enriched", f"mig-{uuid.uuid4().hex[:8]}"
    ensure_topics(scratch.kafka_bootstrap_servers, [TopicSpec(topic, 3)], bounds=settings_bounds(scratch))
    producer = Producer(kafka_io.producer_config(scratch))

    def produce(ids: range) -> None:
        harness.produce_records(producer, topic, ((str(i).encode(), raw(enriched(i))) for i in ids))

    client = ddl.connect_settings(scratch)
    with closing(client):
        clickhouse.apply(client, "local", scratch.ep_home, dirs.clickhouse_files())

        def counts() -> tuple[int, int, int]:
            row = client.query(
                "SELECT (SELECT count() FROM engagement_enriched FINAL), "
                "(SELECT count() FROM engagement_enriched), (SELECT count() FROM engagement_enriched_errors)"
            ).result_rows[0]
            return tuple(int(x) for x in row)  # type: ignore[return-value]

        logs = scratch.ep_home / "test-logs"
        logs.mkdir(exist_ok=True)
        bridge = Child(
            stack,
            ["consume", "warehouse", "--topic", topic, "--group", group],
            logs / f"{group}.log",
            env={"CLICKHOUSE_DATABASE": scratch.clickhouse_database},
        )
        try:
            produce(range(1, 501))
            harness.wait_for(lambda: counts() == (500, 500, 0), 60, "the first 500", describe=bridge.output)
            (dirs.clickhouse / "900_swap_parse.sql").write_text(parse_view_swap())
            during: list[tuple[int, int, int]] = []

            def while_paused(migration) -> None:  # type: ignore[no-untyped-def]
                # inside the pause, after the view was dropped and created again
                produce(range(501, 1001))
                gate = gate_path(scratch.ep_home)
                harness.wait_for(
                    lambda: harness.flock_waiters(gate) >= 1, 60, "the bridge's insert at the gate"
                )
                during.append(counts())

            done, status = clickhouse.apply(
                client, "local", scratch.ep_home, dirs.clickhouse_files(), on_applied=while_paused
            )
            assert [m.version for m in done] == [900] and status.clean
            assert during == [(500, 500, 0)]  # the insert waited for the migration
            harness.wait_for(lambda: counts() == (1000, 1000, 0), 60, "all 1000", describe=bridge.output)
            bridge.wait_for_log(r"waited \d+\.\ds for a schema migration")
        finally:
            assert bridge.stop() == 0, bridge.output()
        print(f"pause test: {counts()} (FINAL, rows, errors) after the parse view was replaced mid-stream")
