"""Group commit: messages wait in a bounded buffer and are stored in batches; each is acknowledged once committed, or
refused to its sender when the database will not take it. A supervisor restarts the writer if it ever stops."""
import logging
import time
from collections import deque

import gevent
from gevent.event import Event

from chat.store import StoreUnavailable
from chat.tally import Buckets

log = logging.getLogger("chat.writer")

RETRY_FIRST = 0.05
RETRY_MAX = 2.0
BATCH_SIZE_BOUNDS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000)
COMMIT_SECONDS_BOUNDS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class BufferFull(Exception):
    """The write buffer is full (the database is down or too slow): the message is refused, not acknowledged."""


class BatchRefused(Exception):
    """The database answers but keeps failing this batch: something in it is what it refuses."""


class MessageWriter:
    def __init__(
        self, store, capacity, batch_size, assign_ids=False, after_commit=None, refusal_retries=3, restart_delay=1.0,
        on_any_refused=None,
    ):
        """With `assign_ids`, records come without ids and get them in the commit (several processes: see
        Store.insert_assigning_ids). `after_commit(stored)` runs once per commit, after the records' callbacks;
        `on_any_refused(record)` for every record the database refuses, before that record's own `on_refused`.
        A batch that fails while the database answers pings is retried `refusal_retries` times, then split until
        the records it refuses are alone; a stopped writer is restarted after `restart_delay` seconds."""
        self._store = store
        self._insert = store.insert_assigning_ids if assign_ids else store.insert_messages
        self._after_commit = after_commit
        self._on_any_refused = on_any_refused
        self._capacity = capacity
        self._batch_size = batch_size
        self._refusal_retries = refusal_retries
        self._restart_delay = restart_delay
        self._pending = deque()  # (record, on_stored, on_refused) not yet taken
        self._inflight = ()  # what is taken and not yet committed or refused
        self._wake = Event()
        self._idle = Event()
        self._idle.set()
        self.healthy = True
        self.refused = 0  # records the database refused since start
        self.accepted = 0  # records taken into the buffer since start
        self.overflowed = 0  # records refused as BufferFull
        self.stored = 0  # records committed
        self.batch_sizes = Buckets(BATCH_SIZE_BOUNDS)  # records per commit
        self.commit_seconds = Buckets(COMMIT_SECONDS_BOUNDS)  # how long each commit took, retries not included
        self.restarts = 0
        self.running = False
        self._greenlet = None
        self._start()

    def __len__(self):
        return len(self._pending) + len(self._inflight)

    def submit(self, record, on_stored, on_refused=None):
        """Queue `record`; `on_stored(record)` runs after its commit, or `on_refused(record)` if the database refuses
        it (it is then neither stored nor acknowledged). Raises BufferFull."""
        if len(self._pending) + len(self._inflight) >= self._capacity:
            self.overflowed += 1
            raise BufferFull()
        self._pending.append((record, on_stored, on_refused))
        self.accepted += 1
        self._idle.clear()
        self._wake.set()

    def uncommitted(self):
        """Records accepted but not yet committed, oldest first (none when ids are assigned at commit: until
        then nobody has been sent them)."""
        return [e[0] for e in self._inflight if e[0].id is not None] + [e[0] for e in self._pending if e[0].id is not None]

    def oldest_uncommitted_id(self):
        """The lowest id among the records accepted but not yet committed (in id order when ids are assigned at post),
        or None."""
        for queue in (self._inflight, self._pending):
            for entry in queue:
                if entry[0].id is not None:
                    return entry[0].id
        return None

    def waiting(self):
        """Every record accepted but not committed yet, with an id or (ids assigned at commit) without, oldest first."""
        return [e[0] for e in self._inflight] + [e[0] for e in self._pending]

    def flush(self, timeout=None):
        """Wait until everything accepted so far is committed or refused; True if it was."""
        return self._idle.wait(timeout)

    # ---- the supervisor ------------------------------------------------------------------------

    def _start(self):
        self._greenlet = gevent.spawn(self._run)
        self._greenlet.link(self._stopped)
        self.running = True
        if self._pending:
            self._wake.set()

    def _stopped(self, greenlet):
        """The writer greenlet ended, which it never should: put back what it held uncommitted and restart it."""
        self.running = False
        self.restarts += 1
        reason = greenlet.exception if greenlet.exception is not None else greenlet.value
        log.error("the message writer stopped (%s); restarting it in %.1f s", ascii(reason)[:300], self._restart_delay)
        if self._inflight:
            self._pending.extendleft(reversed(self._inflight))
            self._inflight = ()
        gevent.spawn_later(self._restart_delay, self._start)

    # ---- the writer ----------------------------------------------------------------------------

    def _run(self):
        pending = self._pending
        while True:
            self._wake.wait()
            self._wake.clear()
            # Let what the poster scheduled after submit() run first: the frames it queued for live delivery go out
            # before this commit, which for a small SQLite batch runs on this thread (chat/store/inline.py) rather
            # than in a worker thread while the loop carries on. One greenlet switch per batch, no system call.
            gevent.sleep(0)
            while pending:
                n = min(len(pending), self._batch_size)
                batch = [pending.popleft() for _ in range(n)]
                self._store_batch(batch)
            self._idle.set()

    def _store_batch(self, batch):
        """Commit `batch` and acknowledge it; if the database refuses it, commit its halves apart (and theirs) until
        each record it refuses is alone, refuse those to their senders, and acknowledge the rest."""
        parts = deque([batch])  # still to commit, in order, so acknowledgements keep the order of the ids
        self._inflight = batch
        while parts:
            part = parts.popleft()
            # The batch and each record alone get every retry; the halves in between get none, as a transient
            # failure there only splits them once more.
            retries = self._refusal_retries if part is batch or len(part) == 1 else 0
            try:
                stored = self._commit([entry[0] for entry in part], retries)
            except Exception as e:
                if len(part) == 1:
                    self._inflight = [entry for p in parts for entry in p]
                    self._refuse(part[0], e)
                else:
                    middle = len(part) // 2
                    parts.extendleft((part[middle:], part[:middle]))
                continue
            self._inflight = [entry for p in parts for entry in p]
            self._acknowledge(stored, part)

    def _acknowledge(self, stored, part):
        for record, (_, on_stored, _) in zip(stored, part):
            try:
                on_stored(record)
            except Exception:
                log.exception("acknowledgement callback failed")
        if self._after_commit is not None:
            try:
                self._after_commit(stored)
            except Exception:
                log.exception("after-commit callback failed")

    def _refuse(self, entry, error):
        record, _, on_refused = entry
        self.refused += 1
        # Neither the text nor the raw error goes to the log as is: it may hold what made the database refuse it.
        log.error(
            "the database refused a message from %s (%d characters), refused to its sender: %s",
            record.sender, len(record.body), ascii(str(error))[:300],
        )
        for callback in (self._on_any_refused, on_refused):
            if callback is not None:
                try:
                    callback(record)
                except Exception:
                    log.exception("refusal callback failed")

    def _commit(self, records, refusal_retries):
        """Insert `records`, retrying for as long as the database is unreachable. Raises when it answers but refuses
        them (`refusal_retries` + 1 times): BatchRefused, or at once whatever the store raised that is not
        StoreUnavailable."""
        delay = RETRY_FIRST
        refusals = 0
        while True:
            try:
                started = time.perf_counter()
                stored = self._insert(records)
                self.commit_seconds.observe(time.perf_counter() - started)
                self.batch_sizes.observe(len(records))
                self.stored += len(records)
            except StoreUnavailable as e:
                # Some refusals look like an outage (MariaDB reports a trigger's SIGNAL as an OperationalError):
                # a database that answers a ping while it keeps failing the same batch is refusing that batch.
                if self._store_answers():
                    refusals += 1
                    if refusals > refusal_retries:
                        raise BatchRefused(str(e)) from e
                elif self.healthy:
                    self.healthy = False
                    log.warning("database unavailable, buffering writes and retrying: %s", e)
                gevent.sleep(delay)
                delay = min(delay * 2, RETRY_MAX)
                continue
            if not self.healthy:
                self.healthy = True
                log.warning("database is back; buffered writes are being stored")
            return records if stored is None else stored

    def _store_answers(self):
        try:
            self._store.ping()
        except StoreUnavailable:
            return False
        return True


def writer_options(settings):
    """The MessageWriter keywords that come from the settings."""
    return dict(refusal_retries=settings.write_refusal_retries, restart_delay=settings.writer_restart_delay)


def refusal(poster, ref):
    """The `on_refused` for a message from `poster`: its `refuse(record, ref)` (a socket's session, an upload), if it
    has one (a bot has not: the refusal is only logged)."""
    refuse = getattr(poster, "refuse", None)
    return None if refuse is None else (lambda record: refuse(record, ref))
