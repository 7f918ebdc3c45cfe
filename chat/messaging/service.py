"""The chat's operations shared by all connections: post, history, presence, known users, shutdown."""
import logging
import time
from functools import partial
from itertools import islice, takewhile

import gevent
from gevent.event import Event

from chat.websocket import frames
from chat.messaging.conversations import ConversationService
from chat.messaging.history import Capped, NewestWindow, fetch_rows, forward, merged, primed
from chat.messaging.lifecycle import LifecycleService
from chat.messaging.protocol import ProtocolError
from chat.messaging.resends import template
from chat.store import StoreUnavailable
from chat.store.lifecycle import quote_of
from chat.store.retention import RetentionQueries
from chat.messaging.writer import BufferFull
from chat.tally import Counts

log = logging.getLogger("chat.service")


def _merge(db_records, uncommitted, keep):
    """DB rows plus not-yet-committed records matching `keep`, deduplicated by id, oldest first."""
    by_id = {r.id: r for r in db_records}
    for r in uncommitted:
        if keep(r):
            by_id[r.id] = r
    return [by_id[i] for i in sorted(by_id)]


# Messages whose current state one query reads when the recent stream is loaded at start.
STATE_CHUNK = 1000


def _in_replay(record, user, rooms, floor):
    """Whether a ?since= replay of `user`, a member of `rooms`, holds `record`: what the store's visible_since selects
    (general; the named rooms; the user's directs, and events about the user, above the name's floor)."""
    if record.room is None and record.recipient is None:
        return True
    if record.room is not None and record.room in rooms:
        return True
    if (record.room is None and (record.recipient == user or record.sender == user)) or record.subject == user:
        return record.id > floor()
    return False


def _read_once(read):
    """A function that returns read(), calling it the first time only."""
    value = []

    def once():
        if not value:
            value.append(read())
        return value[0]

    return once


class AttachmentPost:
    """Stands in for a socket as the poster of an upload's message: its acknowledgement, or the database's refusal
    (`refused`), sets `settled`."""

    __slots__ = ("user", "record", "refused", "settled")

    def __init__(self, user):
        self.user = user
        self.record = None  # as accepted; the stored one (with its id) once committed
        self.refused = False
        self.settled = Event()

    def acknowledge(self, record, ref):
        self.record = record
        self.settled.set()

    def refuse(self, record, ref):
        self.refused = True
        self.settled.set()


