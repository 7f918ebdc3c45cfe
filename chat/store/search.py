"""Message search in the database: each store's full-text index (SQLite FTS5, MariaDB InnoDB FULLTEXT), made for existing
databases at start, the words of a search text as the indexes split them, the match expression built from those words
only, and the bounded query for the newest matches a user may see.

The index holds messages only (rows with no `kind`): never a room event, nor an edit, delete or reaction row (an edit
row keeps its text for ?since= replays). It follows `messages.body`: an edit rewrites it and a delete empties it
(chat/store/lifecycle.py), and the index changes in the same transaction.
- SQLite: an FTS5 table over `messages` (external content: the text is not stored twice). New messages are indexed in
  batches, not in the commit that stores them: FTS5 writes a segment per transaction, which cost ~95 µs per message when
  the writer commits messages one or a few at a time (issue 15's A/B: direct-message CPU x2.2), against ~3.5 µs in a
  batch. Nor does storing a message write anything for the index (a trigger queueing each id cost ~15 µs per message
  committed alone): `search_mark.upto` says how far the index goes (every message with an id at or below it is in the
  index with its text as it is now, none above it), and `SearchIndexer` indexes the messages above it every
  `search_index_interval`; a search first does the same, so a message is found once it is stored, as before. Ids are
  committed in order but for the ones this process assigned and has not committed yet (no Redis: chat/messaging/ids.py),
  so the mark stops below the oldest of those (`settled_below`). Edits and deletes of indexed messages change the index
  by two triggers in their own commit (rare, and they must: an external-content index forgets a row only when told the
  exact text it indexed); of messages above the mark they change nothing (the batch indexes the text as it is then).
- MariaDB: a stored generated column `search_text` (the body of a message, '' for anything else) in a case- and
  accent-insensitive collation, with a FULLTEXT index made with stopwords off. Not on `body` itself: `body` is
  utf8mb4_bin, and InnoDB's FULLTEXT cache on a binary column keeps new words in their case (found as typed until the
  cache is synced, then only in lower case).

Every user word goes in double quotes and a word holds only letters, marks, digits and `_`, so no text a user sends is
ever read as FTS syntax (operators, NEAR, column filters, prefixes, parentheses).

Imports chat.store lazily: chat/store/__init__.py calls ensure_index() from here."""
import logging
import time
import unicodedata

log = logging.getLogger("chat.search")

SQLITE_TABLE = "messages_fts"
MYSQL_COLUMN = "search_text"
MYSQL_INDEX = "messages_search"
# Both indexes split text the same way: letters, digits and `_` make words (FTS5: unicode61 with `_` as a token
# character; InnoDB: its own rule), case and accents do not count (FTS5: remove_diacritics 2; MariaDB: the collation).
_FTS5_TOKENIZER = "unicode61 remove_diacritics 2 tokenchars '_'"
_MESSAGE = "COALESCE({0}kind, '') = '' AND {0}body <> ''"
_INDEXED = "old.id <= (SELECT upto FROM search_mark WHERE id = 1)"
_SQLITE_TRIGGERS = (
    f"CREATE TRIGGER messages_fts_forget AFTER DELETE ON messages WHEN {_MESSAGE.format('old.')} AND {_INDEXED} BEGIN "
    f"INSERT INTO {SQLITE_TABLE} ({SQLITE_TABLE}, rowid, body) VALUES ('delete', old.id, old.body); END",
    # An external-content index forgets a row only when told the exact text it indexed: the old body.
    f"CREATE TRIGGER messages_fts_change AFTER UPDATE OF body, kind ON messages WHEN {_INDEXED} BEGIN "
    f"INSERT INTO {SQLITE_TABLE} ({SQLITE_TABLE}, rowid, body) SELECT 'delete', old.id, old.body WHERE {_MESSAGE.format('old.')}; "
    f"INSERT INTO {SQLITE_TABLE} (rowid, body) SELECT new.id, new.body WHERE {_MESSAGE.format('new.')}; END",
)
# Triggers of earlier versions of the index: the first indexed each message in the commit that stored it, the second
# queued each new message's id in `search_pending` (its forget and change triggers had these names too).
_SQLITE_OLD_TRIGGERS = (
    "messages_fts_insert", "messages_fts_delete", "messages_fts_update", "messages_fts_queue", "messages_fts_forget",
    "messages_fts_change",
)
INDEX_BATCH = 5000  # queued messages one indexing transaction adds at most: a backlog never holds SQLite's write lock long

