"""Property-based tests (hypothesis): whatever the protocol parser accepts, the store stores and returns as it was and
the encoder encodes; whatever bytes the frame parser is fed, in whatever chunks, it answers with the same events or a
close code, never another exception."""
import itertools
import json

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from chat.websocket import frames
from chat.messaging.protocol import (
    MAX_ID,
    MAX_KEY_CHARS,
    Delete,
    Edit,
    React,
    Reply,
    reaction_key,
    Conversations,
    History,
    Read,
    Typing,
    ProtocolError,
    SendDirect,
    CURRENT,
    ROOM_ACTIONS,
    RoomCommand,
    SendGroup,
    ack_event,
    ack_json,
    encode_event,
    error_event,
    message_event,
    message_json,
    parse_inbound,
    read_event,
)
from chat.names import normalize_name
from chat.records import MessageRecord, reaction_body
from chat.store import Store
from chat.store.lifecycle import LifecycleQueries
from chat.store.conversations import ConversationQueries
from tests.support.databases import fresh_database_url
from tests.support.rawws import build_frame

PARSE_OPTIONS = dict(max_name_length=32, default_history=50, max_history=200)
SENDER = "alice"
MAX_MS = 253402300799999  # the last millisecond of year 9999: what an ISO timestamp can show

# Every code point, lone surrogates included (hypothesis leaves them out of text() unless asked).
any_character = st.characters(blacklist_categories=())
any_text = st.text(any_character, max_size=40)
name_like = st.one_of(st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,40}", fullmatch=True), any_text)
field_value = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True), any_text, name_like,
    st.lists(st.integers(), max_size=3), st.dictionaries(any_text, st.integers(), max_size=2),
)
json_frame = st.builds(
    lambda fields, ensure_ascii: json.dumps(fields, ensure_ascii=ensure_ascii),
    st.fixed_dictionaries(
        {},
        optional={
            "type": st.one_of(st.sampled_from(["message", "direct", "history", "who", "help"]), field_value),
            "msg": st.one_of(any_text, field_value),
            "to": st.one_of(name_like, field_value),
            "to_sender": name_like,
            "with": st.one_of(name_like, field_value),
            "ref": st.one_of(st.text(any_character, max_size=70), st.integers(), field_value),
            "limit": field_value,
            "before": st.one_of(st.integers(min_value=-5, max_value=2**64), field_value),
        },
    ),
    st.booleans(),
)
slash_frame = st.builds(
    lambda command, rest: f"/{command} {rest}",
    st.sampled_from(["msg", "who", "help", "history", "MSG", "nope", "/"]),
    st.one_of(any_text, st.builds(lambda n, t: f"{n} {t}", name_like, any_text), st.from_regex(r"[0-9²٣]{0,25}", fullmatch=True)),
)
inbound_frame = st.one_of(json_frame, slash_frame, any_text)

_ids = itertools.count(1)


@pytest.fixture(scope="module", params=["sqlite", "mysql"])
def store(request, tmp_path_factory):
    """A real store on a fresh database of each kind, for the whole module."""
    store = Store(fresh_database_url(request, request.param, tmp_path_factory.mktemp("properties")))
    store.ensure_schema()
    yield store
    store.close()


def decoded(text):
    """`text` as the wire carries it: UTF-8 bytes (raises if it cannot be), decoded as JSON."""
    return json.loads(text.encode("utf-8"))


def parsed_or_refused(frame):
    """The command the parser makes of `frame`, or None when it refuses it; a refusal is an event too, and must encode
    whatever the frame held."""
    try:
        command = parse_inbound(frame, **PARSE_OPTIONS)
    except ProtocolError as e:
        event(f"refused: {e.code}")
        error = error_event(e.code, e.message, e.ref)
        assert decoded(encode_event(error)) == error
        return None
    event(f"accepted: {type(command).__name__}")
    return command


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(frame=inbound_frame, created_ms=st.integers(min_value=0, max_value=MAX_MS))
def test_what_the_parser_accepts_is_stored_as_it_was_and_encodes(store, frame, created_ms):
    command = parsed_or_refused(frame)
    if command is None:
        return
    if isinstance(command, History):
        # The store takes the query the parser built.
        if command.with_user is None:
            store.group_page(command.limit, command.before)
        else:
            store.conversation_page(SENDER, command.with_user, command.limit, command.before)
        return
    if not isinstance(command, (SendGroup, SendDirect)):
        return
    recipient = command.to if isinstance(command, SendDirect) else None
    record = MessageRecord(next(_ids), SENDER, recipient, command.msg, created_ms)
    store.insert_messages([record])
    assert store.messages_from(record.id, 1) == [record]
    delivery = message_event(record)
    assert decoded(message_json(record)) == delivery == decoded(encode_event(delivery))
    assert delivery["msg"] == command.msg
    ack = ack_event(record, command.ref)
    assert decoded(ack_json(record, command.ref)) == ack == decoded(encode_event(ack))


