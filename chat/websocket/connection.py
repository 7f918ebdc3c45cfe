"""One upgraded WebSocket: our frame reader, the only writer of its socket, a bounded send queue, pings and the close handshake."""
import logging
import socket
import time

import gevent
from gevent.event import Event

from chat.websocket import frames
from chat.websocket.frames import Binary, Close, FrameError, FrameParser, Ping, Text

log = logging.getLogger("chat.wire")

READ_SIZE = 65536
# A busy reader never blocks (its data is always ready), so it yields this often to let writers drain their queues.
YIELD_EVERY = 64
OPEN, CLOSING, CLOSED = 0, 1, 2

CLOSE_SLOW_CONSUMER = frames.CLOSE_POLICY_VIOLATION
SLOW_CONSUMER_REASON = "send queue overflow: client too slow"
PING_FRAME = frames.encode_frame(frames.OP_PING, b"")


class _Flusher:
    """The one greenlet that writes every connection with queued frames, without ever waiting on a socket.

    Frames queued during one burst of work go out in one send per connection. A socket that will not
    take everything gets a writer greenlet of its own until its backlog is gone, so no connection costs
    a greenlet while idle and no slow socket holds up the others.
    """

    def __init__(self):
        self._dirty = []
        self._wake = Event()
        self._greenlet = None

    def mark(self, conn):
        dirty = self._dirty
        dirty.append(conn)
        if len(dirty) == 1:
            if self._greenlet is None:
                self._greenlet = gevent.spawn(self._run)
            self._wake.set()

    def _run(self):
        wake = self._wake
        while True:
            wake.wait()
            wake.clear()
            dirty, self._dirty = self._dirty, []
            for conn in dirty:
                conn._flush()


class _Pinger:
    """One greenlet per ping interval and timeout that pings every open connection, and fails those that have sent
    nothing `timeout` seconds after a ping while their reader waits (a dead peer).

    One check per ping for all connections instead of a read timeout on each socket: gevent's costs a Timeout
    object (~0.5 KB) per connection waiting in a read.
    """

    def __init__(self, interval, timeout):
        self.interval = interval
        self.timeout = timeout
        self.connections = set()
        self._greenlet = gevent.spawn(self._run)

    def _run(self):
        while True:
            gevent.sleep(self.interval)
            pinged = tuple(self.connections)
            for conn in pinged:
                conn._heard = False
                conn.send_frame(PING_FRAME)
            gevent.spawn_later(self.timeout, _fail_silent, pinged)


def _fail_silent(pinged):
    for conn in pinged:
        if not conn._heard:
            conn._time_out()


class _SendBudget:
    """Bytes held for sockets that are not taking what they are sent, across every connection of this process.

    Only backed-up connections (a writer greenlet is waiting on their socket) count: their queue plus the
    buffer their writer holds. A queue waiting for the flusher's next pass goes out at once and is mostly
    broadcast frames shared with every other queue. Past `limit`, the connections holding the most are
    dropped at once (a close frame queued behind a backlog its peer does not read would keep the memory
    it is meant to free); a connection whose socket takes everything is never one of them.
    """

    def __init__(self):
        self.limit = None
        self.total = 0
        self.backed_up = set()
        self.overflow_closes = 0  # connections closed for a full send queue
        self.evictions = 0  # connections dropped because this budget was full

    def grow(self, n):
        self.total += n
        if self.limit is not None and self.total > self.limit:
            self._shed()

    def _shed(self):
        while self.total > self.limit:
            if not self.backed_up:
                return
            victim = max(self.backed_up, key=Connection.held_bytes)
            victim._evict(self.limit)

    def release(self, conn):
        """`conn` holds nothing any more (its writer ended, or it was dropped)."""
        if conn in self.backed_up:
            self.backed_up.discard(conn)
            self.total -= conn._in_flight + conn._queued_bytes


_flusher = _Flusher()
_pingers = {}
_budget = _SendBudget()


def slow_consumer_closes():
    """Connections this process closed as too slow, by cause: "queue" (its send queue overflowed), "budget" (dropped
    because the process's send budget was full)."""
    return {"queue": _budget.overflow_closes, "budget": _budget.evictions}


def _pinger_for(interval, timeout):
    pinger = _pingers.get((interval, timeout))
    if pinger is None:
        pinger = _pingers[interval, timeout] = _Pinger(interval, timeout)
    return pinger


