"""Group commit: messages wait in a bounded buffer and are stored in batches; each is acknowledged once committed."""
import logging
from collections import deque

import gevent
from gevent.event import Event

from .store import StoreUnavailable

log = logging.getLogger("chat.writer")

RETRY_FIRST = 0.05
RETRY_MAX = 2.0


class BufferFull(Exception):
    """The write buffer is full (the database is down or too slow): the message is refused, not acknowledged."""


class MessageWriter:
    def __init__(self, store, capacity, batch_size):
        self._store = store
        self._capacity = capacity
        self._batch_size = batch_size
        self._pending = deque()  # (record, on_stored) not yet taken
        self._inflight = ()  # the batch being committed
        self._wake = Event()
        self._idle = Event()
        self._idle.set()
        self.healthy = True
        self.last_error = None
        self._greenlet = gevent.spawn(self._run)

    def __len__(self):
        return len(self._pending) + len(self._inflight)

    def submit(self, record, on_stored):
        """Queue `record`; `on_stored(record)` runs after its commit. Raises BufferFull."""
        if len(self._pending) + len(self._inflight) >= self._capacity:
            raise BufferFull()
        self._pending.append((record, on_stored))
        self._idle.clear()
        self._wake.set()

    def uncommitted(self):
        """Records accepted but not yet committed, oldest first."""
        return [r for r, _ in self._inflight] + [r for r, _ in self._pending]

    def flush(self, timeout=None):
        """Wait until everything accepted so far is committed; True if it was."""
        return self._idle.wait(timeout)

    def _run(self):
        pending = self._pending
        while True:
            self._wake.wait()
            self._wake.clear()
            while pending:
                n = min(len(pending), self._batch_size)
                batch = [pending.popleft() for _ in range(n)]
                self._inflight = batch
                self._commit([r for r, _ in batch])
                self._inflight = ()
                for record, on_stored in batch:
                    try:
                        on_stored(record)
                    except Exception:
                        log.exception("acknowledgement callback failed")
            self._idle.set()

    def _commit(self, records):
        delay = RETRY_FIRST
        while True:
            try:
                self._store.insert_messages(records)
            except StoreUnavailable as e:
                self.last_error = str(e)
                if self.healthy:
                    self.healthy = False
                    log.warning("database unavailable, buffering writes and retrying: %s", e)
                gevent.sleep(delay)
                delay = min(delay * 2, RETRY_MAX)
                continue
            if not self.healthy:
                self.healthy = True
                self.last_error = None
                log.warning("database is back; buffered writes are being stored")
            return
