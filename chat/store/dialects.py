"""How to reach each database: URL parsing, the DB-API module, session setup and SQL spelling."""
import os
import sqlite3
from urllib.parse import unquote, urlsplit

import pymysql

SQL_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "sql")


class SQLiteDialect:
    name = "sqlite"
    schema_file = "sqlite.sql"
    blocking = True  # its calls do not yield to gevent
    insert_ignore = "INSERT OR IGNORE"
    operational_errors = (sqlite3.OperationalError, sqlite3.InterfaceError)
    database_errors = sqlite3.DatabaseError
    added_columns = [  # (table, column, definition) newer than the first schema
        ("messages", "attachment_id", "INTEGER"),
        ("users", "floor_id", "INTEGER NOT NULL DEFAULT 0"),
        ("users", "file_floor_id", "INTEGER NOT NULL DEFAULT 0"),
        ("messages", "room", "TEXT"),
        ("messages", "kind", "TEXT"),
        ("messages", "subject", "TEXT"),
        ("messages", "target_id", "INTEGER"),
    ]

    def __init__(self, url):
        path = unquote(urlsplit(url).path)
        # sqlite:///chat.db is relative, sqlite:////var/lib/chat.db absolute
        self.path = path[1:] if path.startswith("/") else path
        if not self.path or self.path == ":memory:":
            raise ValueError("the SQLite store needs a file: sqlite:///PATH")

    def pool_args(self, connect_timeout):
        return dict(
            creator=sqlite3,
            database=self.path,
            timeout=connect_timeout,
            check_same_thread=False,  # batches are written from gevent's thread pool, one user at a time
            setsession=["PRAGMA journal_mode=WAL", "PRAGMA synchronous=NORMAL"],
        )

    def sql(self, text):
        return text

    def has_index(self, cur, table, index):
        cur.execute("SELECT 1 FROM sqlite_master WHERE type = 'index' AND tbl_name = ? AND name = ?", (table, index))
        return cur.fetchone() is not None

    def index_statements(self, cur, table, index, columns, sparse):
        """What makes the index as this version wants it: nothing if it is there. An index on a column that is NULL for
        most rows (`sparse`) is partial here, so a row without the value costs no index write: each full one was ~13 µs
        of CPU per message committed alone (issue 15's A/B); an older database's full one is made again partial."""
        cur.execute("SELECT sql FROM sqlite_master WHERE type = 'index' AND tbl_name = ? AND name = ?", (table, index))
        row = cur.fetchone()
        wanted = f"CREATE INDEX {index} ON {table} ({columns})" + (f" WHERE {sparse} IS NOT NULL" if sparse else "")
        if row is None:
            return [wanted]
        if sparse and " WHERE " not in (row[0] or "").upper():
            return [f"DROP INDEX {index}", wanted]
        return []

    def has_column(self, cur, table, column):
        cur.execute(f"PRAGMA table_info({table})")
        return any(row[1] == column for row in cur.fetchall())

    def describe(self):
        return f"sqlite:///{self.path}"


class MySQLDialect:
    name = "mysql"
    schema_file = "mysql.sql"
    blocking = False  # PyMySQL is cooperative once gevent has patched sockets
    insert_ignore = "INSERT IGNORE"
    operational_errors = (pymysql.err.OperationalError, pymysql.err.InterfaceError)
    database_errors = pymysql.err.MySQLError
    added_columns = [
        ("messages", "attachment_id", "BIGINT NULL"),
        ("users", "floor_id", "BIGINT NOT NULL DEFAULT 0"),
        ("users", "file_floor_id", "BIGINT NOT NULL DEFAULT 0"),
        ("messages", "room", "VARCHAR(64) NULL"),
        ("messages", "kind", "VARCHAR(16) NULL"),
        ("messages", "subject", "VARCHAR(64) NULL"),
        ("messages", "target_id", "BIGINT NULL"),
    ]

    def __init__(self, url):
        parts = urlsplit(url)
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 3306
        self.user = unquote(parts.username or "root")
        self.password = unquote(parts.password or "")
        self.database = unquote(parts.path.lstrip("/")) or "chat"

    def pool_args(self, connect_timeout):
        return dict(
            creator=pymysql,
            host=self.host,
            port=self.port,
            user=self.user,
            password=self.password,
            database=self.database,
            charset="utf8mb4",
            connect_timeout=connect_timeout,
            read_timeout=max(30, connect_timeout),
            write_timeout=max(30, connect_timeout),
            autocommit=False,
        )

    def sql(self, text):
        return text.replace("?", "%s")

    def has_index(self, cur, table, index):
        cur.execute(
            "SELECT COUNT(*) FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = %s AND INDEX_NAME = %s",
            (table, index),
        )
        return cur.fetchone()[0] > 0

    def has_column(self, cur, table, column):
        cur.execute(
            "SELECT COUNT(*) FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = %s AND COLUMN_NAME = %s",
            (table, column),
        )
        return cur.fetchone()[0] > 0

    def index_statements(self, cur, table, index, columns, sparse):
        """What makes the index: nothing if it is there (InnoDB has no partial indexes: `sparse` changes nothing)."""
        return [] if self.has_index(cur, table, index) else [f"CREATE INDEX {index} ON {table} ({columns})"]

    def describe(self):
        return f"mysql://{self.user}@{self.host}:{self.port}/{self.database}"


# Indexes on columns that older databases get at start (so they are made after the columns): (table, name, columns,
# sparse). `sparse`: the column is NULL in most rows (a plain message has no kind, subject, target or file) and every
# query by the index names a value, so SQLite keeps the index partial (SQLiteDialect.index_statements).
ADDED_INDEXES = [
    ("messages", "messages_room_recipient_id", "room, recipient, id", None),
    ("messages", "messages_kind_id", "kind, id", "kind"),
    ("messages", "messages_subject_id", "subject, id", "subject"),
    ("messages", "messages_target_id", "target_id, id", "target_id"),
    ("messages", "messages_attachment_id", "attachment_id", "attachment_id"),  # the message carrying a file (DELETE /files/ID)
]


def dialect_for(url):
    scheme = urlsplit(url).scheme.lower()
    if scheme == "sqlite":
        return SQLiteDialect(url)
    if scheme in ("mysql", "mysql+pymysql", "mariadb"):
        return MySQLDialect(url)
    raise ValueError(f"unsupported database URL scheme {scheme!r}: use sqlite:///PATH or mysql://user:password@host:port/db")


def schema_statements(dialect):
    with open(os.path.join(SQL_DIR, dialect.schema_file), encoding="utf-8") as f:
        text = "\n".join(line for line in f if not line.lstrip().startswith("--"))
    return [s.strip() for s in text.split(";") if s.strip()]
