"""The ClickHouse HTTP interface, served from an embedded chdb engine.

No registry ships a modern ClickHouse server, but chdb is the real ClickHouse engine
in-process, and only one process may open a data directory. This package is that one
process: it owns the engine and speaks enough of ClickHouse's HTTP protocol that an
unmodified ``clickhouse_connect.get_client(host=..., port=...)`` in any other process can
connect, query, insert (plain or compressed) and receive ClickHouse-style errors.

Run it as ``python -m engagement_platform.local_stack.clickhouse_http --data-dir DIR``;
it listens on ``127.0.0.1:<settings.clickhouse_port>`` only.

* ``sql_scan``  -- routing a statement from its first bytes; the Kafka-engine refusal
* ``protocol``  -- URL options, credentials, error codes and statuses, formats, encodings
* ``engine``    -- chdb connections, HTTP sessions, per-request settings
* ``execute``   -- one statement on a borrowed connection: queries, streamed inserts
* ``app``       -- the Starlette app: routes, body streaming into worker threads
* ``play``      -- the ``/play`` page for ad-hoc SQL
* ``__main__``  -- arguments, logging, uvicorn, graceful shutdown

``ENGINE = Kafka`` is refused before it reaches chdb: creating one leaves chdb's data
directory unopenable.
"""
