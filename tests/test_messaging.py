"""End to end, on each store: live delivery (group, direct, multi-tab), acks, the inbound forms, welcome, presence, health.

Tests of live delivery share one server per store (`chat` fixture, names unique to the test);
tests that look at who is online or at presence get a fresh server (`server` fixture).
"""
import json
import urllib.request
from datetime import datetime

import pytest

from tests.support.clients import presence_changes, wait_presence
from tests.support.polling import wait_until

EMOJI = "héllo 😀🎉👍🏽 中文 𝄞 — ünïcødé"


def parse_ts(ts):
    return datetime.strptime(ts, "%Y-%m-%dT%H:%M:%S.%fZ")


def healthz(server):
    with urllib.request.urlopen(server.http_url + "/healthz", timeout=5) as r:
        return r.status, r.headers.get("Content-Type", ""), json.load(r)


def test_healthz_ok(shared_server):
    status, content_type, body = healthz(shared_server)
    assert status == 200
    assert content_type.startswith("application/json")
    assert body["status"] == "ok"
    assert body["store_reachable"] is True
    assert body["store"] == shared_server.database_url.split(":", 1)[0]


def test_healthz_counts_connections(server, clients):
    clients(server, "alice")
    clients(server, "alice")
    clients(server, "bob")
    body = healthz(server)[2]
    assert (body["connections"], body["users_online"]) == (3, 2 + 1)  # eliza, a bot, is online without a connection


# ---- group messages --------------------------------------------------------------------------


def test_group_message_reaches_every_other_connection_and_the_sender_gets_an_ack(chat):
    alice, bob, carol, dave = (chat.connect(n) for n in ("alice", "bob", "carol", "dave"))
    alice.send({"type": "message", "msg": "hello all", "ref": "r-1"})
    ack = alice.recv_type("ack")  # the very next event: no copy of her own message comes first
    assert ack["ref"] == "r-1"
    assert isinstance(ack["id"], int) and ack["id"] > 0
    parse_ts(ack["ts"])
    for other in (bob, carol, dave):
        event = other.recv_type("message")
        assert event == {"type": "message", "id": ack["id"], "user": alice.name, "msg": "hello all", "ts": ack["ts"]}
    # and no copy arrives later either: the next thing alice sees is bob's message
    bob.send("reply")
    assert bob.recv_type("ack")["id"] > ack["id"]
    event = alice.recv_type("message")
    assert (event["user"], event["msg"]) == (bob.name, "reply")


def test_ack_without_ref_has_no_ref(chat):
    alice = chat.connect("alice")
    alice.send("plain")
    ack = alice.recv_type("ack")
    assert "ref" not in ack and "to" not in ack


def test_integer_ref_is_echoed(chat):
    alice = chat.connect("alice")
    alice.send({"msg": "x", "ref": 0})
    assert alice.recv_type("ack")["ref"] == 0


def test_ids_increase(chat):
    alice, bob = chat.connect("alice"), chat.connect("bob")
    ids = []
    for i in range(6):
        sender, other = (alice, bob) if i % 2 else (bob, alice)
        sender.send(f"n{i}")
        ids.append(sender.recv_type("ack")["id"])
        assert other.recv_type("message")["id"] == ids[-1]
    assert ids == sorted(ids) and len(set(ids)) == 6


def test_acks_come_in_order_for_a_burst(chat):
    alice, bob = chat.connect("alice"), chat.connect("bob")
    for i in range(100):
        alice.send({"msg": f"burst {i}", "ref": i})
    acks = [alice.recv_type("ack") for _ in range(100)]
    assert [a["ref"] for a in acks] == list(range(100))
    received = [bob.recv_type("message") for _ in range(100)]
    assert [e["msg"] for e in received] == [f"burst {i}" for i in range(100)]
    assert [e["id"] for e in received] == [a["id"] for a in acks]


# ---- direct messages --------------------------------------------------------------------------


def test_direct_message_reaches_only_the_addressee(chat):
    alice, bob, carol = (chat.connect(n) for n in ("alice", "bob", "carol"))
    alice.send({"type": "direct", "to": bob.name, "msg": "just for you", "ref": "d1"})
    ack = alice.recv_type("ack")
    assert (ack["ref"], ack["to"]) == ("d1", bob.name)
    event = bob.recv_type("direct")
    assert event == {"type": "direct", "id": ack["id"], "user": alice.name, "to": bob.name, "msg": "just for you", "ts": ack["ts"]}
    # carol: the group message sent after the direct one is the next delivery she sees
    alice.send("for everyone")
    group_ack = alice.recv_type("ack")
    event = carol.recv_type("message", "direct")
    assert (event["type"], event["id"], event["msg"]) == ("message", group_ack["id"], "for everyone")
    assert bob.recv_type("message")["id"] == group_ack["id"]


