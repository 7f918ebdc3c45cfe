"""The chat protocol: one inbound text frame -> a validated command or a ProtocolError; outbound events as JSON."""
import json
import re
from dataclasses import dataclass
from datetime import datetime, timezone

from chat.names import NAME_RULE, normalize_name
from chat.records import LIFECYCLE_KINDS, reaction_details

REF_MAX_LENGTH = 64
# A message's "client_id" (chat/messaging/resends.py): the sender's key for sending it exactly once, e.g. a UUID.
CLIENT_ID_MAX_LENGTH = 64
_CLIENT_ID = re.compile(r"[A-Za-z0-9_.:~-]{1,%d}" % CLIENT_ID_MAX_LENGTH)
# A JSON \u escape can produce a lone surrogate, which no UTF-8 encoder (the socket, the database) accepts.
_SURROGATE = re.compile("[\ud800-\udfff]")
MAX_ID = 2**63 - 1  # message ids are signed 64-bit integers in both stores


def parse_message_id(raw):
    """A message id from text (a URL parameter): ASCII digits only, at most MAX_ID; None when invalid."""
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 19:
        return None
    value = int(raw)
    return value if value <= MAX_ID else None

HELP_TEXT = (
    "Type text to chat in your current room (general at first). Commands: "
    "/msg NAME text (one-to-one), /who (who is online in the current room), "
    "/history [N] (last N messages of the current room), /read [#ROOM|NAME] (mark a room, or the one-to-one with NAME, read), "
    "/conversations (your conversations with unread counts). "
    "Rooms: /rooms, /room #r (make it the current room), /say #r text, /create #r [private] [topic], /join #r, /leave #r, "
    "/members [#r], /invite #r NAME, /kick #r NAME, /ban #r NAME, /unban #r NAME, /topic #r text, "
    "/role #r NAME moderator|member. "
    "Messages: /reply ID text, /edit ID text (your own), /delete ID, /react ID EMOJI, /unreact ID EMOJI. "
    "/search words (everything you can see), /search #r words, /search @NAME words. "
    "Server admins: /serverban NAME [reason], /serverunban NAME. "
    "/help. Start a line with // to send text beginning with /."
)

GENERAL = "general"  # the room everyone is in: the group chat (stored with no room)
CURRENT = "#current"  # not a room name: "the connection's current room" (plain text, /history, /who, /members)
ROOM_ACTIONS = ("create", "join", "leave", "invite", "kick", "ban", "unban", "topic", "role")
_ACTIONS_ON_USER = ("invite", "kick", "ban", "unban", "role")
ROLES = ("moderator", "member")  # the roles an owner may give; "owner" is the creator's
REACTION_OPS = ("add", "remove")

# A reaction key is one emoji: a pictographic character with optional variation selector (U+FE0E/FE0F) and skin-tone
# modifier, up to MAX_ZWJ_PARTS of those joined by ZERO WIDTH JOINER (U+200D: 👩‍💻), a flag (two regional indicators,
# or a black flag with tag characters: 🏴󠁧󠁢󠁳󠁣󠁴󠁿), or a keycap (0-9, # or * then U+20E3); at most MAX_KEY_CHARS code points.
# Pictographic: U+00A9, U+00AE, U+203C, U+2049, U+2122, U+2139, U+2194-21AA, U+231A-23FF, U+24C2, U+25AA-27BF,
# U+2934-2935, U+2B05-2B55, U+3030, U+303D, U+3297, U+3299, U+1F000-1F1E5, U+1F200-1FAFF.
MAX_KEY_CHARS = 32
MAX_ZWJ_PARTS = 8
_PICTOGRAPH = (
    "[\u00a9\u00ae\u203c\u2049\u2122\u2139\u2194-\u21aa\u231a-\u23ff\u24c2\u25aa-\u27bf\u2934\u2935"
    "\u2b05-\u2b55\u3030\u303d\u3297\u3299\U0001F000-\U0001F1E5\U0001F200-\U0001FAFF]"
)
_ELEMENT = f"{_PICTOGRAPH}[\ufe0e\ufe0f]?[\U0001F3FB-\U0001F3FF]?\ufe0f?"
_EMOJI = re.compile(
    f"(?:[\U0001F1E6-\U0001F1FF]{{2}}|[0-9#*]\ufe0f?\u20e3|\U0001F3F4[\U000E0020-\U000E007E]+\U000E007F|"
    f"{_ELEMENT}(?:\u200d{_ELEMENT}){{0,{MAX_ZWJ_PARTS - 1}}})"
)