class ChatService:
    """`delivery`: this process alone (chat/messaging/delivery.py) or several over Redis (chat/cluster/delivery.py), one
    interface, chosen by the composition root (chat/app.py). `presence` announces who comes and goes
    (chat/messaging/presence.py); `rooms` is the RoomService (chat/messaging/roomservice.py); `known` the KnownUsers
    (chat/messaging/known.py); `server_bans` the ServerBans (chat/accounts/serverbans.py);
    `resends` the Resends (chat/messaging/resends.py: exactly-once sends); `search` the SearchService
    (chat/messaging/search.py); `reserved_names`: the bots' names, which nobody may connect or register as; `recent` the
    RecentGeneral (chat/messaging/recent.py) the delivery keeps current, which a connect's group history is read from
    (None: from the store); `stream` the RecentStream (chat/messaging/stream.py) it keeps too, which ?since= replays and
    a connect's missed directs are read from when it holds everything they need (None: from the store)."""

    def __init__(
        self, settings, store, hub, delivery, presence, rooms, known, server_bans, resends, search=None,
        reserved_names=frozenset(), recent=None, stream=None,
    ):
        self.settings = settings
        self.store = store
        self.hub = hub
        self.delivery = delivery
        self.counts = Counts()  # read by chat/metrics at scrape time
        self.presence = presence
        self.rooms = rooms
        self.reserved_names = reserved_names
        self.known = known
        self.server_bans = server_bans  # chat/accounts/serverbans.py
        self.resends = resends
        self.conversations = ConversationService(settings, store, delivery, self.is_known, rooms)
        self.lifecycle = LifecycleService(settings, store, delivery, rooms)
        self.search = search
        self.retention = RetentionQueries(store)
        self.recent = recent
        self.stream = stream

    def start(self):
        self.store.ensure_schema()
        self.delivery.start()
        if self.recent is not None:
            self.recent.load(self.history_page(None, self.recent.size))
        if self.stream is not None:
            self._load_stream()

    def _load_stream(self):
        size = self.stream.size
        rows = self.store.newest_records(size)
        current = []
        for start in range(0, len(rows), STATE_CHUNK):  # one IN list per chunk of messages
            current += self.lifecycle.current(rows[start:start + STATE_CHUNK])
        self.stream.load(current, 0 if len(rows) < size else rows[0].id - 1, self.retention.horizon())
        self.resends.start()

    @property
    def writer(self):
        return self.delivery.writer

    # ---- users ---------------------------------------------------------------------------

    def register_user(self, name):
        """Remember a user on connect; returns the id of the last message they were present for."""
        return self.known.register(name)

    def is_reserved(self, name):
        """A bot's name (running or not): nobody may connect or register as it."""
        return name in self.reserved_names

    def is_known(self, name):
        return self.known.is_known(name)

    def user_left(self, name):
        try:
            self.known.left(name, self.delivery.last_message_id)
        except StoreUnavailable as e:
            log.warning("could not record when %s left: %s", name, e)

    # ---- messages ------------------------------------------------------------------------

    def post(self, session, body, recipient=None, ref=None, room=None, reply_to=None, client_id=None):
        """Accept a message (to general, `recipient` or a named `room`; `reply_to`: the id of the message it answers
        there): deliver it live now, acknowledge it to `session` once committed. With a `client_id`, a message this
        user sent before under it is answered as it was (chat/messaging/resends.py), before any other check."""
        if client_id is None:
            return self._post(session, body, recipient, ref, room, reply_to)
        claim = self.resends.claim(session, template(session.user, client_id, body, recipient, room, reply_to), ref)
        if claim is None:
            return None
        try:
            return self._post(session, body, recipient, ref, room, reply_to, client_id, claim)
        except ProtocolError as e:
            claim.failed(e)
            raise
        except BaseException:
            claim.failed(ProtocolError("internal", "the server failed to send this message", ref))
            raise

    def _post(self, session, body, recipient, ref, room, reply_to, client_id=None, claim=None):
        sender = session.user
        if room is not None:
            self.rooms.member_room(sender, room, ref)
        if recipient is not None:
            if recipient == sender:
                raise ProtocolError("self_message", "you cannot send a direct message to yourself", ref)
            try:
                known = self.is_known(recipient)
            except StoreUnavailable:
                known = False
            if not known:
                raise ProtocolError("unknown_user", f"no user named {recipient!r} has ever connected", ref)
        state = None
        if reply_to is not None:
            answered = self.lifecycle.check_reply(sender, reply_to, room, recipient, ref)
            state = {"quote": quote_of(answered.sender, answered.body)}  # the live event quotes it, as history does
        try:
            return self.delivery.post(
                session, recipient, body, ref, room=room, target_id=reply_to, client_id=client_id, sent=claim, state=state
            )
        except (BufferFull, StoreUnavailable):
            raise ProtocolError("not_stored", "the server cannot store messages right now; yours was not sent", ref) from None

    def reply(self, session, command):
        """/reply: a message answering `command.of` in the conversation that message is in."""
        room, recipient = self.lifecycle.conversation_of(session.user, command.of, command.ref)
        return self.post(session, command.msg, recipient, command.ref, room, command.of)

    def online(self):
        """Everyone online, in this process or (with Redis) any other."""
        return self.delivery.online()

    def online_page(self, after=None):
        """A `max_online_listed` page of who is online after the name `after` (None: from the first), as the fields
        of a welcome or who event: O(log n + page), never everyone."""
        names, more, count = self.delivery.online_page(after, self.settings.max_online_listed)
        return {"online": names, "online_count": count, "online_more": more}

    def post_attachment(self, user, recipient, attachment, body):
        """Post the message that carries a stored file (chat/uploads/routes.py) like `post`, to the uploader's sockets too
        (the upload has no sending socket). Returns an AttachmentPost whose `settled` is set once it is stored or refused.
        Raises BufferFull or StoreUnavailable; the caller has checked `recipient`."""
        upload = AttachmentPost(user)
        upload.record = self.delivery.post(upload, recipient, body, None, attachment)
        return upload

    def history_page(self, user, limit, before=None, with_user=None, room=None):
        """A page of older messages (general, a named `room` the caller may read, or one conversation), oldest first."""
        uncommitted = self.writer.uncommitted()  # before the query: a record committing meanwhile is in one of the two
        if with_user is not None:
            rows = self.store.conversation_page(user, with_user, limit, before)
        elif room is not None:
            rows = self.store.room_page(room, limit, before)
        else:
            rows = self.store.group_page(limit, before)
        ceiling = before or 2**62
        floor = self.store.name_floor(user)[0] if uncommitted and with_user is not None else 0  # chat/accounts/holds.py
        merged = _merge(rows, uncommitted, lambda r: floor < r.id < ceiling and r.in_conversation(user, with_user, room))
        return self.lifecycle.current(merged[-limit:])  # each message as it stands now

    def history_window(self, user, limit, before=None, with_user=None, room=None):
        """What a history request is answered with: the newest `limit` messages below `before` (general, a named room the
        caller may read, or one conversation), oldest first, read from the store a few at a time
        (chat/messaging/history.py). Its `count` is known."""
        settings = self.settings
        chunk = fetch_rows(settings.history_frame_bytes, settings.max_message_size)
        page = partial(self.history_page, user, with_user=with_user, room=room)
        return NewestWindow(page, limit, before, chunk, settings.history_frame_bytes)

    def connect_history(self, user, last_seen_id, since=None):
        """What a new connection is sent: everything after `since`, or recent group messages plus unreceived directs.

        Oldest first, read from the store a few at a time as the caller consumes it (a client that does not read
        holds up one chunk, not its whole history); the first chunk is read at once, so a store failure raises here."""
        settings = self.settings
        chunk = fetch_rows(settings.history_frame_bytes, settings.max_message_size)
        limit = settings.max_replay
        # Taken before any query (see ChatSession.run). Without one (one process), messages accepted while the history
        # is read may be in it as well as held for live delivery: the session sends them once.
        ceiling = self.delivery.history_ceiling()
        if ceiling is None:
            ceiling = 2**63
        # Directs up to the name's floor were an earlier holder's (chat/accounts/holds.py). The store's queries leave them out;
        # the filters below see only records not committed yet, so the floor is read only when there are such records.
        floor = _read_once(lambda: self.store.name_floor(user)[0])
        if since is not None:
            return self._replay(user, since, limit, ceiling, floor, chunk)
        if self.recent is not None:
            self._purged_mark()
            group = iter(self.recent.newest(settings.history_on_connect))
        else:
            group = NewestWindow(partial(self.history_page, user), settings.history_on_connect, None, chunk, settings.history_frame_bytes)
        if self.stream is not None and self.stream.covers(last_seen_id):
            directs = islice(
                (r for r in self.stream.after(last_seen_id) if r.recipient == user and r.kind is None and r.id > floor()), limit
            )
            return primed(merged(group, directs))
        directs = forward(
            self._pager(
                lambda a, n: self.store.directs_to_since(user, a, n),
                lambda r: r.recipient == user and r.id > max(last_seen_id, floor()),
                ceiling,
            ),
            last_seen_id, limit, chunk,
        )
        return primed(takewhile(lambda r: r.id < ceiling, merged(group, directs)))

    def _purged_mark(self):
        """The retention purge's mark, read from the store (one row): what memory keeps drops what a purge deleted
        there, the server's own or `chat.admin purge` run beside it."""
        horizon = self.retention.horizon()
        for kept in (self.recent, self.stream):
            if kept is not None and horizon > kept.horizon:
                kept.purged_below(horizon)
        return horizon

    def history_from_memory(self, since):
        """What a connect is sent while the store is down: general's newest messages kept here, or None when there is
        nothing to give from memory (several processes keep none; a ?since= replay needs the store: it holds directs and
        rooms too, and a client must not move past what it was not sent)."""
        if self.recent is None or since is not None:
            return None
        return iter(self.recent.newest(self.settings.history_on_connect))

    def replay_page(self, user, since, limit):
        """A history request with "since": the next `limit` items after `since` that `user` may see, as a ?since= replay
        reads them (Capped: says where to go on when there are more)."""
        settings = self.settings
        chunk = fetch_rows(settings.history_frame_bytes, settings.max_message_size)
        ceiling = self.delivery.history_ceiling()
        floor = _read_once(lambda: self.store.name_floor(user)[0])
        return self._replay(user, since, limit, 2**63 if ceiling is None else ceiling, floor, chunk)

    def _replay(self, user, since, limit, ceiling, floor, chunk):
        """Everything after `since` that `user` may see, at most `limit` (one more is read to know whether there are
        more: the Capped result says so, and from where to go on)."""
        rooms = frozenset(self.rooms.rooms_of(user))  # as of now: later changes come live, after the history
        stream = self.stream
        if stream is not None and stream.covers(since):  # all of it in memory: the same records
            horizon = self._purged_mark()
            fields = {"purged": horizon} if since + 1 < horizon else {}
            visible = (r for r in stream.after(since) if _in_replay(r, user, rooms, floor))
            return Capped(primed(visible), limit, fields)
        # The retention purge (chat/store/retention.py) deleted what was older than its window below this id: a replay
        # from before it says so ("purged"), since what it can give from there is not everything that was sent.
        horizon = self.retention.horizon()
        fields = {"purged": horizon} if since + 1 < horizon else {}
        records = forward(
            self._pager(
                lambda a, n: self.store.visible_since(user, a, n, rooms),
                lambda r: r.id > since and r.visible_to(user, rooms) and ((r.recipient is None and r.subject != user) or r.id > floor()),
                ceiling,
            ),
            since, limit + 1, chunk,
        )
        return Capped(primed(takewhile(lambda r: r.id < ceiling, records)), limit, fields)

    def _pager(self, rows_after, keep, ceiling):
        """page(after_id, n): the next `n` stored rows after an id, with the records matching `keep` that are
        accepted but not committed yet among them (or, at the end of the table, up to `ceiling`), oldest first."""

        def page(after_id, n):
            uncommitted = self.writer.uncommitted()  # before the query, as in history_page
            rows = rows_after(after_id, n)
            below = rows[-1].id + 1 if len(rows) == n else ceiling
            return self.lifecycle.current(_merge(rows, uncommitted, lambda r: after_id < r.id < below and keep(r)))

        return page

    # ---- presence and life cycle ------------------------------------------------------------

    def presence_changed(self, user, online):
        """A user's first connection in this process opened (online) or its last one here closed."""
        self.delivery.local_presence(user, online)
        self.presence.may_have_changed(user)

    def health(self):
        try:
            self.store.ping()
            store_ok = True
        except StoreUnavailable:
            store_ok = False
        writer = self.writer
        problems = []  # why the status is "degraded"
        if not store_ok:
            problems.append("store unreachable")
        if not writer.running:
            problems.append("message writer not running (restarting)")
        elif not writer.healthy:
            problems.append("message writer retrying: the database does not answer")
        return {
            "status": "degraded" if problems else "ok",
            **({"degraded": problems} if problems else {}),
            "store": self.store.kind,
            "store_reachable": store_ok,
            "writer_running": writer.running,
            "writer_restarts": writer.restarts,
            "refused_writes": writer.refused,
            "pending_writes": len(writer),
            "connections": self.hub.connection_count(),  # sockets: bots are not connections
            "users_online": self.delivery.online_page(None, 0)[2],
            "client_ids_in_memory": len(self.resends),  # chat/messaging/resends.py: at most client_id_memory + those waiting
            "client_id_lookups": self.resends.store_lookups,
            **self.delivery.health(),
        }

    def shutdown(self, timeout):
        """Close every socket with 1001 and store everything accepted; True if it all finished in `timeout`."""
        deadline = time.monotonic() + timeout
        for bot in self.hub.bots():
            bot.stop()  # bots have no socket to close: they leave the hub here
        for client in self.hub.all_clients():
            client.conn.close(frames.CLOSE_GOING_AWAY, "server shutting down")
        flushed = self.writer.flush(max(0.0, deadline - time.monotonic()))
        while self.hub.connection_count() and time.monotonic() < deadline:
            gevent.sleep(0.05)
        self.delivery.stop()
        self.resends.stop()
        try:
            self.known.flush()  # the leaves of the sockets just closed
        except StoreUnavailable as e:
            log.warning("could not record who left: %s", e)
            flushed = False
        return flushed
