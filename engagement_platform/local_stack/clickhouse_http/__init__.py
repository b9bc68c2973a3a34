"""The ClickHouse HTTP interface, served from an embedded chdb engine.

An unmodified ``clickhouse_connect`` client in any other process connects to it as to a
ClickHouse server. Run it as ``python -m engagement_platform.local_stack.clickhouse_http
--data-dir DIR``. Its modules, and why it exists: docs/design/clickhouse-http.md.
"""