_MYSQL_ADD = (
    f"ALTER TABLE messages ADD COLUMN {MYSQL_COLUMN} MEDIUMTEXT CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_520_ci "
    f"AS (IF(COALESCE(kind, '') = '', body, '')) STORED, ADD FULLTEXT INDEX {MYSQL_INDEX} ({MYSQL_COLUMN})"
)
MYSQL_TIMEOUT_ERRORS = (1969, 1028, 188)  # max_statement_time exceeded; a sort, or InnoDB's full-text search, stopped by it


class SearchTimeout(Exception):
    """The search ran past its time limit and was stopped."""


# ---- words and expressions (pure) ---------------------------------------------------------------------------------


def _word_char(c):
    return c == "_" or unicodedata.category(c)[0] in "LMN"


def words(text):
    """The distinct words of `text` in lower case, in order: runs of letters, marks, digits and `_`; everything else
    (spaces, punctuation, symbols, emoji, control characters, quotes, operators) separates them."""
    found, current = [], []
    for c in text + " ":
        if _word_char(c):
            current.append(c)
        elif current:
            word = "".join(current).lower()
            if word not in found:
                found.append(word)
            current = []
    return found


def _quoted(word):
    if not word or '"' in word or not all(_word_char(c) for c in word):
        raise ValueError("not a word")  # words() never makes one: a word is never syntax
    return f'"{word}"'


def fts5_expression(terms):
    """The FTS5 MATCH expression that needs every word: "w1" AND "w2" ..."""
    if not terms:
        raise ValueError("no words")
    return " AND ".join(_quoted(t) for t in terms)


def boolean_expression(terms):
    """The MariaDB MATCH ... AGAINST (... IN BOOLEAN MODE) expression that needs every word: +"w1" +"w2" ..."""
    if not terms:
        raise ValueError("no words")
    return " ".join("+" + _quoted(t) for t in terms)


# ---- the index, made at start -------------------------------------------------------------------------------------


def ensure_index(store):
    """Make the search index if the database has none yet, and fill it with the messages already stored."""
    if store.dialect.name == "sqlite":
        _ensure_sqlite(store)
    else:
        _ensure_mysql(store)


def _ensure_sqlite(store):
    with store.connection() as conn:
        cur = conn.cursor()
        try:
            if not _has_sqlite_table(cur, "search_mark"):
                cur.execute("BEGIN IMMEDIATE")  # another process starting at once waits here, then finds the index made
                if not _has_sqlite_table(cur, "search_mark"):
                    _make_sqlite_index(cur)
                conn.commit()
        finally:
            cur.close()
    # What is not indexed yet, a batch at a time: a database from before search, or what the last run stored since its
    # last batch (nothing is in flight at start, so no bound).
    catch_up(store)


def _make_sqlite_index(cur):
    """The index and its mark for a database without them: empty, or an earlier version's, which is complete once its
    queue (second version) is indexed."""
    for trigger in _SQLITE_OLD_TRIGGERS:
        cur.execute(f"DROP TRIGGER IF EXISTS {trigger}")
    if _has_sqlite_table(cur, SQLITE_TABLE):
        if _has_sqlite_table(cur, "search_pending"):
            cur.execute(
                f"INSERT INTO {SQLITE_TABLE} (rowid, body) SELECT id, body FROM messages "
                f"WHERE id IN (SELECT id FROM search_pending) AND {_MESSAGE.format('')}"
            )
            cur.execute("DROP TABLE search_pending")
        cur.execute("SELECT COALESCE(MAX(id), 0) FROM messages")
        upto = cur.fetchone()[0]
    else:
        cur.execute(
            f"CREATE VIRTUAL TABLE {SQLITE_TABLE} USING fts5(body, content='messages', content_rowid='id', "
            f'tokenize="{_FTS5_TOKENIZER}")'
        )
        upto = 0  # catch_up indexes every stored message
    cur.execute("CREATE TABLE search_mark (id INTEGER PRIMARY KEY CHECK (id = 1), upto INTEGER NOT NULL)")
    cur.execute("INSERT INTO search_mark (id, upto) VALUES (1, ?)", (upto,))
    for trigger in _SQLITE_TRIGGERS:
        cur.execute(trigger)