# ---- the conversation commands (read, conversations, typing) -----------------------------------------------------------

conversation_frame = st.builds(
    lambda fields, ensure_ascii: json.dumps(fields, ensure_ascii=ensure_ascii),
    st.fixed_dictionaries(
        {"type": st.sampled_from(["read", "typing", "conversations"])},
        optional={
            "room": st.one_of(st.just("general"), st.sampled_from(["General", "lobby", ""]), field_value),
            "with": st.one_of(name_like, field_value),
            "id": st.one_of(st.integers(min_value=-2, max_value=2**64), st.sampled_from([1, MAX_ID, MAX_ID + 1]), field_value),
            "ref": st.one_of(st.text(any_character, max_size=70), st.integers(), field_value),
            "user": name_like,
        },
    ),
    st.booleans(),
)
conversation_slash = st.builds(
    lambda command, rest: f"/{command}{rest}",
    st.sampled_from(["read", "READ", "conversations"]),
    st.one_of(st.just(""), st.builds(lambda n: f" {n}", name_like)),
)


def _as_frame(command):
    """The JSON frame a client would send for `command`."""
    kind = {Read: "read", Typing: "typing", Conversations: "conversations"}[type(command)]
    fields = {"type": kind}
    if not isinstance(command, Conversations):
        fields.update(command.conversation.fields())
    if isinstance(command, Read):
        fields["id"] = command.id
    if command.ref is not None:
        fields["ref"] = command.ref
    return json.dumps(fields)


@settings(max_examples=300, deadline=None)
@given(frame=st.one_of(conversation_frame, conversation_slash))
def test_whatever_the_parser_accepts_of_the_conversation_commands_round_trips(frame):
    command = parsed_or_refused(frame)
    if command is None:
        return
    assert isinstance(command, (Read, Typing, Conversations))
    if isinstance(command, Read) and command.conversation.room == CURRENT:
        assert frame.strip().lower() == "/read"  # "the connection's current room": no JSON spelling, the session resolves it
        return
    assert parse_inbound(_as_frame(command), **PARSE_OPTIONS) == command
    if isinstance(command, Read):
        assert 1 <= command.id <= MAX_ID
        answer = read_event(command.conversation, command.id, command.ref)
        assert decoded(encode_event(answer)) == answer


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(reads=st.lists(st.integers(min_value=1, max_value=MAX_ID), min_size=1, max_size=6))
def test_a_read_marker_only_moves_forward_and_never_past_the_newest_message(store, reads):
    queries = ConversationQueries(store)
    reader = f"reader{next(_ids)}"
    newest = store.max_message_id()
    group = [r.id for r in store.group_page(10**6)]
    marker = 0
    for wanted in reads:
        expected = max(marker, max([i for i in group if i <= wanted], default=0))
        now, moved = queries.mark_read(reader, "#general", None, wanted)
        assert (now, moved) == (expected, expected > marker)
        assert now <= newest
        marker = now


# ---- the frame parser ------------------------------------------------------------------------------------------------

CLOSE_CODES = {frames.CLOSE_PROTOCOL_ERROR, frames.CLOSE_INVALID_DATA, frames.CLOSE_TOO_BIG}

payload = st.one_of(st.binary(max_size=300), st.text(any_character, max_size=100).map(lambda t: t.encode("utf-8", "surrogatepass")))


