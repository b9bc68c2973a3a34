"""The warehouse's cluster variant (WAREHOUSE_VARIANT=cluster, docker-compose.cluster.yml), checked
without a cluster: which files the cluster mode picks, that every table it creates is replicated
(or engine-neutral), that each statement parses (chdb's formatQuery), and that the migration
runner sends them in version order. A fake client stands in for ClickHouse in the last two
tests only: they check what is sent, which a single embedded server could not run."""

from __future__ import annotations

import re
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import chdb
import pytest

from engagement_platform import settings as settings_module
from engagement_platform.migrations import clickhouse, files, pause
from engagement_platform.migrations.files import MigrationError, clickhouse_migrations
from engagement_platform.settings import SettingsError
from engagement_platform.warehouse.ddl import split_statements, strip_comments

ENGINE = re.compile(r"\bENGINE\s*=\s*(\w+)", re.I)
# engines that hold no rows of their own, or whose rows live elsewhere: fine on a cluster as they are
NEUTRAL = {"Null", "Kafka", "Distributed"}


def creates(statement: str) -> list[str]:
    """The engines of the tables a statement creates."""
    code = strip_comments(statement)
    return ENGINE.findall(code) if re.match(r"CREATE\s+TABLE", code, re.I) else []


def test_cluster_mode_takes_a_versions_cluster_file_else_compose_else_shared(tmp_path: Path) -> None:
    ch = tmp_path / "clickhouse_ddl"
    ch.mkdir()
    for name in (
        "010_q.local.sql",
        "010_q.compose.sql",
        "010_q.cluster.sql",
        "020_t.sql",
        "020_t.cluster.sql",
    ):
        (ch / name).write_text("SELECT 1;\n")
    (ch / "030_v.sql").write_text("SELECT 1;\n")
    (ch / "040_p.local.sql").write_text("SELECT 1;\n")
    (ch / "040_p.compose.sql").write_text("SELECT 1;\n")
    labels = {mode: [m.path.name for m in clickhouse_migrations(mode, ch)] for mode in files.MODES}
    assert labels["cluster"] == ["010_q.cluster.sql", "020_t.cluster.sql", "030_v.sql", "040_p.compose.sql"]
    assert labels["compose"] == ["010_q.compose.sql", "020_t.sql", "030_v.sql", "040_p.compose.sql"]
    assert labels["local"] == ["010_q.local.sql", "020_t.sql", "030_v.sql", "040_p.local.sql"]


@pytest.mark.parametrize(
    ("names", "clash"),
    [
        (["100_a.cluster.sql", "100_b.sql"], "100_b.sql"),  # a cluster file of another name
        (["100_a.cluster.sql", "100_a.local.sql", "100_a.sql"], "100_a.sql"),  # shared beside one mode
    ],
)
def test_a_cluster_file_shares_a_version_only_with_its_own_name(
    tmp_path: Path, names: list[str], clash: str
) -> None:
    for name in names:
        (tmp_path / name).write_text("SELECT 1;\n")
    with pytest.raises(MigrationError, match=re.escape(clash)):
        clickhouse_migrations("cluster", tmp_path)


def test_the_projects_local_and_compose_files_are_untouched_by_the_variant() -> None:
    for mode in ("local", "compose"):
        assert not any(m.path.name.endswith(".cluster.sql") for m in clickhouse_migrations(mode))
    cluster = clickhouse_migrations("cluster")
    assert [m.version for m in cluster] == [m.version for m in clickhouse_migrations("compose")]


def test_every_table_the_cluster_creates_is_replicated_or_engine_neutral() -> None:
    """Generic on purpose: a new version that creates a MergeTree-family table needs a
    ``.cluster.sql`` with its Replicated engine, or this fails naming the file."""
    for migration in clickhouse_migrations("cluster"):
        for statement in split_statements(migration.path.read_text()):
            for engine in creates(statement):
                assert engine in NEUTRAL or engine.startswith("Replicated"), (migration.label, engine)


def test_a_cluster_file_exists_only_where_the_engines_differ() -> None:
    """Each .cluster.sql changes what its compose file creates, nothing else by accident: the
    same statements but for the engines (and 010's broker list, 020's Distributed front)."""
    compose = {m.version: m for m in clickhouse_migrations("compose")}
    for migration in clickhouse_migrations("cluster"):
        if not migration.path.name.endswith(".cluster.sql"):
            continue
        theirs = split_statements(compose[migration.version].path.read_text())
        ours = split_statements(migration.path.read_text())
        assert any(creates(s) for s in theirs), f"{migration.label}: its compose file creates no table"
        unreplicated = {e for s in theirs for e in creates(s)} - NEUTRAL
        assert migration.version == 10 or unreplicated, migration.label

        def shape(statements: list[str]) -> list[str]:
            text = [strip_comments(s) for s in statements]
            return [re.sub(r"ENGINE\s*=\s*\w+(\([^)]*\))?", "ENGINE", s) for s in text]

        if migration.version == 20:  # the table under a new name, and the Distributed one in front
            assert shape(ours)[0] == shape(theirs)[0].replace(
                "engagement_enriched", "engagement_enriched_local", 1
            )
            assert "Distributed(engagement, currentDatabase(), engagement_enriched_local" in ours[1]
        elif migration.version == 10:
            brokers = "'kafka:29092,kafka-2:29092,kafka-3:29092'"
            assert [strip_comments(s).replace(brokers, "'kafka:29092'") for s in ours] == [
                strip_comments(s) for s in theirs
            ]
            assert "kafka_group_name = 'clickhouse_warehouse'" in ours[0]  # one group for every replica
        else:
            assert shape(ours) == shape(theirs), migration.label


