-- A role per component (issue 20): the simulator writes, the dashboard and the checks read;
-- nothing but the owner can delete, truncate or change the schema. Names and passwords come
-- from the environment through settings of this transaction, never literals here:
--     ep.writer_user / ep.writer_password   <- POSTGRES_WRITER_USER / _PASSWORD
--     ep.reader_user / ep.reader_password   <- POSTGRES_READER_USER / _PASSWORD
-- (see engagement_platform/migrations/run.py: postgres_session).
DO $$
DECLARE
    writer text := current_setting('ep.writer_user', true);
    writer_password text := current_setting('ep.writer_password', true);
    reader text := current_setting('ep.reader_user', true);
    reader_password text := current_setting('ep.reader_password', true);
    role_name text;
BEGIN
    IF coalesce(writer, '') = '' OR coalesce(writer_password, '') = ''
       OR coalesce(reader, '') = '' OR coalesce(reader_password, '') = '' THEN
        RAISE EXCEPTION 'set ep.writer_user, ep.writer_password, ep.reader_user and ep.reader_password before applying 002';
    END IF;
    FOREACH role_name IN ARRAY ARRAY[writer, reader] LOOP
        IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = role_name) THEN
            EXECUTE format('CREATE ROLE %I LOGIN', role_name);
        END IF;
        EXECUTE format('GRANT CONNECT ON DATABASE %I TO %I', current_database(), role_name);
        EXECUTE format('GRANT USAGE ON SCHEMA public TO %I', role_name);
    END LOOP;
    EXECUTE format('ALTER ROLE %I WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION PASSWORD %L',
                   writer, writer_password);
    EXECUTE format('ALTER ROLE %I WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION PASSWORD %L',
                   reader, reader_password);

    -- the simulator: reads the catalogue it draws events from, adds content, appends events
    EXECUTE format('GRANT SELECT, INSERT, UPDATE ON TABLE content TO %I', writer);
    EXECUTE format('GRANT INSERT ON TABLE engagement_events TO %I', writer);
    EXECUTE format('GRANT USAGE ON SEQUENCE engagement_events_id_seq TO %I', writer);

    -- the dashboard, serving and the read-only checks: the two source tables and the heartbeat
    EXECUTE format('GRANT SELECT ON TABLE content, engagement_events, cdc_heartbeat TO %I', reader);
    -- the replication-slot and lag checks read pg_replication_slots / pg_stat_replication
    EXECUTE format('GRANT pg_read_all_stats TO %I', reader);
END
$$;
