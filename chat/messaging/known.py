"""Which user names ever connected, and the last message each was present for: remembered here once seen, else asked
of the store (and of presence); with one process, new names and leaves are written to the store behind, in batches."""
import logging

import gevent

from chat.store import StoreUnavailable

log = logging.getLogger("chat.known")


class KnownUsers:
    """`store` keeps the users table; `delivery.is_online(name)` says who is online in any process.

    `write_behind` (one process, which alone moves last_seen_id): a name's last_seen is kept here once read, a connect
    of a name seen before reads nothing, and new names and leaves are written every `write_interval` seconds in one
    transaction (kept and tried again while the store is away). With several processes each leave is written at once
    and each connect reads the store: another process may have moved it.

    A last_seen kept here may be lower than the store's only where a name's floor raised it (chat/accounts/holds.py),
    and the store's direct queries never go below the floor: no earlier holder's message is sent for it."""

    def __init__(self, store, delivery, write_behind=False, write_interval=0.5):
        self.store = store
        self.delivery = delivery
        self.write_behind = write_behind
        self.write_interval = write_interval
        self._known = set()
        self._last_seen = {}  # write_behind: name -> the last message id it was present for
        self._new = set()  # write_behind: names not yet in the store
        self._left = {}  # write_behind: name -> last_seen not yet in the store
        self._flusher = None

    def register(self, name):
        """Remember a user on connect; returns the id of the last message they were present for."""
        if self.write_behind and name in self._last_seen:
            return self._last_seen[name]
        user = self.store.get_user(name)
        if user is None:
            if self.write_behind:
                self._new.add(name)
                self._wake()
            else:
                self.store.add_user(name)
            user = (name, 0)
        self._known.add(name)
        if self.write_behind:
            self._last_seen[name] = user[1]
        return user[1]

    def left(self, name, last_message_id):
        """`name`'s last connection here closed after message `last_message_id`."""
        if not self.write_behind:
            self.store.set_last_seen(name, last_message_id)
            return
        if last_message_id > self._last_seen.get(name, 0):
            self._last_seen[name] = last_message_id
            self._left[name] = last_message_id
            self._wake()

    def is_known(self, name):
        if name in self._known or self.delivery.is_online(name):
            return True
        if self.store.get_user(name) is not None:
            self._known.add(name)
            return True
        return False

    @property
    def unwritten(self):
        """How many names and leaves wait to be written."""
        return len(self._new) + len(self._left)

    def _wake(self):
        if self._flusher is None:
            self._flusher = gevent.spawn_later(self.write_interval, self._flush_later)

    def _flush_later(self):
        try:
            self.flush()
        except StoreUnavailable as e:
            log.warning("could not write %d users (trying again in %s s): %s", self.unwritten, self.write_interval, e)
        finally:
            self._flusher = None
            if self._new or self._left:
                self._wake()

    def flush(self):
        """Write the new names and leaves kept here, in one transaction; raises StoreUnavailable (they stay kept)."""
        new, left = self._new, self._left
        if not new and not left:
            return
        self._new, self._left = set(), {}
        try:
            self.store.write_users(sorted(new), sorted(left.items()))
        except BaseException:
            self._new |= new
            for name, seen in left.items():
                if seen > self._left.get(name, 0):
                    self._left[name] = seen
            raise
