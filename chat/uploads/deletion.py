"""Deleting a shared file (DELETE /files/<id>): who may, and what becomes of the message carrying it. No Flask here.

A file carried by a message is deleted with that message: the message lifecycle's `delete` event is posted for it
(chat/messaging/lifecycle.py), so every client that sees the message gets the tombstone live, and a `?since=` replay has
it once, in id order; the rules are the lifecycle's (its author, a moderator of its room, a server admin for general and
rooms). A file no stored message carries (its upload's message was never stored) is deleted alone, by its uploader.

The file itself is claimed first, in one transaction that any number of concurrent deletions race for (in any
process): the one that deletes it posts the event, the others are told it is gone, so the event is posted once."""
from typing import NamedTuple, Optional

from chat.messaging.protocol import ProtocolError
from chat.messaging.service import AttachmentPost
from chat.messaging.writer import BufferFull
from chat.store import StoreUnavailable


class Outcome(NamedTuple):
    """What a deletion came to: the HTTP status, and the refusal's text or the answer's fields."""

    status: int
    error: Optional[str] = None
    fields: Optional[dict] = None


GONE = Outcome(410, "this file was deleted")
NOT_YOURS = Outcome(403, "only its uploader (or a moderator of its room, or a server admin) may delete this file")


class FileDeleter:
    """`service` is the ChatService (its lifecycle, writer and store); `queries` the AttachmentQueries; `timeout` how
    long to wait for the delete event's commit (upload_commit_timeout)."""

    def __init__(self, service, queries, timeout):
        self.service = service
        self.queries = queries
        self.timeout = timeout

    def delete(self, user, meta):
        """Delete the file `meta` (an AttachmentMeta `user` may see, not deleted yet) for `user`: an Outcome."""
        writer = self.service.writer
        if any(r.attachment is not None and r.attachment.id == meta.id for r in writer.waiting()):
            # Its message is accepted but not stored yet (an upload answering right now): wait for it to be.
            if not writer.flush(self.timeout):
                return Outcome(503, "the message carrying the file is not stored yet (the database is slow); try again")
        carrier = self.queries.carrier(meta.id)
        if carrier is None:
            if user != meta.uploader:
                return NOT_YOURS
            return Outcome(200, fields={"id": meta.id, "message": None}) if self.queries.drop(meta.id) else GONE
        lifecycle = self.service.lifecycle
        try:
            record = lifecycle.deletable(user, carrier)
        except ProtocolError as e:
            if e.code == "not_found":
                # Visible file, hidden message: its message is deleted (or its deletion is being stored), or it is in a
                # room the user may not see.
                return GONE if self._message_gone(carrier) else Outcome(404, "no such file")
            return NOT_YOURS
        if not self.queries.drop(meta.id):
            return GONE  # a concurrent deletion won: it posts the event
        poster = AttachmentPost(user)
        try:
            lifecycle.post_delete(poster, record)
        except (ProtocolError, BufferFull, StoreUnavailable):
            return Outcome(503, "the file is deleted, but the server cannot store the deletion of its message right now",
                           fields={"id": meta.id, "message": carrier})
        fields = {"id": meta.id, "message": carrier}
        if not poster.settled.wait(self.timeout):
            return Outcome(503, "the file is deleted; the deletion of its message is not confirmed yet (the database is slow)",
                           fields=fields)
        if poster.refused:
            return Outcome(500, "the file is deleted; the database refused the deletion of its message", fields=fields)
        return Outcome(200, fields={**fields, "event": poster.record.id})

    def _message_gone(self, message_id):
        if any(r.kind == "delete" and r.target_id == message_id for r in self.service.writer.waiting()):
            return True
        rows = self.service.store.messages_with_ids([message_id])
        return not rows or rows[0].body == ""
