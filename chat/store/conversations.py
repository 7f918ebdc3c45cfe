"""Conversation queries (parameterised) on the message store's pool: read markers (table `read_markers`), each user's
one-to-one partners by latest activity, and unread counts bounded by a cap.

A conversation is keyed "#general" (a room) or "@NAME" (the one-to-one with NAME). Direct messages at or below a name's
floor belong to an earlier holder of the name (chat/accounts/holds.py): none of these queries lists, counts or returns them.
"""
from typing import NamedTuple, Optional

from chat.store import NAME_FLOOR

GENERAL_KEY = "#general"
_COUNTS_PER_STATEMENT = 100  # SQLite allows 500 terms in one compound SELECT

# Messages only: the edit, delete and reaction events (chat/store/lifecycle.py) are neither a conversation's last message
# nor unread; a named room's member and topic events are its last (not unread).
# (COALESCE: no planner takes the (kind, id) index for these; the conversation's own indexes serve them.)
_MESSAGE = "COALESCE(kind, '') = ''"
_MESSAGE_OR_ROOM_EVENT = "COALESCE(kind, '') NOT IN ('edit', 'delete', 'reaction')"
_GENERAL_NEWEST = f"SELECT MAX(id) FROM messages WHERE room IS NULL AND recipient IS NULL AND id <= ? AND {_MESSAGE}"
_ROOM_NEWEST = f"SELECT MAX(id) FROM messages WHERE room = ? AND recipient IS NULL AND id <= ? AND {_MESSAGE_OR_ROOM_EVENT}"
_PAIR = "((sender = ? AND recipient = ?) OR (sender = ? AND recipient = ?))"


def room_key(room):
    return "#" + room


def direct_key(other):
    return "@" + other


class Summary(NamedTuple):
    """One conversation as listed: its key ("#room" or "@name"), newest message id, the user's marker, unread count, and
    how many of the unread messages mention the user (general and named rooms only)."""

    key: str
    last_id: Optional[int]
    read_id: int
    unread: int
    mentions: int = 0


