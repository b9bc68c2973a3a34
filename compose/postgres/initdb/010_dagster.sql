-- Dagster's own database and role on the compose Postgres (compose/dagster/dagster.yaml stores
-- runs, event logs and schedules there). Run once, by the official image's entrypoint, when the
-- data directory is first initialised. The names and the password come from the container's
-- environment through psql's \getenv, so no password is written here or on a command line.
\getenv dagster_db DAGSTER_PG_DB
\getenv dagster_user DAGSTER_PG_USER
\getenv dagster_password DAGSTER_PG_PASSWORD
CREATE ROLE :"dagster_user" LOGIN PASSWORD :'dagster_password';
CREATE DATABASE :"dagster_db" OWNER :"dagster_user";
-- only its owner (and the superuser) may connect: the platform's roles have no business here
REVOKE ALL ON DATABASE :"dagster_db" FROM PUBLIC;
