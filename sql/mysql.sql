-- Chat schema for MySQL/MariaDB (utf8mb4, InnoDB); applied at start, idempotent.
CREATE TABLE IF NOT EXISTS messages (
    id BIGINT NOT NULL PRIMARY KEY,
    sender VARCHAR(64) NOT NULL,
    recipient VARCHAR(64) NULL,
    body MEDIUMTEXT NOT NULL,
    created_ms BIGINT NOT NULL,
    KEY messages_recipient_id (recipient, id),
    KEY messages_sender_recipient_id (sender, recipient, id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
CREATE TABLE IF NOT EXISTS users (
    name VARCHAR(64) NOT NULL PRIMARY KEY,
    created_ms BIGINT NOT NULL,
    last_seen_id BIGINT NOT NULL DEFAULT 0
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
CREATE TABLE IF NOT EXISTS chat_meta (
    id INT NOT NULL PRIMARY KEY,
    next_id BIGINT NOT NULL
) ENGINE=InnoDB;
