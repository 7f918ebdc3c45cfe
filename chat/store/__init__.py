"""The message store: a DBUtils pool over SQLite or PyMySQL, the schema, and every query (parameterised).

The store package may import chat.records, chat.clock and chat.config only."""
import contextlib

from dbutils.pooled_db import PooledDB
from gevent import get_hub

from chat.clock import now_ms
from chat.config import Settings
from chat.records import AttachmentRef, MessageRecord
from .dialects import ADDED_INDEXES, dialect_for, schema_statements
from .inline import INLINE_MAX_BYTES, INLINE_MAX_RECORDS, RESTART_TABLE, Busy, InlineSQLite
from .lifecycle import Effects
from .mentions import MentionRows
from .sent import SentKeys

_COLUMNS = "id, sender, recipient, body, created_ms, attachment_id, room, kind, subject, target_id"
# Message rows with what they say about their file: metadata only, never the bytes.
_SELECT = (
    "SELECT m.id, m.sender, m.recipient, m.body, m.created_ms, a.id, a.file_name, a.content_type, a.size, a.thumb_type, "
    "m.room, m.kind, m.subject, m.target_id "
    "FROM messages m LEFT JOIN attachments a ON a.id = m.attachment_id AND a.deleted_ms IS NULL"
)

# The floor of the name bound to the next "?": the last message id of the name's earlier holders, 0 for none.
# History pages hold messages (and a room's member/topic events), not the edit/delete/reaction events: those change the
# messages the page shows in their current state (chat/store/lifecycle.py). Spelled with COALESCE so that no planner
# takes the (kind, id) index for them: the (room, recipient, id) and (sender, recipient, id) ones serve these pages.
_MESSAGES_ONLY = "COALESCE(m.kind, '') = ''"
_MESSAGES_AND_ROOM_EVENTS = "COALESCE(m.kind, '') NOT IN ('edit', 'delete', 'reaction')"

# Public: every query of a name's direct messages (here, chat/store/conversations.py) is bounded by it.
NAME_FLOOR = "COALESCE((SELECT u.floor_id FROM users u WHERE u.name = ?), 0)"


class StoreUnavailable(Exception):
    """The database did not answer."""


