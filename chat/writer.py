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
    def __init__(self, store, capacity, batch_size, assign_ids=False, after_commit=None):
        """With `assign_ids`, records come without ids and get them in the commit (several processes: see
        Store.insert_assigning_ids). `after_commit(stored)` runs once per batch, after the records' callbacks."""
        self._store = store
        self._insert = store.insert_assigning_ids if assign_ids else store.insert_messages
        self._after_commit = after_commit
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
        """Records accepted but not yet committed, oldest first (none when ids are assigned at commit: until
        then nobody has been sent them)."""
        return [r for r, _ in self._inflight if r.id is not None] + [r for r, _ in self._pending if r.id is not None]

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
                stored = self._commit([r for r, _ in batch])
                self._inflight = ()
                for record, (_, on_stored) in zip(stored, batch):
                    try:
                        on_stored(record)
                    except Exception:
                        log.exception("acknowledgement callback failed")
                if self._after_commit is not None:
                    try:
                        self._after_commit(stored)
                    except Exception:
                        log.exception("after-commit callback failed")
            self._idle.set()

    def _commit(self, records):
        delay = RETRY_FIRST
        while True:
            try:
                stored = self._insert(records)
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
            return records if stored is None else stored