def reaction_key(raw):
    """`raw` if it is one emoji (the rule above), else None."""
    if not isinstance(raw, str) or not 0 < len(raw) <= MAX_KEY_CHARS or _EMOJI.fullmatch(raw) is None:
        return None
    return raw


class ProtocolError(Exception):
    """A recoverable client mistake: reported as an `error` event, the connection stays open."""

    def __init__(self, code, message, ref=None):
        super().__init__(message)
        self.code = code
        self.message = message
        self.ref = ref


@dataclass(frozen=True)
class SendGroup:
    """A message to a room: GENERAL, a named room, or CURRENT; `reply_to` the id of the message it answers there."""

    msg: str
    ref: object = None
    room: str = GENERAL
    reply_to: object = None  # int or None
    client_id: object = None  # str or None: sent again with it, it is stored and delivered once


@dataclass(frozen=True)
class SendDirect:
    to: str
    msg: str
    ref: object = None
    reply_to: object = None  # int or None
    client_id: object = None  # str or None, as SendGroup's


@dataclass(frozen=True)
class Edit:
    """Replace the text of the sender's own message `of`."""

    of: int
    msg: str
    ref: object = None


@dataclass(frozen=True)
class Delete:
    of: int
    ref: object = None


@dataclass(frozen=True)
class React:
    """Add or remove (`op`, one of REACTION_OPS) the sender's reaction `key` (one emoji) on message `of`."""

    of: int
    key: str
    op: str = "add"
    ref: object = None


@dataclass(frozen=True)
class Reply:
    """/reply: a message answering `of`, in the conversation `of` is in (its room, general, or the one-to-one)."""

    of: int
    msg: str
    ref: object = None


@dataclass(frozen=True)
class History:
    limit: int
    before: object = None  # int or None
    with_user: object = None  # str or None
    ref: object = None
    room: str = GENERAL  # GENERAL, a named room or CURRENT; unused when with_user is set
    since: object = None  # int: the next items after this id, as a ?since= replay reads them (then no other field)


@dataclass(frozen=True)
class Search:
    """Find messages with every word of `q`: everywhere the sender may see (`room` and `with_user` None), in `room`
    (GENERAL or a named room) or in the one-to-one with `with_user`; the newest below `before` first. `limit` None: the
    server's default. The words and their limits are checked by chat/messaging/search.py."""

    q: str
    room: object = None
    with_user: object = None
    before: object = None
    limit: object = None
    ref: object = None


@dataclass(frozen=True)
class Who:
    ref: object = None
    room: object = None  # None: everyone online; else who of a room (or CURRENT) is online
    after: object = None  # everyone online: the page after this name


@dataclass(frozen=True)
class RoomCommand:
    """A change to a room: `action` is one of ROOM_ACTIONS; `user` the member it is about (invite, kick, ban, unban,
    role); `role` for role; `private` and `topic` for create; `topic` for topic."""

    action: str
    room: str
    user: object = None
    role: object = None
    private: bool = False
    topic: object = None
    ref: object = None


@dataclass(frozen=True)
class Rooms:
    """List the rooms the sender may see."""

    ref: object = None


@dataclass(frozen=True)
class Members:
    room: str = CURRENT
    ref: object = None


@dataclass(frozen=True)
class SetRoom:
    """Make `room` the connection's current room (None: just say which it is)."""

    room: object = None
    ref: object = None


@dataclass(frozen=True)
class Help:
    ref: object = None


@dataclass(frozen=True)
class Conversation:
    """A conversation key: a room (GENERAL or a named room) or the one-to-one with a user; exactly one is set."""

    room: object = None  # str or None
    with_user: object = None  # str or None

    def fields(self):
        """The key as wire fields: {"room": R} or {"with": U}."""
        return {"room": self.room} if self.room is not None else {"with": self.with_user}


@dataclass(frozen=True)
class Read:
    """Move the sender's read marker in `conversation` forward to message `id` (clamped to the newest there)."""

    conversation: Conversation
    id: int
    ref: object = None


@dataclass(frozen=True)
class Conversations:
    ref: object = None


@dataclass(frozen=True)
class Typing:
    conversation: Conversation
    ref: object = None


