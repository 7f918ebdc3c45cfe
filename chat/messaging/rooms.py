"""Every named room's state (members and roles, invitations, bans, topic) as the fold of the room events in the message
stream, and who a room record is delivered to. There is no members table: the stream is the record."""
from chat.messaging.protocol import room_event_details

OWNER, MODERATOR, MEMBER = "owner", "moderator", "member"
RANK = {OWNER: 3, MODERATOR: 2, MEMBER: 1}  # a user outside the room ranks 0
EVENTS_PAGE = 5000  # room events read per query when the state is loaded at start


class Room:
    __slots__ = ("name", "private", "topic", "members", "invited", "banned")

    def __init__(self, name, private, topic):
        self.name = name
        self.private = private
        self.topic = topic
        self.members = {}  # user -> role
        self.invited = set()
        self.banned = set()

    def rank(self, user):
        return RANK.get(self.members.get(user), 0)

    @staticmethod
    def rank_of(role):
        return RANK[role]

    def visible_to(self, user):
        """A public room is seen by anyone; a private one by its members and those invited to it, nobody else."""
        return not self.private or user in self.members or user in self.invited


class RoomDirectory:
    """The rooms of this process, kept current by `apply` in id order (at post with one process, at delivery with
    several: every process folds the same events in the same order)."""

    def __init__(self):
        self._rooms = {}
        self._by_user = {}  # user -> set of the named rooms they are in
        self.last_event_id = 0

    def load(self, store, below=2**62):
        """Fold every room event in the store with an id below `below` (at start, before anything is posted)."""
        after = self.last_event_id
        while True:
            records = store.room_events(after, EVENTS_PAGE)
            for record in records:
                if record.id >= below:
                    return
                self.apply(record)
            if len(records) < EVENTS_PAGE:
                return
            after = records[-1].id

    def get(self, name):
        return self._rooms.get(name)

    def __len__(self):
        return len(self._rooms)

    def rooms(self):
        return self._rooms.values()

    def rooms_of(self, user):
        """The names of the rooms `user` is in (a live set: do not change it)."""
        return self._by_user.get(user, _EMPTY)

    def apply(self, record):
        """Fold one room event (a record with `kind`); False when it changes nothing (a create for a room that exists:
        with several processes two may create one name at once, and the first id wins)."""
        if record.id is not None:
            self.last_event_id = max(self.last_event_id, record.id)
        details = room_event_details(record)
        room = self._rooms.get(record.room)
        if record.kind == "topic":
            if room is None:
                return False
            room.topic = str(details.get("topic", ""))
            return True
        change, user = details.get("change"), record.subject
        if change == "joined" and details.get("created"):
            if room is not None:
                return False
            room = self._rooms[record.room] = Room(record.room, bool(details.get("private")), str(details.get("topic", "")))
            self._add(room, user, OWNER)
            return True
        if room is None or user is None:
            return False
        if change == "joined":
            room.invited.discard(user)
            self._add(room, user, details.get("role") if details.get("role") in RANK else MEMBER)
        elif change in ("left", "kicked", "banned"):
            self._remove(room, user)
            room.invited.discard(user)
            if change == "banned":
                room.banned.add(user)
        elif change == "unbanned":
            room.banned.discard(user)
        elif change == "invited":
            room.invited.add(user)
        elif change == "role":
            if user in room.members and details.get("role") in RANK:
                room.members[user] = details["role"]
        else:
            return False
        return True

    def _add(self, room, user, role):
        room.members[user] = role
        self._by_user.setdefault(user, set()).add(room.name)

    def _remove(self, room, user):
        room.members.pop(user, None)
        rooms = self._by_user.get(user)
        if rooms is not None:
            rooms.discard(room.name)
            if not rooms:
                del self._by_user[user]

    def audience(self, record):
        """Who a room record goes to: the room's members (after the change, for an event) and the user an event is about."""
        room = self._rooms.get(record.room)
        members = room.members.keys() if room is not None else ()
        if record.subject is not None and record.subject not in members:
            return [*members, record.subject]
        return members


_EMPTY = frozenset()
