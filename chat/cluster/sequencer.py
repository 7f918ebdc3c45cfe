"""Puts the messages a process learns of (its own commits, the bus, the database) back into id order, each once.

With several processes, message ids are assigned by the database at commit, with no gaps (see
Store.insert_assigning_ids). So every process can hand its clients every message in id order: a
message that arrives early waits here until the ones before it have arrived, and a client's
`?since=<last id it saw>` is exact whichever process it reconnects to.
"""
import time


class Sequencer:
    def __init__(self, next_id, clock=time.monotonic):
        self.next_id = next_id  # the first id not yet released
        self._waiting = {}  # id -> item, for ids above next_id
        self._waiting_since = None  # when the oldest wait began (clock time), None when nothing waits
        self._clock = clock

    def offer(self, message_id, item):
        """The items now ready to deliver, in id order (often just `item`); duplicates and stale ids give nothing."""
        if message_id < self.next_id or message_id in self._waiting:
            return ()
        if message_id != self.next_id:
            if not self._waiting:
                self._waiting_since = self._clock()
            self._waiting[message_id] = item
            return ()
        self.next_id += 1
        return self._release_run([item]) if self._waiting else [item]

    def gap(self):
        """(first missing id, first waiting id, seconds waited) when messages wait for missing ones, else None."""
        if not self._waiting:
            return None
        return self.next_id, min(self._waiting), self._clock() - self._waiting_since

    def skip_to(self, message_id):
        """Give up on the ids below `message_id` (the database does not have them): the items now ready, in order."""
        if message_id <= self.next_id:
            return []
        self.next_id = message_id
        waiting = self._waiting
        items = [waiting.pop(i) for i in sorted(i for i in waiting if i < message_id)]  # released, never dropped
        return self._release_run(items)

    def _release_run(self, ready):
        """`ready` plus the waiting items that now follow on from next_id without a gap."""
        waiting = self._waiting
        while self.next_id in waiting:
            ready.append(waiting.pop(self.next_id))
            self.next_id += 1
        self._waiting_since = self._clock() if waiting else None
        return ready

    def __len__(self):
        return len(self._waiting)