def _index_batch(cur, below):
    """Index the next INDEX_BATCH messages above the mark (and below `below`, if set), as their text is now; whether
    none is left."""
    cur.execute("UPDATE search_mark SET upto = upto WHERE 0")  # the write lock first: no edit commits between read and write
    cur.execute("SELECT upto FROM search_mark WHERE id = 1")
    upto = cur.fetchone()[0]
    cur.execute("SELECT MAX(id), COUNT(*) FROM (SELECT id FROM messages WHERE id > ? ORDER BY id LIMIT ?)", (upto, INDEX_BATCH))
    last, count = cur.fetchone()
    if last is None:
        return True
    if below is not None and last >= below:
        last, count = below - 1, 0  # the rest waits for the commits of this process's older ids
        if last <= upto:
            return True
    cur.execute(
        f"INSERT INTO {SQLITE_TABLE} (rowid, body) SELECT id, body FROM messages WHERE id > ? AND id <= ? AND {_MESSAGE.format('')}",
        (upto, last),
    )
    cur.execute("UPDATE search_mark SET upto = ? WHERE id = 1", (last,))
    return count < INDEX_BATCH


def catch_up(store, settled_below=None):
    """Index every stored message above the mark, a batch per transaction. `settled_below()`: an id below which every
    id this process assigned is committed (or never will be), or None when ids are assigned at commit."""
    while not store.transaction(_index_batch, None if settled_below is None else settled_below()):
        pass


class SearchIndexer:
    """SQLite: adds the messages stored since the last batch to the index every `interval` seconds (a search also
    catches up first: SearchQueries.message_ids)."""

    def __init__(self, store, interval, settled_below=None):
        self._store = store
        self._interval = interval
        self._settled_below = settled_below
        self._greenlet = None

    def start(self):
        import gevent

        def loop():
            while True:
                gevent.sleep(self._interval)
                try:
                    catch_up(self._store, self._settled_below)
                except Exception:  # a store outage: the next round catches up  # noqa: BLE001
                    log.warning("indexing new messages for search failed; trying again", exc_info=True)

        self._greenlet = gevent.spawn(loop)

    def stop(self):
        if self._greenlet is not None:
            self._greenlet.kill()


def _has_sqlite_table(cur, name=SQLITE_TABLE):
    cur.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (name,))
    return cur.fetchone() is not None


def _ensure_mysql(store):
    dialect = store.dialect
    with store.cursor() as cur:
        if dialect.has_index(cur, "messages", MYSQL_INDEX):
            return
        # Stopwords off while the index is built: "the", "who", "what", "will" are words people search for. (A later
        # rebuild, OPTIMIZE TABLE or ALTER TABLE ... FORCE, takes the session's setting again: see docs/deploy.md.)
        cur.execute("SET SESSION innodb_ft_enable_stopword = 0")
        try:
            cur.execute(_MYSQL_ADD)  # rebuilds the table once (InnoDB adds its FTS_DOC_ID)
        except dialect.database_errors:
            if not dialect.has_index(cur, "messages", MYSQL_INDEX):  # else another server process added it first
                raise
        finally:
            cur.execute("SET SESSION innodb_ft_enable_stopword = DEFAULT")


# ---- the query ----------------------------------------------------------------------------------------------------


