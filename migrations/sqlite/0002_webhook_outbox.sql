-- Webhook events waiting for (or past) delivery: the outbox of contract section 10.3.
-- `id` is the event's UUIDv7, sent on every try; `data` is JSON text. Times are Unix
-- milliseconds. A row is pending while `done_at` is NULL; a node delivering it holds a lease
-- (`lease_owner` until `lease_until`), so each event is tried by one node at a time and a
-- dead node's rows return to the others when its lease runs out.
CREATE TABLE webhook_outbox (
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
);
CREATE INDEX webhook_outbox_due ON webhook_outbox (next_attempt_at) WHERE done_at IS NULL;
CREATE INDEX webhook_outbox_done ON webhook_outbox (done_at) WHERE done_at IS NOT NULL;