@dataclass(frozen=True)
class ServerBan:
    """A server admin bans `user` from the whole server (`ban` True, with an optional `reason`) or lifts the ban."""

    user: str
    ban: bool = True
    reason: str = ""
    ref: object = None


def parse_inbound(text, *, max_name_length, default_history, max_history, max_topic_length=300):
    """Turn one inbound text frame into a command. Raises ProtocolError."""
    if not encodable(text):  # never from a frame (its UTF-8 was checked), but this parser promises text either way
        raise ProtocolError("bad_field", "the frame holds an unpaired surrogate: not text")
    limits = (max_name_length, default_history, max_history, max_topic_length)
    if text[:1] == "{":
        return _parse_json(text, *limits)
    if text.startswith("//"):
        return SendGroup(_require_text(text[1:]), room=CURRENT)
    if text.startswith("/"):
        return _parse_slash(text, *limits)
    return SendGroup(_require_text(text), room=CURRENT)


def encodable(text):
    """Whether `text` encodes as UTF-8 (no lone surrogates): only such text is stored, sent or echoed."""
    return _SURROGATE.search(text) is None


def _require_encodable(value, field, ref):
    if not encodable(value):
        raise ProtocolError("bad_field", f'"{field}" holds an unpaired surrogate (\\ud800-\\udfff): not text', ref)
    return value


def _require_text(msg, ref=None):
    if not isinstance(msg, str):
        raise ProtocolError("bad_field", '"msg" must be a string', ref)
    _require_encodable(msg, "msg", ref)
    if not msg.strip():
        raise ProtocolError("empty_message", "message text is empty", ref)
    return msg


def _parse_name(raw, field, max_name_length, ref):
    if not isinstance(raw, str):
        raise ProtocolError("bad_field", f'"{field}" must be a user name', ref)
    _require_encodable(raw, field, ref)
    name = normalize_name(raw, max_name_length)
    if name is None:
        raise ProtocolError(
            "bad_name", f'"{raw[:40]}" is not a valid name: 1-{max_name_length} {NAME_RULE}', ref
        )
    return name


def _parse_limit(raw, default, maximum, ref):
    if raw is None:
        return default
    if type(raw) is not int or raw < 1:
        raise ProtocolError("bad_field", '"limit" must be a positive whole number', ref)
    return min(raw, maximum)


