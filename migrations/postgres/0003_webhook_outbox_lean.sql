-- Done rows are pruned by id (ids are UUIDv7: in time order as text, with the `C`
-- collation), through the primary key: the index on `done_at` only cost a write each time an
-- event was marked done. (On SQLite this migration also rebuilds the table WITHOUT ROWID.)
DROP INDEX webhook_outbox_done;
