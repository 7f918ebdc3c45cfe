"""The retention purge: messages older than message_retention_days (with their edits, deletions and reactions, the rows
other tables keep about them, and their files) and files older than upload_retention_days, deleted a bounded batch per
transaction; and the runner that purges periodically. Room `member`/`topic` events are never purged: they are the
rooms' state (chat/messaging/rooms.py folds them at start).

Each kind walks its table in id order from a mark kept in `retention_marks` (ids follow time closely: they are given
in the order messages are accepted, or committed), stopping at the first row inside the window. A batch locks its mark
first, so several processes purging at once take turns and never purge a row twice; a batch that fails (the database
went away, a deadlock with a commit) is rolled back whole and tried again at the next run."""
import logging
import time

import gevent

from chat.records import LIFECYCLE_KINDS, ROOM_KINDS
from chat.store.attachments import drop_files

log = logging.getLogger("chat.retention")

DAY_MS = 86400 * 1000

# Every table that keeps rows about a message, with the column holding the message's id: a purged message's rows there go
# in the same transaction. The one place to add a table that refers to messages (mentions, a full-text index kept in a
# table of its own).
MESSAGE_TABLES = (
    ("reactions", "message_id"),
    ("mentions", "message_id"),  # chat/store/mentions.py
    ("sent_messages", "message_id"),  # chat/store/sent.py: a purged message's client_id is forgotten with it
)  # the full-text index follows messages by itself (chat/store/search.py: SQLite triggers, MariaDB's own index)

MESSAGES = "messages"
UPLOADS = "uploads"


class RetentionQueries:
    """`store` is a chat.store.Store."""

    def __init__(self, store):
        self._store = store
        q = store.dialect.sql
        self._q_lock_mark = q("UPDATE retention_marks SET below = below WHERE what = ?")
        self._q_mark = q("SELECT below FROM retention_marks WHERE what = ?")
        self._q_set_mark = q("UPDATE retention_marks SET below = ? WHERE what = ? AND below < ?")
        self._q_messages = q("SELECT id, created_ms, kind, attachment_id FROM messages WHERE id >= ? ORDER BY id LIMIT ?")
        self._q_files = q("SELECT id, created_ms FROM attachments WHERE id >= ? AND deleted_ms IS NULL ORDER BY id LIMIT ?")

    def horizon(self):
        """Every message with a lower id that was older than the retention window is purged (0: nothing ever was)."""
        with self._store.cursor() as cur:
            cur.execute(self._q_mark, (MESSAGES,))
            row = cur.fetchone()
        return 0 if row is None else int(row[0])

    def purge_messages(self, cutoff_ms, limit, now_ms):
        """One batch: at most `limit` messages created before `cutoff_ms` (not room events) deleted with their
        lifecycle events, rows in MESSAGE_TABLES and files. (deleted, done): done when nothing older is left."""
        return self._store.transaction(self._messages_batch, cutoff_ms, limit, now_ms)

    def purge_uploads(self, cutoff_ms, limit, now_ms):
        """One batch: at most `limit` files uploaded before `cutoff_ms` deleted. (deleted, done)."""
        return self._store.transaction(self._uploads_batch, cutoff_ms, limit, now_ms)

    def _locked_mark(self, cur, what):
        # The UPDATE takes the row's lock (and SQLite's write lock) before anything is read.
        cur.execute(self._q_lock_mark, (what,))
        cur.execute(self._q_mark, (what,))
        row = cur.fetchone()
        return 0 if row is None else int(row[0])

    def _messages_batch(self, cur, cutoff_ms, limit, now_ms):
        below = self._locked_mark(cur, MESSAGES)
        cur.execute(self._q_messages, (below, limit))
        rows = cur.fetchall()
        done = len(rows) < limit
        doomed, files, mark = [], [], below
        for message_id, created_ms, kind, attachment_id in rows:
            if int(created_ms) >= cutoff_ms:
                done = True
                break
            mark = int(message_id) + 1
            if kind in ROOM_KINDS:
                continue  # the rooms' state: kept forever
            doomed.append(int(message_id))
            if attachment_id is not None:
                files.append(int(attachment_id))
        if doomed:
            q = self._store.dialect.sql
            marks = ", ".join("?" * len(doomed))
            kinds = ", ".join(f"'{k}'" for k in LIFECYCLE_KINDS)
            # Their edits, deletions and reactions, however recent: they change nothing once the message is gone.
            cur.execute(q(f"DELETE FROM messages WHERE target_id IN ({marks}) AND kind IN ({kinds})"), tuple(doomed))
            for table, column in MESSAGE_TABLES:
                cur.execute(q(f"DELETE FROM {table} WHERE {column} IN ({marks})"), tuple(doomed))
            cur.execute(q(f"DELETE FROM messages WHERE id IN ({marks})"), tuple(doomed))
            drop_files(cur, self._store.dialect, files, now_ms)
        if mark > below:
            cur.execute(self._q_set_mark, (mark, MESSAGES, mark))
        return len(doomed), done

    def _uploads_batch(self, cur, cutoff_ms, limit, now_ms):
        below = self._locked_mark(cur, UPLOADS)
        cur.execute(self._q_files, (below, limit))
        rows = cur.fetchall()
        done = len(rows) < limit
        doomed, mark = [], below
        for file_id, created_ms in rows:
            if int(created_ms) >= cutoff_ms:
                done = True
                break
            doomed.append(int(file_id))
            mark = int(file_id) + 1
        dropped = drop_files(cur, self._store.dialect, doomed, now_ms)
        if mark > below:
            cur.execute(self._q_set_mark, (mark, UPLOADS, mark))
        return dropped, done


