-- Chat schema for the embedded SQLite store; applied at start, idempotent.
CREATE TABLE IF NOT EXISTS messages (
    id INTEGER PRIMARY KEY,
    sender TEXT NOT NULL,
    recipient TEXT,
    body TEXT NOT NULL,
    created_ms INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS messages_recipient_id ON messages (recipient, id);
CREATE INDEX IF NOT EXISTS messages_sender_recipient_id ON messages (sender, recipient, id);
CREATE TABLE IF NOT EXISTS users (
    name TEXT PRIMARY KEY,
    created_ms INTEGER NOT NULL,
    last_seen_id INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS chat_meta (
    id INTEGER PRIMARY KEY,
    next_id INTEGER NOT NULL
);
