"""The source schema (init.sql, then postgres_migrations/) and the two captured tables."""

import dagster as dg

from engagement_platform.defs.config import OWNERS, writer
from engagement_platform.defs.postgres.resources import PostgresResource
from engagement_platform.migrations import postgres as migrations
from engagement_platform.migrations.files import Layout
from engagement_platform.migrations.run import postgres_session
from engagement_platform.pg import scalar

PUBLICATION = "engagement_publication"
CAPTURED_TABLES = ("content", "engagement_events")


@dg.asset(
    key=["postgres", "schema"],
    owners=OWNERS,
    tags=writer("dagster"),
    group_name="source",
    kinds={"postgres"},
    description="Applies the pending Postgres migrations, each once and in its own transaction: init.sql "
    "(tables, indexes, publication, heartbeat table and the least-privilege CDC role), then "
    "postgres_migrations/. Recorded in `schema_migrations`; an applied file edited afterwards is refused.",
)
def postgres_schema(context: dg.AssetExecutionContext, postgres: PostgresResource) -> dg.MaterializeResult:
    conn = postgres.connect()
    try:
        applied, status = migrations.apply(
            conn,
            postgres_session(
                (postgres.cdc_user, postgres.cdc_password),
                (postgres.writer_user, postgres.writer_password),
                (postgres.reader_user, postgres.reader_password),
            ),
            Layout.of(postgres.migrations_dir).postgres(),
            on_applied=lambda m: context.log.info(f"applied {m.label}"),
            on_wait=context.log.info,
        )
        with conn.cursor() as cur:
            cur.execute(
                "SELECT tablename FROM pg_publication_tables WHERE pubname = %s ORDER BY tablename",
                (PUBLICATION,),
            )
            published = [r[0] for r in cur.fetchall()]
            counts = {}
            for table in CAPTURED_TABLES:
                # reltuples is an estimate; exact counts of a large event table are not worth a scan here
                counts[table] = scalar(cur, "SELECT count(*) FROM " + table)  # our own constants
        conn.rollback()
    finally:
        conn.close()
    context.log.info(
        f"{len(applied)} migrations applied, {len(status.applied)} in total, {len(status.pending)} pending; "
        f"publication {PUBLICATION} covers {published}"
    )
    return dg.MaterializeResult(
        metadata={
            "tables": dg.MetadataValue.json(list(CAPTURED_TABLES) + ["cdc_heartbeat"]),
            "publication": PUBLICATION,
            "published_tables": dg.MetadataValue.json(published),
            "cdc_role": postgres.cdc_user,
            "files": dg.MetadataValue.json([m.label for m in applied]),
            "applied_this_run": dg.MetadataValue.json([m.version for m in applied]),
            "versions": dg.MetadataValue.json([a.version for a in status.applied]),
            "pending": len(status.pending),
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