class Purger:
    """Purges what is older than the retention settings: `run()` once, to the end, a batch per transaction with
    `retention_pause` between batches; `start()` every `retention_interval` seconds in a greenlet (the first at once).
    `on_purged(mark)` is told, after a purge that deleted messages, that every message below id `mark` older than the
    window is gone (the in-memory recent history drops them: chat/messaging/recent.py)."""

    def __init__(self, settings, store, clock=time.time, on_purged=None):
        self.settings = settings
        self._on_purged = on_purged
        self.queries = RetentionQueries(store)
        self._clock = clock
        self._greenlet = None

    @property
    def enabled(self):
        return self.settings.message_retention_days > 0 or self.settings.upload_retention_days > 0

    def run(self):
        """One purge to the end; {"messages": deleted, "files": deleted} (files of purged messages count as messages)."""
        settings = self.settings
        now = int(self._clock() * 1000)
        done = {"messages": 0, "files": 0}
        if settings.message_retention_days > 0:
            cutoff = now - int(settings.message_retention_days * DAY_MS)
            done["messages"] = self._batches(self.queries.purge_messages, cutoff, now)
            if done["messages"] and self._on_purged is not None:
                self._on_purged(self.queries.horizon())
        if settings.upload_retention_days > 0:
            cutoff = now - int(settings.upload_retention_days * DAY_MS)
            done["files"] = self._batches(self.queries.purge_uploads, cutoff, now)
        return done

    def _batches(self, batch, cutoff, now):
        total = 0
        while True:
            deleted, finished = batch(cutoff, self.settings.retention_batch, now)
            total += deleted
            if finished:
                return total
            gevent.sleep(self.settings.retention_pause)  # the chat's commits and queries go between two batches

    def start(self):
        if self.enabled and self._greenlet is None:
            self._greenlet = gevent.spawn(self._loop)

    def _loop(self):
        while True:
            try:
                done = self.run()
            except Exception as e:  # the database is away, or a batch lost a deadlock: the next run goes on from the mark
                log.warning("the retention purge stopped early (it goes on at the next run): %s", e)
            else:
                if done["messages"] or done["files"]:
                    log.info("retention purge: deleted %d messages and %d files", done["messages"], done["files"])
            gevent.sleep(self.settings.retention_interval)

    def stop(self):
        if self._greenlet is not None:
            self._greenlet.kill()
            self._greenlet = None
