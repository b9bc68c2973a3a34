# The platform's own processes (consumers, Dagster, dashboard, simulator) for docker-compose.
# The local embedded stack is not installed here: compose runs the official service images.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 DAGSTER_HOME=/var/lib/engagement-platform/dagster
WORKDIR /app

COPY pyproject.toml README.md ./
# editable: the code finds init.sql, connector.json and clickhouse_ddl/ beside itself in /app
COPY engagement_platform ./engagement_platform
RUN pip install --no-cache-dir -e . && mkdir -p "$DAGSTER_HOME"

COPY workspace.yaml connector.json init.sql ./
COPY clickhouse_ddl ./clickhouse_ddl

RUN useradd --system --home /var/lib/engagement-platform app && chown -R app /var/lib/engagement-platform
USER app
ENTRYPOINT []
CMD ["engagement-platform", "--help"]
