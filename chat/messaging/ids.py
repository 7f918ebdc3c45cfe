"""Message ids: claimed from the database in blocks so they are unique and increasing, and never reused after a crash."""
import gevent

from chat.store import StoreUnavailable


class IdAllocator:
    def __init__(self, store, block_size):
        self._store = store
        self._block_size = block_size
        self._next = 0
        self._end = 0
        self._spare = None  # a block claimed ahead of need: (start, end)
        self._claiming = None
        self.last_assigned = 0

    def start(self):
        start = self._store.reserve_ids(self._block_size)
        self._next, self._end = start, start + self._block_size
        # Every id below the block was assigned by an earlier run (stored, or lost with it): a leave recorded before
        # this run posts anything is after all of them, not after 0.
        self.last_assigned = start - 1

    def next_id(self):
        """The next id; raises StoreUnavailable only if the database has been down for a whole block."""
        if self._next >= self._end:
            if self._claiming is not None:
                self._claiming.join()
            if self._spare is None:
                self._claim()
            if self._spare is None:
                raise StoreUnavailable("no message ids left and the database is unavailable")
            self._next, self._end = self._spare
            self._spare = None
        elif self._spare is None and self._claiming is None and self._end - self._next < self._block_size // 2:
            self._claiming = gevent.spawn(self._claim)
        value = self._next
        self._next += 1
        self.last_assigned = value
        return value

    def _claim(self):
        try:
            start = self._store.reserve_ids(self._block_size)
            self._spare = (start, start + self._block_size)
        except StoreUnavailable:
            pass
        finally:
            self._claiming = None