class ConversationQueries:
    """`store` is a chat.store.Store."""

    def __init__(self, store):
        self._store = store
        q = store.dialect.sql
        self._q_general_newest = q(_GENERAL_NEWEST)
        self._q_room_newest = q(_ROOM_NEWEST)
        self._q_direct_newest = q(f"SELECT MAX(id) FROM messages WHERE id <= ? AND id > {NAME_FLOOR} AND {_MESSAGE} AND {_PAIR}")
        self._q_marker_add = q(f"{store.dialect.insert_ignore} INTO read_markers (user, conversation, read_id) VALUES (?, ?, 0)")
        self._q_marker_raise = q("UPDATE read_markers SET read_id = ? WHERE user = ? AND conversation = ? AND read_id < ?")
        self._q_marker = q("SELECT read_id FROM read_markers WHERE user = ? AND conversation = ?")
        self._q_markers = q("SELECT conversation, read_id FROM read_markers WHERE user = ?")
        self._q_floor = q(f"SELECT {NAME_FLOOR}")
        # Both directions of the user's directs above the floor, newest partner first: the two indexes on messages
        # (sender, recipient, id) and (recipient, id) serve the two halves.
        self._q_partners = q(
            "SELECT other, MAX(id) AS last_id FROM ("
            f"SELECT recipient AS other, id FROM messages WHERE sender = ? AND recipient IS NOT NULL AND id > ? AND {_MESSAGE} "
            f"UNION ALL SELECT sender AS other, id FROM messages WHERE recipient = ? AND id > ? AND {_MESSAGE}"
            ") d GROUP BY other ORDER BY last_id DESC LIMIT ?"
        )
        self._general_count = f"SELECT 1 FROM messages WHERE room IS NULL AND recipient IS NULL AND {_MESSAGE} AND sender <> ? AND id > ? LIMIT ?"
        # Events (joins, topics) are in a room's stream but not counted as unread: only others' messages are.
        self._room_count = (
            "SELECT 1 FROM messages WHERE room = ? AND recipient IS NULL AND kind IS NULL AND sender <> ? AND id > ? LIMIT ?"
        )
        self._direct_count = f"SELECT 1 FROM messages WHERE sender = ? AND recipient = ? AND {_MESSAGE} AND id > ? LIMIT ?"
        # A lookup on the primary key of `mentions` (chat/store/mentions.py): no message text is read.
        self._mention_count = "SELECT 1 FROM mentions WHERE user = ? AND conversation = ? AND message_id > ? LIMIT ?"

    def mark_read(self, user, key, other, message_id, pending=0, room=None):
        """Move `user`'s marker in conversation `key` (`other`: the one-to-one's other party; `room`: a named room; both
        None for general) forward to `message_id`, but never past the newest message there at or below it (`pending`:
        such a message accepted but not committed yet, 0 for none). Returns (marker now, whether it moved)."""
        return self._store.transaction(self._mark, user, key, other, message_id, pending, room)

    def _mark(self, cur, user, key, other, message_id, pending, room):
        if room is not None:
            cur.execute(self._q_room_newest, (room, message_id))
        elif other is None:
            cur.execute(self._q_general_newest, (message_id,))
        else:
            cur.execute(self._q_direct_newest, (message_id, user, user, other, other, user))
        row = cur.fetchone()
        target = max(pending, 0 if row is None or row[0] is None else int(row[0]))
        moved = False
        if target > 0:
            cur.execute(self._q_marker_add, (user, key))
            cur.execute(self._q_marker_raise, (target, user, key, target))
            moved = cur.rowcount == 1
        cur.execute(self._q_marker, (user, key))
        row = cur.fetchone()
        return (0 if row is None else int(row[0])), moved

    def summaries(self, user, max_conversations, max_unread, rooms=()):
        """`general`, the named `rooms` `user` is in and the newest `max_conversations` one-to-one conversations of
        `user`, newest activity first (those without messages last), each with its unread count up to `max_unread`. A
        handful of statements, not one per conversation: partners, markers, newest ids, then the counts in compound
        SELECTs of up to 100."""
        with self._store.cursor() as cur:  # reads only: no commit to wait for, so no thread hop (as the store's reads)
            return self._summaries(cur, user, max_conversations, max_unread, sorted(rooms))

    def _room_newest(self, cur, rooms):
        """{room: newest id} of the named rooms (one grouped query per 100 rooms)."""
        newest = {}
        for start in range(0, len(rooms), _COUNTS_PER_STATEMENT):
            chunk = rooms[start : start + _COUNTS_PER_STATEMENT]
            marks = ", ".join("?" * len(chunk))
            cur.execute(
                self._store.dialect.sql(
                    f"SELECT room, MAX(id) FROM messages WHERE room IN ({marks}) AND recipient IS NULL AND {_MESSAGE_OR_ROOM_EVENT} "
                    "GROUP BY room"
                ),
                tuple(chunk),
            )
            newest.update((room, int(last)) for room, last in cur.fetchall())
        return newest

    def _summaries(self, cur, user, max_conversations, max_unread, rooms):
        cur.execute(self._q_floor, (user,))
        floor = int(cur.fetchone()[0])
        cur.execute(self._q_partners, (user, floor, user, floor, max_conversations))
        partners = [(direct_key(other), other, int(last)) for other, last in cur.fetchall()]
        cur.execute(self._q_markers, (user,))
        markers = {key: int(read) for key, read in cur.fetchall()}
        cur.execute(self._q_general_newest, (2**63 - 1,))
        row = cur.fetchone()
        general_last = None if row is None or row[0] is None else int(row[0])
        room_newest = self._room_newest(cur, rooms)
        listed = [(GENERAL_KEY, None, general_last)] + [(room_key(r), None, room_newest.get(r)) for r in rooms] + partners
        counts = []  # (index in listed, SQL, params) of conversations with anything past their marker
        mentioned = len(listed)  # index + this: the mention count of conversation `index`
        for index, (key, other, last) in enumerate(listed):
            read = markers.get(key, 0)
            if last is None or last <= read:
                continue
            if other is None:
                # Mentions above the name's floor only: those below it called an earlier holder of the name.
                counts.append((mentioned + index, self._mention_count, (user, key, max(read, floor), max_unread)))
            if key == GENERAL_KEY:
                counts.append((index, self._general_count, (user, read, max_unread)))
            elif other is None:
                counts.append((index, self._room_count, (key[1:], user, read, max_unread)))
            else:
                counts.append((index, self._direct_count, (other, user, max(read, floor), max_unread)))
        unread = self._count(cur, counts)
        summaries = [
            Summary(key, last, markers.get(key, 0), unread.get(index, 0), unread.get(mentioned + index, 0))
            for index, (key, _, last) in enumerate(listed)
        ]
        return sorted(summaries, key=lambda s: -1 if s.last_id is None else s.last_id, reverse=True)

    def _count(self, cur, counts):
        """{index: COUNT over a LIMITed subquery} for each (index, subquery, params), several per statement."""
        found = {}
        for start in range(0, len(counts), _COUNTS_PER_STATEMENT):
            chunk = counts[start : start + _COUNTS_PER_STATEMENT]
            sql = " UNION ALL ".join(f"SELECT {index}, COUNT(*) FROM ({query}) c{index}" for index, query, _ in chunk)
            params = tuple(p for _, _, chunk_params in chunk for p in chunk_params)
            cur.execute(self._store.dialect.sql(sql), params)
            found.update((int(index), int(count)) for index, count in cur.fetchall())
        return found
