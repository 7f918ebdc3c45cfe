"""What becomes of a message after it is sent: edits, deletions, reactions and replies, with their rules (who may
change which message, the limits), each change posted as an event in the message stream addressed like the message it
changes (general: everyone; a direct: its two parties; a named room: its members). The database side, the effects
applied in the commit that stores each event and the current state of history pages, is chat/store/lifecycle.py.

A message the user may not see is `not_found`, exactly as one that does not exist (or was deleted). Server admins
(chat/admin.py grant-admin) delete any message of general and of every room, private ones included; one-to-one
conversations stay their two parties' own."""
from chat.messaging.protocol import ProtocolError
from chat.messaging.rooms import MODERATOR, RANK
from chat.messaging.writer import BufferFull
from chat.records import reaction_body, reaction_details
from chat.store import StoreUnavailable
from chat.store.accounts import AccountQueries
from chat.store.lifecycle import LifecycleQueries


def not_found(message_id, ref=None):
    return ProtocolError("not_found", f"no message {message_id}", ref)


class LifecycleService:
    """`delivery` posts the events (and its writer holds what is accepted but not committed yet); `rooms` is the
    RoomService (chat/messaging/roomservice.py)."""

    def __init__(self, settings, store, delivery, rooms):
        self.settings = settings
        self.store = store
        self.delivery = delivery
        self.rooms = rooms
        self.queries = LifecycleQueries(store)
        self._accounts = AccountQueries(store)

    def current(self, records):
        """History records in their current state (edited, deleted, reactions, quotes)."""
        return self.queries.current(records) if records else records

    # ---- what a user may see -------------------------------------------------------------------

    def message(self, user, message_id, ref=None, pending=None):
        """The message `message_id` if `user` may see it (and it is not deleted), else not_found; `not_member` for a
        message of a room the user may read but is not in."""
        pending = self._pending() if pending is None else pending
        record = self._live_message(message_id, pending)
        if record is None:
            raise not_found(message_id, ref)
        if record.room is not None:
            room = self.rooms.directory.get(record.room)
            if room is None or not room.visible_to(user) or (room.private and user not in room.members):
                raise not_found(message_id, ref)
            if user not in room.members:
                raise ProtocolError("not_member", f"you are not in #{room.name}: /join #{room.name} first", ref)
        elif record.recipient is not None:
            # Directs up to the name's floor were an earlier holder's (chat/accounts/holds.py).
            if user not in (record.sender, record.recipient) or record.id <= self.store.name_floor(user)[0]:
                raise not_found(message_id, ref)
        return record

    def check_reply(self, user, message_id, room, recipient, ref=None):
        """A reply from `user` to `room` (None: general) or `recipient` may answer `message_id` only in that conversation."""
        record = self.message(user, message_id, ref)
        if recipient is not None:
            same = {record.sender, record.recipient} == {user, recipient}
        else:
            same = record.recipient is None and record.room == room
        if not same:
            raise ProtocolError("bad_field", '"reply_to" must be a message of the same conversation', ref)
        return record

    def conversation_of(self, user, message_id, ref=None):
        """(room, recipient) a reply from `user` to `message_id` goes to: its room (None: general), or the other party."""
        record = self.message(user, message_id, ref)
        if record.recipient is None:
            return record.room, None
        return None, record.recipient if record.sender == user else record.sender

    # ---- the changes ---------------------------------------------------------------------------

    def edit(self, session, command):
        user, ref = session.user, command.ref
        pending = self._pending()
        record = self.message(user, command.of, ref, pending)
        if record.sender != user:
            raise ProtocolError("forbidden", "only its author may edit a message", ref)
        if record.attachment is not None:
            raise ProtocolError("forbidden", "a message that carries a file cannot be edited", ref)
        limit = self.settings.max_edits
        # Read after `pending`: an edit committed in between is in both, and counted once by its id (with several
        # processes a waiting edit has no id yet, and one committing in that moment counts twice: the limit holds).
        waiting = [r for r in pending if r.kind == "edit" and r.target_id == record.id]
        stored = self.queries.edit_ids(record.id)
        edits = len(stored | {r.id for r in waiting if r.id is not None}) + sum(1 for r in waiting if r.id is None)
        if edits >= limit:
            raise ProtocolError("forbidden", f"a message may be edited at most {limit} times", ref)
        self._post(session, record, "edit", command.msg, ref)

    def delete(self, session, command):
        self.post_delete(session, self.deletable(session.user, command.of, command.ref), command.ref)

    def deletable(self, user, message_id, ref=None):
        """The record of message `message_id` if `user` may delete it; else not_found (cannot see it), not_member or
        forbidden (sees it, may not delete it)."""
        try:
            record = self.message(user, message_id, ref)
        except ProtocolError as refusal:
            # A server admin deletes in rooms they are not in too (never a one-to-one: those are not theirs to see).
            record = self._live_message(message_id, self._pending())
            if refusal.code not in ("not_found", "not_member") or record is None or record.recipient is not None:
                raise
            if not self._accounts.is_admin(user):
                raise
        if record.sender != user and not self._moderates(user, record) and not self._accounts.is_admin(user):
            raise ProtocolError("forbidden", "only its author (or a moderator of its room, or an admin) may delete a message", ref)
        return record

    def post_delete(self, poster, record, ref=None):
        """Post the delete event of `record` (checked with `deletable`) from `poster` (a session, or anything with `user`
        and `acknowledge(record, ref)`: DELETE /files stands in for a socket so)."""
        self._post(poster, record, "delete", "", ref)

    def react(self, session, command):
        user, ref = session.user, command.ref
        pending = self._pending()
        record = self.message(user, command.of, ref, pending)
        if command.op == "add":
            keys = self.queries.reaction_keys(record.id)
            for r in pending:
                if r.kind == "reaction" and r.target_id == record.id:
                    key, op = reaction_details(r.body)
                    if op == "add":
                        keys.add(key)
            limit = self.settings.max_reaction_keys
            if command.key not in keys and len(keys) >= limit:
                raise ProtocolError("forbidden", f"a message carries at most {limit} different reactions", ref)
        self._post(session, record, "reaction", reaction_body(command.key, command.op), ref)

    # ---- helpers -------------------------------------------------------------------------------

    def _live_message(self, message_id, pending):
        """The record of message `message_id` (not an event), accepted or stored and not deleted; None if none."""
        record = next((r for r in pending if r.id == message_id), None)
        if record is None:
            rows = self.store.messages_with_ids([message_id])
            record = rows[0] if rows else None
        if record is None or record.kind is not None or record.body == "":
            return None
        if any(r.kind == "delete" and r.target_id == message_id for r in pending):
            return None
        return record

    def _pending(self):
        """Records accepted but not committed yet, here: with several processes they have no ids yet, but their edits and
        reactions count against the limits all the same (only a change on another process, in the moment before its
        commit, is not seen)."""
        return self.delivery.writer.waiting()

    def _moderates(self, user, record):
        if record.room is None:
            return False
        room = self.rooms.directory.get(record.room)
        return room is not None and room.rank(user) >= RANK[MODERATOR]

    def _post(self, session, record, kind, body, ref):
        """Post the event `kind` about `record`, addressed like it: its room, general, or (a direct) the other party."""
        recipient = None
        if record.recipient is not None:
            recipient = record.recipient if record.sender == session.user else record.sender
        try:
            self.delivery.post(session, recipient, body, ref, room=record.room, kind=kind, target_id=record.id)
        except (BufferFull, StoreUnavailable):
            raise ProtocolError("not_stored", "the server cannot store changes right now; nothing was changed", ref) from None
