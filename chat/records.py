"""The records shared across packages: a stored message, the file it carries, and a kick (whose sockets to close)."""
from typing import NamedTuple, Optional


class AttachmentRef(NamedTuple):
    """What a message says about the file it carries (the bytes stay in the `attachments` table)."""

    id: int
    name: str
    type: str  # the Content-Type it is served with
    size: int  # bytes
    has_thumb: bool

    @property
    def image(self):
        """A verified picture, shown inline (only pictures are ever stored with an image/* type)."""
        return self.type.startswith("image/")


class MessageRecord(NamedTuple):
    """A message or, `kind` set, a room event ("member" or "topic": its details are JSON in `body`, `subject` the user a
    member event is about). `room` None: general (recipient None) or a direct message."""

    id: int
    sender: str
    recipient: Optional[str]  # None for general and for rooms
    body: str
    created_ms: int
    attachment: Optional[AttachmentRef] = None
    room: Optional[str] = None
    kind: Optional[str] = None
    subject: Optional[str] = None

    def visible_to(self, user, rooms=()):
        """Whether `user`, a member of `rooms` (a set of names), may be sent this record."""
        if self.room is not None:
            return self.room in rooms or self.subject == user
        return self.recipient is None or self.recipient == user or self.sender == user

    def in_conversation(self, user, other, room=None):
        """In the one-to-one of `user` and `other`, or (other None) in `room` (None: general)."""
        if other is None:
            return self.recipient is None and self.room == room
        return (self.sender == user and self.recipient == other) or (self.sender == other and self.recipient == user)


class Kick(NamedTuple):
    """Close a user's sockets in every process: all of them, only those opened with one credential, or only guests'."""

    user: str
    reason: str
    digest: Optional[str] = None
    guests_only: bool = False
