"""The bytes one process publishes to the others on the Redis bus: a batch of messages, presence changes, kicks and
notices (frames that are no message: read markers, typing)."""
import struct
from typing import NamedTuple, Optional

from chat.records import Kick

# The first byte of every batch. A process that reads another version refuses the batch instead of misreading it: during
# a rolling upgrade it then relies on the database catch-up, as when Redis drops a batch.
VERSION = 4  # 2: notices; 3: rooms (a message's room and event fields, a notice's room); 4: a message's target_id
MESSAGE = 0x4D  # "M"
PRESENCE = 0x50  # "P"
KICK = 0x4B  # "K"
NOTICE = 0x4E  # "N"

_U8 = struct.Struct("!B")
_U16 = struct.Struct("!H")
_U32 = struct.Struct("!I")
_U64 = struct.Struct("!Q")


class BusFormatError(ValueError):
    """A batch that this version cannot read (corrupt, or from an incompatible version)."""


class BusMessage(NamedTuple):
    id: int
    sender: str
    recipient: Optional[str]  # None for the group
    frame: bytes  # the encoded websocket text frame, exactly as local clients are sent it
    room: Optional[str] = None  # a named room's (chat/messaging/rooms.py)
    kind: Optional[str] = None  # a room event's kind; its details are `body`
    subject: Optional[str] = None
    body: str = ""  # a room event's details (JSON) that every process folds; "" for a message (its text is in the frame)
    target_id: Optional[int] = None  # the message an edit, delete or reaction changes, or that a message replies to


class BusPresence(NamedTuple):
    user: str
    online: bool


class BusNotice(NamedTuple):
    """A frame for one user's connections, or (user None) for everyone's but skip_user's; never stored or replayed."""

    user: Optional[str]
    skip_user: Optional[str]
    frame: bytes  # the encoded websocket text frame
    room: Optional[str] = None  # set: for that room's members (but skip_user), not everyone


BusKick = Kick  # a kick travels the bus as the accounts layer made it


def _text(value):
    data = value.encode("utf-8")
    if len(data) > 0xFFFF:
        raise ValueError("bus strings are at most 65535 bytes")
    return _U16.pack(len(data)) + data


def _optional_text(value):
    """A flag byte (0: None) then the text: unlike a recipient, a notice's user may be any name, so "" is not spare."""
    return _U8.pack(0) if value is None else _U8.pack(1) + _text(value)


def encode_batch(origin, entries):
    """One publishable batch from `origin` (the instance id) holding BusMessage/BusPresence/BusKick entries."""
    parts = [_U8.pack(VERSION), _text(origin)]
    for entry in entries:
        kind = type(entry)
        if kind is BusMessage:
            parts += (
                _U8.pack(MESSAGE),
                _U64.pack(entry.id),
                _text(entry.sender),
                _text(entry.recipient or ""),
                _U32.pack(len(entry.frame)),
                bytes(entry.frame),
                _optional_text(entry.room),
                _optional_text(entry.kind),
                _optional_text(entry.subject),
                _text(entry.body),
                _U8.pack(0) if entry.target_id is None else _U8.pack(1) + _U64.pack(entry.target_id),
            )
        elif kind is BusPresence:
            parts += (_U8.pack(PRESENCE), _text(entry.user), _U8.pack(1 if entry.online else 0))
        elif kind is BusKick:
            parts += (
                _U8.pack(KICK),
                _text(entry.user),
                _text(entry.reason),
                _text(entry.digest or ""),
                _U8.pack(1 if entry.guests_only else 0),
            )
        elif kind is BusNotice:
            parts += (
                _U8.pack(NOTICE),
                _optional_text(entry.user),
                _optional_text(entry.skip_user),
                _U32.pack(len(entry.frame)),
                bytes(entry.frame),
                _optional_text(entry.room),
            )
        else:
            raise TypeError(f"not a bus entry: {entry!r}")
    return b"".join(parts)


class _Reader:
    __slots__ = ("data", "pos")

    def __init__(self, data):
        self.data = memoryview(data)
        self.pos = 0

    def take(self, n):
        end = self.pos + n
        if end > len(self.data):
            raise BusFormatError("truncated bus batch")
        chunk = self.data[self.pos : end]
        self.pos = end
        return chunk

    def unpack(self, fmt):
        return fmt.unpack(self.take(fmt.size))[0]

    def text(self):
        try:
            return str(self.take(self.unpack(_U16)), "utf-8")
        except UnicodeDecodeError as e:
            raise BusFormatError(f"bad text in bus batch: {e}") from None

    def optional_text(self):
        flag = self.unpack(_U8)
        if flag > 1:
            raise BusFormatError(f"bad optional-text flag {flag} in bus batch")
        return self.text() if flag else None

    def optional_id(self):
        flag = self.unpack(_U8)
        if flag > 1:
            raise BusFormatError(f"bad optional-id flag {flag} in bus batch")
        return self.unpack(_U64) if flag else None

    @property
    def done(self):
        return self.pos >= len(self.data)


def decode_batch(data):
    """(origin, [entries]) from `encode_batch`'s bytes; raises BusFormatError."""
    reader = _Reader(data)
    version = reader.unpack(_U8)
    if version != VERSION:
        raise BusFormatError(f"bus batch format version {version}: this process reads version {VERSION} only")
    origin = reader.text()
    entries = []
    while not reader.done:
        kind = reader.unpack(_U8)
        if kind == MESSAGE:
            message_id = reader.unpack(_U64)
            sender = reader.text()
            recipient = reader.text() or None
            frame = bytes(reader.take(reader.unpack(_U32)))
            room, kind, subject = reader.optional_text(), reader.optional_text(), reader.optional_text()
            body = reader.text()
            entries.append(BusMessage(message_id, sender, recipient, frame, room, kind, subject, body, reader.optional_id()))
        elif kind == PRESENCE:
            entries.append(BusPresence(reader.text(), reader.unpack(_U8) == 1))
        elif kind == KICK:
            user, reason, digest = reader.text(), reader.text(), reader.text() or None
            entries.append(BusKick(user, reason, digest, reader.unpack(_U8) == 1))
        elif kind == NOTICE:
            user, skip_user = reader.optional_text(), reader.optional_text()
            frame = bytes(reader.take(reader.unpack(_U32)))
            entries.append(BusNotice(user, skip_user, frame, reader.optional_text()))
        else:
            raise BusFormatError(f"unknown bus entry type {kind}")
    return origin, entries
