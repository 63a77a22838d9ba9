-- The outbox, leaner to write: keyed by its id alone (WITHOUT ROWID, so no second b-tree
-- mapping ids to rows), and without the index on `done_at`. Done rows are pruned by id
-- instead (ids are UUIDv7: in time order as text). A message and its event write one page
-- of the outbox fewer, and marking events done touches the table and the due index only.
CREATE TABLE webhook_outbox_lean (
    id              TEXT PRIMARY KEY NOT NULL,
    type            TEXT NOT NULL,
    created_at      TEXT NOT NULL,
    data            TEXT NOT NULL,
    attempts        BIGINT NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL,
    lease_owner     TEXT,
    lease_until     BIGINT NOT NULL DEFAULT 0,
    done_at         BIGINT,
    outcome         TEXT
) WITHOUT ROWID;
INSERT INTO webhook_outbox_lean
    (id, type, created_at, data, attempts, next_attempt_at, lease_owner, lease_until, done_at, outcome)
    SELECT id, type, created_at, data, attempts, next_attempt_at, lease_owner, lease_until, done_at, outcome
    FROM webhook_outbox;
DROP TABLE webhook_outbox;
ALTER TABLE webhook_outbox_lean RENAME TO webhook_outbox;
CREATE INDEX webhook_outbox_due ON webhook_outbox (next_attempt_at) WHERE done_at IS NULL;