def fragments(opcode, data, cuts):
    """One message as a first frame and continuations, cut anywhere (inside a UTF-8 sequence too)."""
    bounds = [0, *sorted(c % (len(data) + 1) for c in cuts), len(data)]
    pieces = [data[a:b] for a, b in zip(bounds, bounds[1:])]
    opcodes = [opcode] + [frames.OP_CONTINUATION] * (len(pieces) - 1)
    return b"".join(build_frame(op, piece, fin=i == len(pieces) - 1) for i, (op, piece) in enumerate(zip(opcodes, pieces)))


one_frame = st.one_of(
    st.builds(build_frame, st.sampled_from([frames.OP_TEXT, frames.OP_TEXT, frames.OP_BINARY]), payload),
    st.builds(fragments, st.sampled_from([frames.OP_TEXT, frames.OP_BINARY]), payload, st.lists(st.integers(0, 300), max_size=3)),
    st.builds(build_frame, st.sampled_from([frames.OP_PING, frames.OP_PONG, frames.OP_CLOSE]), st.binary(max_size=125)),
    # and what no client may send: any opcode, unfinished, unmasked, reserved bits, long control frames
    st.builds(
        lambda opcode, data, fin, mask, rsv: build_frame(opcode, data, fin=fin, mask=mask, rsv=rsv),
        st.integers(0, 15), payload, st.booleans(), st.booleans(), st.integers(0, 7),
    ),
)
byte_stream = st.one_of(
    st.lists(one_frame, max_size=8).map(b"".join),
    st.binary(max_size=600),
    st.tuples(st.lists(one_frame, max_size=4).map(b"".join), st.binary(max_size=40)).map(b"".join),
)


def summary(event):
    if isinstance(event, frames.Close):
        return ("Close", event.code, event.reason)
    return (type(event).__name__, event)


def run_parser(data, cuts, max_message_size, require_mask):
    """Feed `data` cut at `cuts`; ([events], close code or None). Any exception but FrameError fails the test."""
    parser = frames.FrameParser(max_message_size, require_mask=require_mask)
    events = []
    start = 0
    for end in sorted(set(cuts)) + [len(data)]:
        try:
            events += [summary(e) for e in parser.feed(data[start:end])]
        except frames.FrameError as e:
            assert e.code in CLOSE_CODES, (e.code, e.reason)
            event(f"close {e.code}")
            return events + [summary(x) for x in e.events], e.code
        start = end
    event("no close")
    return events, None


@settings(max_examples=400, deadline=None)
@given(
    data=byte_stream,
    cuts=st.lists(st.integers(min_value=0, max_value=700), max_size=12),
    max_message_size=st.sampled_from([8, 125, 65536]),
    require_mask=st.booleans(),
)
def test_frame_parser_answers_any_bytes_alike_in_any_chunks(data, cuts, max_message_size, require_mask):
    cuts = [c for c in cuts if c <= len(data)]
    whole = run_parser(data, [], max_message_size, require_mask)
    byte_by_byte = run_parser(data, range(len(data)) if len(data) < 100 else [], max_message_size, require_mask)
    chunked = run_parser(data, cuts, max_message_size, require_mask)
    assert chunked == whole
    assert byte_by_byte == whole


# ---- the room commands ---------------------------------------------------------------------------------------------

room_frame = st.builds(
    lambda fields, ensure_ascii: json.dumps(fields, ensure_ascii=ensure_ascii),
    st.fixed_dictionaries(
        {"type": st.sampled_from(list(ROOM_ACTIONS) + ["message", "members", "history"])},
        optional={
            "room": st.one_of(name_like, st.sampled_from(["general", "#dev", "Dev"]), field_value),
            "user": st.one_of(name_like, field_value),
            "role": st.one_of(st.sampled_from(["moderator", "member", "owner", "Member"]), field_value),
            "private": field_value,
            "topic": st.one_of(any_text, st.text(min_size=290, max_size=310), field_value),
            "msg": any_text,
            "ref": st.one_of(st.text(any_character, max_size=70), st.integers(), field_value),
        },
    ),
    st.booleans(),
)
room_slash = st.builds(
    lambda command, rest: f"/{command} {rest}",
    st.sampled_from(["create", "join", "leave", "invite", "kick", "ban", "unban", "topic", "role", "say", "members", "room"]),
    any_text,
)


