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
    id: int
    sender: str
    recipient: Optional[str]  # None for the group
    body: str
    created_ms: int
    attachment: Optional[AttachmentRef] = None

    def visible_to(self, user):
        return self.recipient is None or self.recipient == user or self.sender == user

    def in_conversation(self, user, other):
        if other is None:
            return self.recipient is None
        return (self.sender == user and self.recipient == other) or (self.sender == other and self.recipient == user)


class Kick(NamedTuple):
    """Close a user's sockets in every process: all of them, only those opened with one credential, or only guests'."""

    user: str
    reason: str
    digest: Optional[str] = None
    guests_only: bool = False
