"""Mentions: which names a message's text calls with `@name` (a pure rule, shared with the page's static/js/mentions.js),
and the `mentions` rows kept in the transaction that stores each message, edit or delete (`MentionRows`), so that
counting a user's unread mentions in a conversation is an index lookup, not a scan of message texts.

Only messages of general and of named rooms have mention rows (in a one-to-one every message is for the other party),
never for their own sender. Whether a row counts for its user is decided when counting (chat/store/conversations.py):
only in the conversations the user may see (general, the rooms they are in), and only above the name's floor.

No import of chat.store here: chat/store/__init__.py imports this module for its insert path."""
import re

# The user-name rule (chat/names.py) spelled for text: a mention is "@" and a name, not inside a word or an address.
_MENTION = re.compile(r"@([A-Za-z0-9][A-Za-z0-9_.-]*)")
_JOINERS = frozenset("_.-@")
LONGEST_NAME = 64  # the widest name any setting allows (max_name_length, and the column): longer tokens are no name


def _joins(char):
    """Whether `char` next to a token makes it part of a longer word (a letter or digit of any script, or _ . - @)."""
    return char.isalnum() or char in _JOINERS


def mentioned_names(text, limit):
    """The distinct names `text` mentions, in the order first written, at most `limit`. A mention is "@" followed by a
    name (letters a-z in any case, digits, "_", ".", "-", starting with a letter or digit), neither preceded nor
    followed by a letter, digit, "_", ".", "-" or "@"; dots ending it are the sentence's ("@bob." is bob). Names compare
    in lower case."""
    names = []
    if limit < 1 or "@" not in text:
        return names
    end_of_text = len(text)
    for match in _MENTION.finditer(text):
        start, end = match.span()
        if start > 0 and _joins(text[start - 1]):
            continue
        if end < end_of_text and _joins(text[end]):  # e.g. a letter of another script: "@bobé" is no mention of bob
            continue
        name = match.group(1).rstrip(".").lower()
        if len(name) > LONGEST_NAME or name in names:
            continue
        names.append(name)
        if len(names) >= limit:
            break
    return names


def conversation_key(room):
    """The key of the conversation a group message is in ("#general", "#ROOM"), as read markers name it."""
    return "#" + (room or "general")


class MentionRows:
    """The mention rows of a batch, written after it is inserted (and after its lifecycle effects), in its transaction.
    `limit`: max_mentions_per_message, the most names one message's text has rows for."""

    def __init__(self, dialect, limit):
        q = dialect.sql
        self._limit = limit
        self._add = q(f"{dialect.insert_ignore} INTO mentions (user, conversation, message_id) VALUES (?, ?, ?)")
        self._drop = q("DELETE FROM mentions WHERE message_id = ?")
        self._body_of = q("SELECT body FROM messages WHERE id = ?")

    def rows(self, record, message_id):
        """(user, conversation, message id) for each name `record`'s text mentions but its sender."""
        key = conversation_key(record.room)
        return [(name, key, message_id) for name in mentioned_names(record.body, self._limit) if name != record.sender]

    def apply(self, cur, records):
        """Rows for the messages among `records` (stored, with their ids), in id order: an edit replaces its message's
        rows by its new text's, a delete drops them."""
        waiting = []
        for record in records:
            if record.recipient is not None:
                continue  # a one-to-one: no mentions
            if record.kind is None:
                if "@" in record.body:
                    waiting.extend(self.rows(record, record.id))
            elif record.kind in ("edit", "delete") and record.target_id is not None:
                if waiting:  # the message may be earlier in this batch
                    cur.executemany(self._add, waiting)
                    waiting = []
                cur.execute(self._drop, (record.target_id,))
                if record.kind == "edit" and "@" in record.body and not self._deleted(cur, record.target_id):
                    waiting.extend(self.rows(record, record.target_id))
        if waiting:
            cur.executemany(self._add, waiting)

    def _deleted(self, cur, message_id):
        """Whether the message is gone (deleted, here or just before in this batch; an edit losing that race keeps none)."""
        cur.execute(self._body_of, (message_id,))
        row = cur.fetchone()
        return row is None or row[0] == ""