def _room_command_frame(command):
    """The JSON frame a client would send for a RoomCommand."""
    fields = {"type": command.action, "room": command.room}
    if command.user is not None:
        fields["user"] = command.user
    if command.role is not None:
        fields["role"] = command.role
    if command.action == "create":
        fields["private"] = command.private
    if command.topic is not None:
        fields["topic"] = command.topic
    if command.ref is not None:
        fields["ref"] = command.ref
    return json.dumps(fields)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(frame=st.one_of(room_frame, room_slash), created_ms=st.integers(min_value=0, max_value=MAX_MS))
def test_whatever_the_parser_accepts_of_the_room_commands_is_a_valid_room_and_its_event_stores_and_encodes(store, frame, created_ms):
    command = parsed_or_refused(frame)
    if command is None or not isinstance(command, (RoomCommand, SendGroup)):
        return
    if command.room == CURRENT:
        return
    assert normalize_name(command.room, 32) == command.room  # a valid name, lower case
    if isinstance(command, SendGroup):
        record = MessageRecord(next(_ids), SENDER, None, command.msg, created_ms, None, None if command.room == "general" else command.room)
    else:
        assert parse_inbound(_room_command_frame(command), **PARSE_OPTIONS) == command
        if command.topic is not None:
            assert len(command.topic) <= 300 and "\n" not in command.topic
        details = {"topic": command.topic} if command.action == "topic" else {"change": command.action, "role": command.role}
        record = MessageRecord(
            next(_ids), SENDER, None, json.dumps(details, ensure_ascii=False), created_ms, None, command.room,
            "topic" if command.action == "topic" else "member", command.user,
        )
    store.insert_messages([record])
    assert store.messages_from(record.id, 1) == [record]
    event = message_event(record)
    assert decoded(message_json(record)) == event == decoded(encode_event(event))


# Slash commands built the way a terminal user types them: a room word (with or without "#"), then the rest.
room_word = st.builds(lambda mark, name: mark + name, st.sampled_from(["", "#"]), name_like)
slash_room_line = st.one_of(
    st.builds(lambda room, private, topic: f"/create {room}{' private' if private else ''} {topic}", room_word, st.booleans(), any_text),
    st.builds(lambda room: f"/join {room}", room_word),
    st.builds(lambda room: f"/leave {room}", room_word),
    st.builds(lambda room, topic: f"/topic {room} {topic}", room_word, any_text),
    st.builds(lambda room, text: f"/say {room} {text}", room_word, any_text),
)


@settings(max_examples=400, deadline=None)
@given(line=slash_room_line)
def test_a_slash_room_command_the_parser_accepts_names_the_room_typed_and_encodes_back_as_json(line):
    command = parsed_or_refused(line)
    if command is None:
        return
    typed = line.split()[1]
    assert command.room == normalize_name(typed[1:] if typed.startswith("#") else typed, 32)
    if isinstance(command, SendGroup):
        assert command.msg.strip()
        assert parse_inbound(json.dumps({"type": "message", "room": command.room, "msg": command.msg}), **PARSE_OPTIONS) == command
        return
    assert isinstance(command, RoomCommand) and command.action == line[1:].split()[0]
    if command.topic is not None:
        assert command.topic == " ".join(command.topic.split()) and len(command.topic) <= 300
    assert parse_inbound(_room_command_frame(command), **PARSE_OPTIONS) == command


# ---- the message lifecycle (edit, delete, react, reply) -------------------------------------------------------------------

