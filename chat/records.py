"""The records shared across packages: a stored message, the file it carries, a duplicate (a message sent again under its
client_id), and a kick (whose sockets to close)."""
import json
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


ROOM_KINDS = ("member", "topic")  # room events: their details are JSON in `body`, folded into the rooms' state
LIFECYCLE_KINDS = ("edit", "delete", "reaction")  # changes to the message `target_id`, in its conversation


class MessageRecord(NamedTuple):
    """A message or, `kind` set, an event: a room event (ROOM_KINDS: its details are JSON in `body`, `subject` the user a
    member event is about) or a change to message `target_id` (LIFECYCLE_KINDS: an edit's `body` is the new text, a
    reaction's is JSON {"key","op"}, a delete's is empty), addressed like that message. `room` None: general (recipient
    None) or a direct message. A message with `target_id` is a reply to it. A message whose `body` is empty was deleted
    (an empty text is never accepted). `state`: in history, what has become of the message since (wire fields: edited,
    deleted, reactions, quote), None when nothing has; on the live path only a reply's {"quote": ...}."""

    id: int
    sender: str
    recipient: Optional[str]  # None for general and for rooms
    body: str
    created_ms: int
    attachment: Optional[AttachmentRef] = None
    room: Optional[str] = None
    kind: Optional[str] = None
    subject: Optional[str] = None
    target_id: Optional[int] = None
    state: Optional[dict] = None
    client_id: Optional[str] = None  # the sender's key for sending it exactly once (chat/messaging/resends.py)

    def visible_to(self, user, rooms=()):
        """Whether `user`, a member of `rooms` (a set of names), may be sent this record."""
        if self.room is not None:
            return self.room in rooms or self.subject == user
        return self.recipient is None or self.recipient == user or self.sender == user

    def in_conversation(self, user, other, room=None):
        """In the one-to-one of `user` and `other`, or (other None) in `room` (None: general), and a message or room
        event (what history pages hold), not a lifecycle event."""
        if self.kind in LIFECYCLE_KINDS:
            return False
        if other is None:
            return self.recipient is None and self.room == room
        return (self.sender == user and self.recipient == other) or (self.sender == other and self.recipient == user)


class Duplicate(NamedTuple):
    """What the store answers, instead of storing it, for a message whose sender already sent one with the same
    `client_id`: the original's id, time and content digest (chat/store/sent.py). Nothing is stored or delivered."""

    record: MessageRecord  # the one sent again, as it was submitted
    original_id: int
    original_ms: int
    original_digest: str


def reaction_body(key, op):
    """What a reaction event keeps in its body."""
    return json.dumps({"key": key, "op": op}, ensure_ascii=False)


def reaction_details(body):
    """(key, op) of a reaction event's body; (None, None) if it is not one of ours."""
    try:
        details = json.loads(body)
    except ValueError:
        return None, None
    if not isinstance(details, dict):
        return None, None
    return details.get("key"), details.get("op")


class Kick(NamedTuple):
    """Close a user's sockets in every process: all of them, only those opened with one credential, or only guests'."""

    user: str
    reason: str
    digest: Optional[str] = None
    guests_only: bool = False
