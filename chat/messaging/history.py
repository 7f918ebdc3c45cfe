"""History in pieces that fit a socket's limits: records read from the store in bounded chunks, sent as size-capped events."""
import heapq
import itertools

from chat.websocket import frames
from chat.messaging.protocol import encode_event, message_json

# JSON escapes a control character as \u00XX: six bytes for one byte of text, the most any character grows.
ESCAPE_GROWTH = 6
# Everything in a message event besides its text: id, names, timestamp, attachment (name at most 255 characters).
EVENT_OVERHEAD = 2048
# Everything in a history event besides its messages: type, since/with/before/more/ref, complete.
ENVELOPE_OVERHEAD = 1024


def largest_message_event(max_message_size):
    """Bytes one message event can take, encoded, at most (a text of control characters)."""
    return ESCAPE_GROWTH * max_message_size + EVENT_OVERHEAD


def largest_history_event(frame_bytes, max_message_size):
    """Bytes one history event can take: `frame_bytes`, or one message alone when that message is larger."""
    return max(frame_bytes, largest_message_event(max_message_size) + ENVELOPE_OVERHEAD)


def fetch_rows(frame_bytes, max_message_size):
    """Rows read from the store at once: about one event's worth even when every row is as large as allowed."""
    return max(1, frame_bytes // max_message_size)


def history_frames(records, fields, frame_bytes, tail=None):
    """WebSocket frames of `history` events holding `records` (oldest first), each event at most `frame_bytes`
    encoded unless one message alone is larger. Every event carries `fields`. A history in one event is just that
    (as before paging); in several, each but the last says `"complete":false` and the last `"complete":true`.
    `tail()`, asked once the records are read, gives fields for the last event only: when it gives any ("next": where
    a capped replay goes on), the last event says `"complete":false` too.

    Records are read lazily: a frame is built only when the caller asks for it."""
    extra = encode_event(fields)[1:-1].encode()
    head = b'{"type":"history","messages":['
    middle = b"]," + extra + b"," if extra else b"],"
    partial_end, last_end, only_end = middle + b'"complete":false}', middle + b'"complete":true}', middle[:-1] + b"}"
    base = len(head) + len(partial_end) - 1  # the longest ending; minus the comma the first message does not need
    batch, size, split = [], base, False
    for record in records:
        item = message_json(record).encode()
        if batch and size + 1 + len(item) > frame_bytes:
            frame = frames.encode_frame(frames.OP_TEXT, head + b",".join(batch) + partial_end)
            batch, item = [], None  # while the caller waits, hold the frame only: this message is encoded again
            yield frame
            frame, size, split = None, base, True
            item = message_json(record).encode()
        batch.append(item)
        size += 1 + len(item)
    more = tail() if tail is not None else None
    if more:
        ending = middle + encode_event(more)[1:-1].encode() + b',"complete":false}'
    else:
        ending = last_end if split else only_end
    yield frames.encode_frame(frames.OP_TEXT, head + b",".join(batch) + ending)


def send_history(conn, records, fields, frame_bytes, tail=None):
    """Send `records` as history events, each only once the connection has sent the one before: a client that
    does not read holds up one event, not its whole history. False if the connection closed first. When `records` is
    Capped (or `tail` is a Capped's), the last event says where to go on."""
    events = history_frames(records, fields, frame_bytes, tail or getattr(records, "tail", None))
    while conn.wait_sent():  # before the next event is even built
        frame = next(events, None)
        if frame is None:
            return True
        conn.send_frame(frame)
        del frame
    return False


def primed(iterable):
    """`iterable` with its first item already read, so a failing first read (the store is down) raises here."""
    iterator = iter(iterable)
    for first in iterator:
        return itertools.chain((first,), iterator)
    return iter(())


def merged(*streams):
    """Records from several streams, each oldest first, merged oldest first."""
    return heapq.merge(*streams, key=_record_id)


def _record_id(record):
    return record.id


def forward(page, after, total, chunk):
    """Records after id `after`, oldest first, at most `total`, read `chunk` at a time with `page(after, n)`
    (which returns the next records after `after`, oldest first)."""
    left = total
    while left > 0:
        rows = page(after, min(chunk, left))[:left]  # a page may hold uncommitted records besides its n stored ones
        if not rows:
            return
        left -= len(rows)
        after = rows[-1].id
        yield from _consumed(rows)


def _consumed(rows):
    """Each row of a list, dropping it from the list as it goes: a page is not kept whole until its end."""
    rows.reverse()
    while rows:
        yield rows.pop()


class Capped:
    """The first `limit` of `records`; once they are read, `tail()` gives {"next": ID} when there were more: the id of
    the last one given, from which a client goes on (a history request with "since", or ?since=). `fields`: what every
    event of this history says besides (`purged`: see ChatService._replay)."""

    def __init__(self, records, limit, fields=None):
        self._records = records
        self._limit = limit
        self.fields = fields or {}
        self.next_since = None

    def __iter__(self):
        count, last = 0, None
        for record in self._records:
            if count == self._limit:
                self.next_since = last
                return
            yield record
            count, last = count + 1, record.id

    def tail(self):
        return {} if self.next_since is None else {"next": self.next_since}


class NewestWindow:
    """The newest `limit` records below `before`, handed out oldest first, from `page(n, before)` (a backwards
    pager: the newest n below `before`, oldest first) read `chunk` records at a time.

    Built eagerly: the window is measured at once (so its size is known and a store failure raises here), and its
    records are kept only while they fit in `keep_bytes`; otherwise it reads each chunk again when it is sent.
    """

    def __init__(self, page, limit, before, chunk, keep_bytes):
        self._page = page
        self._chunk = chunk
        self._bounds = []  # (lowest id, highest id) of each chunk, newest chunk first
        kept, kept_bytes = [], 0
        self.count = 0
        while self.count < limit:
            want = min(chunk, limit - self.count)
            rows = page(want, before)
            if not rows:
                break
            self._bounds.append((rows[0].id, rows[-1].id))
            self.count += len(rows)
            if kept is not None:
                kept_bytes += sum(len(r.body) for r in rows)
                kept = kept + [rows] if kept_bytes <= keep_bytes else None
            before = rows[0].id
            if len(rows) < want:
                break
        self._kept = kept

    def __iter__(self):
        kept, self._kept = self._kept, None
        if kept is not None:
            while kept:
                yield from _consumed(kept.pop())
            return
        for low, high in reversed(self._bounds):
            yield from _consumed([r for r in self._page(self._chunk, high + 1) if r.id >= low])
