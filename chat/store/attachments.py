"""Attachment queries (parameterised) on the message store's pool: table `attachments`, the bytes of shared files."""
import time
from typing import NamedTuple, Optional

from gevent import get_hub

_META = "id, uploader, recipient, file_name, content_type, size, sha256, thumb_type, created_ms, deleted_ms"


class AttachmentMeta(NamedTuple):
    """An attachments row without its bytes."""

    id: int
    uploader: str
    recipient: Optional[str]  # None for the group
    file_name: str
    content_type: str
    size: int
    sha256: str
    thumb_type: Optional[str]  # None: no thumbnail (not a picture, or one that fits the thumbnail box)
    created_ms: int
    deleted_ms: Optional[int]


class AttachmentQueries:
    """Store and read shared files; `store` is a chat.store.Store. SQLite work runs in gevent's thread pool (a 5 MiB
    BLOB takes milliseconds to write or read, and sqlite3 releases the GIL meanwhile), PyMySQL is cooperative."""

    def __init__(self, store):
        self._store = store
        q = store.dialect.sql
        self._q_insert = q(
            "INSERT INTO attachments (uploader, recipient, file_name, content_type, size, sha256, data, thumbnail, thumb_type,"
            " created_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
        )
        self._q_meta = q(f"SELECT {_META} FROM attachments WHERE id = ?")
        self._q_data = q("SELECT data FROM attachments WHERE id = ?")
        self._q_thumb = q("SELECT thumbnail FROM attachments WHERE id = ?")

    def _run(self, fn, *args):
        """fn(cursor, *args) in one committed transaction, off the event loop when the database blocks it."""
        store = self._store
        if not store.dialect.blocking:
            with store._cursor() as cur:
                return fn(cur, *args)
        with store._connection() as conn:
            return get_hub().threadpool.apply(_in_transaction, (conn, fn, args))

    def insert(self, uploader, recipient, file_name, content_type, data, sha256, thumbnail=None, thumb_type=None):
        """Store one file (committed when this returns); its new id."""
        params = (uploader, recipient, file_name, content_type, len(data), sha256, data, thumbnail, thumb_type, int(time.time() * 1000))
        store = self._store
        if store.dialect.blocking:
            return self._run(_insert, self._q_insert, params)
        # PyMySQL spells bytes as hex in the statement's text: for a 5 MiB file that is 10 MB of SQL and ~40 ms of
        # CPU, built here in a thread (each step holds the GIL for a few ms only); the sending stays cooperative.
        with store._connection() as conn:
            cur = conn.cursor()
            try:
                statement = get_hub().threadpool.apply(_bound_statement, (cur, self._q_insert, params))
                cur.execute(statement)
                new_id = int(cur.lastrowid)
            finally:
                cur.close()
            conn.commit()
        return new_id

    def meta(self, attachment_id):
        """AttachmentMeta, or None when there is no such row."""
        row = self._run(_fetch_one, self._q_meta, (attachment_id,))
        if row is None:
            return None
        return AttachmentMeta(
            int(row[0]), row[1], row[2], row[3], row[4], int(row[5]), row[6], row[7], int(row[8]),
            None if row[9] is None else int(row[9]),
        )

    def data(self, attachment_id, thumbnail=False):
        """The stored bytes (of the thumbnail with `thumbnail`), or None."""
        row = self._run(_fetch_one, self._q_thumb if thumbnail else self._q_data, (attachment_id,))
        return None if row is None or row[0] is None else bytes(row[0])


def _in_transaction(conn, fn, args):
    cur = conn.cursor()
    try:
        result = fn(cur, *args)
    finally:
        cur.close()
    conn.commit()
    return result


def _bound_statement(cur, query, params):
    """The statement PyMySQL would send for `query` with `params` (its own escaping), as bytes."""
    return cur.mogrify(query, params).encode(cur.connection.encoding, "surrogateescape")


def _insert(cur, query, params):
    cur.execute(query, params)
    return int(cur.lastrowid)


def _fetch_one(cur, query, params):
    cur.execute(query, params)
    return cur.fetchone()
