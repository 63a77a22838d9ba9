-- Chat messages of client rooms. `id` is a UUIDv7 string, so ordering by id is ordering by time.
CREATE TABLE messages (
    id         TEXT COLLATE "C" PRIMARY KEY NOT NULL,
    room_id    TEXT NOT NULL,
    user_id    TEXT NOT NULL,
    text       TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE INDEX messages_room_id ON messages (room_id, id);

-- Notifications posted by backends for one user. `data` is JSON text or NULL.
CREATE TABLE notifications (
    id         TEXT COLLATE "C" PRIMARY KEY NOT NULL,
    user_id    TEXT NOT NULL,
    type       TEXT NOT NULL,
    title      TEXT NOT NULL,
    message    TEXT NOT NULL,
    data       TEXT,
    created_at TEXT NOT NULL,
    is_read    BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX notifications_user_id ON notifications (user_id, id);
CREATE INDEX notifications_user_unread ON notifications (user_id, is_read, id);
