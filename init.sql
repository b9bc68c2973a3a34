-- Source schema of the engagement platform: version 1 of the Postgres migrations (later
-- versions: postgres_migrations/NNN_name.sql). Never edit it once applied: add a migration
-- (`engagement-platform migrate new postgres NAME`). Idempotent, so a database set up before
-- migrations existed upgrades in place.
--
-- Applied by `engagement-platform migrate up` and the Dagster asset `postgres/schema`, which
-- first set two settings in its transaction, so that no name or secret is a literal here:
--     SELECT set_config('ep.cdc_user', <POSTGRES_CDC_USER>, true);
--     SELECT set_config('ep.cdc_password', <POSTGRES_CDC_PASSWORD>, true);
-- (with psql: \set, or SET ep.cdc_user = '...'; SET ep.cdc_password = '...'; before \i init.sql)

CREATE TABLE IF NOT EXISTS content (
    id             uuid PRIMARY KEY,
    slug           text NOT NULL UNIQUE,
    title          text NOT NULL,
    content_type   text NOT NULL CHECK (content_type IN ('podcast', 'newsletter', 'video')),
    length_seconds integer NULL CHECK (length_seconds IS NULL OR length_seconds > 0),
    publish_ts     timestamptz NOT NULL
);
-- deletes then carry the whole old row, so downstream knows what disappeared
ALTER TABLE content REPLICA IDENTITY FULL;

CREATE TABLE IF NOT EXISTS engagement_events (
    id          bigserial PRIMARY KEY,
    content_id  uuid REFERENCES content (id),
    user_id     uuid,
    event_type  text CHECK (event_type IN ('play', 'pause', 'finish', 'click')),
    event_ts    timestamptz NOT NULL,
    duration_ms integer NULL CHECK (duration_ms IS NULL OR duration_ms >= 0),
    device      text,
    raw_payload jsonb
);
-- per-content time ranges (history backfill, reconciliation) and per-day scans
CREATE INDEX IF NOT EXISTS engagement_events_content_ts_idx ON engagement_events (content_id, event_ts);
CREATE INDEX IF NOT EXISTS engagement_events_event_ts_idx ON engagement_events (event_ts);

-- Written by the connector's heartbeat.action.query, so the replication slot keeps
-- advancing (and WAL is released) while the captured tables are idle.
CREATE TABLE IF NOT EXISTS cdc_heartbeat (
    id smallint PRIMARY KEY CHECK (id = 1),
    ts timestamptz NOT NULL
);

-- Exactly the two captured tables; created here so the CDC role need not own anything.
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_publication WHERE pubname = 'engagement_publication') THEN
        CREATE PUBLICATION engagement_publication FOR TABLE content, engagement_events;
    ELSE
        ALTER PUBLICATION engagement_publication SET TABLE content, engagement_events;
    END IF;
END
$$;

-- The CDC role: LOGIN + REPLICATION, reads the two captured tables, writes the heartbeat,
-- and nothing else.
DO $$
DECLARE
    cdc_user text := current_setting('ep.cdc_user', true);
    cdc_password text := current_setting('ep.cdc_password', true);
    other record;
BEGIN
    IF coalesce(cdc_user, '') = '' OR coalesce(cdc_password, '') = '' THEN
        RAISE EXCEPTION 'set ep.cdc_user and ep.cdc_password before applying init.sql';
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = cdc_user) THEN
        EXECUTE format('CREATE ROLE %I LOGIN REPLICATION', cdc_user);
    END IF;
    EXECUTE format('ALTER ROLE %I WITH LOGIN REPLICATION NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD %L',
                   cdc_user, cdc_password);
    EXECUTE format('GRANT CONNECT ON DATABASE %I TO %I', current_database(), cdc_user);
    EXECUTE format('GRANT USAGE ON SCHEMA public TO %I', cdc_user);
    -- drop anything granted earlier on other tables (e.g. by hand), then grant exactly this
    FOR other IN
        SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p', 'v', 'm')
          AND c.relname NOT IN ('content', 'engagement_events', 'cdc_heartbeat')
    LOOP
        EXECUTE format('REVOKE ALL ON TABLE public.%I FROM %I', other.relname, cdc_user);
    END LOOP;
    EXECUTE format('REVOKE ALL ON TABLE content, engagement_events, cdc_heartbeat FROM %I', cdc_user);
    EXECUTE format('GRANT SELECT ON TABLE content, engagement_events TO %I', cdc_user);
    EXECUTE format('GRANT SELECT, INSERT, UPDATE ON TABLE cdc_heartbeat TO %I', cdc_user);
END
$$;
