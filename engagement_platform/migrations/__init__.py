"""Versioned schema migrations for Postgres and ClickHouse: each file applied exactly once.

``files`` names and finds them, ``status`` compares them with what each database recorded,
``postgres`` and ``clickhouse`` apply them under a lock, ``pause`` stops ingestion around
ClickHouse files, ``run`` drives both for the CLI. No Dagster here: the schema assets call
these. Why a runner of our own: docs/design/migrations.md.
"""