def _parse_json(text, max_name_length, default_history, max_history, max_topic_length):
    obj = json_object(text)
    if obj is None:
        raise ProtocolError("bad_json", "frame starts with '{' but is not a valid JSON object")
    ref = obj.get("ref")
    if ref is not None and not valid_ref(ref):
        raise ProtocolError(
            "bad_field", f'"ref" must be a string of at most {REF_MAX_LENGTH} characters (text) or an integer'
        )
    kind = obj.get("type")
    if kind is None:  # the seed clients' forms
        if "to_sender" in obj or "to" in obj:
            kind = "direct"
            target = obj["to_sender"] if "to_sender" in obj else obj["to"]
        elif "msg" in obj:
            kind = "message"
        else:
            raise ProtocolError("bad_message", 'expected "type", "msg" or "to"', ref)
    else:
        target = obj.get("to")
    if kind == "message":
        room = obj.get("room")
        msg = _require_text(obj.get("msg"), ref)
        room = GENERAL if room is None else _parse_room(room, max_name_length, ref)
        return SendGroup(msg, ref, room, _parse_reply_to(obj, ref), _parse_client_id(obj, ref))
    if kind == "direct":
        if target is None:
            raise ProtocolError("bad_field", '"to" is required for a direct message', ref)
        to = _parse_name(target, "to", max_name_length, ref)
        msg = _require_text(obj.get("msg"), ref)
        return SendDirect(to, msg, ref, _parse_reply_to(obj, ref), _parse_client_id(obj, ref))
    if kind == "edit":
        return Edit(_parse_id(obj.get("of"), "of", ref), _require_text(obj.get("msg"), ref), ref)
    if kind == "delete":
        return Delete(_parse_id(obj.get("of"), "of", ref), ref)
    if kind == "react":
        of = _parse_id(obj.get("of"), "of", ref)
        key = _parse_key(obj.get("key"), ref)
        op = obj.get("op", "add")
        if op not in REACTION_OPS:
            raise ProtocolError("bad_field", '"op" must be "add" or "remove"', ref)
        return React(of, key, op, ref)
    if kind == "history":
        limit = _parse_limit(obj.get("limit"), default_history, max_history, ref)
        before = obj.get("before")
        if before is not None and (type(before) is not int or not 1 <= before <= MAX_ID):
            raise ProtocolError("bad_field", '"before" must be a message id', ref)
        with_user, room, since = obj.get("with"), obj.get("room"), obj.get("since")
        if with_user is not None and room is not None:
            raise ProtocolError("bad_field", 'at most one of "room" and "with"', ref)
        if since is not None:
            if type(since) is not int or not 0 <= since <= MAX_ID:
                raise ProtocolError("bad_field", '"since" must be a message id or 0', ref)
            if with_user is not None or room is not None or before is not None:
                raise ProtocolError("bad_field", '"since" goes alone: it pages on through everything you may see', ref)
            return History(limit, None, None, ref, GENERAL, since)
        if with_user is not None:
            with_user = _parse_name(with_user, "with", max_name_length, ref)
        return History(limit, before, with_user, ref, GENERAL if room is None else _parse_room(room, max_name_length, ref))
    if kind == "search":
        return _parse_search(obj, max_name_length, ref)
    if kind == "who":
        room, after = obj.get("room"), obj.get("after")
        if after is not None:
            if room is not None and room != GENERAL:
                raise ProtocolError("bad_field", '"after" pages who is online everywhere: no "room" with it', ref)
            after = _parse_name(after, "after", max_name_length, ref)
            return Who(ref, None, after)
        return Who(ref, None if room is None else _parse_room(room, max_name_length, ref))
    if kind in ROOM_ACTIONS:
        return _parse_room_command(kind, obj, ref, max_name_length, max_topic_length)
    if kind == "rooms":
        return Rooms(ref)
    if kind == "members":
        return Members(_parse_room(obj.get("room"), max_name_length, ref), ref)
    if kind == "help":
        return Help(ref)
    if kind == "read":
        message_id = obj.get("id")
        if type(message_id) is not int or not 1 <= message_id <= MAX_ID:
            raise ProtocolError("bad_field", f'"id" must be a message id (a whole number 1-{MAX_ID})', ref)
        return Read(_parse_conversation(obj, max_name_length, ref), message_id, ref)
    if kind == "conversations":
        return Conversations(ref)
    if kind in ("server_ban", "server_unban"):
        user = _parse_name(obj.get("user"), "user", max_name_length, ref)
        reason = obj.get("reason", "")
        if kind == "server_unban":
            return ServerBan(user, False, "", ref)
        if type(reason) is not str:
            raise ProtocolError("bad_field", '"reason" must be text', ref)
        _require_encodable(reason, "reason", ref)
        return ServerBan(user, True, reason, ref)
    if kind == "typing":
        return Typing(_parse_conversation(obj, max_name_length, ref), ref)
    if isinstance(kind, str):
        _require_encodable(kind, "type", ref)
        raise ProtocolError("unknown_type", f'unknown type "{kind[:40]}"', ref)
    raise ProtocolError("bad_field", '"type" must be a string', ref)


def _parse_search(obj, max_name_length, ref):
    q = obj.get("q")
    if not isinstance(q, str):
        raise ProtocolError("bad_field", '"q" must be a string: the words to search for', ref)
    _require_encodable(q, "q", ref)
    with_user, room, before, limit = obj.get("with"), obj.get("room"), obj.get("before"), obj.get("limit")
    if with_user is not None and room is not None:
        raise ProtocolError("bad_field", 'at most one of "room" and "with"', ref)
    if before is not None:
        before = _parse_id(before, "before", ref)
    if limit is not None and (type(limit) is not int or limit < 1):
        raise ProtocolError("bad_field", '"limit" must be a positive whole number', ref)
    if with_user is not None:
        with_user = _parse_name(with_user, "with", max_name_length, ref)
    if room is not None:
        room = _parse_room(room, max_name_length, ref)
    return Search(q, room, with_user, before, limit, ref)


def _parse_slash_search(rest, max_name_length):
    """/search [#ROOM|@NAME] words: everywhere, or in one room or one-to-one."""
    q = rest.strip()
    room = with_user = None
    if q[:1] in ("#", "@"):
        scope, q = (q.split(None, 1) + [""])[:2]
        if scope[0] == "#":
            room = _parse_room(scope, max_name_length, None, slash=True)
        else:
            with_user = _parse_name(scope[1:], "with", max_name_length, None)
        q = q.strip()
    if not q:
        raise ProtocolError("bad_command", "usage: /search [#room|@name] words")
    return Search(q, room, with_user)


