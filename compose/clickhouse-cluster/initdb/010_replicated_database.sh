#!/bin/sh
# Run once by the official image's entrypoint, on a replica's first start: the warehouse's
# database as a Replicated one, so every CREATE/ALTER/DROP that the migrations run on one replica
# reaches the other through Keeper (clickhouse_ddl/*.cluster.sql). The name comes from
# EP_CLICKHOUSE_DATABASE (the platform's CLICKHOUSE_DATABASE), the login from the image's
# CLICKHOUSE_USER/CLICKHOUSE_PASSWORD, which clickhouse-client reads from the environment.
set -eu
clickhouse client --query "CREATE DATABASE IF NOT EXISTS \`${EP_CLICKHOUSE_DATABASE}\`
    ENGINE = Replicated('/clickhouse/databases/${EP_CLICKHOUSE_DATABASE}', '{shard}', '{replica}')"
