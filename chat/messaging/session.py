"""One client's life on /ws/<name>: welcome and history, commands in, events out, presence on the way out; and the
rate-limited session an admitted client gets."""
import dataclasses
import logging
import math
import time

from chat.accounts.serverbans import BanRefused
from chat.ratelimit import TokenBucket
from chat.websocket import frames
from chat.messaging.protocol import (
    CURRENT,
    GENERAL,
    HELP_TEXT,
    Conversation,
    Conversations,
    Delete,
    Edit,
    Help,
    History,
    Members,
    ProtocolError,
    React,
    ServerBan,
    Read,
    Reply,
    RoomCommand,
    Rooms,
    SendDirect,
    SendGroup,
    Search,
    SetRoom,
    Typing,
    Who,
    ack_json,
    encode_event,
    error_event,
    parse_inbound,
    ref_of,
    with_ref,
)
from chat.messaging.history import send_history
from chat.store import StoreUnavailable

log = logging.getLogger("chat.session")

# What a welcome says it left out when the store was down at the connect (its history is general's, from memory).
PARTIAL = ["directs", "conversations"]

# Live messages held during a long history outgrew the send queue; the client resumes with ?since=.
CLOSE_HELD_OVERFLOW = frames.CLOSE_POLICY_VIOLATION
HELD_OVERFLOW_REASON = "too many live messages while sending history: reconnect with ?since=LAST_ID"


