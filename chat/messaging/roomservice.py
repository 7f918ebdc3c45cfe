"""The room commands (create, join, leave, invite, kick, ban, unban, topic, role) with their rules, and what a user may
learn about rooms: the list, members, who is online in one, whether they may post or read there.

Every refusal about a room the user may not see is the same as for a room that does not exist."""
import json

from gevent.event import Event
from gevent.lock import BoundedSemaphore

from chat.messaging.protocol import GENERAL, ProtocolError
from chat.messaging.rooms import MEMBER, MODERATOR, OWNER
from chat.messaging.writer import BufferFull
from chat.ratelimit import FailureThrottle
from chat.store import StoreUnavailable


def no_such_room(room, ref=None):
    return ProtocolError("no_such_room", f"no room named {room}", ref)


FORGET_WAIT = 5.0  # seconds a name's hand-over waits for its `left` events to be stored (and, with Redis, delivered here)
IN_EFFECT_WAIT = 10.0  # seconds one user's next room command waits for the last one to take effect here (Redis only)


class InEffect:
    """Stands in for the session a room change is posted for: passes its ack (or refusal) on and sets `settled`, which
    with several processes is when the change has taken effect in this one."""

    __slots__ = ("session", "settled")

    def __init__(self, session):
        self.session = session
        self.settled = Event()

    @property
    def user(self):
        return self.session.user

    def acknowledge(self, record, ref):
        self.session.acknowledge(record, ref)
        self.settled.set()

    def refuse(self, record, ref):
        refuse = getattr(self.session, "refuse", None)
        if refuse is not None:
            refuse(record, ref)
        self.settled.set()


class ServerActor:
    """Posts an event the server makes for a user (when a guest name changes hands); `settled` is set once it is stored
    (with Redis: delivered here) or refused."""

    __slots__ = ("user", "settled")

    def __init__(self, user):
        self.user = user
        self.settled = Event()

    def acknowledge(self, record, ref):
        self.settled.set()

    def refuse(self, record, ref):
        self.settled.set()


