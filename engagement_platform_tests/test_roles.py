"""Least privilege (issue 20): each component's role can do its job and nothing else.

One test per role and forbidden action, against the local stack; each attempt must fail with
the server's own permission error (Postgres' 42501, Redis' NOPERM, ClickHouse's codes 164 and
497), and a role's allowed work is shown to succeed beside it, so a test cannot pass because
the role could not log in at all.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import closing

import psycopg2
import psycopg2.errors
import pytest
import redis
from psycopg2.extensions import connection as PgConnection

from engagement_platform.serving.rising import rising_content
from engagement_platform.serving.top_content import top_content, unique_users
from engagement_platform.settings import Settings
from engagement_platform.streaming.leaderboard import Keys
from engagement_platform_tests.harness import StackHandle

# --- Postgres: the simulator's role -------------------------------------------------------


@pytest.fixture
def simulator_pg(source_schema: StackHandle) -> Iterator[PgConnection]:
    with closing(psycopg2.connect(source_schema.settings.postgres_dsn_for("writer"))) as conn:
        yield conn


def _insert_content(conn: PgConnection) -> str:
    content_id = str(uuid.uuid4())
    with conn, conn.cursor() as cur:
        cur.execute(
            "INSERT INTO content (id, slug, title, content_type, publish_ts) "
            "VALUES (%s, %s, 't', 'video', now())",
            (content_id, f"roles-{content_id}"),
        )
        cur.execute("UPDATE content SET title = 'updated' WHERE id = %s", (content_id,))
        cur.execute(
            "INSERT INTO engagement_events (content_id, user_id, event_type, event_ts) "
            "VALUES (%s, gen_random_uuid(), 'play', now())",
            (content_id,),
        )
    return content_id


@pytest.mark.parametrize(
    "statement",
    [
        "DELETE FROM engagement_events WHERE content_id = %s",
        "DELETE FROM content WHERE id = %s",
        "TRUNCATE engagement_events",
        "TRUNCATE content CASCADE",
        "SELECT * FROM cdc_heartbeat",
    ],
)
def test_the_simulator_role_cannot_delete_truncate_or_read_the_heartbeat(
    simulator_pg: PgConnection, statement: str
) -> None:
    content_id = _insert_content(simulator_pg)  # what it is for: works
    with simulator_pg.cursor() as cur, pytest.raises(psycopg2.errors.InsufficientPrivilege) as info:
        cur.execute(statement, (content_id,) if "%s" in statement else None)
    simulator_pg.rollback()
    assert info.value.pgcode == "42501" and "permission denied" in str(info.value)


def test_the_reader_role_reads_the_source_and_cannot_write(source_schema: StackHandle) -> None:
    with closing(psycopg2.connect(source_schema.settings.postgres_dsn_for("reader"))) as conn:
        with conn.cursor() as cur:
            cur.execute("SELECT count(*) FROM content")
            cur.execute("SELECT count(*) FROM cdc_heartbeat")
        conn.rollback()
        with conn.cursor() as cur, pytest.raises(psycopg2.errors.InsufficientPrivilege):
            cur.execute("DELETE FROM engagement_events")


# --- Redis: the dashboard's reader and the leaderboard's writer ---------------------------


def _redis(settings: Settings, role: str) -> redis.Redis:
    return redis.Redis.from_url(settings.redis_url_for(role))  # type: ignore[arg-type]


@pytest.fixture
def leaderboard_keys(stack: StackHandle) -> Iterator[Keys]:
    """A minute bucket and a title under a prefix of this test, written as the owner."""
    keys = Keys(f"roles-{uuid.uuid4().hex[:8]}:")
    owner = redis.Redis.from_url(stack.settings.redis_url)
    owner.zincrby(keys.minute("202601010000"), 3, "content-a")
    owner.pfadd(keys.users("202601010000", "content-a"), "user-1", "user-2")
    owner.pfadd(keys.users("202601010000"), "user-1", "user-2")
    owner.hset(keys.content, "content-a", '{"title": "A"}')
    yield keys
    for pattern in keys.all_patterns:
        for key in owner.scan_iter(pattern):
            owner.delete(key)
    owner.close()


@pytest.mark.parametrize(
    "command",
    [
        ("FLUSHALL",),
        ("DEL", "{minute}"),
        ("SET", "{minute}", "x"),
        ("SET", "other-key", "x"),
        ("PFADD", "{users}", "intruder"),
        ("PFMERGE", "{users}", "{users}"),
    ],
    ids=["FLUSHALL", "DEL", "SET", "SET-elsewhere", "PFADD", "PFMERGE"],
)
def test_the_dashboard_redis_user_cannot_flush_delete_or_set(
    stack: StackHandle, leaderboard_keys: Keys, command: tuple[str, ...]
) -> None:
    reader = _redis(stack.settings, "reader")
    minute = leaderboard_keys.minute("202601010000")
    users = leaderboard_keys.users("202601010000", "content-a")
    try:
        assert reader.zrevrange(minute, 0, -1, withscores=True) == [(b"content-a", 3.0)]
        with pytest.raises(redis.exceptions.NoPermissionError, match="no permissions"):
            reader.execute_command(*(part.format(minute=minute, users=users) for part in command))
        assert reader.zscore(minute, "content-a") == 3.0  # untouched
        assert reader.pfcount(users) == 2
    finally:
        reader.close()


def test_top_content_reads_as_the_reader(stack: StackHandle, leaderboard_keys: Keys) -> None:
    from datetime import UTC, datetime

    rows = top_content(
        1, settings=stack.settings, key_prefix=leaderboard_keys.prefix, now=datetime(2026, 1, 1, tzinfo=UTC)
    )
    assert [(r.content_id, r.score, r.title, r.unique_users) for r in rows] == [("content-a", 3.0, "A", 2)]
    at = datetime(2026, 1, 1, tzinfo=UTC)
    assert unique_users(1, settings=stack.settings, key_prefix=leaderboard_keys.prefix, now=at) == 2
    rising = rising_content(
        1, min_count=1, settings=stack.settings, key_prefix=leaderboard_keys.prefix, now=at
    )
    assert [(r.content_id, r.current, r.previous) for r in rising] == [("content-a", 3.0, 0.0)]


@pytest.mark.parametrize(
    "command", [("FLUSHALL",), ("SET", "other-key", "x"), ("GET", "other-key"), ("CONFIG", "GET", "*")]
)
def test_the_leaderboard_redis_user_keeps_to_its_keys(
    stack: StackHandle, leaderboard_keys: Keys, command: tuple[str, ...]
) -> None:
    writer = _redis(stack.settings, "writer")
    try:
        assert writer.zincrby(leaderboard_keys.minute("202601010000"), 1, "content-a") == 4.0
        assert writer.pfadd(leaderboard_keys.users("202601010000", "content-a"), "user-3") == 1
        with pytest.raises(redis.exceptions.NoPermissionError, match="no permissions"):
            writer.execute_command(*command)
    finally:
        writer.close()


def test_the_default_user_needs_the_owner_password(stack: StackHandle) -> None:
    s = stack.settings
    anonymous = redis.Redis(host=s.redis_host, port=s.redis_port)
    try:
        with pytest.raises(redis.exceptions.AuthenticationError):
            anonymous.ping()
    finally:
        anonymous.close()