class Connection:
    """Frames in through `run()`, frames out through `send_frame()`; never blocks the caller of `send_frame()`."""

    __slots__ = (
        "_sock", "_initial", "_queue", "_queued_bytes", "_max_queue", "_max_queue_bytes",
        "_dirty", "_state", "_writer", "_in_flight", "_pong", "_close_timer", "_pinger", "_settings", "_heard",
    )

    def __init__(self, sock, settings, initial=b""):
        self._sock = sock
        self._initial = initial
        # A list, not a deque: an empty deque keeps a 64-slot block (~0.6 KB) for every idle connection.
        self._queue = []
        self._queued_bytes = 0
        self._max_queue = settings.send_queue_messages
        self._max_queue_bytes = settings.send_queue_bytes
        self._dirty = False
        self._state = OPEN
        self._writer = None  # a greenlet only while the socket has a backlog
        self._in_flight = 0  # bytes of the buffer the writer greenlet is sending
        self._pong = None  # while backed up, the answer to the latest ping: a ping flood keeps only one
        self._close_timer = None
        self._pinger = _pinger_for(settings.ping_interval, settings.ping_timeout)
        self._heard = True  # bytes came in since the last ping
        self._settings = settings
        _budget.limit = settings.send_queue_total_bytes
        sock.settimeout(None)  # a dead peer is found by the pinger (see _Pinger)

    def send_frame(self, frame, message_id=None):
        """Queue an encoded frame. False when the connection is closing or was just closed for being too slow.

        `message_id` is not used: it lets a session hand this method to the hub as its `deliver`."""
        if self._state != OPEN:
            return False
        queue = self._queue
        queue.append(frame)
        self._queued_bytes += len(frame)
        if len(queue) > self._max_queue or self._queued_bytes > self._max_queue_bytes:
            self._overflow()
            return False
        # Only a connection with a writer greenlet can be backed up: the common case costs one slot read, no set lookup.
        if self._writer is not None and self in _budget.backed_up:
            _budget.grow(len(frame))
            if self._state != OPEN:  # closed just now to keep the total under its limit
                return False
        if not self._dirty:
            self._dirty = True
            _flusher.mark(self)
        return True

    def held_bytes(self):
        """Bytes this connection holds for sending: its queue and the buffer its writer greenlet is sending."""
        return self._queued_bytes + self._in_flight

    def send_text(self, text):
        return self.send_frame(frames.encode_text(text))

    def wait_sent(self):
        """Wait until everything queued so far has been handed to the socket; False if the connection stopped being open."""
        while self._state == OPEN and (self._queue or self._pong or self._writer is not None):
            if self._writer is not None:
                self._writer.join()
            else:
                gevent.sleep(0)  # the flusher sends it on its next turn
        return self._state == OPEN

    def close(self, code=frames.CLOSE_NORMAL, reason=""):
        """Start the close handshake; the socket is dropped if the peer does not answer within close_timeout."""
        if self._state != OPEN:
            return
        self._state = CLOSING
        self._queue_control(frames.encode_close(code, reason))
        self._close_timer = gevent.spawn_later(self._settings.close_timeout, self._abort)

    def run(self, on_text, on_binary=None):
        """Read until the connection ends. `on_text(str)` handles each text message; binary gets 1003 unless `on_binary`."""
        self._pinger.connections.add(self)
        parser = None  # made when the first bytes arrive: many connections send nothing for hours
        # gevent's recv allocates its buffer only once data is there; a buffered reader's read1 would hold
        # READ_SIZE bytes for every idle connection while it waits.
        recv = self._sock.recv
        data, self._initial = self._initial, None
        try:
            while self._state != CLOSED:
                try:
                    if not data:
                        data = recv(READ_SIZE)
                except socket.timeout:
                    self.close(frames.CLOSE_INTERNAL_ERROR, "ping timeout")
                    break
                except (OSError, ValueError):
                    break
                if not data:
                    break
                self._heard = True
                if parser is None:
                    settings = self._settings
                    parser = FrameParser(settings.max_message_size, max_fragments=settings.max_fragments)
                failure = None
                try:
                    events = parser.feed(data)
                    data = None
                except FrameError as e:
                    events, failure = e.events, e  # messages completed before the bad frame still count
                for index, event in enumerate(events, 1):
                    if not index % YIELD_EVERY:
                        gevent.sleep(0)
                    kind = type(event)
                    if kind is Text:
                        if self._state == OPEN:
                            on_text(event)
                    elif kind is Ping:
                        if self._state == OPEN:
                            self._answer_ping(event)
                    elif kind is Close:
                        self._on_peer_close(event)
                        break
                    elif kind is Binary:
                        if on_binary is None:
                            self.close(frames.CLOSE_UNSUPPORTED_DATA, "binary frames are not supported; send text")
                        elif self._state == OPEN:
                            on_binary(event)
                    # Pongs need nothing: any bytes read reset the read timeout.
                if failure is not None and self._state != CLOSED:
                    self.close(failure.code, failure.reason)
                    self._linger()
                    break
                events = event = None  # not kept through the wait for more
                gevent.sleep(0)
        finally:
            self._finish()

    def _time_out(self):
        """Nothing came in since the pinger's ping: a reader waiting for bytes gets a read timeout (see run)."""
        if self._state != CLOSED:
            sock = self._sock
            sock.hub.cancel_wait(sock._read_event, socket.timeout("ping timeout"))

    def _queue_control(self, frame):
        """Queue a control frame; never checked against the limits, so a close still goes out after an overflow."""
        self._queue.append(frame)
        self._queued_bytes += len(frame)
        if self in _budget.backed_up:
            _budget.total += len(frame)  # counted, but never a reason to close: it is at most 127 bytes
        self._mark_dirty()

    def _answer_ping(self, payload):
        """Every ping gets its pong, in order, while the peer reads; once its socket is backed up only the latest
        does (RFC 6455 5.5.3 allows that), so a ping flood from a peer that does not read holds one pong."""
        pong = frames.encode_frame(frames.OP_PONG, payload)
        if self._writer is None:
            self._queue_control(pong)
        else:
            self._pong = pong
            self._mark_dirty()

    def _mark_dirty(self):
        if not self._dirty:
            self._dirty = True
            _flusher.mark(self)

    def _take_queued(self):
        """Everything queued (and the pending pong) as one buffer; the queue is left empty."""
        queue = self._queue
        pong = self._pong
        if pong is not None:
            queue.append(pong)
            self._queued_bytes += len(pong)
            self._pong = None
            if self in _budget.backed_up:
                _budget.total += len(pong)
        data = queue[0] if len(queue) == 1 else b"".join(queue)
        queue.clear()
        self._queued_bytes = 0
        return data

    def _on_peer_close(self, event):
        if self._state == OPEN:
            code = frames.CLOSE_NORMAL if event.code == frames.CLOSE_NO_STATUS else event.code
            self._queue_control(frames.encode_close(code))
        self._state = CLOSED

    def _overflow(self):
        log.info("closing a slow consumer: %d frames, %d bytes queued", len(self._queue), self._queued_bytes)
        _budget.overflow_closes += 1
        self._drop_queue()
        self.close(CLOSE_SLOW_CONSUMER, SLOW_CONSUMER_REASON)

    def _evict(self, limit):
        """The process's send budget is full and this socket holds the most: drop it now, and all it holds."""
        log.info(
            "send budget of %d bytes full: dropping the most backed-up connection (%d bytes held)", limit, self.held_bytes()
        )
        self._state = CLOSED
        _budget.evictions += 1
        _budget.release(self)
        self._queue.clear()
        self._queued_bytes = 0
        self._in_flight = 0
        self._pong = None
        if self._writer is not None:
            self._writer.kill(block=False)  # it lets go of its buffer as it unwinds
        self._abort()  # the reader sees the end and finishes the connection

    def _drop_queue(self):
        if self in _budget.backed_up:
            _budget.total -= self._queued_bytes
        self._queue.clear()
        self._queued_bytes = 0
        self._pong = None

    def _flush(self):
        """Called by the flusher: one non-blocking send of everything queued; a writer greenlet takes any rest."""
        self._dirty = False
        if self._writer is not None or not (self._queue or self._pong):
            return  # a writer greenlet is draining and will take these too
        data = self._take_queued()
        try:
            # The real non-blocking socket under gevent's: its send() raises instead of waiting.
            sent = self._sock._sock.send(data)
        except BlockingIOError:
            sent = 0
        except OSError:
            self._state = CLOSED
            return
        if sent < len(data):
            # The rest keeps all of `data` alive: count all of it until the writer is done with it.
            self._in_flight = len(data)
            self._writer = gevent.spawn(self._drain, memoryview(data)[sent:])
            _budget.backed_up.add(self)
            _budget.grow(len(data))

    def _drain(self, rest):
        """Wait on a backed-up socket until it has taken `rest` and everything queued meanwhile."""
        sendall = self._sock.sendall
        try:
            sendall(rest)
            rest = None
            while self._queue or self._pong:
                data = self._take_queued()  # already counted while it was queued
                _budget.total -= self._in_flight  # the previous buffer is all sent
                self._in_flight = len(data)
                sendall(data)
        except (OSError, ValueError):
            self._state = CLOSED
        finally:
            _budget.release(self)
            self._in_flight = 0
            self._writer = None

    def _flush_now(self):
        """Send what is queued (our close frame) before the socket goes, waiting at most close_timeout."""
        if self._writer is None and (self._queue or self._pong):
            self._flush()
        writer = self._writer  # it sets self._writer to None when it ends, perhaps during the join
        if writer is not None:
            writer.join(self._settings.close_timeout)
            writer.kill(block=False)

    def _linger(self):
        """We failed the connection: flush our close frame, send FIN, then read and discard until the peer closes.

        Closing a socket with unread input makes the kernel send a reset, which can destroy our close
        frame (and its code, e.g. 1009) before the peer reads it. The close timer bounds the wait.
        """
        deadline = time.monotonic() + self._settings.close_timeout
        self._state = CLOSED
        self._flush_now()
        try:
            self._sock.shutdown(socket.SHUT_WR)
            recv = self._sock.recv
            while time.monotonic() < deadline and recv(READ_SIZE):
                pass
        except (OSError, ValueError):
            pass

    def _abort(self):
        """The peer did not finish the close handshake in time: drop the TCP connection."""
        self._state = CLOSED
        try:
            self._sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def _finish(self):
        self._state = CLOSED
        self._pinger.connections.discard(self)
        self._flush_now()
        if self._close_timer is not None:
            self._close_timer.kill(block=False)
            self._close_timer = None
        self._drop_queue()
        try:
            self._sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        # Close now rather than when the socket object is collected: a reference cycle anywhere would keep
        # the descriptor open until the cyclic garbage collector runs.
        self._sock.close()
