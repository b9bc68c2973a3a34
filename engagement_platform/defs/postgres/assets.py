"""The source schema (init.sql) and the two captured tables."""

import dagster as dg

from engagement_platform.defs.config import OWNERS, writer
from engagement_platform.defs.postgres.resources import PostgresResource
from engagement_platform.settings import PROJECT_ROOT

INIT_SQL = PROJECT_ROOT / "init.sql"
PUBLICATION = "engagement_publication"
CAPTURED_TABLES = ("content", "engagement_events")


@dg.asset(
    key=["postgres", "schema"],
    owners=OWNERS,
    tags=writer("dagster"),
    group_name="source",
    kinds={"postgres"},
    description="Applies init.sql: tables, indexes, publication, heartbeat table and the "
    "least-privilege CDC role. Idempotent.",
)
def postgres_schema(context: dg.AssetExecutionContext, postgres: PostgresResource) -> dg.MaterializeResult:
    script = INIT_SQL.read_text()
    conn = postgres.connect()
    try:
        with conn, conn.cursor() as cur:  # one transaction: all of init.sql or none of it
            cur.execute(
                "SELECT set_config('ep.cdc_user', %s, true), set_config('ep.cdc_password', %s, true)",
                (postgres.cdc_user, postgres.cdc_password),
            )
            cur.execute(script)
        with conn.cursor() as cur:
            cur.execute(
                "SELECT tablename FROM pg_publication_tables WHERE pubname = %s ORDER BY tablename",
                (PUBLICATION,),
            )
            published = [r[0] for r in cur.fetchall()]
            counts = {}
            for table in CAPTURED_TABLES:
                # reltuples is an estimate; exact counts of a large event table are not worth a scan here
                cur.execute("SELECT count(*) FROM " + table)  # table names are our own constants
                counts[table] = cur.fetchone()[0]
    finally:
        conn.close()
    context.log.info(f"init.sql applied; publication {PUBLICATION} covers {published}")
    return dg.MaterializeResult(
        metadata={
            "tables": dg.MetadataValue.json(list(CAPTURED_TABLES) + ["cdc_heartbeat"]),
            "publication": PUBLICATION,
            "published_tables": dg.MetadataValue.json(published),
            "cdc_role": postgres.cdc_user,
            **{f"rows_{t}": dg.MetadataValue.int(n) for t, n in counts.items()},
        }
    )


content_table = dg.AssetSpec(
    key=["postgres", "content"],
    owners=OWNERS,
    tags=writer("product"),
    deps=[postgres_schema],
    group_name="source",
    kinds={"postgres"},
    description="Content catalogue (podcasts, newsletters, videos); written by the simulator or the product.",
)

engagement_events_table = dg.AssetSpec(
    key=["postgres", "engagement_events"],
    owners=OWNERS,
    tags=writer("product"),
    deps=[postgres_schema],
    group_name="source",
    kinds={"postgres"},
    description="Raw engagement events (play, pause, finish, click); insert-only.",
)

defs = dg.Definitions(assets=[postgres_schema, content_table, engagement_events_table])