@pytest.mark.parametrize("form", ["to_sender", "to", "typed", "slash"])
def test_direct_forms(chat, form):
    alice, bob, carol = (chat.connect(n) for n in ("alice", "bob", "carol"))
    payload = {
        "to_sender": {"to_sender": bob.name, "msg": "seed to_sender"},
        "to": {"to": bob.name, "msg": "seed to"},
        "typed": {"type": "direct", "to": bob.name, "msg": "typed direct"},
        "slash": f"/msg {bob.name} slash msg",
    }[form]
    alice.send(payload)
    ack = alice.recv_type("ack")
    assert ack["to"] == bob.name
    expected = payload["msg"] if isinstance(payload, dict) else "slash msg"
    event = bob.recv_type("direct")
    assert (event["id"], event["user"], event["to"], event["msg"]) == (ack["id"], alice.name, bob.name, expected)
    alice.send("marker")
    marker = alice.recv_type("ack")
    assert carol.recv_type("message", "direct")["id"] == marker["id"]


@pytest.mark.parametrize(
    "payload,text",
    [
        ({"msg": "seed msg"}, "seed msg"),
        ({"type": "message", "msg": "typed"}, "typed"),
        ("plain text", "plain text"),
        ("//slash at start", "/slash at start"),
        ("//msg bob not a command", "/msg bob not a command"),
        ("[1, 2]", "[1, 2]"),
    ],
    ids=["seed", "typed", "plain", "escape", "escaped-command", "json-array-is-text"],
)
def test_group_forms(chat, payload, text):
    alice, bob = chat.connect("alice"), chat.connect("bob")
    alice.send(payload)
    ack = alice.recv_type("ack")
    event = bob.recv_type("message")
    assert (event["id"], event["user"], event["msg"]) == (ack["id"], alice.name, text)


def test_direct_name_is_case_insensitive(chat):
    alice, bob = chat.connect("alice"), chat.connect("bob")
    alice.send({"to": bob.name.upper(), "msg": "hey"})
    assert alice.recv_type("ack")["to"] == bob.name
    assert bob.recv_type("direct")["msg"] == "hey"


# ---- several connections of one user ------------------------------------------------------------


def test_multi_tab_direct_reaches_every_tab_of_the_addressee(chat):
    alice = chat.connect("alice")
    bob1, bob2 = chat.connect("bob"), chat.connect("bob")
    alice.send({"to": bob1.name, "msg": "both tabs"})
    ack = alice.recv_type("ack")
    for tab in (bob1, bob2):
        event = tab.recv_type("direct")
        assert (event["id"], event["msg"]) == (ack["id"], "both tabs")


def test_multi_tab_sender_copies(chat):
    alice1, alice2 = chat.connect("alice"), chat.connect("alice")
    bob, carol = chat.connect("bob"), chat.connect("carol")

    # group: the other tab gets the message itself, the sending tab only the ack
    alice1.send({"msg": "from tab 1", "ref": "g"})
    ack = alice1.recv_type("ack")
    assert ack["ref"] == "g"
    copy = alice2.recv_type("message")
    assert (copy["id"], copy["user"], copy["msg"]) == (ack["id"], alice1.name, "from tab 1")
    assert bob.recv_type("message")["id"] == ack["id"]
    assert carol.recv_type("message")["id"] == ack["id"]

    # direct: the other tab gets a copy of what it sent
    alice1.send({"to": bob.name, "msg": "private", "ref": "d"})
    dack = alice1.recv_type("ack")
    assert (dack["ref"], dack["to"]) == ("d", bob.name)
    copy = alice2.recv_type("direct")
    assert (copy["id"], copy["user"], copy["to"], copy["msg"]) == (dack["id"], alice1.name, bob.name, "private")
    assert bob.recv_type("direct")["id"] == dack["id"]

    # neither tab 1 (a copy of its own) nor carol saw the direct: their next deliveries are this group message
    bob.send("marker")
    marker = bob.recv_type("ack")["id"]
    assert alice1.recv_type("message", "direct")["id"] == marker
    assert alice2.recv_type("message", "direct")["id"] == marker
    assert carol.recv_type("message", "direct")["id"] == marker


def test_direct_to_own_name_from_another_tab_is_refused(chat):
    alice1 = chat.connect("alice")
    chat.connect("alice")
    alice1.send({"to": alice1.name, "msg": "me"})
    assert alice1.recv_type("error")["code"] == "self_message"


# ---- slash commands ---------------------------------------------------------------------------


def test_slash_who(server, clients):
    alice = clients(server, "alice")
    clients(server, "bob")
    clients(server, "bob")
    alice.send("/who")
    assert alice.recv_type("who")["online"] == ["alice", "bob", "eliza"]  # eliza: a bot, always online