class ChatSession:
    __slots__ = (
        "service", "user", "conn", "since", "deliver", "_held", "_held_bytes", "_held_ids", "_history_sent", "_parse_options",
        "_typing", "room", "address", "_welcomed",
    )

    def __init__(self, service, user, conn, since=None, address=None):
        self.service = service
        self.address = address  # the client's address (room creations are throttled per address)
        self.user = user
        self.conn = conn
        self.since = since
        # The hub calls deliver(frame, message_id) for every message: until the connect-time history is sent it
        # holds them (so nothing arrives twice or out of order), then it is the connection's own send_frame.
        self._held = []
        self._held_bytes = 0
        self._held_ids = None  # a set once a held message has an id
        self._history_sent = False
        self._welcomed = False  # the welcome's online list is read: presence events count from then on
        self._typing = None  # conversation key -> when this connection's last typing notice was forwarded (made at the first)
        self.room = GENERAL  # where plain text goes (/room #r)
        self.deliver = self._hold
        self._parse_options = _parse_options(service.settings)

    def _hold(self, frame, message_id=None):
        held = self._held
        held.append((message_id, frame))
        self._held_bytes += len(frame)
        if message_id is not None:
            if self._held_ids is None:
                self._held_ids = set()
            self._held_ids.add(message_id)
        settings = self.service.settings
        if len(held) > settings.send_queue_messages or self._held_bytes > settings.send_queue_bytes:
            # The history is going out slower than messages arrive: what is held would not fit the send queue.
            log.info("closing %s: %s (%d messages, %d bytes held)", self.user, HELD_OVERFLOW_REASON, len(held), self._held_bytes)
            self._held, self._held_bytes, self._held_ids = [], 0, None
            self.deliver = _drop
            self.conn.close(CLOSE_HELD_OVERFLOW, HELD_OVERFLOW_REASON)

    def _send_after_since(self, frame, message_id=None):
        """deliver, for a client that saw more on another process than this one has delivered yet."""
        if message_id is None or message_id > self.since:
            self.conn.send_frame(frame)

    def deliver_presence(self, frame):
        """A presence event (chat/messaging/presence.py). Before the welcome's online list is read it is dropped: the
        list holds the change. Held, it would take a place in the send queue for nothing, and a connect that waits
        long for the database (a reconnect herd: tens of seconds) would be closed by a presence event every
        presence_batch_delay before its history went out."""
        if self._welcomed:
            self.deliver(frame)

    def send_event(self, event):
        self.conn.send_text(encode_event(event))

    def acknowledge(self, record, ref):
        self.service.counts.acks += 1
        self.conn.send_text(ack_json(record, ref))

    def refuse(self, record, ref):
        """The database refused a message this session sent: it is not stored and will never be acknowledged."""
        self.send_error("not_stored", "the database refused this message: it was not stored", ref)

    def send_error(self, code, message, ref=None):
        """An `error` event; one that cannot be encoded (it never should) goes out without its `ref` and detail."""
        try:
            text = encode_event(error_event(code, message, ref))
            text.encode("utf-8")
        except (UnicodeError, TypeError, ValueError):
            log.error("an error event for %s could not be encoded: %s", self.user, code)
            text = encode_event(error_event(code, "the request was refused"))
        self.conn.send_text(text)

    def run(self):
        service = self.service
        hub = service.hub
        first = hub.add(self)
        try:
            # The connect in a frame of its own: its history, listing and sets are not kept while the connection idles.
            self.conn.run(self._connect(first))
        finally:
            if hub.remove(self):
                if self._history_sent:  # else the offline directs it was not sent yet go to the next connection
                    service.user_left(self.user)
                service.presence_changed(self.user, False)

    def _connect(self, first):
        """Welcome, history and the messages held meanwhile; returns what handles the client's text from then on."""
        service = self.service
        partial = None
        try:
            try:
                last_seen = service.register_user(self.user)
                # Registered before the history query: anything newer is held above and released after it.
                history = service.connect_history(self.user, last_seen, self.since)
                conversations = service.conversations.listing(self.user)
            except StoreUnavailable as e:
                history, conversations, partial = service.history_from_memory(self.since), [], PARTIAL
                if history is None:
                    raise
                log.warning("connecting %s from memory: store unavailable: %s", self.user, e)
            self._welcomed = True  # before the list is read: a change after it comes as a presence event
            welcome = {"type": "welcome", "user": self.user, **service.online_page(), "help": HELP_TEXT, "conversations": conversations}
            if partial:
                welcome["partial"] = partial
            self.send_event(welcome)
            fields = {} if self.since is None else {"since": self.since, **history.fields}
            sent_held = set()
            sent = send_history(
                self.conn, _noting(history, self, sent_held), fields, self._frame_bytes, getattr(history, "tail", None)
            )
        except StoreUnavailable as e:
            log.warning("refusing %s: store unavailable: %s", self.user, e)
            self.deliver = _drop
            self.conn.close(frames.CLOSE_INTERNAL_ERROR, "store unavailable, try again")
            return _ignore
        if sent and self.conn.wait_sent():
            self._history_sent = partial is None  # a partial one did not send the directs missed: the next connect does
            self._release_held(sent_held)
        else:
            self._held = None
            self.deliver = _drop
        if first:
            service.presence_changed(self.user, True)
        return self.handle_text

    @property
    def _frame_bytes(self):
        return self.service.settings.history_frame_bytes

    def _release_held(self, already_sent):
        since = self.since if self.since is not None else -1
        for message_id, frame in self._held:
            if message_id is None or (message_id not in already_sent and message_id > since):
                self.conn.send_frame(frame)
        self._held = self._held_ids = None
        lagging = self.since is not None and self.service.delivery.lags_behind(self.since)
        self.deliver = self._send_after_since if lagging else self.conn.send_frame

    def handle_text(self, text):
        try:
            command = parse_inbound(text, **self._parse_options)
            kind = type(command)
            if kind is SendGroup:
                room = self._room(command.room)
                room = None if room == GENERAL else room
                self.service.post(self, command.msg, None, command.ref, room, command.reply_to, command.client_id)
            elif kind is SendDirect:
                self.service.post(self, command.msg, command.to, command.ref, reply_to=command.reply_to, client_id=command.client_id)
            elif kind is Edit:
                self.service.lifecycle.edit(self, command)
            elif kind is Delete:
                self.service.lifecycle.delete(self, command)
            elif kind is React:
                self.service.lifecycle.react(self, command)
            elif kind is Reply:
                self.service.reply(self, command)
            elif kind is History and command.since is not None:
                page = self.service.replay_page(self.user, command.since, command.limit)
                try:
                    send_history(self.conn, page, with_ref({"since": command.since, **page.fields}, command.ref), self._frame_bytes)
                except StoreUnavailable:
                    self.send_event(error_event("store_unavailable", "the message store is not answering; try again", command.ref))
            elif kind is History:
                room = None if command.with_user is not None else self._room(command.room)
                if room == GENERAL:
                    room = None
                elif room is not None:
                    self.service.rooms.readable(self.user, room, command.ref)
                window = self.service.history_window(self.user, command.limit, command.before, command.with_user, room)
                fields = {"with": command.with_user, "room": room, "before": command.before, "more": window.count == command.limit}
                fields = with_ref({k: v for k, v in fields.items() if v is not None}, command.ref)
                # Waits for the connection to send each event: this client's next command is read after the reply.
                try:
                    send_history(self.conn, window, fields, self._frame_bytes)
                except StoreUnavailable:  # part of the reply may have gone: the ref says which request failed
                    self.send_event(error_event("store_unavailable", "the message store is not answering; try again", command.ref))
            elif kind is RoomCommand:
                self.service.rooms.act(self, command)
                if command.action == "leave" and self.room == command.room:
                    self.room = GENERAL
            elif kind is Typing:
                if self._typing is None:
                    self._typing = {}
                self.service.conversations.typing(self, self._resolved(command), self._typing)
            elif kind is Read:
                self.service.conversations.mark_read(self, self._resolved(command))
            elif kind is Rooms:
                rooms, more = self.service.rooms.listing(self.user)
                self.send_event(with_ref({"type": "rooms", "rooms": rooms, "more": more}, command.ref))
            elif kind is Members:
                room = self._room(command.room)
                members, more = self.service.rooms.members(self.user, room, command.ref)
                self.send_event(with_ref({"type": "members", "room": room, "members": members, "more": more}, command.ref))
            elif kind is SetRoom:
                self._set_room(command)
            elif kind is Conversations:
                listing = self.service.conversations.listing(self.user)
                self.send_event(with_ref({"type": "conversations", "conversations": listing}, command.ref))
            elif kind is Who:
                room = None if command.room is None else self._room(command.room)
                if room is None or room == GENERAL:
                    event = {"type": "who", **self.service.online_page(command.after)}
                else:
                    event = {"type": "who", "room": room, "online": self.service.rooms.online_in(self.user, room, command.ref)}
                self.send_event(with_ref(event, command.ref))
            elif kind is Search:
                self.send_event(self.service.search.search(self.user, command))
            elif kind is Help:
                self.send_event(with_ref({"type": "help", "text": HELP_TEXT}, command.ref))
            elif kind is ServerBan:
                self._server_ban(command)
        except ProtocolError as e:
            self.send_error(e.code, e.message, e.ref)
        except StoreUnavailable:
            self.send_error("store_unavailable", "the message store is not answering; try again")
        except Exception:
            log.exception("error handling a message from %s", self.user)
            self.send_error("internal", "the server failed to handle that message")


    def _room(self, room):
        """A command's room with CURRENT resolved to this connection's current room."""
        return self.room if room == CURRENT else room

    def _resolved(self, command):
        """A read or typing command with its CURRENT room resolved."""
        if command.conversation.room != CURRENT:
            return command
        return dataclasses.replace(command, conversation=Conversation(room=self.room))

    def _server_ban(self, command):
        bans = self.service.server_bans
        try:
            if command.ban:
                bans.ban(self.user, command.user, command.reason)
            else:
                bans.unban(self.user, command.user)
        except BanRefused as e:
            raise ProtocolError(e.code, e.message, command.ref) from None
        self.send_event(with_ref({"type": "server_ban" if command.ban else "server_unban", "user": command.user}, command.ref))

    def _set_room(self, command):
        if command.room is not None:
            if command.room != GENERAL:
                self.service.rooms.member_room(self.user, command.room, command.ref)
            self.room = command.room
        topic = "" if self.room == GENERAL else getattr(self.service.rooms.directory.get(self.room), "topic", "")
        self.send_event(with_ref({"type": "room", "room": self.room, "topic": topic}, command.ref))