# The pieces emoji are made of, and their look-alikes: pictographs, joiners, variation selectors, skin tones, regional
# indicators, tag characters, keycap parts, and plain letters and spaces.
emoji_piece = st.sampled_from(
    ["👍", "❤", "🏴", "👩", "💻", "🎉", "©", "\u200d", "\ufe0f", "\ufe0e", "\U0001F3FD", "\U0001F1EB", "\U0001F1F7",
     "\U000E0067", "\U000E007F", "\u20e3", "1", "#", "*", "a", " ", "\ud83d"]
)
emoji_like = st.one_of(
    st.sampled_from(["👍", "❤️", "👩‍💻", "🇫🇷", "1️⃣", "🏴󠁧󠁢󠁳󠁣󠁴󠁿", "👍🏽"]),
    st.lists(emoji_piece, min_size=1, max_size=12).map("".join), any_text, field_value,
)
message_id = st.one_of(
    st.integers(min_value=1, max_value=MAX_ID), st.integers(min_value=-2, max_value=2**64), st.sampled_from([1, MAX_ID, MAX_ID + 1]),
    field_value,
)
lifecycle_frame = st.builds(
    lambda fields, ensure_ascii: json.dumps(fields, ensure_ascii=ensure_ascii),
    st.fixed_dictionaries(
        {"type": st.sampled_from(["edit", "delete", "react", "message", "direct"])},
        optional={
            "of": message_id,
            "reply_to": message_id,
            "msg": st.one_of(any_text, field_value),
            "to": name_like,
            "key": emoji_like,
            "op": st.one_of(st.sampled_from(["add", "remove", "toggle"]), field_value, st.just("add")),
            "ref": st.one_of(st.text(any_character, max_size=70), st.integers(), field_value),
        },
    ),
    st.booleans(),
)
lifecycle_slash = st.builds(
    lambda command, target, rest: f"/{command} {target} {rest}",
    st.sampled_from(["edit", "delete", "react", "unreact", "reply", "EDIT"]),
    st.one_of(st.integers(min_value=-1, max_value=2**64).map(str), st.integers(min_value=1, max_value=MAX_ID).map(str), any_text),
    st.one_of(emoji_like.filter(lambda v: isinstance(v, str)), any_text),
)


def _lifecycle_command_frame(command):
    """The JSON frame a client would send for an Edit, Delete or React."""
    if isinstance(command, Edit):
        fields = {"type": "edit", "of": command.of, "msg": command.msg}
    elif isinstance(command, Delete):
        fields = {"type": "delete", "of": command.of}
    else:
        fields = {"type": "react", "of": command.of, "key": command.key, "op": command.op}
    if command.ref is not None:
        fields["ref"] = command.ref
    return json.dumps(fields)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(frame=st.one_of(lifecycle_frame, lifecycle_slash), created_ms=st.integers(min_value=0, max_value=MAX_MS))
def test_whatever_the_parser_accepts_of_the_lifecycle_commands_stores_takes_effect_and_encodes(store, frame, created_ms):
    command = parsed_or_refused(frame)
    if command is None or not isinstance(command, (Edit, Delete, React, Reply, SendGroup, SendDirect)):
        return
    target = MessageRecord(next(_ids), "bob", None, "the message", created_ms)
    store.insert_messages([target])
    if isinstance(command, (SendGroup, SendDirect, Reply)):
        reply_to = command.of if isinstance(command, Reply) else command.reply_to
        assert reply_to is None or 1 <= reply_to <= MAX_ID
        recipient = command.to if isinstance(command, SendDirect) else None
        record = MessageRecord(next(_ids), SENDER, recipient, command.msg, created_ms, target_id=None if reply_to is None else target.id)
    else:
        assert 1 <= command.of <= MAX_ID
        assert parse_inbound(_lifecycle_command_frame(command), **PARSE_OPTIONS) == command
        if isinstance(command, React):
            assert reaction_key(command.key) == command.key and len(command.key) <= MAX_KEY_CHARS
            body, kind = reaction_body(command.key, command.op), "reaction"
        else:
            body, kind = (command.msg, "edit") if isinstance(command, Edit) else ("", "delete")
        record = MessageRecord(next(_ids), SENDER, None, body, created_ms, kind=kind, target_id=target.id)
    store.insert_messages([record])
    assert store.messages_from(record.id, 1) == [record._replace(body="") if record.kind == "delete" else record]
    (now,) = store.messages_from(target.id, 1)
    expected_body = {"edit": record.body, "delete": ""}.get(record.kind, "the message")
    assert now.body == expected_body
    (current,) = LifecycleQueries(store).current([now])
    if isinstance(command, React) and command.op == "add":
        assert current.state == {"reactions": {command.key: [SENDER]}}
    event = message_event(record)
    assert decoded(message_json(record)) == event == decoded(encode_event(event))
    shown = message_event(current)
    assert decoded(message_json(current)) == shown == decoded(encode_event(shown))
    if record.kind is not None:
        assert (event["type"], event["of"]) == ({"reaction": "reaction"}.get(record.kind, record.kind), target.id)
        ack = ack_event(record, command.ref)
        assert decoded(ack_json(record, command.ref)) == ack and ack["of"] == target.id
