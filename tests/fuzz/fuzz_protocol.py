"""Atheris target: the protocol parser, fed any text (lone surrogates too), either refuses it with a ProtocolError
whose error event encodes, or returns a command whose events (delivery, ack, history, read, typing, conversations,
who, help, search, room events, rooms, members, room, edit, delete, reaction, a reply and a message in its current state)
encode as UTF-8 JSON
that decodes back to the same values; anything else is a crash.

Run: python3 tests/fuzz/fuzz_protocol.py NEW_CORPUS_DIR tests/fuzz/corpus/protocol -max_total_time=15 (libFuzzer flags).
"""
import json
import os
import sys

import atheris

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

with atheris.instrument_imports():
    from chat.messaging.protocol import (
        Conversation,
        Conversations,
        Delete,
        Edit,
        Help,
        History,
        Members,
        ProtocolError,
        React,
        Read,
        Reply,
        RoomCommand,
        Rooms,
        Search,
        SendDirect,
        SendGroup,
        SetRoom,
        Typing,
        Who,
        ack_event,
        ack_json,
        encode_event,
        error_event,
        message_event,
        message_json,
        parse_inbound,
        read_event,
        typing_event,
        with_ref,
    )
    from chat.records import MessageRecord, reaction_body

OPTIONS = dict(max_name_length=32, default_history=50, max_history=200, max_topic_length=300)


def on_the_wire(text):
    """`text` as a socket would carry it and a client read it: UTF-8 bytes, then JSON."""
    return json.loads(text.encode("utf-8"))


def check(event, text):
    if on_the_wire(text) != event:
        raise AssertionError(f"{text!r} does not decode to {event!r}")


def test_one_input(data):
    if os.environ.get("CHAT_FUZZ_SELF_TEST") and data.startswith(b"self-test crash"):
        raise RuntimeError("self-test crash: the harness reports crashes")
    # UTF-8 with encoded surrogates let through as lone ones (a JSON \u escape can make those too); else Latin-1.
    try:
        text = data.decode("utf-8", "surrogatepass")
    except UnicodeDecodeError:
        text = data.decode("latin-1")
    try:
        command = parse_inbound(text, **OPTIONS)
    except ProtocolError as e:
        event = error_event(e.code, e.message, e.ref)
        check(event, encode_event(event))
        return
    kind = type(command)
    if kind in (SendGroup, SendDirect):
        room = command.room if kind is SendGroup and command.room not in ("general", "#current") else None
        record = MessageRecord(
            1, "alice", command.to if kind is SendDirect else None, command.msg, 1_700_000_000_000, None, room,
            target_id=command.reply_to,
        )
        check(message_event(record), message_json(record))
        check(ack_event(record, command.ref), ack_json(record, command.ref))
        # in history, as it stands: edited, with reactions, quoting what it answers; or deleted
        shown = record._replace(state={"edited": 1_700_000_000_001, "reactions": {"👍": ["bob"]}, "quote": {"user": "bob", "msg": command.msg[:100]}})
        check(message_event(shown), message_json(shown))
        gone = record._replace(body="", state={"deleted": True})
        check(message_event(gone), message_json(gone))
    elif kind in (Edit, Delete, React, Reply):
        if kind is React:
            body, event_kind = reaction_body(command.key, command.op), "reaction"
        elif kind is Delete:
            body, event_kind = "", "delete"
        else:
            body, event_kind = command.msg, ("edit" if kind is Edit else None)
        record = MessageRecord(2, "alice", None, body, 1_700_000_000_000, kind=event_kind, target_id=command.of)
        check(message_event(record), message_json(record))
        check(ack_event(record, command.ref), ack_json(record, command.ref))
    elif kind is History:
        event = with_ref({"type": "history", "messages": [], "with": command.with_user, "before": command.before}, command.ref)
        check(event, encode_event(event))
    elif kind is Read:
        event = read_event(command.conversation, command.id, command.ref)
        check(event, encode_event(event))
    elif kind is Typing:
        # The receiver of a one-to-one notice sees the conversation keyed by the typist.
        seen = command.conversation if command.conversation.room is not None else Conversation(with_user="alice")
        event = typing_event("alice", seen, 6)
        check(event, encode_event(event))
        check(read_event(command.conversation, 1), encode_event(read_event(command.conversation, 1)))
    elif kind is RoomCommand:
        # The event the command would store, as the room's members are sent it and history returns it.
        details = {"change": "joined", "role": "owner", "created": True, "private": command.private, "topic": command.topic}
        if command.action == "topic":
            record = MessageRecord(1, "alice", None, json.dumps({"topic": command.topic}), 1_700_000_000_000, None, command.room, "topic")
        else:
            if command.user is not None:
                details = {"change": command.action, **({"role": command.role} if command.role else {})}
            record = MessageRecord(
                1, "alice", None, json.dumps(details, ensure_ascii=False), 1_700_000_000_000, None, command.room, "member",
                command.user or "alice",
            )
        check(message_event(record), message_json(record))
        check(ack_event(record, command.ref), ack_json(record, command.ref))
    elif kind in (Rooms, Members, SetRoom):
        event = with_ref({"type": kind.__name__.lower(), "room": getattr(command, "room", None), "topic": ""}, command.ref)
        check(event, encode_event(event))
    elif kind is Search:
        # The answer echoes the text and scope as given (tests/test_search.py checks the words and expressions).
        event = with_ref({"type": "search", "q": command.q, "room": command.room, "with": command.with_user,
                          "before": command.before, "results": [], "more": False}, command.ref)
        check(event, encode_event(event))
    elif kind in (Who, Help, Conversations):
        event = with_ref({"type": kind.__name__.lower()}, command.ref)
        check(event, encode_event(event))
    else:
        raise AssertionError(f"parse_inbound returned {command!r}")


if __name__ == "__main__":
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()