class RoomService:
    """`directory` is the RoomDirectory, `delivery` posts events (and its `is_online` says who is online anywhere),
    `is_known(name)` whether a user ever connected."""

    def __init__(self, settings, directory, delivery, is_known):
        self.settings = settings
        self.directory = directory
        self.delivery = delivery
        self.is_known = is_known
        # Rooms outlive their members, and guest names are free: a creation budget per client address keeps one
        # address from filling max_rooms for everyone.
        self._creations = FailureThrottle(settings.rooms_created_per_address, 3600.0)
        self._locks = {}  # user -> the lock their room commands take in turn (several processes only)

    # ---- what a user may see and do -------------------------------------------------------------

    def visible(self, user, name, ref=None):
        """The room `name` if `user` may see it, else no_such_room (the same for a private room as for none at all)."""
        room = self.directory.get(name)
        if room is None or not room.visible_to(user):
            raise no_such_room(name, ref)
        return room

    def member_room(self, user, name, ref=None):
        """The room `name` if `user` is in it; else no_such_room or not_member."""
        room = self.visible(user, name, ref)
        if user not in room.members:
            raise ProtocolError("not_member", f"you are not in #{name}: /join #{name} first", ref)
        return room

    def readable(self, user, name, ref=None):
        """The room whose history `user` may read: any public room, a private one only as a member."""
        room = self.visible(user, name, ref)
        if room.private and user not in room.members:
            raise ProtocolError("not_member", f"you are not in #{name}", ref)
        return room

    def rooms_of(self, user):
        return self.directory.rooms_of(user)

    # ---- commands ----------------------------------------------------------------------------------

    def act(self, session, command):
        """Carry out a RoomCommand from `session`, or raise ProtocolError. The actor gets an ack and the event.

        With several processes a change takes effect here when its event comes back in id order, after the commit: one
        user's commands in this process run one at a time, each after the last took effect, so that a burst of them is
        checked against the state each one leaves (limits, already a member). Two processes, or two users, racing on
        one room are settled by the fold: the first event in id order wins."""
        if self.delivery.applies_at_post:
            return self._act(session, command)
        lock = self._locks.get(session.user)
        if lock is None:
            lock = self._locks[session.user] = BoundedSemaphore()
        try:
            with lock:
                return self._act(session, command)
        finally:
            if not lock.locked() and not lock.linkcount():  # nobody holds or waits for it: forget it
                self._locks.pop(session.user, None)

    def _act(self, session, command):
        handler = getattr(self, "_" + command.action)
        user, ref = session.user, command.ref
        if command.room == GENERAL:
            if command.action == "create":
                raise ProtocolError("room_exists", "general exists: everyone is in it", ref)
            if command.action == "join":
                raise ProtocolError("already_member", "everyone is in general", ref)
            raise ProtocolError("forbidden", f"general cannot be changed: /{command.action} is for named rooms", ref)
        handler(session, user, command, ref)

    def _create(self, session, user, command, ref):
        name = command.room
        if self.directory.get(name) is not None:
            raise ProtocolError("room_exists", f"a room named {name} exists", ref)
        if len(self.directory) >= self.settings.max_rooms:
            raise ProtocolError("too_many_rooms", f"the server holds its limit of {self.settings.max_rooms} rooms", ref)
        self._check_room_count(user, ref)
        address = getattr(session, "address", None) or ""
        wait = self._creations.retry_after(address)
        if wait:
            raise ProtocolError(
                "too_many_rooms",
                f"your address created {self.settings.rooms_created_per_address} rooms within an hour: try again in {int(wait) + 1} s",
                ref,
            )
        self._creations.failed(address)
        details = {"change": "joined", "role": OWNER, "created": True, "private": command.private, "topic": command.topic}
        self._post(session, name, "member", user, details, ref)

    def _join(self, session, user, command, ref):
        room = self.visible(user, command.room, ref)
        if user in room.members:
            raise ProtocolError("already_member", f"you are in #{room.name}", ref)
        if user in room.banned:
            raise ProtocolError("banned", f"you are banned from #{room.name}", ref)
        if room.private and user not in room.invited:
            raise no_such_room(room.name, ref)
        self._check_room_count(user, ref)
        self._post(session, room.name, "member", user, {"change": "joined", "role": MEMBER}, ref)

    def _leave(self, session, user, command, ref):
        room = self.member_room(user, command.room, ref)
        self._post(session, room.name, "member", user, {"change": "left"}, ref)

    def _moderated(self, user, name, ref):
        """The room `name` if `user` may moderate it (owner or moderator)."""
        room = self.member_room(user, name, ref)
        if room.rank(user) < room.rank_of(MODERATOR):
            raise ProtocolError("forbidden", f"only owners and moderators of #{name} may do that", ref)
        return room

    def _invite(self, session, user, command, ref):
        room = self._moderated(user, command.room, ref)
        target = self._known(command.user, ref)
        if target in room.members:
            raise ProtocolError("already_member", f"{target} is in #{room.name}", ref)
        if target in room.invited:
            raise ProtocolError("already_member", f"{target} is already invited to #{room.name}", ref)
        if target in room.banned:
            raise ProtocolError("banned", f"{target} is banned from #{room.name}: /unban first", ref)
        self._post(session, room.name, "member", target, {"change": "invited"}, ref)

    def _kick(self, session, user, command, ref):
        room = self._moderated(user, command.room, ref)
        target = command.user
        if target not in room.members and target not in room.invited:
            raise ProtocolError("not_member", f"{target} is not in #{room.name}", ref)
        self._outranks(room, user, target, ref)
        self._post(session, room.name, "member", target, {"change": "kicked"}, ref)

    def _ban(self, session, user, command, ref):
        room = self._moderated(user, command.room, ref)
        target = self._known(command.user, ref)
        if target in room.banned:
            raise ProtocolError("banned", f"{target} is already banned from #{room.name}", ref)
        self._outranks(room, user, target, ref)
        self._post(session, room.name, "member", target, {"change": "banned"}, ref)

    def _unban(self, session, user, command, ref):
        room = self._moderated(user, command.room, ref)
        if command.user not in room.banned:
            raise ProtocolError("not_banned", f"{command.user} is not banned from #{room.name}", ref)
        self._post(session, room.name, "member", command.user, {"change": "unbanned"}, ref)

    def _topic(self, session, user, command, ref):
        room = self._moderated(user, command.room, ref)
        self._post(session, room.name, "topic", None, {"topic": command.topic}, ref)

    def _role(self, session, user, command, ref):
        room = self.member_room(user, command.room, ref)
        if room.members[user] != OWNER:
            raise ProtocolError("forbidden", f"only the owner of #{room.name} gives roles", ref)
        target = command.user
        if target not in room.members:
            raise ProtocolError("not_member", f"{target} is not in #{room.name}", ref)
        if room.members[target] == OWNER:
            raise ProtocolError("forbidden", "an owner's role cannot be changed", ref)
        self._post(session, room.name, "member", target, {"change": "role", "role": command.role}, ref)

    def _known(self, name, ref):
        try:
            known = self.is_known(name)
        except StoreUnavailable:
            known = False
        if not known:
            raise ProtocolError("unknown_user", f"no user named {name!r} has ever connected", ref)
        return name

    def _outranks(self, room, user, target, ref):
        if room.rank(target) >= room.rank(user):
            raise ProtocolError("forbidden", f"{target} ranks as high as you in #{room.name}", ref)

    def _check_room_count(self, user, ref):
        limit = self.settings.max_rooms_per_user
        if len(self.directory.rooms_of(user)) >= limit:
            raise ProtocolError("too_many_rooms", f"you are in {limit} rooms, the most one user may be in: leave one first", ref)

    def _post(self, session, room, kind, subject, details, ref):
        poster = session if self.delivery.applies_at_post else InEffect(session)
        try:
            self.delivery.post(poster, None, json.dumps(details, ensure_ascii=False), ref, room=room, kind=kind, subject=subject)
        except (BufferFull, StoreUnavailable):
            raise ProtocolError("not_stored", "the server cannot store changes right now; nothing was changed", ref) from None
        if poster is not session:
            poster.settled.wait(IN_EFFECT_WAIT)

    # ---- a name changing hands ----------------------------------------------------------------------

    def forget(self, user):
        """The name `user` is changing hands: its rooms and invitations are not the new holder's. Posts a `left` event
        for each (which also ends an invitation) and waits until they are stored, so that they get ids below the floor
        the name gets next and the new holder is never told which rooms the earlier one was in. Bans stay with the name
        (a ban would otherwise end by leaving and taking the name again). Raises StoreUnavailable."""
        rooms = sorted(room.name for room in self.directory.rooms() if user in room.members or user in room.invited)
        posted = []
        for name in rooms:
            actor = ServerActor(user)
            try:
                self.delivery.post(actor, None, json.dumps({"change": "left"}), None, room=name, kind="member", subject=user)
            except (BufferFull, StoreUnavailable):
                raise StoreUnavailable("the rooms of the name's earlier holder could not be left") from None
            posted.append(actor)
        for actor in posted:
            if not actor.settled.wait(FORGET_WAIT):
                raise StoreUnavailable("the rooms of the name's earlier holder were not left in time")

    # ---- listings ------------------------------------------------------------------------------------

    def listing(self, user):
        """(entries, more): general, then the rooms `user` is in, then the others they may see, by name."""
        limit = self.settings.max_rooms_listed
        mine = self.directory.rooms_of(user)
        general = {"room": GENERAL, "private": False, "topic": "", "members": None, "joined": True, "role": MEMBER, "invited": False}
        visible = [room for room in self.directory.rooms() if room.visible_to(user)]
        visible.sort(key=lambda room: (room.name not in mine, room.name))
        entries = [general] + [
            {
                "room": room.name,
                "private": room.private,
                "topic": room.topic,
                "members": len(room.members),
                "joined": user in room.members,
                "role": room.members.get(user),
                "invited": user in room.invited,
            }
            for room in visible[:limit]
        ]
        return entries, len(visible) > limit

    def members(self, user, name, ref=None):
        """(entries, more): the members of a room with roles and whether they are online, owners first."""
        limit = self.settings.max_members_listed
        online = self.delivery.is_online
        if name == GENERAL:
            names, more, _ = self.delivery.online_page(None, limit)
            return [{"user": n, "role": MEMBER, "online": True} for n in names], more
        room = self.readable(user, name, ref)
        ranked = sorted(room.members.items(), key=lambda item: (-room.rank(item[0]), item[0]))
        return [{"user": n, "role": role, "online": online(n)} for n, role in ranked[:limit]], len(ranked) > limit

    def online_in(self, user, name, ref=None):
        """Who of a room is online (general: everyone online)."""
        if name == GENERAL:
            return self.delivery.online()
        room = self.readable(user, name, ref)
        online = self.delivery.is_online
        return sorted(n for n in room.members if online(n))
