# Images of compose mode. Stage `connect`: the Kafka Connect worker, Apache Kafka's own image
# with Debezium's Postgres connector fetched by Maven from the same pom as the local stack's.
# Stage `app` (the default): the platform's own processes (consumers, Dagster, dashboard,
# simulator). The local embedded stack is not installed here: compose runs official images.

FROM maven:3.9-eclipse-temurin-17 AS debezium-plugin
COPY engagement_platform/local_stack/jvm/debezium-postgres/pom.xml /build/pom.xml
RUN mvn -q -B -f /build/pom.xml dependency:copy-dependencies \
      -DoutputDirectory=/plugins/debezium-connector-postgres

FROM apache/kafka:4.3.1 AS connect
COPY --from=debezium-plugin /plugins /opt/connect-plugins
COPY engagement_platform/local_stack/jvm/connect-worker.compose.properties /opt/connect/worker.properties
EXPOSE 8083
CMD ["/opt/kafka/bin/connect-distributed.sh", "/opt/connect/worker.properties"]

FROM python:3.11-slim AS app

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 DAGSTER_HOME=/var/lib/engagement-platform/dagster
WORKDIR /app

COPY pyproject.toml README.md ./
# editable: the code finds init.sql, connector.json and the migration directories beside itself in /app
COPY engagement_platform ./engagement_platform
RUN pip install --no-cache-dir -e . && mkdir -p "$DAGSTER_HOME"

COPY workspace.yaml connector.json init.sql ./
COPY clickhouse_ddl ./clickhouse_ddl
COPY postgres_migrations ./postgres_migrations

RUN useradd --system --home /var/lib/engagement-platform app && chown -R app /var/lib/engagement-platform
USER app
ENTRYPOINT []
CMD ["engagement-platform", "--help"]