def _parse_id(raw, field, ref):
    if type(raw) is not int or not 1 <= raw <= MAX_ID:
        raise ProtocolError("bad_field", f'"{field}" must be a message id (a whole number 1-{MAX_ID})', ref)
    return raw


def _parse_reply_to(obj, ref):
    raw = obj.get("reply_to")
    return None if raw is None else _parse_id(raw, "reply_to", ref)


def _parse_client_id(obj, ref):
    raw = obj.get("client_id")
    if raw is None:
        return None
    if not isinstance(raw, str) or _CLIENT_ID.fullmatch(raw) is None:
        raise ProtocolError(
            "bad_field",
            f'"client_id" must be 1-{CLIENT_ID_MAX_LENGTH} characters of A-Z a-z 0-9 _ . : ~ - (a UUID fits)',
            ref,
        )
    return raw


def _parse_key(raw, ref):
    key = reaction_key(raw)
    if key is None:
        raise ProtocolError("bad_field", '"key" must be one emoji', ref)
    return key


def _parse_conversation(obj, max_name_length, ref):
    """The conversation key of a read or typing frame: "room" or "with", exactly one."""
    room, with_user = obj.get("room"), obj.get("with")
    if (room is None) == (with_user is None):
        raise ProtocolError("bad_field", 'exactly one of "room" and "with" is required', ref)
    if with_user is not None:
        return Conversation(with_user=_parse_name(with_user, "with", max_name_length, ref))
    return Conversation(room=_parse_room(room, max_name_length, ref))


def _parse_room(raw, max_name_length, ref, slash=False):
    """A room name: the user-name rule, lower-cased; `#name` in slash commands."""
    if not isinstance(raw, str):
        raise ProtocolError("bad_field", '"room" must be a room name', ref)
    _require_encodable(raw, "room", ref)
    if slash and raw.startswith("#"):
        raw = raw[1:]
    room = normalize_name(raw, max_name_length)
    if room is None:
        raise ProtocolError("bad_name", f'"{raw[:40]}" is not a valid room name: 1-{max_name_length} {NAME_RULE}', ref)
    return room


def _parse_topic(raw, max_topic_length, ref):
    if not isinstance(raw, str):
        raise ProtocolError("bad_field", '"topic" must be a string', ref)
    _require_encodable(raw, "topic", ref)
    topic = " ".join(raw.split())  # one line: a topic is shown in a header
    if len(topic) > max_topic_length:
        raise ProtocolError("bad_field", f'"topic" is longer than {max_topic_length} characters', ref)
    return topic


def _parse_room_command(action, obj, ref, max_name_length, max_topic_length):
    room = _parse_room(obj.get("room"), max_name_length, ref)
    user = role = topic = None
    private = False
    if action in _ACTIONS_ON_USER:
        user = _parse_name(obj.get("user"), "user", max_name_length, ref)
    if action == "role":
        role = obj.get("role")
        if role not in ROLES:
            raise ProtocolError("bad_field", '"role" must be "moderator" or "member"', ref)
    if action == "create":
        private = obj.get("private", False)
        if type(private) is not bool:
            raise ProtocolError("bad_field", '"private" must be true or false', ref)
        topic = _parse_topic(obj.get("topic", ""), max_topic_length, ref)
    if action == "topic":
        topic = _parse_topic(obj.get("topic"), max_topic_length, ref)
    return RoomCommand(action, room, user, role, private, topic, ref)


def json_object(text):
    """The JSON object `text` holds, or None when it holds no JSON object.

    Deep nesting ("[" * 100000) makes the decoder raise RecursionError, which is not a ValueError: it is bad
    JSON like any other, never a fault of the server."""
    try:
        obj = json.loads(text)
    except (ValueError, RecursionError):
        return None
    return obj if isinstance(obj, dict) else None


def valid_ref(ref):
    """A "ref" the server can echo: text of at most REF_MAX_LENGTH characters, or an integer a browser keeps exact."""
    if isinstance(ref, str):
        return len(ref) <= REF_MAX_LENGTH and encodable(ref)
    return type(ref) is int and abs(ref) < 2**53


def ref_of(text):
    """The valid "ref" of a raw JSON frame, else None: so a refusal that never parsed the frame can still be matched to
    the message it refused."""
    obj = json_object(text) if text[:1] == "{" else None
    ref = None if obj is None else obj.get("ref")
    return ref if ref is not None and valid_ref(ref) else None


