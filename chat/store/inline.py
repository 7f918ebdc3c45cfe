"""SQLite: small write transactions committed on the event loop's own thread, and the WAL's fsyncs kept off it.

Why (issue 16, "the cost of a lone message"): every SQLite transaction used to run in gevent's thread pool, so that a
commit that waits on fsync does not stop the event loop. For a message handled on its own that hand-off was about a
third of the server's CPU: the task goes to a worker thread (a futex wake, a context switch), the worker takes the GIL
from the loop, runs, signals the loop back (an eventfd write and another wake-up), and the GIL comes back; about eight
context switches per message between the two threads, each one expensive on a VM whose core idles between messages.
In a burst the hand-off is shared by a whole batch and does not show.

A transaction that only appends to the WAL (journal_mode=WAL, synchronous=NORMAL) does not fsync: only a checkpoint
does (before and after copying the WAL into the database file), and so does the first commit after the WAL restarts
from its beginning (SQLite syncs the new WAL header). So the commits here run on a connection of their own with
`wal_autocheckpoint=0` and a busy timeout of 0, and `Checkpoints` runs the checkpoint in the thread pool shortly after
commits, then restarts the WAL there too (a one-row write), so that the next commit here neither checkpoints nor syncs.
A transaction that finds the write lock taken (another connection of the pool, in a thread, or another process) is
not waited for here: `Busy` is raised before anything is written, and the caller runs it in the thread pool as before.
"""
import logging
import sqlite3

import gevent
from gevent import get_hub

log = logging.getLogger("chat.store")

# A batch bigger than this (records, or bytes of text) still goes to the thread pool: its hand-off is shared by many
# messages, and the loop is not held up for a long commit.
INLINE_MAX_RECORDS = 32
INLINE_MAX_BYTES = 256 * 1024
CHECKPOINT_DELAY = 0.5  # seconds after the first commit here since the last checkpoint
CHECKPOINT_COMMITS = 200  # or as soon as this many commits were made here
# A one-row table whose counter the checkpoint thread moves on to restart the WAL (a write that changed no byte would
# write no page, and restart nothing). Made by Store.ensure_schema on SQLite; its value means nothing.
RESTART_TABLE = "CREATE TABLE IF NOT EXISTS wal_restarts (id INTEGER PRIMARY KEY, n INTEGER NOT NULL)"
_RESTART_WRITE = "INSERT INTO wal_restarts (id, n) VALUES (1, 1) ON CONFLICT (id) DO UPDATE SET n = (n + 1) % 1000000"


class Busy(Exception):
    """Another connection holds SQLite's write lock: nothing was done; run the transaction where it may wait."""


class InlineSQLite:
    """One SQLite connection used only from the event loop's thread, between two yields (its calls never yield, so
    greenlets cannot interleave on it), for small write transactions."""

    def __init__(self, path, session_statements, operational_errors, unavailable):
        self._path = path
        self._session = [s for s in session_statements if "wal_autocheckpoint" not in s]
        self._operational_errors = operational_errors
        self._unavailable = unavailable  # the exception class a failure to reach the database becomes
        self._conn = None
        self.checkpoints = Checkpoints(path, self._session)
        self.committed = 0  # transactions committed here
        self.deferred = 0  # transactions that found the write lock taken and went to the thread pool

    def _connect(self):
        # isolation_level=None: the module opens no transaction of its own; BEGIN IMMEDIATE below takes the write lock.
        conn = sqlite3.connect(self._path, timeout=0, isolation_level=None, check_same_thread=False)
        try:
            for statement in self._session:
                conn.execute(statement)
            conn.execute("PRAGMA wal_autocheckpoint=0")  # Checkpoints does it, in a thread
        except BaseException:
            conn.close()
            raise
        return conn

    def run(self, fn, args):
        """fn(cursor, *args) in one transaction committed before this returns; its result. Raises Busy (nothing done)
        when the write lock is taken, `unavailable` when the database fails, or what fn raised (rolled back)."""
        try:
            conn = self._conn
            if conn is None:
                conn = self._conn = self._connect()
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as e:
            if _is_busy(e):
                self.deferred += 1
                raise Busy() from e
            self._drop()
            raise self._unavailable(str(e)) from e
        cur = conn.cursor()
        try:
            result = fn(cur, *args)
            conn.commit()
        except self._operational_errors as e:
            self._rollback(conn)
            raise self._unavailable(str(e)) from e
        except BaseException:
            self._rollback(conn)
            raise
        finally:
            cur.close()
        self.committed += 1
        self.checkpoints.after_commit()
        return result

    def _rollback(self, conn):
        try:
            conn.rollback()
        except Exception:  # noqa: BLE001  a connection that cannot roll back is not used again
            self._drop()

    def _drop(self):
        conn, self._conn = self._conn, None
        _close_quietly(conn)

    def close(self):
        self._drop()
        self.checkpoints.close()


