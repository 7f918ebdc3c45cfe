"""Exactly-once sends in the database: the `sent_messages` table remembers, for `client_id_window`, which message each
(sender, client_id) stored, so a message sent again is answered with the original instead of being stored twice.

Its primary key (sender, client_id) is the arbiter between processes: the check runs in the transaction that stores the
batch, under the lock every storing transaction takes first (the chat_meta row, see Store.insert_assigning_ids).

No import of chat.store here: chat/store/__init__.py imports this module for its insert path."""
import hashlib

from chat.records import Duplicate

_KEYS_PER_QUERY = 200  # (sender, client_id) pairs looked up per SELECT: 400 parameters, under every SQLite's limit


def content_digest(record):
    """What a message says (where it goes, what it answers, its text), as 32 hex digits: a message sent again with the
    same client_id must say the same thing."""
    parts = (record.recipient or "", record.room or "", str(record.target_id or ""), record.body)
    return hashlib.sha256("\x1f".join(parts).encode("utf-8", "surrogatepass")).hexdigest()[:32]


class SentKeys:
    """The statements of the table, for the insert path (in its transaction) and for the process's own checks."""

    def __init__(self, dialect):
        q = dialect.sql
        self._q = q
        self._remember = q(
            "INSERT INTO sent_messages (sender, client_id, message_id, created_ms, digest) VALUES (?, ?, ?, ?, ?)"
        )
        self.find_one = q("SELECT message_id, created_ms, digest FROM sent_messages WHERE sender = ? AND client_id = ?")
        self.recent = q(
            "SELECT sender, client_id, message_id, created_ms, digest FROM sent_messages WHERE created_ms >= ? "
            "ORDER BY created_ms DESC LIMIT ?"
        )
        self.purge = q("DELETE FROM sent_messages WHERE created_ms < ?")

    def split(self, cur, records):
        """(fresh, answers): the records to store, and for each of `records` None (it is fresh) or the Duplicate it is
        answered with, because the database already holds its (sender, client_id). A key twice in `records` is a
        duplicate of the first: its answer is filled in by `settle` once the first has its id."""
        keyed = [r for r in records if r.client_id is not None]
        if not keyed:
            return records, [None] * len(records)
        stored = self._stored(cur, {(r.sender, r.client_id) for r in keyed})
        fresh, answers, first = [], [], {}
        for record in records:
            key = (record.sender, record.client_id)
            if record.client_id is None:
                answer = None
            elif key in stored:
                message_id, created_ms, digest = stored[key]
                answer = Duplicate(record, message_id, created_ms, digest)
            elif key in first:
                answer = first[key]  # the index in `fresh` of the one it repeats: settled below
            else:
                first[key] = len(fresh)
                answer = None
            answers.append(answer)
            if answer is None:
                fresh.append(record)
        return fresh, answers

    def settle(self, cur, stored_fresh, answers, records):
        """Remember the fresh records (stored, with ids) and return the outcome of each of `records`, in order: the
        stored record, or a Duplicate."""
        rows = [(r.sender, r.client_id, r.id, r.created_ms, content_digest(r)) for r in stored_fresh if r.client_id is not None]
        if rows:
            cur.executemany(self._remember, rows)
        fresh = iter(stored_fresh)
        outcomes = []
        for record, answer in zip(records, answers):
            if answer is None:
                outcomes.append(next(fresh))
            elif type(answer) is int:
                original = stored_fresh[answer]
                outcomes.append(Duplicate(record, original.id, original.created_ms, content_digest(original)))
            else:
                outcomes.append(answer)
        return outcomes

    def _stored(self, cur, keys):
        """{(sender, client_id): (message_id, created_ms, digest)} of `keys` the table holds."""
        found = {}
        keys = sorted(keys)
        for start in range(0, len(keys), _KEYS_PER_QUERY):
            chunk = keys[start:start + _KEYS_PER_QUERY]
            where = " OR ".join(["(sender = ? AND client_id = ?)"] * len(chunk))
            cur.execute(
                self._q(f"SELECT sender, client_id, message_id, created_ms, digest FROM sent_messages WHERE {where}"),
                tuple(v for key in chunk for v in key),
            )
            for sender, client_id, message_id, created_ms, digest in cur.fetchall():
                found[(sender, client_id)] = (int(message_id), int(created_ms), digest)
        return found
