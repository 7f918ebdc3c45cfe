"""RFC 6455 frame codec for the server side: bytes in, events out; no sockets, no gevent."""
import codecs
import struct

OP_CONTINUATION = 0x0
OP_TEXT = 0x1
OP_BINARY = 0x2
OP_CLOSE = 0x8
OP_PING = 0x9
OP_PONG = 0xA

CLOSE_NORMAL = 1000
CLOSE_GOING_AWAY = 1001
CLOSE_PROTOCOL_ERROR = 1002
CLOSE_UNSUPPORTED_DATA = 1003
CLOSE_NO_STATUS = 1005
CLOSE_INVALID_DATA = 1007
CLOSE_POLICY_VIOLATION = 1008
CLOSE_TOO_BIG = 1009
CLOSE_INTERNAL_ERROR = 1011

_DATA_OPCODES = (OP_CONTINUATION, OP_TEXT, OP_BINARY)
_CONTROL_OPCODES = (OP_CLOSE, OP_PING, OP_PONG)
# Codes a peer may put on the wire (RFC 6455 7.4 and the IANA registry); 1004-1006 and 1015 are reserved.
_VALID_PEER_CLOSE_CODES = frozenset((1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014))

_pack_short = struct.Struct("!BBH").pack
_pack_long = struct.Struct("!BBQ").pack
_unpack_short = struct.Struct("!H").unpack_from
_unpack_long = struct.Struct("!Q").unpack_from


class FrameError(Exception):
    """The peer broke the protocol; `code` is the close code to answer with.

    `events` holds the events that `feed()` completed before the bad frame in the same call:
    they arrived before the violation and are still to be handled.
    """

    def __init__(self, code, reason):
        super().__init__(reason)
        self.code = code
        self.reason = reason
        self.events = []


class Text(str):
    """A complete text message."""


class Binary(bytes):
    """A complete binary message."""


class Ping(bytes):
    """A ping's application data."""


class Pong(bytes):
    """A pong's application data."""


class Close:
    """A close frame from the peer."""

    __slots__ = ("code", "reason")

    def __init__(self, code, reason):
        self.code = code
        self.reason = reason

    def __repr__(self):
        return f"Close({self.code!r}, {self.reason!r})"


def encode_frame(opcode, payload, fin=True):
    """One unmasked (server-to-client) frame."""
    first = (0x80 if fin else 0) | opcode
    n = len(payload)
    if n < 126:
        return bytes((first, n)) + payload
    if n < 65536:
        return _pack_short(first, 126, n) + payload
    return _pack_long(first, 127, n) + payload


def encode_text(text):
    return encode_frame(OP_TEXT, text.encode("utf-8"))


def encode_close(code=CLOSE_NORMAL, reason=""):
    if code == CLOSE_NO_STATUS:
        return encode_frame(OP_CLOSE, b"")
    # A control frame carries at most 125 bytes; cut the reason on a character boundary so it stays valid UTF-8.
    body = reason.encode("utf-8")[:123].decode("utf-8", "ignore").encode("utf-8")
    return encode_frame(OP_CLOSE, struct.pack("!H", code) + body)