class Store:
    def __init__(self, url, pool_size=8, connect_timeout=3.0, max_mentions=Settings.max_mentions_per_message):
        self.dialect = dialect_for(url)
        self._operational_errors = self.dialect.operational_errors
        # Built here, after run_server.py has monkey-patched, so the pool's lock is cooperative.
        # No ping at checkout and no rollback at return: every use here ends in a commit or a rollback of its own
        # (cursor, transaction, connection below), and a connection that died (a database restart) fails its first
        # statement, which DBUtils's failover runs again on a new connection, as a ping would have made it do. Each of
        # those was a round trip to MariaDB per checkout (issue 16: ~10 checkouts per connect).
        self._pool = PooledDB(
            maxconnections=pool_size,
            maxcached=pool_size,
            blocking=True,
            ping=0,
            reset=False,
            **self.dialect.pool_args(connect_timeout),
        )
        # SQLite: a small batch of messages is committed on the event loop's thread, not handed to a worker thread
        # (chat/store/inline.py: the hand-off was a third of a lone message's CPU).
        self._inline = None
        if self.dialect.blocking:
            setsession = self.dialect.pool_args(connect_timeout).get("setsession", ())
            self._inline = InlineSQLite(self.dialect.path, setsession, self._operational_errors, StoreUnavailable)
        q = self.dialect.sql
        # A batch of plain messages (no file, room, event or reply: nearly every batch) names only the columns it fills:
        # PyMySQL escapes each value of each row in Python, so five NULLs a row were ~1/6 of a direct message's CPU.
        self._q_insert = (
            q(f"INSERT INTO messages ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"),
            q("INSERT INTO messages (id, sender, recipient, body, created_ms) VALUES (?, ?, ?, ?, ?)"),
        )
        self._effects = Effects(self.dialect)
        self._mentions = MentionRows(self.dialect, max_mentions)
        self._sent = SentKeys(self.dialect)
        self._q_group_page = q(f"{_SELECT} WHERE m.room IS NULL AND m.recipient IS NULL AND m.id < ? AND {_MESSAGES_ONLY} ORDER BY m.id DESC LIMIT ?")
        self._q_room_page = q(f"{_SELECT} WHERE m.room = ? AND m.recipient IS NULL AND m.id < ? AND {_MESSAGES_AND_ROOM_EVENTS} ORDER BY m.id DESC LIMIT ?")
        self._q_room_events = q(f"{_SELECT} WHERE m.kind IN ('member', 'topic') AND m.id > ? ORDER BY m.id LIMIT ?")
        # Direct messages at or below the user's floor belong to an earlier holder of the name (chat/accounts/holds.py).
        self._q_conversation_page = q(
            f"{_SELECT} WHERE m.id < ? AND m.id > {NAME_FLOOR} AND {_MESSAGES_ONLY} AND "
            "((m.sender = ? AND m.recipient = ?) OR (m.sender = ? AND m.recipient = ?)) ORDER BY m.id DESC LIMIT ?"
        )
        # General, the user's directs above the floor, and room events about the user above it (a guest's rooms are not
        # the next holder's); the rooms the user is in are added per call (their number varies).
        self._visible_since = (
            f"{_SELECT} WHERE m.id > ? AND ((m.room IS NULL AND m.recipient IS NULL) OR "
            f"(((m.room IS NULL AND (m.recipient = ? OR m.sender = ?)) OR m.subject = ?) AND m.id > {NAME_FLOOR}){{rooms}}) "
            "ORDER BY m.id LIMIT ?"
        )
        self._q_directs_to_since = q(f"{_SELECT} WHERE m.recipient = ? AND m.id > ? AND m.id > {NAME_FLOOR} AND {_MESSAGES_ONLY} ORDER BY m.id LIMIT ?")
        self._q_floor = q("SELECT floor_id, file_floor_id FROM users WHERE name = ?")
        self._q_max_id = q("SELECT COALESCE(MAX(id), 0) FROM messages")
        self._q_newest = q(f"{_SELECT} ORDER BY m.id DESC LIMIT ?")
        self._q_add_user = q(f"{self.dialect.insert_ignore} INTO users (name, created_ms, last_seen_id) VALUES (?, ?, 0)")
        self._q_user = q("SELECT name, last_seen_id FROM users WHERE name = ?")
        self._q_set_last_seen = q("UPDATE users SET last_seen_id = ? WHERE name = ? AND last_seen_id < ?")
        self._q_reserve = q("UPDATE chat_meta SET next_id = next_id + ? WHERE id = 1")
        self._q_next_id = q("SELECT next_id FROM chat_meta WHERE id = 1")
        self._q_messages_from = q(f"{_SELECT} WHERE m.id >= ? AND m.id < ? ORDER BY m.id LIMIT ?")
        self._q_export = q(f"{_SELECT} WHERE m.id > ? AND {_MESSAGES_AND_ROOM_EVENTS} ORDER BY m.id LIMIT ?")
        self._q_export_user = q(
            f"{_SELECT} WHERE m.id > ? AND {_MESSAGES_AND_ROOM_EVENTS} AND (m.sender = ? OR m.recipient = ? OR m.subject = ?) "
            f"AND m.id > {NAME_FLOOR} ORDER BY m.id LIMIT ?"
        )

    @property
    def kind(self):
        return self.dialect.name

    def describe(self):
        return self.dialect.describe()

    @contextlib.contextmanager
    def connection(self):
        """A pooled connection: rolled back on error, discarded when broken, always returned."""
        try:
            conn = self._pool.connection()
        except self._operational_errors as e:
            raise StoreUnavailable(str(e)) from e
        try:
            yield conn
        except self._operational_errors as e:
            _discard(conn)
            raise StoreUnavailable(str(e)) from e
        except BaseException:
            with contextlib.suppress(Exception):
                conn.rollback()
            conn.close()
            raise
        else:
            conn.close()

    @contextlib.contextmanager
    def cursor(self):
        """A pooled connection's cursor, committed on success."""
        with self.connection() as conn:
            cur = conn.cursor()
            try:
                yield cur
                conn.commit()
            finally:
                cur.close()

    def transaction(self, fn, *args):
        """fn(cursor, *args) in one committed transaction; its result. SQLite calls block the whole event loop (a commit
        can wait on fsync at a checkpoint), so there it runs in gevent's thread pool; sqlite3 releases the GIL meanwhile."""
        if not self.dialect.blocking:
            with self.cursor() as cur:
                return fn(cur, *args)
        with self.connection() as conn:
            return get_hub().threadpool.apply(_in_transaction, (conn, fn, args))

    def ensure_schema(self):
        with self.cursor() as cur:
            for statement in schema_statements(self.dialect):
                cur.execute(statement)
            if self._inline is not None:
                cur.execute(RESTART_TABLE)  # chat/store/inline.py
        self._add_missing_columns()
        self._add_missing_indexes()
        from .search import ensure_index  # here, not at the top: chat/store/search.py imports this module

        ensure_index(self)  # the full-text index of messages (chat/store/search.py), filled for an older database
        with self.cursor() as cur:
            cur.execute(self._q_next_id)
            if cur.fetchone() is None:
                cur.execute("SELECT COALESCE(MAX(id), 0) FROM messages")
                start = int(cur.fetchone()[0]) + 1
                cur.execute(self.dialect.sql(f"{self.dialect.insert_ignore} INTO chat_meta (id, next_id) VALUES (1, ?)"), (start,))

    def _add_missing_columns(self):
        """Columns later versions added to tables an older version created (CREATE TABLE IF NOT EXISTS skips them)."""
        for table, column, definition in self.dialect.added_columns:
            self._add_missing(self.dialect.has_column, table, column, f"ALTER TABLE {table} ADD COLUMN {column} {definition}")

    def _add_missing_indexes(self):
        """Indexes on such columns: made after them."""
        for table, index, columns, sparse in ADDED_INDEXES:
            with self.cursor() as cur:
                statements = self.dialect.index_statements(cur, table, index, columns, sparse)
                try:
                    for statement in statements:
                        cur.execute(statement)
                except self.dialect.database_errors:
                    if self.dialect.index_statements(cur, table, index, columns, sparse):
                        raise  # else another server process made it first

    def _add_missing(self, has, table, name, statement):
        with self.cursor() as cur:
            if has(cur, table, name):
                return
            try:
                cur.execute(statement)
            except self.dialect.database_errors:
                if not has(cur, table, name):  # else another server process added it first
                    raise

    def ping(self):
        with self.cursor() as cur:
            cur.execute("SELECT 1")
            cur.fetchall()

    def reserve_ids(self, count):
        """Claim `count` fresh message ids; returns the first. Ids are never handed out twice, even after a crash."""
        with self.cursor() as cur:
            cur.execute(self._q_reserve, (count,))
            cur.execute(self._q_next_id)
            end = int(cur.fetchone()[0])
        return end - count

    def insert_messages(self, records):
        """Store a batch in one transaction (one multi-row INSERT on MySQL); returns each record's outcome, in order: the
        record, or a chat.records.Duplicate for one whose (sender, client_id) is stored already (not stored again)."""
        return self._write(records, _insert_rows, self._q_reserve, self._q_insert, records, self._effects, self._sent, self._mentions)

    def insert_assigning_ids(self, records):
        """Store a batch under ids assigned here, in the same transaction; returns each record's outcome, in order: the
        record with its id, or a chat.records.Duplicate (as insert_messages; a duplicate takes no id).

        The chat_meta row stays locked until the commit, so across every process sharing the database ids
        follow commit order and have no gaps (a rolled-back batch takes its ids back): see chat/cluster/sequencer.py.
        The same lock orders the client_id checks of concurrent batches (chat/store/sent.py).
        """
        return self._write(
            records, _insert_assigning, self._q_reserve, self._q_next_id, self._q_insert, records, self._effects, self._sent,
            self._mentions,
        )

    def _write(self, records, fn, *args):
        """A batch of messages' transaction: on SQLite, a small batch is committed right here on the event loop's thread
        (chat/store/inline.py) unless another connection holds the write lock; everything else as transaction()."""
        inline = self._inline
        if inline is not None and len(records) <= INLINE_MAX_RECORDS:
            if sum(len(r.body or "") for r in records) <= INLINE_MAX_BYTES:
                try:
                    return inline.run(fn, args)
                except Busy:
                    pass
        return self.transaction(fn, *args)

    def sent_message(self, sender, client_id):
        """(message id, created_ms, digest) of the message `sender` stored under `client_id`, or None."""
        with self.cursor() as cur:
            cur.execute(self._sent.find_one, (sender, client_id))
            row = cur.fetchone()
        return None if row is None else (int(row[0]), int(row[1]), row[2])

    def recent_sent(self, since_ms, limit):
        """The newest `limit` (sender, client_id, message id, created_ms, digest) stored at or after `since_ms`, oldest
        first."""
        with self.cursor() as cur:
            cur.execute(self._sent.recent, (since_ms, limit))
            rows = list(cur.fetchall())
        rows.reverse()
        return [(r[0], r[1], int(r[2]), int(r[3]), r[4]) for r in rows]

    def purge_sent(self, before_ms):
        """Forget the client_ids of messages stored before `before_ms`; the number forgotten."""
        with self.cursor() as cur:
            cur.execute(self._sent.purge, (before_ms,))
            return cur.rowcount

    def next_message_id(self):
        """The id the next stored message will get (with ids assigned at commit)."""
        with self.cursor() as cur:
            cur.execute(self._q_next_id)
            return int(cur.fetchone()[0])

    def messages_from(self, first_id, limit, below=2**62):
        """Messages with first_id <= id < below, oldest first: what a process missed from the bus."""
        return self._rows(self._q_messages_from, (first_id, below, limit))

    def newest_records(self, limit):
        """The newest `limit` records of every kind, oldest first (what one process keeps in memory at start)."""
        return self._rows(self._q_newest, (limit,))[::-1]

    def messages_with_ids(self, ids):
        """The stored messages with these ids (attachments' metadata included), oldest first."""
        if not ids:
            return []
        marks = ", ".join("?" * len(ids))
        return self._rows(self.dialect.sql(f"{_SELECT} WHERE m.id IN ({marks}) ORDER BY m.id"), tuple(ids))

    def export_page(self, after_id, limit, user=None):
        """Messages and room events (not lifecycle events) after `after_id`, oldest first: every one, or (`user`) those
        `user` sent, received as directs or is the subject of, above the name's floor (chat/accounts/holds.py)."""
        if user is None:
            return self._rows(self._q_export, (after_id, limit))
        return self._rows(self._q_export_user, (after_id, user, user, user, user, limit))

    def group_page(self, limit, before=None):
        return self._page(self._q_group_page, (before or 2**62, limit))

    def conversation_page(self, user, other, limit, before=None):
        return self._page(self._q_conversation_page, (before or 2**62, user, user, other, other, user, limit))

    def visible_since(self, user, since_id, limit, rooms=()):
        """Everything after `since_id` that `user`, a member of `rooms`, may see, oldest first."""
        rooms = sorted(rooms)
        clause = f" OR m.room IN ({', '.join('?' * len(rooms))})" if rooms else ""
        query = self.dialect.sql(self._visible_since.format(rooms=clause))
        return self._rows(query, (since_id, user, user, user, user, *rooms, limit))

    def room_page(self, room, limit, before=None):
        """A page of a named room's messages and events below `before`, oldest first."""
        return self._page(self._q_room_page, (room, before or 2**62, limit))

    def room_events(self, after_id, limit):
        """Room events (membership, topics) after `after_id`, oldest first: the fold that is every room's state."""
        return self._rows(self._q_room_events, (after_id, limit))

    def directs_to_since(self, user, after_id, limit):
        return self._rows(self._q_directs_to_since, (user, after_id, user, limit))

    def name_floor(self, name):
        """(message floor, file floor) of `name`: its direct messages and files at or below them belong to an
        earlier holder of the name; (0, 0) when the name never changed hands."""
        with self.cursor() as cur:
            cur.execute(self._q_floor, (name,))
            row = cur.fetchone()
        return (0, 0) if row is None else (int(row[0]), int(row[1]))

    def max_message_id(self):
        """The highest stored message id (0 when there is none)."""
        with self.cursor() as cur:
            cur.execute(self._q_max_id)
            return int(cur.fetchone()[0])

    def add_user(self, name):
        with self.cursor() as cur:
            cur.execute(self._q_add_user, (name, now_ms()))

    def get_user(self, name):
        """(name, last_seen_id) or None."""
        with self.cursor() as cur:
            cur.execute(self._q_user, (name,))
            row = cur.fetchone()
        return None if row is None else (row[0], int(row[1]))

    def write_users(self, new_names, last_seen):
        """Add `new_names` and move each (name, last_seen_id) of `last_seen` forward, in one transaction."""

        def write(cur):
            created = now_ms()
            if new_names:
                cur.executemany(self._q_add_user, [(name, created) for name in new_names])
            if last_seen:
                cur.executemany(self._q_set_last_seen, [(seen, name, seen) for name, seen in last_seen])

        self.transaction(write)

    def set_last_seen(self, name, message_id):
        with self.cursor() as cur:
            cur.execute(self._q_set_last_seen, (message_id, name, message_id))

    def count_messages(self):
        with self.cursor() as cur:
            cur.execute("SELECT COUNT(*) FROM messages")
            return int(cur.fetchone()[0])

    def _rows(self, query, params):
        with self.cursor() as cur:
            cur.execute(query, params)
            rows = cur.fetchall()
        return [
            MessageRecord(
                int(r[0]), r[1], r[2], r[3], int(r[4]),
                None if r[5] is None else AttachmentRef(int(r[5]), r[6], r[7], int(r[8]), r[9] is not None),
                r[10], r[11], r[12], None if r[13] is None else int(r[13]),
            )
            for r in rows
        ]

    def _page(self, query, params):
        rows = self._rows(query, params)
        rows.reverse()
        return rows

    def close(self):
        if self._inline is not None:
            self._inline.close()
        self._pool.close()


