"""Conversation state kept by the server: read markers, the conversation list with unread counts, and typing notices.

Read events and typing notices go to connections through `delivery.notify`, which reaches every process (with Redis);
markers live in the database (chat/store/conversations.py), so every process reads the same state.
"""
import time

from chat.messaging.protocol import (
    GENERAL,
    Conversation,
    ProtocolError,
    encode_event,
    message_event,
    read_event,
    typing_event,
)
from chat.store.conversations import ConversationQueries, direct_key, room_key
from chat.store.lifecycle import LifecycleQueries
from chat.websocket import frames

TYPING_KEYS_KEPT = 64  # conversations whose last typing time one connection remembers; older entries are forgotten


def _named(room):
    """A named room, or None for general (or a one-to-one)."""
    return None if room is None or room == GENERAL else room


def _key(conversation):
    if conversation.room is not None:
        return room_key(conversation.room)
    return direct_key(conversation.with_user)


class ConversationService:
    """`is_known(name)`: whether a user ever connected (ChatService.is_known); `delivery.notify(user, skip_user, frame)`
    hands a frame to one user's connections, or to everyone but `skip_user`, in every process; `rooms` (the
    RoomService) says who is in a named room."""

    def __init__(self, settings, store, delivery, is_known, rooms):
        self.settings = settings
        self.store = store
        self.queries = ConversationQueries(store)
        self._current = LifecycleQueries(store).current  # each `last` as it stands (edited, deleted, reactions)
        self.delivery = delivery
        self.is_known = is_known
        self.rooms = rooms

    def _check_party(self, user, conversation, ref):
        other = conversation.with_user
        if other is None:
            if conversation.room != GENERAL:
                self.rooms.member_room(user, conversation.room, ref)
            return
        if other == user:
            raise ProtocolError("bad_field", '"with" must name someone else', ref)
        if not self.is_known(other):
            raise ProtocolError("unknown_user", f"no user named {other!r} has ever connected", ref)

    # ---- read markers -------------------------------------------------------------------------

    def mark_read(self, session, command):
        """Move the sender's marker forward; every connection of the user hears of a move, the sender in any case."""
        user, conversation = session.user, command.conversation
        self._check_party(user, conversation, command.ref)
        room = _named(conversation.room)
        pending = self._pending(user, conversation.with_user, room, command.id)
        read_id, moved = self.queries.mark_read(user, _key(conversation), conversation.with_user, command.id, pending, room)
        if moved:
            frame = frames.encode_text(encode_event(read_event(conversation, read_id)))
            self.delivery.notify(user, None, frame, exclude=session)
        session.send_event(read_event(conversation, read_id, command.ref))

    def _pending(self, user, other, room, message_id):
        """The newest message at or below `message_id` in the conversation that is accepted but not committed yet (0:
        none): a client may mark read what it was delivered before the commit."""
        newest = 0
        for record in self.delivery.writer.uncommitted():
            if record.id is not None and newest < record.id <= message_id and record.in_conversation(user, other, room):
                newest = record.id
        return newest

    # ---- the conversation list ------------------------------------------------------------------

    def listing(self, user):
        """The user's conversations, newest activity first, as the `conversations` event and the welcome carry them."""
        settings = self.settings
        rooms = self.rooms.rooms_of(user)
        summaries = self.queries.summaries(user, settings.max_conversations, settings.max_unread_count, rooms)
        last_ids = [s.last_id for s in summaries if s.last_id is not None]
        lasts = {r.id: r for r in self._current(self.store.messages_with_ids(last_ids))}
        entries = []
        for s in summaries:
            entry = {"room": s.key[1:]} if s.key.startswith("#") else {"with": s.key[1:]}
            record = lasts.get(s.last_id)
            entry["last"] = None if record is None else message_event(record)
            entry["unread"] = s.unread
            if "room" in entry:  # a one-to-one has none: every message in it is for its reader
                entry["mentions"] = s.mentions
            entry["read"] = s.read_id
            entries.append(entry)
        return entries

    # ---- typing ---------------------------------------------------------------------------------

    def typing(self, session, command, last_forwarded):
        """Forward a typing notice unless this connection forwarded one for the conversation within typing_interval;
        `last_forwarded` is the connection's {conversation: monotonic time}."""
        user, conversation = session.user, command.conversation
        self._check_party(user, conversation, command.ref)
        now = time.monotonic()
        key = _key(conversation)
        interval = self.settings.typing_interval
        if now - last_forwarded.get(key, -interval) < interval:
            return  # clients repeat by design: dropped silently
        if len(last_forwarded) >= TYPING_KEYS_KEPT:
            for old in [k for k, t in last_forwarded.items() if now - t >= interval]:
                del last_forwarded[old]
        last_forwarded[key] = now
        ttl = self.settings.typing_ttl
        if conversation.with_user is None:
            frame = frames.encode_text(encode_event(typing_event(user, conversation, ttl)))
            if conversation.room == GENERAL:
                self.delivery.notify(None, user, frame)
            else:
                self.delivery.notify_room(conversation.room, frame, user)
        else:
            frame = frames.encode_text(encode_event(typing_event(user, Conversation(with_user=user), ttl)))
            self.delivery.notify(conversation.with_user, None, frame)