def test_typed_who_echoes_ref(server, clients):
    alice = clients(server, "alice")
    alice.send({"type": "who", "ref": "w"})
    event = alice.recv_type("who")
    assert (event["online"], event["ref"]) == (["alice", "eliza"], "w")


def test_slash_help(chat):
    alice = chat.connect("alice")
    alice.send("/help")
    text = alice.recv_type("help")["text"]
    for command in ("/msg", "/who", "/history", "/help", "//"):
        assert command in text
    alice.send({"type": "help", "ref": 3})
    event = alice.recv_type("help")
    assert (event["text"], event["ref"]) == (text, 3)


def test_slash_history(server, clients):
    alice, bob = clients(server, "alice"), clients(server, "bob")
    ids = []
    for i in range(4):
        alice.send(f"line {i}")
        ids.append(alice.recv_type("ack")["id"])
    alice.send({"to": "bob", "msg": "not in group history"})
    alice.recv_type("ack")
    assert [bob.recv_type("message")["id"] for _ in ids] == ids
    assert bob.recv_type("direct")["msg"] == "not in group history"
    bob.send("/history 2")
    event = bob.recv_type("history")
    assert [m["id"] for m in event["messages"]] == ids[2:]
    assert [m["msg"] for m in event["messages"]] == ["line 2", "line 3"]
    assert event["more"] is True
    bob.send("/history")
    event = bob.recv_type("history")
    assert [m["id"] for m in event["messages"]] == ids
    assert event["more"] is False


def test_unknown_slash_command_is_an_error_and_the_connection_stays(chat):
    alice, bob = chat.connect("alice"), chat.connect("bob")
    alice.send("/dance")
    assert alice.recv_type("error")["code"] == "unknown_command"
    alice.send("still here")
    alice.recv_type("ack")
    assert bob.recv_type("message")["msg"] == "still here"


# ---- unicode ----------------------------------------------------------------------------------


def test_unicode_round_trips_live(chat):
    alice, bob = chat.connect("alice"), chat.connect("bob")
    alice.send(EMOJI)
    alice.recv_type("ack")
    assert bob.recv_type("message")["msg"] == EMOJI
    alice.send({"to": bob.name, "msg": EMOJI + " (direct)"})
    alice.recv_type("ack")
    assert bob.recv_type("direct")["msg"] == EMOJI + " (direct)"


# ---- welcome and presence -------------------------------------------------------------------------


def test_welcome_event(server, clients):
    clients(server, "alice")
    bob = clients(server, "Bob", handshake=False)  # names are case-insensitive: Bob is bob
    welcome = bob.recv()
    assert welcome["type"] == "welcome"
    assert welcome["user"] == "bob"
    assert welcome["online"] == ["alice", "bob", "eliza"]
    assert "/msg" in welcome["help"]
    history = bob.recv()
    assert history == {"type": "history", "messages": []}


def test_presence_online_and_offline(server, clients):
    alice = clients(server, "alice")
    bob = clients(server, "bob")
    wait_presence(alice, "bob", True)
    bob.close()
    assert ("bob", True) not in wait_presence(alice, "bob", False)


def test_presence_event_shape(server, clients):
    alice = clients(server, "alice")
    clients(server, "bob")
    event = alice.recv_type("presence")
    assert ("bob", True) in presence_changes(event)
    if "changes" in event:
        assert all(set(c) == {"user", "online"} for c in event["changes"])
    else:
        assert event == {"type": "presence", "user": "bob", "online": True}


def wait_for_connections(server, count, timeout=5.0):
    """Wait until /healthz reports `count` open connections (the server has finished closing the others)."""
    wait_until(lambda: healthz(server)[2]["connections"] == count, timeout=timeout, interval=0.01,
               message=f"/healthz to count {count} connections")


def test_no_presence_for_a_second_tab(server, clients):
    """A second tab opening or closing announces nothing; only the last tab closing does.

    Proven without waiting for nothing: after the second tab opens (or closes), another user
    connects; presence changes go out in order, so a change about bob would reach alice
    before, or together with, the one about that other user.
    """
    alice = clients(server, "alice")
    bob1 = clients(server, "bob")
    wait_presence(alice, "bob", True)

    bob2 = clients(server, "bob")  # second tab opens: bob is already online
    clients(server, "carol")
    assert [c for c in wait_presence(alice, "carol", True) if c[0] == "bob"] == []

    bob2.close()  # second tab closes: bob is still online
    wait_for_connections(server, 3)  # alice, bob1, carol
    clients(server, "dave")
    assert [c for c in wait_presence(alice, "dave", True) if c[0] == "bob"] == []

    bob1.close()  # last tab closes: now bob goes offline
    wait_presence(alice, "bob", False)
