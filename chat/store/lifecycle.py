"""The message lifecycle in the database: what an edit, delete or reaction event does in the transaction that stores it
(`Effects`), and the queries its rules and history read (`LifecycleQueries`): edit counts, reaction keys, and the
current state of a page of messages (edited, deleted, reactions, the quote of what a reply answers).

An edit's text replaces its message's body (the edit row keeps it too, for ?since= replays); a delete empties the
message's body and those of its edits, drops its reactions, and deletes the file it carries (its bytes go, GET /files/ID
answers 410, and the server's stored total is counted down). A message whose body is empty was deleted.

No import of chat.store here: chat/store/__init__.py imports this module (Effects) for its insert path."""
from chat.records import LIFECYCLE_KINDS, reaction_details

QUOTE_LENGTH = 100  # characters of the answered message a reply's quote shows (live and in history)


def quote_of(sender, body):
    """The quote a reply shows of the message it answers, from its sender and current text."""
    return {"deleted": True} if body == "" else {"user": sender, "msg": body[:QUOTE_LENGTH]}


class Effects:
    """The statements each lifecycle event runs after the batch holding it is inserted, in the same transaction."""

    def __init__(self, dialect):
        q = dialect.sql
        self._body_of = q("SELECT body, attachment_id FROM messages WHERE id = ?")
        self._set_body = q("UPDATE messages SET body = ? WHERE id = ?")
        self._erase_edits = q("UPDATE messages SET body = '' WHERE target_id = ? AND kind = 'edit'")
        self._drop_reactions = q("DELETE FROM reactions WHERE message_id = ?")
        self._add_reaction = q(f"{dialect.insert_ignore} INTO reactions (message_id, user, emoji, event_id) VALUES (?, ?, ?, ?)")
        self._remove_reaction = q("DELETE FROM reactions WHERE message_id = ? AND user = ? AND emoji = ?")
        self._free_total = q(
            "UPDATE upload_totals SET bytes = bytes - (SELECT size + COALESCE(LENGTH(thumbnail), 0) FROM attachments "
            "WHERE id = ? AND deleted_ms IS NULL) WHERE id = 1 AND EXISTS (SELECT 1 FROM attachments WHERE id = ? AND deleted_ms IS NULL)"
        )
        self._drop_file = q("UPDATE attachments SET deleted_ms = ?, data = ?, thumbnail = NULL WHERE id = ? AND deleted_ms IS NULL")

    def apply(self, cur, records):
        """Run the effects of the lifecycle events among `records` (stored, with their ids), in id order."""
        for record in records:
            if record.kind in LIFECYCLE_KINDS and record.target_id is not None:
                self._apply(cur, record)

    def _apply(self, cur, record):
        target = record.target_id
        cur.execute(self._body_of, (target,))
        row = cur.fetchone()
        gone = row is None or row[0] == ""
        if record.kind == "delete":
            cur.execute(self._set_body, ("", target))
            cur.execute(self._erase_edits, (target,))
            cur.execute(self._drop_reactions, (target,))
            if row is not None and row[1] is not None:
                cur.execute(self._free_total, (row[1], row[1]))
                cur.execute(self._drop_file, (record.created_ms, b"", row[1]))
        elif record.kind == "edit":
            # An edit that lost a race with the message's deletion (another process) keeps no text either.
            cur.execute(self._set_body, ("", record.id) if gone else (record.body, target))
        elif not gone:
            key, op = reaction_details(record.body)
            if op == "add":
                cur.execute(self._add_reaction, (target, record.sender, key, record.id))
            elif op == "remove":
                cur.execute(self._remove_reaction, (target, record.sender, key))


class LifecycleQueries:
    """`store` is a chat.store.Store."""

    def __init__(self, store):
        self._store = store
        q = store.dialect.sql
        self._q_edits = q("SELECT id FROM messages WHERE target_id = ? AND kind = 'edit'")
        self._q_keys = q("SELECT DISTINCT emoji FROM reactions WHERE message_id = ?")

    def edit_ids(self, message_id):
        """The ids of the stored edits of message `message_id` (at most max_edits of them)."""
        with self._store.cursor() as cur:
            cur.execute(self._q_edits, (message_id,))
            return {int(row[0]) for row in cur.fetchall()}

    def reaction_keys(self, message_id):
        """The distinct reaction keys message `message_id` carries now."""
        with self._store.cursor() as cur:
            cur.execute(self._q_keys, (message_id,))
            return {row[0] for row in cur.fetchall()}

    def current(self, records):
        """`records` (oldest first) with the `state` of each message that has changed since it was sent: one query for
        edits and reactions, one more for the messages the replies among them answer."""
        live = [r.id for r in records if r.kind is None and r.body != ""]
        answered = sorted({r.target_id for r in records if r.kind is None and r.target_id is not None and r.body != ""})
        if not live:
            return [_state(r, {"deleted": True}) if r.kind is None and r.body == "" else r for r in records]
        edited, reactions, quotes = {}, {}, {}
        marks = ", ".join("?" * len(live))
        sql = self._store.dialect.sql(
            f"SELECT target_id, NULL, NULL, MAX(created_ms) FROM messages WHERE target_id IN ({marks}) AND kind = 'edit' "
            f"GROUP BY target_id UNION ALL SELECT message_id, emoji, user, event_id FROM reactions WHERE message_id IN ({marks}) "
            "ORDER BY 4"
        )
        with self._store.cursor() as cur:
            cur.execute(sql, (*live, *live))
            for message_id, emoji, user, value in cur.fetchall():
                if emoji is None:
                    edited[int(message_id)] = int(value)
                else:
                    reactions.setdefault(int(message_id), {}).setdefault(emoji, []).append(user)
            if answered:
                marks = ", ".join("?" * len(answered))
                cur.execute(self._store.dialect.sql(f"SELECT id, sender, body FROM messages WHERE id IN ({marks})"), tuple(answered))
                for message_id, sender, body in cur.fetchall():
                    quotes[int(message_id)] = quote_of(sender, body)
        out = []
        for r in records:
            if r.kind is not None:
                out.append(r)
                continue
            if r.body == "":
                out.append(_state(r, {"deleted": True}))
                continue
            state = {}
            if r.id in edited:
                state["edited"] = edited[r.id]
            if r.id in reactions:
                state["reactions"] = reactions[r.id]
            if r.target_id is not None:
                state["quote"] = quotes.get(r.target_id, {"deleted": True})
            out.append(_state(r, state) if state else r)
        return out


def _state(record, state):
    return record._replace(state=state)