def _in_transaction(conn, fn, args):
    cur = conn.cursor()
    try:
        result = fn(cur, *args)
    except BaseException:
        conn.rollback()
        raise
    finally:
        cur.close()
    conn.commit()
    return result


def _insert_rows(cur, reserve, query, records, effects, sent, mentions):
    if any(r.client_id is not None for r in records):
        cur.execute(reserve, (0,))  # the lock insert_assigning_ids takes: one order for every client_id check
    fresh, answers = sent.split(cur, records)
    if fresh:
        _insert(cur, query, fresh)
        effects.apply(cur, fresh)  # edits, deletions, reactions take effect in the commit that stores them
        mentions.apply(cur, fresh)  # and so do the mentions a message, an edit or a delete adds or drops
    return sent.settle(cur, fresh, answers, records)


def _insert(cur, statements, records):
    """INSERT `records` with the narrow statement of `statements` (full, plain) when every one of them is plain."""
    full, plain = statements
    if all(r.attachment is None and r.room is None and r.kind is None and r.subject is None and r.target_id is None for r in records):
        cur.executemany(plain, [r[:5] for r in records])
    else:
        cur.executemany(full, [_row(r) for r in records])


def _row(record):
    """A record's column values for INSERT (the attachment by id)."""
    attachment_id = None if record.attachment is None else record.attachment.id
    return record[:5] + (attachment_id, record.room, record.kind, record.subject, record.target_id)


def _insert_assigning(cur, reserve, next_id, insert, records, effects, sent, mentions):
    keyed = any(r.client_id is not None for r in records)
    if keyed:
        # Lock first, then check: a concurrent batch holding the same client_id has committed, or waits for this one.
        cur.execute(reserve, (0,))
        records_in = records
        records, answers = sent.split(cur, records)
    if records:
        cur.execute(reserve, (len(records),))
        cur.execute(next_id)
        first = int(cur.fetchone()[0]) - len(records)
        stored = [r._replace(id=first + i) for i, r in enumerate(records)]
        _insert(cur, insert, stored)
        effects.apply(cur, stored)
        mentions.apply(cur, stored)
    else:
        stored = []
    return sent.settle(cur, stored, answers, records_in) if keyed else stored


def _discard(conn):
    with contextlib.suppress(Exception):
        conn.close()