class SearchQueries:
    """The newest messages matching an expression, below an id, among what a user may see. `store` is a
    chat.store.Store; the floor of a name's directs is chat.store.NAME_FLOOR (chat/accounts/holds.py)."""

    def __init__(self, store, settled_below=None):
        from chat.store import NAME_FLOOR

        self._store = store
        self._settled_below = settled_below  # SQLite: catch_up's
        self._sqlite = store.dialect.name == "sqlite"
        self._floor = NAME_FLOOR
        if self._sqlite:
            self.expression = fts5_expression
            self.word_lengths = (1, None)
        else:
            self.expression = boolean_expression
            self.word_lengths = self._mysql_word_lengths()

    def _mysql_word_lengths(self):
        """(shortest, longest) word InnoDB indexes (innodb_ft_min_token_size, _max_: server settings, 3 and 84)."""
        with self._store.cursor() as cur:
            cur.execute("SELECT @@innodb_ft_min_token_size, @@innodb_ft_max_token_size")
            low, high = cur.fetchone()
        return int(low), int(high)

    def scope_sql(self, scope):
        """(SQL condition on `m`, params) of a scope: ("everywhere", user, rooms), ("general",), ("room", name) or
        ("with", user, other)."""
        kind = scope[0]
        if kind == "general":
            return "m.room IS NULL AND m.recipient IS NULL", ()
        if kind == "room":
            return "m.room = ? AND m.recipient IS NULL", (scope[1],)
        if kind == "with":
            user, other = scope[1], scope[2]
            return (
                f"m.room IS NULL AND ((m.sender = ? AND m.recipient = ?) OR (m.sender = ? AND m.recipient = ?)) AND m.id > {self._floor}",
                (user, other, other, user, user),
            )
        user, rooms = scope[1], sorted(scope[2])
        in_rooms = f" OR (m.room IN ({', '.join('?' * len(rooms))}) AND m.recipient IS NULL)" if rooms else ""
        return (
            "((m.room IS NULL AND m.recipient IS NULL)"
            f" OR (m.room IS NULL AND (m.sender = ? OR m.recipient = ?) AND m.recipient IS NOT NULL AND m.id > {self._floor})"
            f"{in_rooms})",
            (user, user, user, *rooms),
        )

    def statement(self, expression, scope, before, limit, timeout):
        """(SQL, params) of the search: matching message ids below `before` in `scope`, newest first."""
        where, params = self.scope_sql(scope)
        if self._sqlite:
            # The FTS table drives (CROSS JOIN keeps it outside): it walks its matches from the newest id down, each
            # looked up in messages by its primary key, and stops at the limit.
            sql = (
                f"SELECT m.id FROM {SQLITE_TABLE} f CROSS JOIN messages m ON m.id = f.rowid "
                f"WHERE f.{SQLITE_TABLE} MATCH ? AND f.rowid < ? AND {_MESSAGE.format('m.')} AND {where} "
                "ORDER BY f.rowid DESC LIMIT ?"
            )
            return sql, (expression, before, *params, limit)
        sql = (
            "SET STATEMENT max_statement_time = ? FOR "
            f"SELECT m.id FROM messages m WHERE MATCH (m.{MYSQL_COLUMN}) AGAINST (? IN BOOLEAN MODE) AND m.id < ? "
            f"AND {_MESSAGE.format('m.')} AND {where} ORDER BY m.id DESC LIMIT ?"
        )
        return self._store.dialect.sql(sql), (max(0.001, round(timeout, 3)), expression, before, *params, limit)

    def message_ids(self, expression, scope, before, limit, timeout):
        """Ids of the newest `limit` messages in `scope` below `before` whose text has every word of `expression`,
        newest first; SearchTimeout when the database takes longer than `timeout` seconds."""
        sql, params = self.statement(expression, scope, before, limit, timeout)
        if self._sqlite:
            catch_up(self._store, self._settled_below)  # what was stored since the last batch (SearchIndexer)
        ids = self._store.transaction(self._run, sql, params, timeout)
        if ids is None:
            raise SearchTimeout()
        return ids

    def _run(self, cur, sql, params, timeout):
        """The ids the statement finds, or None when it was stopped at the time limit."""
        # The driver's own connection and cursor (DB-API `cursor.connection`): the pool's cursor takes a stopped statement
        # for a lost connection, reconnects and runs it again; this one reports it.
        connection = cur.connection
        raw = connection.cursor()
        try:
            if not self._sqlite:
                try:
                    raw.execute(sql, params)
                except self._store.dialect.database_errors as e:
                    if e.args and e.args[0] in MYSQL_TIMEOUT_ERRORS:
                        return None
                    raise
                return [int(r[0]) for r in raw.fetchall()]
            # SQLite: here in a worker thread (Store.transaction); a progress handler stops the statement at the deadline.
            deadline = time.monotonic() + timeout
            connection.set_progress_handler(lambda: time.monotonic() > deadline, 10_000)
            try:
                raw.execute(sql, params)
                return [int(r[0]) for r in raw.fetchall()]
            except self._store.dialect.database_errors as e:
                if time.monotonic() > deadline and "interrupted" in str(e):
                    return None  # not raised in the worker thread: gevent would print it as a failure
                raise
            finally:
                connection.set_progress_handler(None, 0)
        finally:
            raw.close()

    def explain(self, expression, scope, before=2**62, limit=21, timeout=1.0):
        """The database's query plan of a search, as rows of text (tests show it uses the full-text index)."""
        sql, params = self.statement(expression, scope, before, limit, timeout)
        if self._sqlite:
            sql = "EXPLAIN QUERY PLAN " + sql
        else:
            sql = "EXPLAIN " + sql.split(" FOR ", 1)[1]
            params = params[1:]
        with self._store.cursor() as cur:
            cur.execute(sql, params)
            return [tuple(str(c) for c in row) for row in cur.fetchall()]