_SLASH_USAGE = {
    "create": "/create #room [private] [topic]",
    "join": "/join #room",
    "leave": "/leave #room",
    "invite": "/invite #room NAME",
    "kick": "/kick #room NAME",
    "ban": "/ban #room NAME",
    "unban": "/unban #room NAME",
    "topic": "/topic #room text",
    "role": "/role #room NAME moderator|member",
    "say": "/say #room text",
}


def _parse_slash_room_command(command, rest, max_name_length, max_topic_length):
    words = rest.split()
    if not words:
        raise ProtocolError("bad_command", f"usage: {_SLASH_USAGE[command]}")
    room = _parse_room(words[0], max_name_length, None, slash=True)
    after = rest.strip()[len(words[0]):].strip()  # what follows the room name, spacing kept
    if command == "say":
        return SendGroup(_require_text(after), room=room)
    if command == "create":
        private = len(words) > 1 and words[1].lower() == "private"
        topic = after[len(words[1]):].strip() if private else after
        return RoomCommand("create", room, private=private, topic=_parse_topic(topic, max_topic_length, None))
    if command == "topic":
        return RoomCommand("topic", room, topic=_parse_topic(after, max_topic_length, None))
    if command in ("join", "leave"):
        if len(words) != 1:
            raise ProtocolError("bad_command", f"usage: {_SLASH_USAGE[command]}")
        return RoomCommand(command, room)
    expected = 3 if command == "role" else 2
    if len(words) != expected:
        raise ProtocolError("bad_command", f"usage: {_SLASH_USAGE[command]}")
    user = _parse_name(words[1], "user", max_name_length, None)
    if command == "role":
        role = words[2].lower()
        if role not in ROLES:
            raise ProtocolError("bad_command", f"usage: {_SLASH_USAGE[command]}")
        return RoomCommand("role", room, user, role)
    return RoomCommand(command, room, user)


_LIFECYCLE_USAGE = {
    "edit": "/edit ID text",
    "delete": "/delete ID",
    "react": "/react ID EMOJI",
    "unreact": "/unreact ID EMOJI",
    "reply": "/reply ID text",
}


def _parse_slash_lifecycle(command, rest):
    raw_id, _, after = rest.strip().partition(" ")
    of = parse_message_id(raw_id) if raw_id else None
    if not of:
        raise ProtocolError("bad_command", f"usage: {_LIFECYCLE_USAGE[command]}")
    if command == "delete":
        if after.strip():
            raise ProtocolError("bad_command", f"usage: {_LIFECYCLE_USAGE[command]}")
        return Delete(of)
    if command in ("react", "unreact"):
        key = reaction_key(after.strip())
        if key is None:
            raise ProtocolError("bad_command", f"usage: {_LIFECYCLE_USAGE[command]} (one emoji)")
        return React(of, key, "add" if command == "react" else "remove")
    text = _require_text(after)
    return Edit(of, text) if command == "edit" else Reply(of, text)


def _parse_slash(text, max_name_length, default_history, max_history, max_topic_length):
    command, _, rest = text[1:].partition(" ")
    command = command.strip().lower()
    if command in _LIFECYCLE_USAGE:
        return _parse_slash_lifecycle(command, rest)
    if command in _SLASH_USAGE:
        return _parse_slash_room_command(command, rest, max_name_length, max_topic_length)
    if command == "rooms":
        return Rooms()
    if command in ("members", "room"):
        target = rest.strip()
        room = _parse_room(target, max_name_length, None, slash=True) if target else None
        if command == "members":
            return Members(room or CURRENT)
        return SetRoom(room)
    if command == "msg":
        target, _, msg = rest.strip().partition(" ")
        if not target:
            raise ProtocolError("bad_command", "usage: /msg NAME text")
        return SendDirect(_parse_name(target, "to", max_name_length, None), _require_text(msg))
    if command == "who":
        return Who(room=CURRENT)
    if command == "help":
        return Help()
    if command == "read":
        target = rest.strip()
        if not target:
            conversation = Conversation(CURRENT)
        elif target.startswith("#"):
            conversation = Conversation(_parse_room(target, max_name_length, None, slash=True))
        else:
            conversation = Conversation(with_user=_parse_name(target, "with", max_name_length, None))
        return Read(conversation, MAX_ID)  # clamped to the newest message there
    if command == "search":
        return _parse_slash_search(rest, max_name_length)
    if command == "conversations":
        return Conversations()
    if command in ("serverban", "serverunban"):
        target, _, reason = rest.strip().partition(" ")
        if not target or (command == "serverunban" and reason.strip()):
            raise ProtocolError("bad_command", "usage: /serverban NAME [reason]" if command == "serverban" else "usage: /serverunban NAME")
        return ServerBan(_parse_name(target, "user", max_name_length, None), command == "serverban", reason.strip())
    if command == "history":
        arg = rest.strip()
        if not arg:
            return History(default_history, room=CURRENT)
        # ASCII only: str.isdigit() accepts "²", which int() refuses; a long number is just "as many as allowed".
        digits = arg.lstrip("0")
        if not (arg.isascii() and arg.isdigit()) or not digits:
            raise ProtocolError("bad_command", "usage: /history [N]")
        return History(max_history if len(digits) > 9 else min(int(digits), max_history), room=CURRENT)
    raise ProtocolError("unknown_command", f"unknown command /{command[:20]}; try /help")


