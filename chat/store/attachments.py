"""Attachment queries (parameterised) on the message store's pool: table `attachments`, the bytes of shared files."""
import time
from typing import NamedTuple, Optional

from gevent import get_hub

_META = "id, uploader, recipient, file_name, content_type, size, sha256, thumb_type, created_ms, deleted_ms"
DAY_SECONDS = 86400


class OverQuota(Exception):
    """An upload would take a user's day (`limit` "upload_quota_per_day") or the server's total ("upload_total_bytes")
    past its limit; `used` is what was counted before it."""

    def __init__(self, limit, allowed, used):
        super().__init__(f"{limit}: {used} of {allowed} bytes used")
        self.limit = limit
        self.allowed = allowed
        self.used = used


class Quotas(NamedTuple):
    """The byte limits an insert is held to."""

    per_day: int  # bytes one uploader may store per UTC day
    total: int  # bytes of files stored in all


def utc_day(now=None):
    """Days since 1970-01-01 (UTC): the key of a day's upload count."""
    return int((time.time() if now is None else now) // DAY_SECONDS)


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
        self._q_count_total = q("UPDATE upload_totals SET bytes = bytes + ? WHERE id = 1 AND bytes + ? <= ?")
        self._q_total = q("SELECT bytes FROM upload_totals WHERE id = 1")
        self._q_add_day = q(f"{store.dialect.insert_ignore} INTO upload_usage (uploader, day, bytes) VALUES (?, ?, 0)")
        self._q_forget_days = q("DELETE FROM upload_usage WHERE day < ?")
        self._q_count_day = q("UPDATE upload_usage SET bytes = bytes + ? WHERE uploader = ? AND day = ? AND bytes + ? <= ?")
        self._q_day = q("SELECT bytes FROM upload_usage WHERE uploader = ? AND day = ?")
        self._q_carrier = q("SELECT id FROM messages WHERE attachment_id = ? AND kind IS NULL ORDER BY id LIMIT 1")

    def insert(self, uploader, recipient, file_name, content_type, data, sha256, thumbnail=None, thumb_type=None, quotas=None):
        """Store one file (committed when this returns); its new id. With `quotas`, the file and its thumbnail are
        counted against the uploader's day and the server's total in the same transaction: OverQuota (and nothing
        stored) when either would go past its limit."""
        now = time.time()
        params = (uploader, recipient, file_name, content_type, len(data), sha256, data, thumbnail, thumb_type, int(now * 1000))
        counted = None if quotas is None else (uploader, utc_day(now), len(data) + len(thumbnail or b""), quotas)
        store = self._store
        if store.dialect.blocking:
            return store.transaction(self._insert_counted, self._q_insert, params, counted)
        # PyMySQL spells bytes as hex in the statement's text: for a 5 MiB file that is 10 MB of SQL and ~40 ms of
        # CPU, built here in a thread (each step holds the GIL for a few ms only); the sending stays cooperative.
        with store.connection() as conn:
            cur = conn.cursor()
            try:
                statement = get_hub().threadpool.apply(_bound_statement, (cur, self._q_insert, params))
                new_id = self._insert_counted(cur, statement, None, counted)
            finally:
                cur.close()
            conn.commit()
        return new_id

    def _insert_counted(self, cur, query, params, counted):
        """The INSERT, then the counts (a refusal raises, and the caller's rollback takes the row back)."""
        if params is None:
            cur.execute(query)
        else:
            cur.execute(query, params)
        new_id = int(cur.lastrowid)
        if counted is not None:
            self._count(cur, *counted)
        return new_id

    def _count(self, cur, uploader, day, size, quotas):
        # The total's single row is locked first, by every upload: the counts of concurrent uploads (in any process)
        # are taken one after another, so two can never both pass a check that only one fits, and no two lock the
        # same rows in different orders. The big INSERT went before it, so the lock is held only for these small
        # statements and the commit.
        cur.execute(self._q_count_total, (size, size, quotas.total))
        if cur.rowcount != 1:
            cur.execute(self._q_total)
            raise OverQuota("upload_total_bytes", quotas.total, _first(cur.fetchone()))
        cur.execute(self._q_add_day, (uploader, day))
        if cur.rowcount == 1:  # the first upload of someone's day: yesterday's counts and older are no longer needed
            cur.execute(self._q_forget_days, (day - 1,))
        cur.execute(self._q_count_day, (size, uploader, day, size, quotas.per_day))
        if cur.rowcount != 1:
            cur.execute(self._q_day, (uploader, day))
            raise OverQuota("upload_quota_per_day", quotas.per_day, _first(cur.fetchone()))

    def max_packet(self):
        """MySQL's max_allowed_packet in bytes (an upload is one INSERT); None on SQLite, which has no such limit."""
        if self._store.kind != "mysql":
            return None
        with self._store.cursor() as cur:
            cur.execute("SELECT @@max_allowed_packet")
            return int(cur.fetchone()[0])

    def usage(self, uploader):
        """(bytes `uploader` stored today (UTC), bytes stored in all): for refusing early, before a body is read."""
        return self._store.transaction(_usage, self._q_day, self._q_total, uploader, utc_day())

    def meta(self, attachment_id):
        """AttachmentMeta, or None when there is no such row."""
        row = self._store.transaction(_fetch_one, self._q_meta, (attachment_id,))
        if row is None:
            return None
        return AttachmentMeta(
            int(row[0]), row[1], row[2], row[3], row[4], int(row[5]), row[6], row[7], int(row[8]),
            None if row[9] is None else int(row[9]),
        )

    def carrier(self, attachment_id):
        """The id of the stored message that carries file `attachment_id` (deleted or not), or None when no stored
        message does (its message is not committed yet, or was never posted)."""
        row = self._store.transaction(_fetch_one, self._q_carrier, (attachment_id,))
        return None if row is None else int(row[0])

    def drop(self, attachment_id):
        """Delete one file (its bytes go, GET answers 410, the stored total is counted down); True when this call
        deleted it, False when it was already deleted (by a concurrent call, in any process) or never existed."""
        return self._store.transaction(drop_files, self._store.dialect, [attachment_id], int(time.time() * 1000)) == 1

    def data(self, attachment_id, thumbnail=False):
        """The stored bytes (of the thumbnail with `thumbnail`), or None."""
        row = self._store.transaction(_fetch_one, self._q_thumb if thumbnail else self._q_data, (attachment_id,))
        return None if row is None or row[0] is None else bytes(row[0])


def drop_files(cur, dialect, ids, now_ms):
    """Delete the files `ids` that are not deleted yet, in the caller's transaction: their bytes are emptied, deleted_ms
    set (GET answers 410) and the server's stored total counted down by what they held. The number deleted.

    The total's row is locked first, as every upload and every message deletion (chat/store/lifecycle.py) locks it
    before it touches a file: a file is counted down once however many deletions race, and the lock order is the same
    everywhere."""
    if not ids:
        return 0
    q = dialect.sql
    marks = ", ".join("?" * len(ids))
    cur.execute(q("UPDATE upload_totals SET bytes = bytes WHERE id = 1"))
    # A locking read on MySQL: the caller's transaction may have read before it held the lock (InnoDB's snapshot would
    # not see a deletion committed since). SQLite's write lock is held from the transaction's first write.
    locking = " FOR UPDATE" if dialect.name == "mysql" else ""
    cur.execute(q(f"SELECT COALESCE(SUM(size + COALESCE(LENGTH(thumbnail), 0)), 0) FROM attachments "
                  f"WHERE id IN ({marks}) AND deleted_ms IS NULL{locking}"), tuple(ids))
    freed = _first(cur.fetchone())
    cur.execute(q(f"UPDATE attachments SET deleted_ms = ?, data = ?, thumbnail = NULL WHERE id IN ({marks}) AND deleted_ms IS NULL"),
                (now_ms, b"", *ids))
    dropped = cur.rowcount
    if freed:
        cur.execute(q("UPDATE upload_totals SET bytes = bytes - ? WHERE id = 1"), (freed,))
    return dropped


def _bound_statement(cur, query, params):
    """The statement PyMySQL would send for `query` with `params` (its own escaping), as bytes."""
    return cur.mogrify(query, params).encode(cur.connection.encoding, "surrogateescape")


def _fetch_one(cur, query, params):
    cur.execute(query, params)
    return cur.fetchone()


def _first(row):
    return 0 if row is None else int(row[0])


def _usage(cur, q_day, q_total, uploader, day):
    cur.execute(q_day, (uploader, day))
    today = _first(cur.fetchone())
    cur.execute(q_total)
    return today, _first(cur.fetchone())