def format_query(statement: str) -> str:
    """ClickHouse's own formatting of ``statement`` (in-process chdb); raises on a syntax error.
    A query parameter's value is read in the escaped format: backslashes and line breaks escaped."""
    escaped = statement.replace("\\", "\\\\").replace("\n", "\\n").replace("\t", "\\t")
    return str(chdb.query("SELECT formatQuery({q:String})", "TSVRaw", params={"q": escaped}))


@pytest.mark.parametrize("migration", clickhouse_migrations("cluster"), ids=lambda m: m.path.name)
def test_every_cluster_statement_parses(migration: files.Migration) -> None:
    for statement in split_statements(migration.path.read_text()):
        assert format_query(statement).strip(), statement[:80]
    with pytest.raises(RuntimeError, match="Syntax error"):
        format_query("CREATE TABLE t (a UInt8) ENGINE = ReplicatedMergeTree ORDER")


class RecordingClient:
    """Stands in for a ClickHouse client: records what the runner sends, answers the few reads
    it makes (no table exists yet)."""

    def __init__(self) -> None:
        self.sent: list[str] = []
        self.inserted: list[tuple[str, list[list[Any]]]] = []

    def command(self, sql: str, parameters: Mapping[str, Any] | None = None) -> Any:
        if sql.lstrip().startswith("SELECT count()"):
            return 0
        self.sent.append(sql)
        return None

    def insert(self, table: str, rows: list[list[Any]], column_names: list[str]) -> None:
        self.inserted.append((table, rows))


def test_the_runner_applies_the_cluster_files_in_version_order(tmp_path: Path) -> None:
    client = RecordingClient()
    done, _ = clickhouse.apply(client, "cluster", tmp_path)  # type: ignore[arg-type]
    plan = clickhouse_migrations("cluster")
    assert done == plan
    expected = [s for m in plan for s in split_statements(m.path.read_text())]
    sent = [s for s in client.sent if "schema_migrations" not in s]
    assert sent == expected
    recorded = [rows[0][0] for table, rows in client.inserted if table == "schema_migrations"]
    assert recorded == [m.version for m in plan]


def test_on_a_cluster_the_kafka_view_is_detached_permanently_while_migrating(tmp_path: Path) -> None:
    """A Replicated database refuses a plain DETACH TABLE; PERMANENTLY is replicated to every replica."""
    for mode, detach in (("compose", "DETACH TABLE engagement_enriched_queue_mv"),
                         ("cluster", "DETACH TABLE engagement_enriched_queue_mv PERMANENTLY")):  # fmt: skip
        client = RecordingClient()
        with pause.ingest_paused(client, mode, tmp_path):  # type: ignore[arg-type]
            assert client.sent == [detach]
        assert client.sent == [detach, "ATTACH TABLE engagement_enriched_queue_mv"]


def test_the_variant_is_chosen_by_warehouse_variant_in_compose_mode_only() -> None:
    load = settings_module.load
    assert load({}).ddl_mode == "local"
    assert load({"EP_MODE": "compose"}).ddl_mode == "compose"
    assert load({"EP_MODE": "compose", "WAREHOUSE_VARIANT": "cluster"}).ddl_mode == "cluster"
    with pytest.raises(SettingsError, match="WAREHOUSE_VARIANT=cluster needs EP_MODE=compose"):
        _ = load({"WAREHOUSE_VARIANT": "cluster"}).ddl_mode
    with pytest.raises(SettingsError, match="WAREHOUSE_VARIANT must be"):
        load({"WAREHOUSE_VARIANT": "replicated"})


def test_new_counts_cluster_files_too(tmp_path: Path) -> None:
    ch = tmp_path / "clickhouse_ddl"
    shutil.copytree(files.CLICKHOUSE_DIR, ch)
    (ch / "900_late.cluster.sql").write_text("SELECT 1;\n")
    (ch / "900_late.sql").write_text("SELECT 1;\n")
    assert files.new("clickhouse", "next", clickhouse_dir=ch).name == "901_next.sql"