# ---- outbound events -------------------------------------------------------------------

_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


def encode_event(event):
    return _dumps(event)


_second_prefix = [None, ""]  # [epoch second, "YYYY-MM-DDTHH:MM:SS."]: messages arrive many per second


def iso_timestamp(ms):
    """Milliseconds since the epoch as an ISO 8601 UTC string."""
    second, millis = divmod(ms, 1000)
    cached = _second_prefix
    if cached[0] != second:
        cached[1] = datetime.fromtimestamp(second, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.")
        cached[0] = second
    return f"{cached[1]}{millis:03d}Z"


def room_event_details(record):
    """The details a room event keeps as JSON in its body ({} if they cannot be read: the row was not written by us)."""
    try:
        details = json.loads(record.body)
    except ValueError:
        return {}
    return details if isinstance(details, dict) else {}


def _room_event(record):
    ts = iso_timestamp(record.created_ms)
    details = room_event_details(record)
    if record.kind == "topic":
        return {"type": "topic", "id": record.id, "room": record.room, "user": record.sender, "topic": details.get("topic", ""), "ts": ts}
    event = {"type": "member", "id": record.id, "room": record.room, "user": record.subject, "by": record.sender}
    event.update((k, v) for k, v in details.items() if k not in event)
    event["ts"] = ts
    return event


def _lifecycle_event(record):
    """An edit, delete or reaction event: about message `of`, in its conversation (`room` or `to` as for a message)."""
    event = {"type": record.kind, "id": record.id, "of": record.target_id}
    if record.room is not None:
        event["room"] = record.room
    event["user"] = record.sender
    if record.recipient is not None:
        event["to"] = record.recipient
    if record.kind == "edit":
        event["msg"] = record.body
    elif record.kind == "reaction":
        event["key"], event["op"] = reaction_details(record.body)
    event["ts"] = iso_timestamp(record.created_ms)
    return event


def _with_state(event, state):
    """A message event as the message stands now (history): `state` comes from chat/store/lifecycle.py."""
    if state.get("deleted"):
        for field in ("msg", "attachment", "reply_to"):
            event.pop(field, None)
        event["deleted"] = True
        return event
    if "edited" in state:
        event["edited"] = iso_timestamp(state["edited"])
    if "reactions" in state:
        event["reactions"] = state["reactions"]
    if "quote" in state:
        event["quote"] = state["quote"]
    return event


def message_event(record):
    """The delivery event of a stored message record (or room or lifecycle event); in its current state when the
    record carries one (history)."""
    if record.kind is not None:
        return _lifecycle_event(record) if record.kind in LIFECYCLE_KINDS else _room_event(record)
    if record.room is not None:
        event = {"type": "message", "id": record.id, "room": record.room, "user": record.sender, "msg": record.body, "ts": iso_timestamp(record.created_ms)}
    elif record.recipient is None:
        event = {"type": "message", "id": record.id, "user": record.sender, "msg": record.body, "ts": iso_timestamp(record.created_ms)}
    else:
        event = {
            "type": "direct",
            "id": record.id,
            "user": record.sender,
            "to": record.recipient,
            "msg": record.body,
            "ts": iso_timestamp(record.created_ms),
        }
    if record.target_id is not None:
        event["reply_to"] = record.target_id
    if record.attachment is not None:
        event["attachment"] = attachment_object(record.attachment)
    if record.state is not None:
        return _with_state(event, record.state)
    return event


def file_url(attachment_id):
    """Where a file is served, relative to the server (the page resolves it; the message text has the absolute URL)."""
    return f"/files/{attachment_id}"


def attachment_object(a):
    """The `attachment` field of a message event (an AttachmentRef in chat/records.py)."""
    url = file_url(a.id)
    return {
        "id": a.id,
        "name": a.name,
        "type": a.type,
        "size": a.size,
        "url": url,
        "thumb_url": url + "/thumb" if a.has_thumb else None,
        "image": a.image,
    }


_quote = json.encoder.encode_basestring  # C-accelerated; leaves non-ASCII as is, like ensure_ascii=False


def _json_ref(ref):
    return str(ref) if type(ref) is int else _quote(ref)


def message_json(record):
    """`encode_event(message_event(record))`, built without a JSON encoder: this runs once per message."""
    if record.kind is not None or record.target_id is not None or record.state is not None:
        return encode_event(message_event(record))
    if record.attachment is not None:
        return _attachment_message_json(record)
    if record.room is not None:
        return (
            f'{{"type":"message","id":{record.id},"room":{_quote(record.room)},"user":{_quote(record.sender)},'
            f'"msg":{_quote(record.body)},"ts":"{iso_timestamp(record.created_ms)}"}}'
        )
    if record.recipient is None:
        return (
            f'{{"type":"message","id":{record.id},"user":{_quote(record.sender)},'
            f'"msg":{_quote(record.body)},"ts":"{iso_timestamp(record.created_ms)}"}}'
        )
    return (
        f'{{"type":"direct","id":{record.id},"user":{_quote(record.sender)},"to":{_quote(record.recipient)},'
        f'"msg":{_quote(record.body)},"ts":"{iso_timestamp(record.created_ms)}"}}'
    )


def _attachment_message_json(record):
    """message_json for a message carrying a file: the same fields, then "attachment" (rare: the plain path stays lean)."""
    a = record.attachment
    url = file_url(a.id)
    thumb = f'"{url}/thumb"' if a.has_thumb else "null"
    to = "" if record.recipient is None else f',"to":{_quote(record.recipient)}'
    kind = "message" if record.recipient is None else "direct"
    return (
        f'{{"type":"{kind}","id":{record.id},"user":{_quote(record.sender)}{to},'
        f'"msg":{_quote(record.body)},"ts":"{iso_timestamp(record.created_ms)}",'
        f'"attachment":{{"id":{a.id},"name":{_quote(a.name)},"type":{_quote(a.type)},"size":{a.size},'
        f'"url":"{url}","thumb_url":{thumb},"image":{"true" if a.image else "false"}}}}}'
    )


def ack_json(record, ref):
    """`encode_event(ack_event(record, ref))`, built without a JSON encoder."""
    to = "" if record.recipient is None else f',"to":{_quote(record.recipient)}'
    if record.room is not None:
        to = f',"room":{_quote(record.room)}'
    tail = "" if ref is None else f',"ref":{_json_ref(ref)}'
    if record.target_id is not None and record.kind is not None:
        to += f',"of":{record.target_id}'
    return f'{{"type":"ack","id":{record.id},"ts":"{iso_timestamp(record.created_ms)}"{to}{tail}}}'


def ack_event(record, ref):
    event = {"type": "ack", "id": record.id, "ts": iso_timestamp(record.created_ms)}
    if record.recipient is not None:
        event["to"] = record.recipient
    if record.room is not None:
        event["room"] = record.room
    if record.target_id is not None and record.kind is not None:
        event["of"] = record.target_id
    if ref is not None:
        event["ref"] = ref
    return event


def error_event(code, message, ref=None):
    event = {"type": "error", "code": code, "message": message}
    if ref is not None:
        event["ref"] = ref
    return event


def read_event(conversation, read_id, ref=None):
    """A user's read marker in one conversation, as every connection of that user is told it."""
    return with_ref({"type": "read", **conversation.fields(), "id": read_id}, ref)


def typing_event(typist, conversation, ttl):
    """`typist` is typing in `conversation` (the key as the receiver sees it): show it for `ttl` seconds."""
    return {"type": "typing", "user": typist, **conversation.fields(), "ttl": ttl}


def with_ref(event, ref):
    if ref is not None:
        event["ref"] = ref
    return event
