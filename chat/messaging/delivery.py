"""How a posted message gets its id, is stored and reaches every connection in one process (no Redis).

Ids are claimed ahead in blocks, a message is delivered at once and acknowledged when committed. This is the
fast path. chat/cluster/delivery.py is the same interface for several processes over Redis.
"""
from chat.clock import now_ms
from chat.messaging.ids import IdAllocator
from chat.messaging.protocol import message_json
from chat.messaging.writer import MessageWriter, refusal, writer_options
from chat.records import ROOM_KINDS, MessageRecord
from chat.websocket import frames



class LocalDelivery:
    """`on_kick(kick)` closes the sockets a chat.records.Kick names in this process (chat/accounts/live.py); `rooms` is
    the RoomDirectory (chat/messaging/rooms.py) that room events are folded into and room records are routed by;
    `recent` the RecentGeneral (chat/messaging/recent.py) every general record is applied to as it is delivered, and
    `stream` the RecentStream (chat/messaging/stream.py) every record is."""

    applies_at_post = True  # a room event is in effect once posted (ids are assigned at post, delivery follows at once)

    def __init__(self, settings, store, hub, on_kick, rooms, recent=None, stream=None):
        self.settings = settings
        self.recent = recent
        self.stream = stream
        self.store = store
        self.hub = hub
        self.on_kick = on_kick
        self.rooms = rooms
        self.ids = IdAllocator(store, block_size=max(1000, settings.write_buffer))
        self.writer = None

    def start(self):
        self.rooms.load(self.store)
        self.ids.start()
        settings = self.settings
        self.writer = MessageWriter(
            self.store, settings.write_buffer, settings.write_batch, on_any_refused=self._forget, **writer_options(settings)
        )

    def post(
        self, session, recipient, body, ref, attachment=None, room=None, kind=None, subject=None, target_id=None,
        client_id=None, sent=None, state=None,
    ):
        """Store and deliver one message (or, `kind` set, room or lifecycle event; `target_id`: the message it changes,
        or that a message replies to) from `session` (anything with `user` and `acknowledge(record, ref)`); raises
        BufferFull or StoreUnavailable (nothing sent then). A message with a `client_id` comes with its `sent`
        (chat/messaging/resends.py Claim), told the outcome instead of the session."""
        record = MessageRecord(
            self.ids.next_id(), session.user, recipient, body, now_ms(), attachment, room, kind, subject, target_id,
            state, client_id,
        )
        refused = sent.refused if sent is not None else refusal(session, ref)
        general = recipient is None and room is None and self.recent is not None
        self.writer.submit(record, sent.stored if sent is not None else (lambda stored: session.acknowledge(stored, ref)), refused)
        if general:
            self.recent.apply(record)
        if self.stream is not None:
            self.stream.apply(record)
        room_event = kind in ROOM_KINDS
        if room_event:
            self.rooms.apply(record)  # in effect at once: the ids of later posts are higher
        frame = frames.encode_text(message_json(record))
        if room is not None:
            # A room event goes to the posting socket too: it says the change is made.
            self.to_room(record, frame, None if room_event else session)
            return record
        hub = self.hub
        if recipient is None:
            hub.broadcast(frame, record.id, exclude=session)
        else:
            hub.send_to_user(recipient, frame, record.id)
            hub.send_to_user(session.user, frame, record.id, exclude=session)
        if kind is None:
            hub.to_bots(record)
        return record

    def _forget(self, record):
        """Take a record the database refused out of what is kept in memory (no closure per post: what a post allocates
        and the writer holds until the commit is what the garbage collector promotes and scans)."""
        for kept in (self.recent, self.stream):
            if kept is not None:
                kept.discard(record.id)

    def to_room(self, record, frame, exclude=None):
        """Deliver a room record to its audience in this process (bots take part in general only)."""
        send = self.hub.send_to_user
        for user in self.rooms.audience(record):
            send(user, frame, record.id, exclude)

    def notify_room(self, room, frame, skip_user):
        """A frame that is no message (typing) for the members of a named room but `skip_user`, in every process."""
        self._notify_members(room, frame, skip_user)

    def _notify_members(self, room_name, frame, skip_user):
        room = self.rooms.get(room_name)
        if room is None:
            return
        send = self.hub.send_to_user
        for user in room.members:
            if user != skip_user:
                send(user, frame, None)

    def notify(self, user, skip_user, frame, exclude=None):
        """A frame for one user's connections (or, user None, everyone's but skip_user's), in every process."""
        self.hub.notify(user, skip_user, frame, exclude)

    @property
    def last_message_id(self):
        return self.ids.last_assigned

    def settled_below(self):
        """An id below which every id this process assigned is committed or never will be (the search index's bound:
        chat/store/search.py)."""
        oldest = self.writer.oldest_uncommitted_id() if self.writer is not None else None
        return oldest if oldest is not None else self.ids.last_assigned + 1

    def history_ceiling(self):
        """Connect-time history holds only messages below this id (None: no limit); later ones come live."""
        return None

    def lags_behind(self, since):
        """Whether a client that has seen up to `since` could still be sent older messages live here."""
        return False

    def wait_delivered(self, floor, timeout):
        """Whether every message up to `floor()` has been delivered here: ids are assigned at post and delivered then."""
        return True

    def is_online(self, user):
        return self.hub.is_online(user)

    def online(self):
        return self.hub.online()

    def online_page(self, after, limit):
        """(up to `limit` names online after `after`, whether more follow, how many are online), in every process:
        with Redis the hub's names are the cluster's (chat/cluster/presence.py)."""
        return self.hub.online_page(after, limit)

    def local_presence(self, user, online):
        """A user's first connection in this process opened, or its last one closed."""

    def kick(self, kick):
        """Close a user's sockets (a chat.records.Kick says which) wherever they are; the number closed here."""
        return self.on_kick(kick)

    def health(self):
        return {}

    def stop(self):
        pass
