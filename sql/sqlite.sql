-- Chat schema for the embedded SQLite store; applied at start, idempotent.
CREATE TABLE IF NOT EXISTS messages (
    id INTEGER PRIMARY KEY,
    sender TEXT NOT NULL,
    recipient TEXT,
    body TEXT NOT NULL,
    created_ms INTEGER NOT NULL,
    attachment_id INTEGER,  -- attachments.id of the file this message carries (added to older databases at start)
    -- Named rooms (chat/messaging/rooms.py): the room of a room message or event (NULL: general or a direct), what an
    -- event is ('member' or 'topic'; NULL for a message, whose text is body) and whom a member event is about. An
    -- event's details are JSON in body. Room membership is the fold of these events: there is no members table.
    room TEXT,
    kind TEXT,
    subject TEXT,
    -- The message lifecycle (chat/messaging/lifecycle.py): the message an 'edit', 'delete' or 'reaction' event changes,
    -- or the one a message replies to (NULL: none). Added to older databases at start, with its index.
    target_id INTEGER
);
CREATE INDEX IF NOT EXISTS messages_recipient_id ON messages (recipient, id);
CREATE INDEX IF NOT EXISTS messages_sender_recipient_id ON messages (sender, recipient, id);
CREATE TABLE IF NOT EXISTS users (
    name TEXT PRIMARY KEY,
    created_ms INTEGER NOT NULL,
    last_seen_id INTEGER NOT NULL DEFAULT 0,
    -- A name that changed hands (a new guest, or an account registered for it): the last message id and attachment id
    -- of the earlier holders. Direct messages at or below floor_id, and direct files at or below file_floor_id, are
    -- not the new holder's (chat/holds.py). Both added to older databases at start.
    floor_id INTEGER NOT NULL DEFAULT 0,
    file_floor_id INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS chat_meta (
    id INTEGER PRIMARY KEY,
    next_id INTEGER NOT NULL
);
-- Registered accounts (chat/auth.py). Names are stored normalised (lower case), so uniqueness is case-insensitive.
-- password_hash is a werkzeug.security salted hash; NULL means the operator removed the account and the name stays reserved.
CREATE TABLE IF NOT EXISTS accounts (
    name TEXT PRIMARY KEY,
    password_hash TEXT,
    created_ms INTEGER NOT NULL
);
-- Sign-in sessions (kind 'session') and API tokens (kind 'token') when CHAT_REDIS_URL is not set.
-- Only the SHA-256 of each secret is stored; deleting a row revokes it.
CREATE TABLE IF NOT EXISTS auth_credentials (
    secret_hash TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    name TEXT NOT NULL,
    created_ms INTEGER NOT NULL,
    expires_ms INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS auth_credentials_name ON auth_credentials (name);
CREATE INDEX IF NOT EXISTS auth_credentials_expires ON auth_credentials (expires_ms);
-- The guest holding each name (chat/holds.py) when CHAT_REDIS_URL is not set: only the SHA-256 of its resume token.
-- The hold ends at expires_ms (guest_hold after its last socket closed); then the next guest to come takes the name.
CREATE TABLE IF NOT EXISTS guest_holds (
    name TEXT PRIMARY KEY,
    secret_hash TEXT NOT NULL,
    expires_ms INTEGER NOT NULL
);
-- Files shared in the chat (chat/uploads.py): the bytes live here, so a backup of the database is a backup of the chat.
-- recipient is NULL for the group. Pictures are stored re-encoded (no metadata) with a thumbnail when larger than the
-- thumbnail box. Rows are never reused (AUTOINCREMENT): deleting later sets deleted_ms (and may empty data).
CREATE TABLE IF NOT EXISTS attachments (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    uploader TEXT NOT NULL,
    recipient TEXT,
    file_name TEXT NOT NULL,
    content_type TEXT NOT NULL,
    size INTEGER NOT NULL,
    sha256 TEXT NOT NULL,
    data BLOB NOT NULL,
    thumbnail BLOB,
    thumb_type TEXT,
    created_ms INTEGER NOT NULL,
    deleted_ms INTEGER
);
-- Read markers (chat/store/conversations.py): how far each user has read each conversation. conversation is "#general"
-- (a room) or "@NAME" (the one-to-one with NAME); read_id only moves forward.
CREATE TABLE IF NOT EXISTS read_markers (
    user TEXT NOT NULL,
    conversation TEXT NOT NULL,
    read_id INTEGER NOT NULL,
    PRIMARY KEY (user, conversation)
);
-- Upload quotas (chat/store/attachments.py): bytes each user uploaded per UTC day (day = days since 1970-01-01), and
-- bytes of files stored in all (one row, id 1), counted up in the same transaction as each upload.
CREATE TABLE IF NOT EXISTS upload_usage (
    uploader TEXT NOT NULL,
    day INTEGER NOT NULL,
    bytes INTEGER NOT NULL,
    PRIMARY KEY (uploader, day)
);
CREATE TABLE IF NOT EXISTS upload_totals (
    id INTEGER PRIMARY KEY,
    bytes INTEGER NOT NULL
);
INSERT OR IGNORE INTO upload_totals (id, bytes) SELECT 1, COALESCE(SUM(size + COALESCE(LENGTH(thumbnail), 0)), 0) FROM attachments;
-- Server admins (python3 -m chat.admin grant-admin NAME): they delete any message of general and of every room. Only an
-- enabled account counts (chat/store/accounts.py joins accounts), so a removed or released name is no admin.
CREATE TABLE IF NOT EXISTS admins (
    name TEXT PRIMARY KEY,
    granted_ms INTEGER NOT NULL
);
-- Names banned from the whole server by an admin (/serverban, python3 -m chat.admin ban): no handshake as the name
-- succeeds while it is here (chat/accounts/serverbans.py).
CREATE TABLE IF NOT EXISTS server_bans (
    name TEXT PRIMARY KEY,
    banned_by TEXT NOT NULL,
    banned_ms INTEGER NOT NULL,
    reason TEXT NOT NULL
);
-- Reactions as they stand (chat/store/lifecycle.py), kept in the transaction that stores each reaction event: one row per
-- message, user and emoji (so the same user and emoji count once); event_id is the event that added it (their order).
CREATE TABLE IF NOT EXISTS reactions (
    message_id INTEGER NOT NULL,
    user TEXT NOT NULL,
    emoji TEXT NOT NULL,
    event_id INTEGER NOT NULL,
    PRIMARY KEY (message_id, user, emoji)
);
-- Mentions (chat/store/mentions.py), kept in the transaction that stores each message, edit or delete: one row per
-- message of general or a named room and name its text calls with "@name" (at most max_mentions_per_message names),
-- never its sender. conversation is the message's, keyed as read markers are ("#general", "#ROOM"), so that counting a
-- user's unread mentions is a lookup on the primary key.
CREATE TABLE IF NOT EXISTS mentions (
    user TEXT NOT NULL,
    conversation TEXT NOT NULL,
    message_id INTEGER NOT NULL,
    PRIMARY KEY (user, conversation, message_id)
);
CREATE INDEX IF NOT EXISTS mentions_message ON mentions (message_id);
-- Exactly-once sends (chat/store/sent.py): which message each sender stored under each client_id, kept for
-- client_id_window and then purged. Its primary key is what decides between two senders of the same client_id.
-- digest: the first 32 hex digits of the SHA-256 of what the message says (a resend must say the same).
CREATE TABLE IF NOT EXISTS sent_messages (
    sender TEXT NOT NULL,
    client_id TEXT NOT NULL,
    message_id INTEGER NOT NULL,
    created_ms INTEGER NOT NULL,
    digest TEXT NOT NULL,
    PRIMARY KEY (sender, client_id)
);
CREATE INDEX IF NOT EXISTS sent_messages_created ON sent_messages (created_ms);
-- How far the retention purge (chat/store/retention.py) has gone. 'messages': every message and lifecycle event with an
-- id below `below` that was older than message_retention_days is deleted (room member/topic events are always kept);
-- 'uploads': every file with an id below `below` older than upload_retention_days is deleted. Each purge batch locks its
-- row, so several processes purging at once take turns.
CREATE TABLE IF NOT EXISTS retention_marks (
    what TEXT PRIMARY KEY,
    below INTEGER NOT NULL
);
INSERT OR IGNORE INTO retention_marks (what, below) VALUES ('messages', 0);
INSERT OR IGNORE INTO retention_marks (what, below) VALUES ('uploads', 0);
