"""Versioned schema migrations for Postgres and ClickHouse: each file applied exactly once.

Modules: ``files`` (naming, discovery, checksums, ``new``), ``status`` (applied / pending /
edited / missing), ``postgres`` and ``clickhouse`` (the two runners, each with its lock),
``pause`` (ingestion paused around ClickHouse migrations), ``run`` (both databases from
Settings, for the CLI and the tests). No Dagster here: the schema assets call these.

Why a runner of our own (~400 lines): yoyo-migrations and alembic cover Postgres only;
clickhouse-migrations covers ClickHouse only and has no per-mode variant files (our queue is a
Kafka table in compose mode, a Null table in local mode) nor a hook to pause ingestion around
a view swap; dbmate is one Go binary for both but records no checksum, so an edited file is
not refused. Two tools would still need this glue; one small runner covers both databases
with the same file rules, status and messages.
"""
