"""The newest records of the whole message stream, each message as it stands now, in memory: a ?since= replay from
what it holds needs no database query."""
import bisect

from chat.messaging.recent import with_reaction
from chat.records import LIFECYCLE_KINDS, ROOM_KINDS, MessageRecord
from chat.store.lifecycle import quote_of

# Records are kept as plain tuples: a tuple of strings, ints and None is untracked by the cyclic garbage collector at
# its first young collection, a NamedTuple never is, and every full collection would traverse the 20,000 kept records
# (measured alone: full collections 1.64 -> 1.44 s per 120,000 direct messages; see docs/performance.md).
_kept = tuple


def _record(kept):
    return tuple.__new__(MessageRecord, kept)


class RecentStream:
    """The newest `size` records of every conversation (messages, room events, lifecycle events), oldest first: loaded
    from the store at start, then kept current by the write path as RecentGeneral is (chat/messaging/recent.py):
    `apply` every record as it is delivered, `discard` what the database refused, `purged_below` what the retention
    purge deleted. Messages carry their current state (edited text, deletion, reactions, quotes) as history shows them;
    events are as stored (an edit of a deleted message keeps no text, as the commit's effects leave it).

    `covers(since)` says whether every record above `since` is here: then `after(since)` is what the store would
    give. One process only, like RecentGeneral."""

    def __init__(self, size):
        self.size = size
        self._ids = []  # sorted; the live part starts at _head (evicting from the front costs no memmove)
        self._head = 0
        self._by_id = {}
        self._replies = {}  # message id -> ids of the replies to it kept here
        self._edits = {}  # message id -> ids of its edit events kept here
        self._complete_above = None  # every record above this id is here (None: not loaded yet)
        self.horizon = 0  # the retention purge's mark (chat/store/retention.py): a replay from below it says "purged"

    def load(self, records, complete_above, horizon=0):
        """The store's newest records (oldest first, messages in their current state), every record above
        `complete_above` among them, and the purge's mark; what was applied meanwhile with a higher id stays."""
        self.horizon = horizon
        later = [_record(self._by_id[i]) for i in self._ids[self._head:] if records and i > records[-1].id]
        self._ids, self._head, self._by_id, self._replies, self._edits = [], 0, {}, {}, {}
        for record in list(records) + later:
            self._append(record)
        self._complete_above = complete_above
        self._evict()

    def covers(self, since):
        return self._complete_above is not None and since >= self._complete_above

    def after(self, since):
        """The records above `since`, oldest first (a copy: safe while records keep coming)."""
        ids = self._ids
        start = bisect.bisect_right(ids, since, self._head)
        by_id = self._by_id
        return [_record(by_id[i]) for i in ids[start:]]

    def __len__(self):
        return len(self._ids) - self._head

    # ---- kept current ---------------------------------------------------------------------------------------------

    def apply(self, record):
        if self._complete_above is None or record.id in self._by_id or record.id <= self._complete_above:
            return
        if record.kind in LIFECYCLE_KINDS and record.target_id is not None:
            record = self._change(record)
        self._insert(record)
        self._evict()

    def discard(self, message_id):
        kept = self._by_id.pop(message_id, None)
        if kept is None:
            return
        i = bisect.bisect_left(self._ids, message_id, self._head)
        del self._ids[i]
        self._unindex(_record(kept))

    def purged_below(self, mark):
        """The retention purge deleted every message below id `mark` (room events stay: they are the rooms' state)."""
        self.horizon = max(self.horizon, mark)
        for i in self._ids[self._head:bisect.bisect_left(self._ids, mark, self._head)]:
            if _record(self._by_id[i]).kind not in ROOM_KINDS:
                self.discard(i)

    def _insert(self, record):
        ids = self._ids
        if len(ids) > self._head and record.id < ids[-1]:  # ids are claimed in blocks: posts may come out of order
            ids.insert(bisect.bisect_left(ids, record.id, self._head), record.id)
            self._by_id[record.id] = _kept(record)
            self._index(record)
        else:
            self._append(record)

    def _append(self, record):
        self._ids.append(record.id)
        self._by_id[record.id] = _kept(record)
        self._index(record)

    def _index(self, record):
        if record.target_id is None:
            return
        if record.kind is None:
            self._replies.setdefault(record.target_id, []).append(record.id)
        elif record.kind == "edit":
            self._edits.setdefault(record.target_id, []).append(record.id)

    def _unindex(self, record):
        if record.target_id is None:
            return
        for index in (self._replies, self._edits):
            ids = index.get(record.target_id)
            if ids is not None and record.id in ids:
                ids.remove(record.id)
                if not ids:
                    del index[record.target_id]

    def _evict(self):
        excess = len(self) - self.size
        if excess <= 0:
            return
        ids, by_id = self._ids, self._by_id
        for i in ids[self._head:self._head + excess]:
            self._unindex(_record(by_id.pop(i)))
        self._complete_above = max(self._complete_above, ids[self._head + excess - 1])
        self._head += excess
        if self._head > max(1024, len(ids) // 2):
            del ids[:self._head]
            self._head = 0

    def _change(self, event):
        """Apply a lifecycle event to the message it is about; the event as it is kept (as the commit leaves it)."""
        target = event.target_id
        by_id = self._by_id
        kept = by_id.get(target)
        record = None if kept is None else _record(kept)
        gone = record is not None and record.body == ""
        if event.kind == "delete":
            if record is not None:
                by_id[target] = _kept(record._replace(body="", attachment=None, state={"deleted": True}))
            for edit_id in self._edits.get(target, ()):
                by_id[edit_id] = _kept(_record(by_id[edit_id])._replace(body=""))
            self._requote(target, {"deleted": True})
            return event._replace(body="")
        if event.kind == "edit":
            if gone:
                return event._replace(body="")  # it lost a race with the deletion: it keeps no text either
            if record is not None:
                by_id[target] = _kept(record._replace(body=event.body, state={**(record.state or {}), "edited": event.created_ms}))
            self._requote(target, quote_of(event.sender, event.body))
            return event
        if record is not None and not gone:
            by_id[target] = _kept(record._replace(state=with_reaction(record.state, event)))
        return event

    def _requote(self, target, quote):
        by_id = self._by_id
        for reply_id in self._replies.get(target, ()):
            reply = _record(by_id[reply_id])
            if reply.body != "":
                by_id[reply_id] = _kept(reply._replace(state={**(reply.state or {}), "quote": quote}))
