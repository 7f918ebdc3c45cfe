"""Message search: its rules (what a search may hold, where it looks, what a user may see of the results) and the
`search` event it is answered with. The index and the query are chat/store/search.py.

A search finds stored messages (not room events, not edits, deletions or reactions of their own) in their current
text, never a deleted one, and only where the user may see: general, the named rooms they are in now, their one-to-one
conversations above their name's floor (chat/accounts/holds.py)."""
from typing import NamedTuple

from gevent.lock import BoundedSemaphore

from chat.messaging.history import fetch_rows
from chat.messaging.protocol import GENERAL, ProtocolError, encode_event, message_event, with_ref
from chat.store import StoreUnavailable
from chat.store.search import SearchTimeout, words

NEWEST = 2**62  # "before" when a search names none: above every id


class SearchLimits(NamedTuple):
    max_length: int  # characters of search text
    max_terms: int  # different words
    shortest: int  # the shortest word the store indexes
    longest: object  # the longest (None: no limit)


class Query(NamedTuple):
    """What a search text asks the store: its match `expression`, the `terms` in it, and the words it had to leave out
    (`ignored`: shorter or longer than the store indexes)."""

    expression: str
    terms: tuple
    ignored: tuple


def build_query(text, limits, expression, ref=None):
    """The Query of a search text, whatever it holds, or ProtocolError bad_field (too long, too many words, no word the
    store can find). `expression(terms)` is the store's builder (chat/store/search.py)."""
    if len(text) > limits.max_length:
        raise ProtocolError("bad_field", f'"q" is longer than {limits.max_length} characters', ref)
    found = words(text)
    if len(found) > limits.max_terms:
        raise ProtocolError("bad_field", f'"q" holds more than {limits.max_terms} different words', ref)
    terms = tuple(w for w in found if len(w) >= limits.shortest and (limits.longest is None or len(w) <= limits.longest))
    ignored = tuple(w for w in found if w not in terms)
    if not terms:
        if ignored:
            raise ProtocolError(
                "bad_field",
                f"this server finds words of {limits.shortest} to {limits.longest} characters only: search for longer words",
                ref,
            )
        raise ProtocolError("bad_field", '"q" holds no word to search for (letters or digits)', ref)
    return Query(expression(terms), terms, ignored)


class SearchService:
    """`queries` is the store's SearchQueries; `rooms` the RoomService (who is in which room); `is_known(name)` whether a
    user ever connected; `current(records)` gives history records in their current state (chat/store/lifecycle.py);
    `messages_with_ids(ids)` reads stored messages."""

    def __init__(self, settings, queries, rooms, is_known, current, messages_with_ids):
        self.settings = settings
        self.queries = queries
        self.rooms = rooms
        self.is_known = is_known
        self._current = current
        self._messages_with_ids = messages_with_ids
        shortest, longest = queries.word_lengths
        self.limits = SearchLimits(settings.search_max_query_length, settings.search_max_terms, shortest, longest)
        self._slots = BoundedSemaphore(settings.search_concurrency)  # searches in the database at once, here

    def search(self, user, command):
        """The `search` event answering `command` (a protocol Search) from `user`; raises ProtocolError."""
        ref, settings = command.ref, self.settings
        query = build_query(command.q, self.limits, self.queries.expression, ref)
        scope = self._scope(user, command)
        limit = min(command.limit or settings.search_page, settings.search_max_page)
        before = command.before or NEWEST
        if not self._slots.acquire(timeout=settings.search_timeout):
            raise ProtocolError("search_busy", "the server is busy with other searches: try again in a moment", ref)
        try:
            ids = self.queries.message_ids(query.expression, scope, before, limit + 1, settings.search_timeout)
            results, cut = self._results(ids[:limit])
        except SearchTimeout:
            raise ProtocolError(
                "search_timeout", "the search took too long: use more or rarer words, or search one conversation", ref
            ) from None
        except StoreUnavailable:
            raise ProtocolError("store_unavailable", "the message store is not answering; try again", ref) from None
        finally:
            self._slots.release()
        event = {"type": "search", "q": command.q}
        if command.room is not None:
            event["room"] = command.room
        if command.with_user is not None:
            event["with"] = command.with_user
        if command.before is not None:
            event["before"] = command.before
        event["results"] = results
        event["more"] = cut or len(ids) > limit
        if query.ignored:
            event["ignored"] = list(query.ignored)
        return with_ref(event, ref)

    def _scope(self, user, command):
        """Where the search looks, refused as the conversation requests refuse (no_such_room, not_member, unknown_user)."""
        ref = command.ref
        if command.with_user is not None:
            other = command.with_user
            if other == user:
                raise ProtocolError("bad_field", '"with" must name someone else', ref)
            if not self.is_known(other):
                raise ProtocolError("unknown_user", f"no user named {other!r} has ever connected", ref)
            return ("with", user, other)
        if command.room == GENERAL:
            return ("general",)
        if command.room is not None:
            self.rooms.member_room(user, command.room, ref)  # a member's search only, as a room's conversation is
            return ("room", command.room)
        return ("everywhere", user, frozenset(self.rooms.rooms_of(user)))

    def _results(self, ids):
        """The messages of `ids` (newest first) as history shows them, deleted ones left out, within one history event's
        bytes (`history_frame_bytes`; one larger message goes alone): (events, whether some were cut)."""
        settings = self.settings
        budget, chunk, events = settings.history_frame_bytes, fetch_rows(settings.history_frame_bytes, settings.max_message_size), []
        for start in range(0, len(ids), chunk):
            records = self._current(self._messages_with_ids(ids[start : start + chunk]))
            for record in sorted(records, key=lambda r: r.id, reverse=True):
                if record.body == "" or (record.state or {}).get("deleted"):
                    continue  # deleted since the search read its ids
                event = message_event(record)
                size = len(encode_event(event).encode())
                if events and size > budget:
                    return events, True
                budget -= size
                events.append(event)
        return events, False