def unmask(payload, mask):
    """XOR `payload` with the 4-byte `mask`, as whole integers rather than byte by byte."""
    n = len(payload)
    if not n:
        return b""
    key = (mask * (n // 4 + 1))[:n]
    return (int.from_bytes(payload, "little") ^ int.from_bytes(key, "little")).to_bytes(n, "little")


class FrameParser:
    """Turns the client's byte stream into messages and control events.

    `max_message_size` is checked against each frame's declared length before its payload
    is buffered, so an oversized message fails with 1009 without being read. `max_fragments`
    bounds the frames of one message (empty continuation frames would otherwise grow it forever).
    """

    def __init__(self, max_message_size, require_mask=True, max_fragments=1024):
        self.max_message_size = max_message_size
        self.max_fragments = max_fragments
        self.require_mask = require_mask
        self._buf = bytearray()
        self._pos = 0
        self._fragments = None  # list of payload pieces of a fragmented message in progress
        self._fragment_opcode = 0
        self._fragment_size = 0
        self._decoder = None
        # Fail fast on a text frame that arrives in pieces: UTF-8 of its payload checked so far.
        self._partial_decoder = None
        self._partial_done = 0

    def feed(self, data):
        """Add received bytes; return the list of complete events. Raises FrameError."""
        buf = self._buf
        if self._pos and self._pos == len(buf):
            buf.clear()
            self._pos = 0
        buf += data
        events = []
        try:
            while True:
                event = self._next_frame()
                if event is None:
                    break
                if event is not _CONSUMED:
                    events.append(event)
        except FrameError as e:
            e.events = events
            raise
        if self._pos > 65536 and self._pos * 2 > len(buf):
            del buf[: self._pos]
            self._pos = 0
        return events

    def _next_frame(self):
        buf = self._buf
        pos = self._pos
        available = len(buf) - pos
        if available < 2:
            return None
        b0 = buf[pos]
        b1 = buf[pos + 1]
        opcode = b0 & 0x0F
        fin = b0 & 0x80
        if b0 & 0x70:
            raise FrameError(CLOSE_PROTOCOL_ERROR, "reserved bits set without an extension")
        masked = b1 & 0x80
        length = b1 & 0x7F
        header = 2
        if length == 126:
            if available < 4:
                return None
            length = _unpack_short(buf, pos + 2)[0]
            header = 4
        elif length == 127:
            if available < 10:
                return None
            length = _unpack_long(buf, pos + 2)[0]
            header = 10
            if length >> 63:
                raise FrameError(CLOSE_PROTOCOL_ERROR, "frame length has the high bit set")
        if opcode in _CONTROL_OPCODES:
            if not fin:
                raise FrameError(CLOSE_PROTOCOL_ERROR, "fragmented control frame")
            if length > 125:
                raise FrameError(CLOSE_PROTOCOL_ERROR, "control frame longer than 125 bytes")
        elif opcode in _DATA_OPCODES:
            if opcode == OP_CONTINUATION:
                if self._fragments is None:
                    raise FrameError(CLOSE_PROTOCOL_ERROR, "continuation frame without a message")
                if len(self._fragments) >= self.max_fragments:
                    raise FrameError(CLOSE_TOO_BIG, f"message in more than {self.max_fragments} fragments")
                total = self._fragment_size + length
            else:
                if self._fragments is not None:
                    raise FrameError(CLOSE_PROTOCOL_ERROR, "new message inside a fragmented one")
                total = length
            if total > self.max_message_size:
                raise FrameError(CLOSE_TOO_BIG, f"message larger than {self.max_message_size} bytes")
        else:
            raise FrameError(CLOSE_PROTOCOL_ERROR, f"unknown opcode {opcode}")
        if masked:
            header += 4
        elif self.require_mask:
            raise FrameError(CLOSE_PROTOCOL_ERROR, "client frames must be masked")
        if available < header + length:
            if available > header and (opcode == OP_TEXT or (opcode == OP_CONTINUATION and self._decoder is not None)):
                self._check_partial_text(pos + header, available - header, opcode, masked)
            return None
        if self._partial_decoder is not None:
            self._partial_decoder = None
            self._partial_done = 0
        start = pos + header
        payload = bytes(buf[start : start + length])
        if masked:
            payload = unmask(payload, bytes(buf[start - 4 : start]))
        self._pos = start + length
        return self._event(opcode, fin, payload)

    def _check_partial_text(self, start, got, opcode, masked):
        """Validate the UTF-8 of the `got` payload bytes of an incomplete text frame that were not checked yet.

        The whole payload is decoded again once the frame is complete; this only makes bad UTF-8 fail
        as soon as it arrives instead of after the rest of the frame.
        """
        done = self._partial_done
        if got <= done:
            return
        decoder = self._partial_decoder
        if decoder is None:
            decoder = self._partial_decoder = codecs.getincrementaldecoder("utf-8")("strict")
            if opcode == OP_CONTINUATION:  # carry on from the bytes of the message's earlier fragments
                decoder.setstate(self._decoder.getstate())
        chunk = bytes(self._buf[start + done : start + got])
        if masked:
            k = done % 4
            mask = bytes(self._buf[start - 4 : start])
            chunk = unmask(chunk, mask[k:] + mask[:k])
        try:
            decoder.decode(chunk, False)
        except UnicodeDecodeError:
            raise FrameError(CLOSE_INVALID_DATA, "invalid UTF-8 in a text message") from None
        self._partial_done = got

    def _event(self, opcode, fin, payload):
        if opcode == OP_TEXT or opcode == OP_BINARY:
            if fin:
                if opcode == OP_TEXT:
                    return Text(_decode_utf8(payload))
                return Binary(payload)
            self._fragments = []
            self._fragment_opcode = opcode
            self._fragment_size = 0
            self._decoder = codecs.getincrementaldecoder("utf-8")("strict") if opcode == OP_TEXT else None
            return self._add_fragment(payload, False)
        if opcode == OP_CONTINUATION:
            return self._add_fragment(payload, fin)
        if opcode == OP_PING:
            return Ping(payload)
        if opcode == OP_PONG:
            return Pong(payload)
        return _parse_close(payload)

    def _add_fragment(self, payload, fin):
        self._fragment_size += len(payload)
        if self._decoder is not None:
            try:  # fail fast: reject bad UTF-8 in the fragment it arrives in
                self._fragments.append(self._decoder.decode(payload, fin))
            except UnicodeDecodeError:
                raise FrameError(CLOSE_INVALID_DATA, "invalid UTF-8 in a text message") from None
        else:
            self._fragments.append(payload)
        if not fin:
            return _CONSUMED
        pieces = self._fragments
        self._fragments = None
        self._decoder = None
        if self._fragment_opcode == OP_TEXT:
            return Text("".join(pieces))
        return Binary(b"".join(pieces))


_CONSUMED = object()


def _decode_utf8(payload):
    try:
        return payload.decode("utf-8")
    except UnicodeDecodeError:
        raise FrameError(CLOSE_INVALID_DATA, "invalid UTF-8 in a text message") from None


def _parse_close(payload):
    if not payload:
        return Close(CLOSE_NO_STATUS, "")
    if len(payload) == 1:
        raise FrameError(CLOSE_PROTOCOL_ERROR, "close frame with a one-byte body")
    code = struct.unpack_from("!H", payload)[0]
    if code not in _VALID_PEER_CLOSE_CODES and not 3000 <= code <= 4999:
        raise FrameError(CLOSE_PROTOCOL_ERROR, f"invalid close code {code}")
    return Close(code, _decode_utf8(payload[2:]))