def _noting(records, session, sent_held):
    """`records`, noting in `sent_held` those also held to be delivered live (they must not go out twice)."""
    for record in records:
        held_ids = session._held_ids  # made by the first held message, perhaps while the history is going out
        if held_ids is not None and record.id in held_ids:
            sent_held.add(record.id)
        yield record


_shared_options = (None, None)


def _parse_options(settings):
    """parse_inbound's options from `settings`: one dict for every session of a server, not one each."""
    global _shared_options
    if _shared_options[0] is not settings:
        options = dict(
            max_name_length=settings.max_name_length,
            default_history=settings.history_on_connect,
            max_history=settings.max_history_page,
            max_topic_length=settings.max_topic_length,
        )
        _shared_options = (settings, options)
    return _shared_options[1]


def _drop(frame, message_id=None):
    return False


def _ignore(text):
    return None


CLOSE_RATE_LIMITED = frames.CLOSE_POLICY_VIOLATION
RATE_LIMITED_REASON = "rate limit exceeded"


class GuardedSession(ChatSession):
    """A ChatSession admitted by check_handshake: rate-limited, and closable through its Admission."""

    __slots__ = ("admission", "_bucket", "_strikes")

    def __init__(self, service, user, conn, since, admission, address=None):
        super().__init__(service, user, conn, since, address)
        self.admission = admission
        # Both buckets are made when first needed (a bucket nobody took from is full): an idle connection has neither.
        self._bucket = None
        # Refused messages use up strikes, one coming back per second; a client that keeps going gets 1008.
        self._strikes = None
        admission.attach(self)

    def send_event(self, event):
        if event.get("type") == "welcome":
            if self.admission.resume is not None:
                event = {**event, "resume": self.admission.resume}  # the guest's proof that the name is still its own
            elif self.admission.admin:
                event = {**event, "admin": True}  # a hint for the page: every action is still checked when asked
        ChatSession.send_event(self, event)

    def run(self):
        try:
            ChatSession.run(self)
        finally:
            self.admission.release()

    def handle_text(self, text):
        now = time.monotonic()
        settings = self.service.settings
        if self._bucket is None:
            self._bucket = TokenBucket(settings.rate_limit, settings.rate_burst, now)
        wait = self._bucket.take(now)
        if not wait:
            return ChatSession.handle_text(self, text)
        self.service.counts.rate_limited += 1
        if self._strikes is None:
            self._strikes = TokenBucket(1.0, settings.rate_limit_strikes, now)
        if self._strikes.take(now):
            log.info("closing %s: %s", self.user, RATE_LIMITED_REASON)
            self.conn.close(CLOSE_RATE_LIMITED, RATE_LIMITED_REASON)
            return None
        event = error_event("rate_limited", "too many messages: slow down; this one was not sent", ref_of(text))
        event["retry_after"] = math.ceil(wait * 1000) / 1000
        self.send_event(event)
        return None
