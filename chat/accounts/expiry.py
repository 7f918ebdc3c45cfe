"""One sweeper greenlet per process that calls back when a deadline passes (sockets whose credential expires), from a heap."""
import heapq
import itertools
import logging
import time

import gevent
from gevent.event import Event

log = logging.getLogger("chat.expiry")


class ExpirySweeper:
    """Calls `on_expire(item)` once each item's wall-clock deadline (seconds since the epoch) has passed.

    One greenlet and one heap for every watched item instead of a timer per socket. Items that go away before
    their deadline are discarded in O(1) (their heap entry is emptied); the heap is rebuilt when most of it is
    empty, so churn of short-lived sockets with long-lived credentials cannot grow it without bound.
    """

    def __init__(self, on_expire):
        self._on_expire = on_expire
        self._heap = []  # [deadline, sequence, item or None]
        self._discarded = 0
        self._sequence = itertools.count()
        self._wake = Event()
        self._greenlet = None

    def __len__(self):
        return len(self._heap) - self._discarded

    @property
    def heap_size(self):
        """Entries held, emptied ones included: what the watched sockets cost in memory."""
        return len(self._heap)

    def watch(self, deadline, item):
        """Start watching `item`; returns the handle that discard() takes."""
        entry = [deadline, next(self._sequence), item]
        heapq.heappush(self._heap, entry)
        if self._greenlet is None:
            self._greenlet = gevent.spawn(self._run)
        if self._heap[0] is entry:
            self._wake.set()  # a new earliest deadline: the sweeper recomputes its sleep
        return entry

    def discard(self, entry):
        if entry[2] is None:
            return
        entry[2] = None
        self._discarded += 1
        if self._discarded > 64 and self._discarded * 2 > len(self._heap):
            self._heap = [e for e in self._heap if e[2] is not None]
            heapq.heapify(self._heap)
            self._discarded = 0

    def _run(self):
        while True:
            self._drop_discarded_head()
            timeout = max(0.0, self._heap[0][0] - time.time()) if self._heap else None
            self._wake.wait(timeout)
            self._wake.clear()
            now = time.time()
            while self._heap and self._heap[0][0] <= now:
                entry = heapq.heappop(self._heap)
                item, entry[2] = entry[2], None
                if item is None:
                    self._discarded -= 1
                    continue
                try:
                    self._on_expire(item)
                except Exception:  # one failing callback must not end the sweeper
                    log.exception("expiry callback failed")

    def _drop_discarded_head(self):
        while self._heap and self._heap[0][2] is None:
            heapq.heappop(self._heap)
            self._discarded -= 1

    def stop(self):
        if self._greenlet is not None:
            self._greenlet.kill(block=False)
            self._greenlet = None
