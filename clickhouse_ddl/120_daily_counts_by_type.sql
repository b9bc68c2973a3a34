-- daily_content_engagement keeps its counts per event type in one column that fits any type,
-- events_by_type Map(event_type -> events), instead of plays/pauses/finishes/clicks; the
-- daily rollup (warehouse/rollup.py) fills it from the data with no list of types.
--
-- Migrated with its history: days already built keep their counts. The new column's DEFAULT
-- is computed from the old columns, MATERIALIZE COLUMN writes it into every existing part
-- (a mutation; mutations_sync = 2 waits for it), the DEFAULT then becomes map() so that the
-- old columns, which nothing references any more, can be dropped.
--
-- Safe to run twice: ADD COLUMN IF NOT EXISTS and DROP COLUMN IF EXISTS do nothing the
-- second time, and MATERIALIZE COLUMN of a DEFAULT column only fills parts where the column
-- is missing (ClickHouse >= 24.1, PR #58023): there are none by then, so the values written
-- by the first run stay.
ALTER TABLE daily_content_engagement
    ADD COLUMN IF NOT EXISTS events_by_type Map(LowCardinality(String), UInt64)
        DEFAULT mapFilter((t, n) -> n > 0, map('play', plays, 'pause', pauses, 'finish', finishes, 'click', clicks))
        AFTER events;

ALTER TABLE daily_content_engagement MATERIALIZE COLUMN events_by_type SETTINGS mutations_sync = 2;

ALTER TABLE daily_content_engagement MODIFY COLUMN events_by_type DEFAULT map();

ALTER TABLE daily_content_engagement
    DROP COLUMN IF EXISTS plays,
    DROP COLUMN IF EXISTS pauses,
    DROP COLUMN IF EXISTS finishes,
    DROP COLUMN IF EXISTS clicks
SETTINGS mutations_sync = 2;
