"""How a posted message gets its id, is stored and reaches every connection when several processes share the chat
over Redis (CHAT_REDIS_URL set).

The database assigns ids at commit, so ids follow commit order across every process with no gaps; each process
publishes what it committed once per batch, delivers what it and the others committed to its own connections in id
order (chat/cluster/sequencer.py), and keeps who is online across processes (chat/cluster/presence.py,
chat/cluster/bus.py). A message is delivered once it is stored. What the bus loses (Redis away, a lost publication)
is read from the database.
"""
import logging
import time

import gevent

from chat.clock import now_ms
from chat.cluster.bus import RedisBus
from chat.cluster.busformat import BusKick, BusMessage, BusNotice, BusPresence
from chat.cluster.sequencer import Sequencer
from chat.messaging.delivery import LocalDelivery
from chat.messaging.protocol import message_json
from chat.messaging.writer import MessageWriter, refusal, writer_options
from chat.records import ROOM_KINDS, Duplicate, MessageRecord
from chat.store import StoreUnavailable
from chat.websocket import frames

log = logging.getLogger("chat.delivery")

CATCH_UP_PAGE = 1000


class ClusterDelivery(LocalDelivery):
    """`presence` is who is online in every process (chat/cluster/presence.py); `presence_may_have_changed(user)` is
    told when another process reports a change (chat/messaging/presence.py); `on_kick` as for LocalDelivery."""

    applies_at_post = False  # a room event takes effect when it is delivered here in id order, after its commit

    def __init__(self, settings, store, hub, on_kick, rooms, instance_id, presence, presence_may_have_changed):
        super().__init__(settings, store, hub, on_kick, rooms)
        self.instance_id = instance_id
        self.cluster = presence
        self._presence_may_have_changed = presence_may_have_changed
        self.sequencer = None
        self._outgoing = []  # (stored record, posting session) of the batch being committed
        self._gap_wait = settings.bus_gap_wait
        self._catch_up_limit = settings.bus_catch_up_limit
        self._catching_up = None
        self.batches_received = 0  # bus batches from the other processes
        self.bus = RedisBus(
            settings.redis_url,
            settings.redis_prefix,
            instance_id,
            self,
            heartbeat=settings.presence_heartbeat,
            timeout=settings.presence_timeout,
            connect_timeout=settings.db_connect_timeout,
        )
        self._repairer = None

    def start(self):
        settings = self.settings
        self.sequencer = Sequencer(self.store.next_message_id())
        # Events from next_id on arrive over the bus or from catch-up, in order: the fold takes only those below it.
        self.rooms.load(self.store, below=self.sequencer.next_id)
        self.writer = MessageWriter(
            self.store, settings.write_buffer, settings.write_batch, assign_ids=True, after_commit=self._committed,
            **writer_options(settings),
        )
        self.bus.start()
        self._repairer = gevent.spawn(self._repair_loop)

    # ---- posting: ids at commit, delivery after it ----------------------------------------------

    def post(
        self, session, recipient, body, ref, attachment=None, room=None, kind=None, subject=None, target_id=None,
        client_id=None, sent=None, state=None,
    ):
        record = MessageRecord(
            None, session.user, recipient, body, now_ms(), attachment, room, kind, subject, target_id, state, client_id
        )

        def stored(stored_record):
            if type(stored_record) is Duplicate:  # stored before, under its client_id: answered, not delivered again
                sent.stored(stored_record)
            elif kind not in ROOM_KINDS:  # a message, or a lifecycle event (edit, delete, reaction)
                if sent is not None:
                    sent.stored(stored_record)
                else:
                    session.acknowledge(stored_record, ref)
                self._outgoing.append((stored_record, session, None))
            else:  # acknowledged once delivered here, when the change is in effect in this process
                self._outgoing.append((stored_record, None, lambda: session.acknowledge(stored_record, ref)))

        self.writer.submit(record, stored, refusal(session, ref) if sent is None else sent.refused)
        return record

    def _committed(self, records):
        outgoing, self._outgoing = self._outgoing, []
        entries = []
        for record, session, acknowledge in outgoing:
            frame = frames.encode_text(message_json(record))
            entries.append(
                BusMessage(
                    record.id, record.sender, record.recipient, frame, record.room, record.kind, record.subject,
                    record.body if record.kind in ROOM_KINDS else "", record.target_id,
                )
            )
            self._offer(record.id, (record, frame, session, acknowledge, True))
        self.bus.publish(entries)

    def _offer(self, message_id, item):
        for ready in self.sequencer.offer(message_id, item):
            self._deliver(ready)

    def _deliver(self, item):
        record, frame, exclude, acknowledge, posted_here = item
        if record.room is not None:
            if record.kind in ROOM_KINDS:
                self.rooms.apply(record)
            self.to_room(record, frame, exclude)
            if acknowledge is not None:
                acknowledge()
            return
        hub = self.hub
        if not posted_here:
            hub.relay(record.recipient, record.sender, frame, record.id)
            return
        if record.recipient is None:
            hub.broadcast(frame, record.id, exclude=exclude)
        else:
            hub.send_to_user(record.recipient, frame, record.id)
            hub.send_to_user(record.sender, frame, record.id, exclude=exclude)
        if record.kind is None:
            hub.to_bots(record)

    def _offer_record(self, record):
        frame = frames.encode_text(message_json(record))
        self._offer(record.id, (record, frame, None, None, False))

    @property
    def last_message_id(self):
        return self.sequencer.next_id - 1

    def settled_below(self):
        """None: the database assigns ids at commit, so they are committed in order (the search index's bound)."""
        return None

    def history_ceiling(self):
        # What this process has not delivered yet is left out of a new connection's history: it arrives live,
        # in order, after it (the session is in the hub before the history query).
        return self.sequencer.next_id

    def lags_behind(self, since):
        return since >= self.sequencer.next_id

    def wait_delivered(self, floor, timeout):
        """Wait until every message up to `floor()` has been delivered here (ids come at commit, over the bus); False
        if that did not happen within `timeout`."""
        floor = floor()
        deadline = time.monotonic() + timeout
        while self.last_message_id < floor:
            if time.monotonic() >= deadline:
                return False
            gevent.sleep(0.01)
        return True

    # ---- what the bus hands us -------------------------------------------------------------------

    def on_batch(self, origin, entries):
        self.batches_received += 1
        for entry in entries:
            kind = type(entry)
            if kind is BusMessage:
                record = MessageRecord(
                    entry.id, entry.sender, entry.recipient, entry.body, 0, None, entry.room, entry.kind, entry.subject,
                    entry.target_id,
                )
                self._offer(entry.id, (record, entry.frame, None, None, False))
            elif kind is BusPresence:
                if self.cluster.set_user(origin, entry.user, entry.online):
                    self._presence_may_have_changed(entry.user)
            elif kind is BusKick:
                self.on_kick(entry)
            elif kind is BusNotice:
                if entry.room is not None:
                    self._notify_members(entry.room, entry.frame, entry.skip_user)
                else:
                    self.hub.notify(entry.user, entry.skip_user, entry.frame)

    def on_instance(self, instance, users):
        changed = self.cluster.drop(instance) if users is None else self.cluster.replace(instance, users)
        for user in changed:
            self._presence_may_have_changed(user)

    def on_connected(self):
        self._start_catch_up()

    def on_disconnected(self):
        pass  # the repair loop reads the database meanwhile

    # ---- presence and kicks --------------------------------------------------------------------

    def is_online(self, user):
        return self.cluster.is_online(user)

    def online(self):
        return self.cluster.online()

    def local_presence(self, user, online):
        self.bus.user_online(user, online)

    def notify(self, user, skip_user, frame, exclude=None):
        # Not ordered with messages, and lost while Redis is away: read markers are in the database, typing is fleeting.
        self.bus.publish([BusNotice(user, skip_user, frame)])
        super().notify(user, skip_user, frame, exclude)

    def notify_room(self, room, frame, skip_user):
        self.bus.publish([BusNotice(None, skip_user, frame, room)])
        super().notify_room(room, frame, skip_user)

    def kick(self, kick):
        self.bus.publish([kick])
        return super().kick(kick)

    # ---- what the bus missed, from the database ---------------------------------------------------

    def _repair_loop(self):
        last_poll = time.monotonic()
        while True:
            gevent.sleep(self._gap_wait / 2)
            try:
                gap = self.sequencer.gap()
                if gap is not None and gap[2] >= self._gap_wait:
                    self._fill(gap[0], gap[1])
                elif not self.bus.connected and time.monotonic() - last_poll >= self._gap_wait:
                    last_poll = time.monotonic()
                    self._start_catch_up()
            except StoreUnavailable as e:
                log.warning("could not read missed messages from the database: %s", e)
            except Exception:
                log.exception("repairing the message stream failed; trying again")

    def _fill(self, first, below):
        """Messages first..below-1 never came over the bus: read them (ids below a committed one are committed)."""
        rows = self.store.messages_from(first, below - first, below)
        log.info("read %d messages (ids %d-%d) from the database that the bus did not bring", len(rows), first, below - 1)
        for record in rows:
            if record.id >= self.sequencer.next_id:
                for ready in self.sequencer.skip_to(record.id):  # ids the database does not have
                    self._deliver(ready)
                self._offer_record(record)
        if self.sequencer.next_id < below:
            for ready in self.sequencer.skip_to(below):
                self._deliver(ready)

    def _start_catch_up(self):
        if self._catching_up is None:
            self._catching_up = gevent.spawn(self._catch_up)

    def _catch_up(self):
        """Everything committed from next_id on, e.g. by the others while Redis was away, up to bus_catch_up_limit."""
        try:
            read = 0
            store = self.store
            while read < self._catch_up_limit:
                rows = store.messages_from(self.sequencer.next_id, min(CATCH_UP_PAGE, self._catch_up_limit - read))
                for record in rows:
                    if record.id >= self.sequencer.next_id:
                        for ready in self.sequencer.skip_to(record.id):
                            self._deliver(ready)
                        self._offer_record(record)
                read += len(rows)
                if len(rows) < CATCH_UP_PAGE:
                    break
            else:
                newest = store.next_message_id()
                missed = newest - self.sequencer.next_id
                if missed > 0:
                    log.warning(
                        "%d messages were committed by other processes while the bus was away, more than bus_catch_up_limit "
                        "(%d): they are stored, and clients get them from history or ?since=",
                        missed,
                        self._catch_up_limit,
                    )
                    for ready in self.sequencer.skip_to(newest):
                        self._deliver(ready)
            if read:
                log.info("delivered %d messages from the database that did not come over the bus", read)
        except StoreUnavailable as e:
            log.warning("could not catch up from the database: %s", e)
        finally:
            self._catching_up = None

    def health(self):
        return {
            "instance": self.instance_id,
            "bus": "redis",
            "bus_connected": self.bus.connected,
            "instances": len(self.cluster.instances()) + 1,
            "messages_waiting_for_order": len(self.sequencer),
        }

    def stop(self):
        if self._repairer is not None:
            self._repairer.kill(block=False)
        self.bus.stop()
