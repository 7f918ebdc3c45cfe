"""Telling clients who came online and who left: changes within presence_batch_delay go out as one event."""
import gevent

from chat.messaging.protocol import encode_event
from chat.websocket import frames


class PresenceAnnouncer:
    """Batches presence checks: a storm of n joins is one event per window, not n*n frames.

    `is_online(user)` says who is online now: this process's hub, or (several processes) the cluster's view. The
    window is `batch_delay`, or longer when that would send more than `sends_per_second` events to the connections
    together: every event goes to every connection, each a system call of its own (events are far apart), so a herd
    of 3,000 reconnecting with a 50 ms window spent a third of the server's CPU writing presence."""

    def __init__(self, hub, batch_delay, is_online, sends_per_second):
        self.hub = hub
        self.batch_delay = batch_delay
        self.sends_per_second = sends_per_second
        self.is_online = is_online
        self._pending = set()
        self._announced = set()  # who clients were last told is online
        self._flusher = None

    def may_have_changed(self, user):
        """Queue a presence check for `user`."""
        self._pending.add(user)
        if self._flusher is None:
            self._flusher = gevent.spawn_later(self.window(), self._flush)

    def window(self):
        """Seconds the changes from now on are gathered before one event goes to every connection."""
        return max(self.batch_delay, self.hub.connection_count() / self.sends_per_second)

    def _flush(self):
        pending, self._pending = self._pending, set()
        self._flusher = None
        announced = self._announced
        is_online = self.is_online
        changes = []
        for user in sorted(pending):
            online = is_online(user)
            if (user in announced) != online:  # a join and leave inside one window cancel out
                changes.append({"user": user, "online": online})
                if online:
                    announced.add(user)
                else:
                    announced.discard(user)
        if len(changes) == 1:
            change = changes[0]
            frame = frames.encode_text(encode_event({"type": "presence", **change}))
            for client in self.hub.all_clients():
                if client.user != change["user"]:  # the user's own welcome already says it is online
                    client.deliver_presence(frame)
        elif changes:
            frame = frames.encode_text(encode_event({"type": "presence", "changes": changes}))
            for client in self.hub.all_clients():
                client.deliver_presence(frame)
