"""One upgraded WebSocket: our frame reader, the only writer of its socket, a bounded send queue, pings and the close handshake."""
import logging
import socket
import time
from collections import deque

import gevent
from gevent.event import Event

from . import frames
from .frames import Binary, Close, FrameError, FrameParser, Ping, Text

log = logging.getLogger("chat.wire")

READ_SIZE = 65536
# A busy reader never blocks (its data is always ready), so it yields this often to let writers drain their queues.
YIELD_EVERY = 64
OPEN, CLOSING, CLOSED = 0, 1, 2

CLOSE_SLOW_CONSUMER = frames.CLOSE_POLICY_VIOLATION
SLOW_CONSUMER_REASON = "send queue overflow: client too slow"
PING_FRAME = frames.encode_frame(frames.OP_PING, b"")


class Connection:
    """Frames in through `run()`, frames out through `send_frame()`; never blocks the caller of `send_frame()`."""

    __slots__ = (
        "_sock", "_rfile", "_parser", "_queue", "_queued_bytes", "_max_queue", "_max_queue_bytes", "_wake",
        "_state", "_writer", "_close_timer", "_ping_interval", "_close_timeout", "close_code", "close_reason",
        "__weakref__",
    )

    def __init__(self, sock, rfile, settings):
        self._sock = sock
        self._rfile = rfile
        self._parser = FrameParser(settings.max_message_size)
        self._queue = deque()
        self._queued_bytes = 0
        self._max_queue = settings.send_queue_messages
        self._max_queue_bytes = settings.send_queue_bytes
        self._wake = Event()
        self._state = OPEN
        self._writer = None
        self._close_timer = None
        self._ping_interval = settings.ping_interval
        self._close_timeout = settings.close_timeout
        self.close_code = None  # what we sent, or answered
        self.close_reason = ""
        # A read that sees nothing for a ping interval plus the ping timeout means a dead peer.
        sock.settimeout(settings.ping_interval + settings.ping_timeout)

    @property
    def open(self):
        return self._state == OPEN

    def send_frame(self, frame):
        """Queue an encoded frame. False when the connection is closing or was just closed for being too slow."""
        if self._state != OPEN:
            return False
        queue = self._queue
        queue.append(frame)
        self._queued_bytes += len(frame)
        if len(queue) > self._max_queue or self._queued_bytes > self._max_queue_bytes:
            self._overflow()
            return False
        self._wake.set()
        return True

    def send_text(self, text):
        return self.send_frame(frames.encode_text(text))

    def close(self, code=frames.CLOSE_NORMAL, reason=""):
        """Start the close handshake; the socket is dropped if the peer does not answer within close_timeout."""
        if self._state != OPEN:
            return
        self._state = CLOSING
        self.close_code, self.close_reason = code, reason
        self._queue.append(frames.encode_close(code, reason))
        self._wake.set()
        self._close_timer = gevent.spawn_later(self._close_timeout, self._abort)

    def run(self, on_text, on_binary=None):
        """Read until the connection ends. `on_text(str)` handles each text message; binary gets 1003 unless `on_binary`."""
        self._writer = gevent.spawn(self._write_loop)
        parser = self._parser
        read = self._rfile.read1
        try:
            while self._state != CLOSED:
                try:
                    data = read(READ_SIZE)
                except socket.timeout:
                    self.close(frames.CLOSE_INTERNAL_ERROR, "ping timeout")
                    break
                except (OSError, ValueError):
                    break
                if not data:
                    break
                failure = None
                try:
                    events = parser.feed(data)
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
                        self._send_control(frames.encode_frame(frames.OP_PONG, event))
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
                gevent.sleep(0)
        finally:
            self._finish()

    def _send_control(self, frame):
        if self._state == OPEN:
            self._queue.append(frame)
            self._wake.set()

    def _on_peer_close(self, event):
        if self._state == OPEN:
            code = frames.CLOSE_NORMAL if event.code == frames.CLOSE_NO_STATUS else event.code
            self.close_code, self.close_reason = code, event.reason
            self._queue.append(frames.encode_close(code))
            self._wake.set()
        self._state = CLOSED

    def _overflow(self):
        log.info("closing a slow consumer: %d frames, %d bytes queued", len(self._queue), self._queued_bytes)
        self._queue.clear()
        self._queued_bytes = 0
        self.close(CLOSE_SLOW_CONSUMER, SLOW_CONSUMER_REASON)

    def _write_loop(self):
        queue = self._queue
        wake = self._wake
        sendall = self._sock.sendall
        interval = self._ping_interval
        next_ping = time.monotonic() + interval
        while True:
            if not queue:
                if self._state == CLOSED:
                    return
                wake.clear()
                wake.wait(max(0.0, next_ping - time.monotonic()))
                if time.monotonic() >= next_ping:
                    next_ping = time.monotonic() + interval
                    if self._state == OPEN:
                        queue.append(PING_FRAME)
                if not queue:
                    continue
            data = queue[0] if len(queue) == 1 else b"".join(queue)
            queue.clear()
            self._queued_bytes = 0
            try:
                sendall(data)
            except (OSError, ValueError):
                self._state = CLOSED
                return

    def _linger(self):
        """We failed the connection: flush our close frame, send FIN, then read and discard until the peer closes.

        Closing a socket with unread input makes the kernel send a reset, which can destroy our close
        frame (and its code, e.g. 1009) before the peer reads it. The close timer bounds the wait.
        """
        deadline = time.monotonic() + self._close_timeout
        self._state = CLOSED
        self._wake.set()
        if self._writer is not None:
            self._writer.join(self._close_timeout)
        try:
            self._sock.shutdown(socket.SHUT_WR)
            read = self._rfile.read1
            while read(READ_SIZE) and time.monotonic() < deadline:
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
        self._wake.set()
        writer = self._writer
        if writer is not None:
            writer.join(self._close_timeout)  # let it flush our close frame
            writer.kill(block=False)
        if self._close_timer is not None:
            self._close_timer.kill(block=False)
        try:
            self._sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
