-- Chat schema for MySQL/MariaDB (utf8mb4, InnoDB); applied at start, idempotent.
CREATE TABLE IF NOT EXISTS messages (
    id BIGINT NOT NULL PRIMARY KEY,
    sender VARCHAR(64) NOT NULL,
    recipient VARCHAR(64) NULL,
    body MEDIUMTEXT NOT NULL,
    created_ms BIGINT NOT NULL,
    attachment_id BIGINT NULL,  -- attachments.id of the file this message carries (added to older databases at start)
    -- Named rooms (chat/messaging/rooms.py): the room of a room message or event (NULL: general or a direct), what an
    -- event is ('member' or 'topic'; NULL for a message, whose text is body) and whom a member event is about. An
    -- event's details are JSON in body. Room membership is the fold of these events: there is no members table.
    room VARCHAR(64) NULL,
    kind VARCHAR(16) NULL,
    subject VARCHAR(64) NULL,
    -- The message lifecycle (chat/messaging/lifecycle.py): the message an 'edit', 'delete' or 'reaction' event changes,
    -- or the one a message replies to (NULL: none). Added to older databases at start, with its index.
    target_id BIGINT NULL,
    KEY messages_recipient_id (recipient, id),
    KEY messages_sender_recipient_id (sender, recipient, id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
CREATE TABLE IF NOT EXISTS users (
    name VARCHAR(64) NOT NULL PRIMARY KEY,
    created_ms BIGINT NOT NULL,
    last_seen_id BIGINT NOT NULL DEFAULT 0,
    -- A name that changed hands (a new guest, or an account registered for it): the last message id and attachment id
    -- of the earlier holders. Direct messages at or below floor_id, and direct files at or below file_floor_id, are
    -- not the new holder's (chat/holds.py). Both added to older databases at start.
    floor_id BIGINT NOT NULL DEFAULT 0,
    file_floor_id BIGINT NOT NULL DEFAULT 0
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
CREATE TABLE IF NOT EXISTS chat_meta (
    id INT NOT NULL PRIMARY KEY,
    next_id BIGINT NOT NULL
) ENGINE=InnoDB;
-- Registered accounts (chat/auth.py). Names are stored normalised (lower case), so uniqueness is case-insensitive.
-- password_hash is a werkzeug.security salted hash; NULL means the operator removed the account and the name stays reserved.
CREATE TABLE IF NOT EXISTS accounts (
    name VARCHAR(64) NOT NULL PRIMARY KEY,
    password_hash VARCHAR(255) NULL,
    created_ms BIGINT NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
-- Sign-in sessions (kind 'session') and API tokens (kind 'token') when CHAT_REDIS_URL is not set.
-- Only the SHA-256 of each secret is stored; deleting a row revokes it.
CREATE TABLE IF NOT EXISTS auth_credentials (
    secret_hash CHAR(64) NOT NULL PRIMARY KEY,
    kind VARCHAR(8) NOT NULL,
    name VARCHAR(64) NOT NULL,
    created_ms BIGINT NOT NULL,
    expires_ms BIGINT NOT NULL,
    KEY auth_credentials_name (name),
    KEY auth_credentials_expires (expires_ms)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
-- The guest holding each name (chat/holds.py) when CHAT_REDIS_URL is not set: only the SHA-256 of its resume token.
-- The hold ends at expires_ms (guest_hold after its last socket closed); then the next guest to come takes the name.
CREATE TABLE IF NOT EXISTS guest_holds (
    name VARCHAR(64) NOT NULL PRIMARY KEY,
    secret_hash CHAR(64) NOT NULL,
    expires_ms BIGINT NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
-- Files shared in the chat (chat/uploads.py): the bytes live here, so a backup of the database is a backup of the chat.
-- recipient is NULL for the group. Pictures are stored re-encoded (no metadata) with a thumbnail when larger than the
-- thumbnail box. Deleting later sets deleted_ms (and may empty data). An upload is one INSERT: max_allowed_packet
-- (16 MiB by default) must exceed max_upload_size plus its thumbnail.
CREATE TABLE IF NOT EXISTS attachments (
    id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
    uploader VARCHAR(64) NOT NULL,
    recipient VARCHAR(64) NULL,
    file_name VARCHAR(255) NOT NULL,
    content_type VARCHAR(100) NOT NULL,
    size BIGINT NOT NULL,
    sha256 CHAR(64) NOT NULL,
    data LONGBLOB NOT NULL,
    thumbnail MEDIUMBLOB NULL,
    thumb_type VARCHAR(100) NULL,
    created_ms BIGINT NOT NULL,
    deleted_ms BIGINT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
-- Read markers (chat/store/conversations.py): how far each user has read each conversation. conversation is "#general"
-- (a room) or "@NAME" (the one-to-one with NAME); read_id only moves forward.
CREATE TABLE IF NOT EXISTS read_markers (
    user VARCHAR(64) NOT NULL,
    conversation VARCHAR(65) NOT NULL,
    read_id BIGINT NOT NULL,
    PRIMARY KEY (user, conversation)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
-- Upload quotas (chat/store/attachments.py): bytes each user uploaded per UTC day (day = days since 1970-01-01), and
-- bytes of files stored in all (one row, id 1), counted up in the same transaction as each upload.
CREATE TABLE IF NOT EXISTS upload_usage (
    uploader VARCHAR(64) NOT NULL,
    day INT NOT NULL,
    bytes BIGINT NOT NULL,
    PRIMARY KEY (uploader, day)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
CREATE TABLE IF NOT EXISTS upload_totals (
    id INT NOT NULL PRIMARY KEY,
    bytes BIGINT NOT NULL
) ENGINE=InnoDB;
INSERT IGNORE INTO upload_totals (id, bytes) SELECT 1, COALESCE(SUM(size + COALESCE(LENGTH(thumbnail), 0)), 0) FROM attachments;
-- Server admins (python3 -m chat.admin grant-admin NAME): they delete any message of general and of every room. Only an
-- enabled account counts (chat/store/accounts.py joins accounts), so a removed or released name is no admin.
CREATE TABLE IF NOT EXISTS admins (
    name VARCHAR(64) NOT NULL PRIMARY KEY,
    granted_ms BIGINT NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
-- Names banned from the whole server by an admin (/serverban, python3 -m chat.admin ban): no handshake as the name
-- succeeds while it is here (chat/accounts/serverbans.py).
CREATE TABLE IF NOT EXISTS server_bans (
    name VARCHAR(64) NOT NULL PRIMARY KEY,
    banned_by VARCHAR(64) NOT NULL,
    banned_ms BIGINT NOT NULL,
    reason VARCHAR(300) NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
-- Reactions as they stand (chat/store/lifecycle.py), kept in the transaction that stores each reaction event: one row per
-- message, user and emoji (so the same user and emoji count once); event_id is the event that added it (their order).
CREATE TABLE IF NOT EXISTS reactions (
    message_id BIGINT NOT NULL,
    user VARCHAR(64) NOT NULL,
    emoji VARCHAR(64) NOT NULL,
    event_id BIGINT NOT NULL,
    PRIMARY KEY (message_id, user, emoji)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
-- Mentions (chat/store/mentions.py), kept in the transaction that stores each message, edit or delete: one row per
-- message of general or a named room and name its text calls with "@name" (at most max_mentions_per_message names),
-- never its sender. conversation is the message's, keyed as read markers are ("#general", "#ROOM"), so that counting a
-- user's unread mentions is a lookup on the primary key.
CREATE TABLE IF NOT EXISTS mentions (
    user VARCHAR(64) NOT NULL,
    conversation VARCHAR(65) NOT NULL,
    message_id BIGINT NOT NULL,
    PRIMARY KEY (user, conversation, message_id),
    KEY mentions_message (message_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
-- Exactly-once sends (chat/store/sent.py): which message each sender stored under each client_id, kept for
-- client_id_window and then purged. Its primary key is what decides between two processes storing the same client_id.
-- digest: the first 32 hex digits of the SHA-256 of what the message says (a resend must say the same).
CREATE TABLE IF NOT EXISTS sent_messages (
    sender VARCHAR(64) NOT NULL,
    client_id VARCHAR(64) NOT NULL,
    message_id BIGINT NOT NULL,
    created_ms BIGINT NOT NULL,
    digest CHAR(32) NOT NULL,
    PRIMARY KEY (sender, client_id),
    KEY sent_messages_created (created_ms)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
-- How far the retention purge (chat/store/retention.py) has gone. 'messages': every message and lifecycle event with an
-- id below `below` that was older than message_retention_days is deleted (room member/topic events are always kept);
-- 'uploads': every file with an id below `below` older than upload_retention_days is deleted. Each purge batch locks its
-- row, so several processes purging at once take turns.
CREATE TABLE IF NOT EXISTS retention_marks (
    what VARCHAR(16) NOT NULL PRIMARY KEY,
    below BIGINT NOT NULL
) ENGINE=InnoDB;
INSERT IGNORE INTO retention_marks (what, below) VALUES ('messages', 0);
INSERT IGNORE INTO retention_marks (what, below) VALUES ('uploads', 0);
