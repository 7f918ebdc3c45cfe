"""Named rooms over real sockets, for the room tests: requests and their answers, actions and their events, and
`upto_marker`, which proves who heard what by the order every connection receives events in."""
import itertools
import uuid

from tests.support.clients import post

MAX_ID = 2**63 - 1
_refs = itertools.count(1)


def room_name(short):
    """A room name no other test (or earlier run against the same database) uses: the user-name rule, 32 at most."""
    return f"{short}-{uuid.uuid4().hex[:8]}"


def _ref():
    return f"r{next(_refs)}"


def _read(client):
    """The client's next event other than presence (presence changes of other tests' clients come any time)."""
    while True:
        event = client.recv()
        if event["type"] != "presence":
            return event


# The request helpers below (act, refused, answer, say) read until their answer and pass over anything else that
# arrives first (other users' messages and events): they check the answer, not the audience. `upto_marker` is strict:
# tests call it to drain every connection before an action whose audience they check, and to check it after.

ANSWERS = ("ack", "room", "rooms", "members", "who", "history", "conversations", "read")


def act(client, payload):
    """Send a room action (create, join, leave, invite, kick, ban, unban, topic, role) with a fresh ref; return
    (ack, event): the ack with that ref and the stored event whose id the ack carries, in whichever order they come.
    An error fails the test. The event's "ref", if the server echoes one in the actor's copy, is removed (the contract
    puts the ref in the ack)."""
    ref = payload.get("ref") or _ref()
    client.send({**payload, "ref": ref})
    return _ack_and_event(client, ref, payload)


def act_text(client, line):
    """The same for a slash command sent as a plain text frame (no ref: the ack is the next ack)."""
    client.send(line)
    return _ack_and_event(client, None, line)


def _ack_and_event(client, ref, sent):
    ack = None
    events = {}  # id -> member/topic event, kept until the ack says which one is the action's
    while ack is None or ack["id"] not in events:
        got = _read(client)
        if got["type"] == "error" and (ref is None or got.get("ref") == ref):
            raise AssertionError(f"{sent!r} was refused: {got}")
        if got["type"] == "ack" and ack is None and (ref is None or got.get("ref") == ref):
            ack = got
        elif got["type"] in ("member", "topic") and "id" in got:
            events[got["id"]] = got
    event = dict(events[ack["id"]])
    event.pop("ref", None)
    return ack, event


def refused(client, payload):
    """Send a frame that must be refused; its error event (with the frame's ref echoed, when it is JSON). An answer to
    the frame instead fails the test."""
    if isinstance(payload, dict):
        ref = payload.get("ref") or _ref()
        client.send({**payload, "ref": ref})
    else:
        ref = None
        client.send(payload)
    while True:
        event = _read(client)
        if event["type"] == "error":
            if ref is not None:
                assert event.get("ref") == ref, f"an error for another frame than {payload!r}: {event}"
            return event
        answered = event.get("ref") == ref if ref is not None else event["type"] in ANSWERS
        if answered:
            raise AssertionError(f"expected {payload!r} to be refused, got {event}")


def answer(client, payload, kind):
    """Send a request (rooms, members, who, history, conversations, read) with a fresh ref; its `kind` answer with
    that ref. An error fails the test."""
    ref = _ref()
    client.send({**payload, "ref": ref})
    while True:
        event = _read(client)
        if event.get("ref") == ref:
            assert event["type"] == kind, f"expected a {kind} answer to {payload!r}, got {event}"
            return event
        assert event["type"] != "error", f"an error before the answer to {payload!r}: {event}"


def answer_text(client, line, kind):
    """A slash command's answer: the next `kind` event. An error fails the test."""
    client.send(line)
    while True:
        event = _read(client)
        assert event["type"] != "error", f"{line!r} was refused: {event}"
        if event["type"] == kind:
            return event


def upto_marker(herald, *clients):
    """The herald posts a group message; for each client, every event (presence aside) it received before that message.
    Deliveries come in id order, so an event stored before the marker that did not come before it never comes: this is
    how the tests prove who heard nothing. The herald is a user in no room with nothing unread (it must get only its
    ack), or, for what has no id (typing), the sender itself, whose frames the server handles in order."""
    marker = post(herald, f"marker {uuid.uuid4().hex[:6]}")
    seen = []
    for client in clients:
        events = []
        while True:
            event = _read(client)
            if event["type"] == "message" and event["id"] == marker["id"]:
                assert "room" not in event, event
                break
            events.append(event)
        seen.append(events)
    return seen


def say(client, room, text):
    """Send a message to `room` and return its ack (the sending connection gets no copy). An error fails the test."""
    ref = _ref()
    client.send({"type": "message", "room": room, "msg": text, "ref": ref})
    while True:
        event = _read(client)
        if event.get("ref") == ref:
            assert event["type"] == "ack", f"expected the ack of a message to {room}, got {event}"
            return event


def delivered(ack, room, user, text):
    """The delivery event of a room message, as its members receive it."""
    return {"type": "message", "id": ack["id"], "room": room, "user": user, "msg": text, "ts": ack["ts"]}


def member_event(ack, room, user, by, change, **extra):
    """A member event as the contract has it, with the id and ts of the ack its actor got."""
    return {"type": "member", "id": ack["id"], "room": room, "user": user, "by": by, "change": change, **extra, "ts": ack["ts"]}


def topic_event(ack, room, user, topic):
    return {"type": "topic", "id": ack["id"], "room": room, "user": user, "topic": topic, "ts": ack["ts"]}


def room_ack(ack, room):
    """What `ack` must be for an action or message in `room`: its own id, ts and ref (when it has one), and the room."""
    expected = {"type": "ack", "id": ack["id"], "ts": ack["ts"], "room": room}
    if "ref" in ack:
        expected["ref"] = ack["ref"]
    return expected


def history_events(client):
    """The history events a connection starts with (one history may come as several events): (welcome, [messages])."""
    welcome = client.recv_type("welcome")
    messages = []
    while True:
        history = client.recv_type("history")
        messages += history["messages"]
        if history.get("complete", True):
            return welcome, messages