class Checkpoints:
    """Checkpoints the WAL in gevent's thread pool, CHECKPOINT_DELAY seconds after the first commit it is told of (or
    once CHECKPOINT_COMMITS were), on a connection of its own; then, when every frame was copied, restarts the WAL with
    a small write of its own, so that the sync of the new WAL header is also paid in the thread."""

    def __init__(self, path, session_statements):
        self._path = path
        self._session = session_statements
        self._conn = None  # used only in the thread pool, one checkpoint at a time
        self._pending = 0  # commits since the last checkpoint started
        self._timer = None  # the greenlet that will run the next checkpoint
        self._running = False
        self._closed = False
        self.runs = 0

    def after_commit(self):
        self._pending += 1
        if self._running:
            return
        if self._timer is None:
            self._timer = gevent.spawn_later(CHECKPOINT_DELAY, self._run)
        elif self._pending >= CHECKPOINT_COMMITS:
            self._timer.kill(block=False)
            self._timer = gevent.spawn(self._run)

    def _run(self):
        self._running = True
        self._pending = 0
        try:
            get_hub().threadpool.apply(self._checkpoint)
            self.runs += 1
        except Exception:  # noqa: BLE001  the next commit schedules another; SQLite's WAL keeps everything meanwhile
            log.warning("SQLite WAL checkpoint failed; trying again after the next commits", exc_info=True)
            self._close_conn()
        finally:
            self._running = False
            self._timer = None
            if self._pending and not self._closed:
                self._timer = gevent.spawn_later(CHECKPOINT_DELAY, self._run)

    def _checkpoint(self):
        """In a worker thread."""
        conn = self._conn
        if conn is None:
            conn = sqlite3.connect(self._path, timeout=1.0, isolation_level=None, check_same_thread=False)
            for statement in self._session:
                conn.execute(statement)
            self._conn = conn
        busy, frames, copied = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        if not busy and frames > 0 and copied == frames:
            # Everything is in the database file: this write starts the WAL again from its beginning (and syncs its
            # header) here rather than in the next commit on the loop. Best effort: a reader still on the old WAL
            # makes SQLite append instead, and a lock held elsewhere only makes it wait up to its timeout.
            try:
                conn.execute("BEGIN IMMEDIATE")
                conn.execute(_RESTART_WRITE)
                conn.execute("COMMIT")
            except sqlite3.DatabaseError:  # locked, or a database made before the table (ensure_schema adds it)
                if conn.in_transaction:
                    conn.execute("ROLLBACK")

    def _close_conn(self):
        conn, self._conn = self._conn, None
        _close_quietly(conn)

    def close(self):
        self._closed = True
        if self._timer is not None:
            self._timer.kill(block=False)
            self._timer = None
        self._close_conn()


def _is_busy(error):
    code = getattr(error, "sqlite_errorcode", None)
    if code is not None:
        return code & 0xFF in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)
    text = str(error)
    return "locked" in text or "busy" in text


def _close_quietly(conn):
    """Close a connection that may already be broken (None: nothing to close)."""
    if conn is not None:
        try:
            conn.close()
        except Exception:  # noqa: BLE001
            pass
