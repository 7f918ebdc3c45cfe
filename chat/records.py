"""The stored message record shared by the store, the writer and the protocol."""
from typing import NamedTuple, Optional


class MessageRecord(NamedTuple):
    id: int
    sender: str
    recipient: Optional[str]  # None for the group
    body: str
    created_ms: int

    def visible_to(self, user):
        return self.recipient is None or self.recipient == user or self.sender == user

    def in_conversation(self, user, other):
        if other is None:
            return self.recipient is None
        return (self.sender == user and self.recipient == other) or (self.sender == other and self.recipient == user)
