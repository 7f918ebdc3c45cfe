"""The newest messages of general as they stand now, in memory: a connect's group history without a database query."""
import bisect

from chat.records import LIFECYCLE_KINDS, reaction_details
from chat.store.lifecycle import quote_of


class RecentGeneral:
    """The newest `size` records of general (messages, oldest first), each in its current state as history shows it
    (chat/store/lifecycle.py LifecycleQueries.current): loaded from the store at start, then kept current by the write
    path, which hands every general record to `apply` as it is delivered (edits, deletions and reactions are applied
    here as the database's effects apply them at commit), `discard`s what the database refused and `purged_below`
    what the retention purge deleted.

    One process only: with Redis, the other processes' records reach this one without their text, so the cluster's
    connects read the store (chat/app.py passes no cache there)."""

    def __init__(self, size):
        self.size = size
        self._records = []  # oldest first
        self._ids = []  # their ids, for bisect
        self.horizon = 0  # the retention purge's mark it has dropped what is below

    def load(self, records):
        """The store's newest records of general (oldest first, current state); anything applied since with a higher
        id (posted while the store was read) stays."""
        newest = records[-1].id if records else -1
        later = [r for r in self._records if r.id > newest]
        self._set((list(records) + later)[-self.size:])

    def _set(self, records):
        self._records = records
        self._ids = [r.id for r in records]

    def newest(self, limit):
        """The newest `limit` records, oldest first (a copy)."""
        return self._records[-limit:] if limit > 0 else []

    def apply(self, record):
        """A general record as it is delivered: a message is added, a lifecycle event changes the message it is about
        and the quotes of the replies to it."""
        if record.recipient is not None or record.room is not None:
            return
        if record.kind in LIFECYCLE_KINDS:
            self._change(record)
        elif record.kind is None:
            self._add(record)

    def discard(self, message_id):
        """The database refused this record: it was delivered live, but history will not show it."""
        i = self._index(message_id)
        if i is not None:
            del self._records[i], self._ids[i]

    def purged_below(self, mark):
        """The retention purge deleted the messages below id `mark`."""
        self.horizon = max(self.horizon, mark)
        cut = bisect.bisect_left(self._ids, mark)
        if cut:
            self._set(self._records[cut:])

    def _add(self, record):
        ids = self._ids
        if ids and record.id <= ids[-1]:  # ids are claimed in blocks: two posts may reach here out of order
            if self._index(record.id) is not None:
                return
            i = bisect.bisect_left(ids, record.id)
            if i == 0 and len(ids) >= self.size:
                return  # older than everything kept
            self._records.insert(i, record)
            ids.insert(i, record.id)
        else:
            self._records.append(record)
            ids.append(record.id)
        if len(ids) > self.size:
            del self._records[0], ids[0]

    def _index(self, message_id):
        i = bisect.bisect_left(self._ids, message_id)
        return i if i < len(self._ids) and self._ids[i] == message_id else None

    def _change(self, event):
        target = event.target_id
        i = self._index(target)
        record = self._records[i] if i is not None else None
        gone = record is not None and record.body == ""
        if event.kind == "delete":
            if record is not None:
                self._records[i] = record._replace(body="", attachment=None, state={"deleted": True})
            self._requote(target, {"deleted": True})
        elif event.kind == "edit":
            if record is not None and not gone:
                state = dict(record.state or ())
                state["edited"] = event.created_ms
                self._records[i] = record._replace(body=event.body, state=state)
            if not gone:
                self._requote(target, quote_of(event.sender, event.body))
        elif record is not None and not gone:
            self._records[i] = record._replace(state=with_reaction(record.state, event))

    def _requote(self, target, quote):
        """The replies to message `target` kept here show `quote` of it from now on."""
        records = self._records
        for i, r in enumerate(records):
            if r.target_id == target and r.body != "":
                records[i] = r._replace(state={**(r.state or {}), "quote": quote})


def with_reaction(state, event):
    """A message's `state` after the reaction event `event`: the same user and key count once, and a key nobody reacts
    with any more is gone (as the reactions table has it: chat/store/lifecycle.py)."""
    key, op = reaction_details(event.body)
    state = dict(state or ())
    reactions = {k: list(v) for k, v in state.get("reactions", {}).items()}
    users = reactions.setdefault(key, [])
    if op == "add" and event.sender not in users:
        users.append(event.sender)
    elif op == "remove" and event.sender in users:
        users.remove(event.sender)
    reactions = {k: v for k, v in reactions.items() if v}
    if reactions:
        state["reactions"] = reactions
    else:
        state.pop("reactions", None)
    return state or None
