"""Server-kept conversation state (issue 14, first slice), end to end on each store: read markers, the conversation list
with unread counts, typing notices; across two processes over Redis; and what a hostile client gets out of them."""
import json
import uuid

import pytest

from tests.support.bystanders import Bystanders
from tests.support.clients import online_everywhere, post
from tests.support.databases import db_execute
from tests.support.servers import connect_when_free

MAX_ID = 2**63 - 1
GUEST_HOLD = 3  # seconds: a short hold, so that the name changes hands soon


def unique(short):
    return f"{short}-{uuid.uuid4().hex[:6]}"


def next_of(client, kind):
    """The client's next `kind` event, skipping deliveries and presence (what is not under test there)."""
    while True:
        event = client.recv()
        if event["type"] == kind:
            return event
        assert event["type"] in ("message", "direct", "presence"), event


def read(client, ref=None, **fields):
    """Send a read and return the sender's own read event (matched by its ref)."""
    ref = ref or uuid.uuid4().hex[:8]
    client.send({"type": "read", **fields, "ref": ref})
    event = next_of(client, "read")
    assert event["ref"] == ref, event
    return event


def refusal(client, payload):
    """The error event a frame is answered with."""
    client.send(payload)
    return next_of(client, "error")


def conversations(client):
    client.send({"type": "conversations", "ref": "c"})
    event = next_of(client, "conversations")
    assert event["ref"] == "c"
    return event["conversations"]


def entry_with(listing, name):
    found = [e for e in listing if e.get("with") == name]
    assert len(found) <= 1
    return found[0] if found else None


def general_entry(listing):
    (entry,) = [e for e in listing if e.get("room") == "general"]
    return entry


def fresh_welcome(chat, short):
    """The welcome of a new connection as `short` (the connection is closed after the test)."""
    client = chat.connect(short, handshake=False)
    welcome = client.recv_type("welcome")
    client.recv_type("history")
    return client, welcome


def directs(sender, to, count, prefix="m"):
    """Send `count` directs and wait for each ack; their ids."""
    return [post(sender, f"{prefix} {i}", to=to)["id"] for i in range(count)]


def receive_directs(client, count):
    return [client.recv_type("direct") for _ in range(count)]


# ---- read markers --------------------------------------------------------------------------------------------------


def test_a_read_moves_forward_only_reaches_the_users_other_tabs_and_a_stale_one_only_its_sender(chat):
    tab1, tab2, bob = chat.connect("alice"), chat.connect("alice"), chat.connect("bob")
    alice = chat.name("alice")
    ids = directs(bob, alice, 3)
    receive_directs(tab1, 3)
    assert [e["id"] for e in receive_directs(tab2, 3)] == ids

    assert read(tab1, "r1", **{"with": bob.name, "id": ids[1]}) == {"type": "read", "with": bob.name, "id": ids[1], "ref": "r1"}
    assert tab2.recv_type("read") == {"type": "read", "with": bob.name, "id": ids[1]}
    # A stale read: the sender is told where the marker is; nobody else hears of it.
    assert read(tab1, "r2", **{"with": bob.name, "id": ids[0]})["id"] == ids[1]
    assert read(tab1, "r3", **{"with": bob.name, "id": ids[2]})["id"] == ids[2]
    assert tab2.recv_type("read") == {"type": "read", "with": bob.name, "id": ids[2]}  # the next after ids[1]
    # The other party hears nothing of alice's reading: its next event is her next message.
    answer = post(tab1, "seen", to=bob.name)
    assert bob.recv_type("direct")["id"] == answer["id"]


def test_a_read_is_clamped_to_the_newest_message_of_its_conversation(chat):
    alice, bob = chat.connect("alice"), chat.connect("bob")
    (last,) = directs(bob, alice.name, 1)
    assert read(alice, **{"with": bob.name, "id": last + 1000})["id"] == last
    assert read(alice, **{"with": bob.name, "id": MAX_ID})["id"] == last
    group = post(bob, "for everyone")["id"]
    assert read(alice, room="general", id=MAX_ID)["id"] == group
    alice.send("/read")
    assert alice.recv_type("read") == {"type": "read", "room": "general", "id": group}
    alice.send(f"/read {bob.name}")
    assert alice.recv_type("read") == {"type": "read", "with": bob.name, "id": last}


def test_read_markers_survive_a_reconnect(chat):
    alice, bob = chat.connect("alice"), chat.connect("bob")
    ids = directs(bob, alice.name, 3)
    read(alice, **{"with": bob.name, "id": ids[0]})
    alice.close()
    _, welcome = fresh_welcome(chat, "alice")
    assert entry_with(welcome["conversations"], bob.name)["read"] == ids[0]
    assert entry_with(welcome["conversations"], bob.name)["unread"] == 2


def test_read_refusals(chat):
    alice = chat.connect("alice")
    stranger = unique("never-connected")
    assert refusal(alice, {"type": "read", "with": stranger, "id": 1, "ref": "u"}) == {
        "type": "error", "code": "unknown_user", "message": f"no user named {stranger!r} has ever connected", "ref": "u",
    }
    assert refusal(alice, {"type": "read", "with": alice.name, "id": 1})["code"] == "bad_field"
    assert refusal(alice, {"type": "read", "room": "lobby", "id": 1, "ref": 7}) == {
        "type": "error", "code": "no_such_room", "message": "no room named lobby", "ref": 7,
    }
    assert refusal(alice, {"type": "read", "id": 1})["code"] == "bad_field"
    assert refusal(alice, {"type": "read", "room": "general", "with": alice.name, "id": 1})["code"] == "bad_field"
    assert refusal(alice, {"type": "read", "room": "general"})["code"] == "bad_field"


def test_a_read_naming_another_user_moves_only_the_senders_marker(chat):
    attacker, victim, bob = chat.connect("mallory"), chat.connect("victim"), chat.connect("bob")
    (to_victim,) = directs(bob, victim.name, 1)
    (to_attacker,) = directs(bob, attacker.name, 1)
    victim.recv_type("direct")
    # There is no field for someone else's marker: "user" is ignored, the sender's own marker moves.
    attacker.send({"type": "read", "with": bob.name, "id": to_attacker, "user": victim.name, "ref": "x"})
    assert next_of(attacker, "read") == {"type": "read", "with": bob.name, "id": to_attacker, "ref": "x"}
    rows = db_execute(chat.server.database_url, "SELECT user, conversation, read_id FROM read_markers WHERE user IN (?, ?)",
                      [victim.name, attacker.name])
    assert [tuple(r) for r in rows] == [(attacker.name, "@" + bob.name, to_attacker)]
    _, welcome = fresh_welcome(chat, "victim")
    entry = entry_with(welcome["conversations"], bob.name)
    assert (entry["last"]["id"], entry["unread"], entry["read"]) == (to_victim, 1, 0)
    # and the victim's open connection heard nothing: its next event is bob's next message
    again = post(bob, "again", to=victim.name)
    assert victim.recv_type("direct")["id"] == again["id"]


@pytest.mark.parametrize("bad_id", [0, -1, 2**63, "5", 1.5, True, None, [1], {"id": 1}])
def test_a_read_with_an_absurd_id_is_refused_with_bad_field(chat, bad_id):
    alice, bob = chat.connect("alice"), chat.connect("bob")
    directs(bob, alice.name, 1)
    error = refusal(alice, {"type": "read", "with": bob.name, "id": bad_id, "ref": "a"})
    assert (error["code"], error["ref"]) == ("bad_field", "a")
    assert list(db_execute(chat.server.database_url, "SELECT read_id FROM read_markers WHERE user = ?", [alice.name])) == []


# ---- the conversation list --------------------------------------------------------------------------------------------


def test_a_fresh_connection_lists_its_conversations_newest_first_with_last_unread_and_read(chat):
    alice = chat.connect("alice")
    bob, carol, dave = chat.connect("bob"), chat.connect("carol"), chat.connect("dave")
    from_bob = directs(bob, alice.name, 2)
    from_carol = directs(carol, alice.name, 1)
    events = {e["id"]: e for e in receive_directs(alice, 3)}
    post(alice, "hi dave", to=dave.name)
    to_bob = post(alice, "my own words are not unread", to=bob.name)
    read(alice, **{"with": bob.name, "id": from_bob[0]})
    dave_copy = dave.recv_type("direct")
    own = {"type": "direct", "id": to_bob["id"], "user": alice.name, "to": bob.name, "msg": "my own words are not unread",
           "ts": to_bob["ts"]}

    _, welcome = fresh_welcome(chat, "alice")
    listing = welcome["conversations"]
    assert listing == conversations(alice)
    with_entries = [e for e in listing if "with" in e]
    assert with_entries == [
        {"with": bob.name, "last": own, "unread": 1, "read": from_bob[0]},
        {"with": dave.name, "last": dave_copy, "unread": 0, "read": 0},
        {"with": carol.name, "last": events[from_carol[0]], "unread": 1, "read": 0},
    ]
    general = general_entry(listing)
    assert set(general) == {"room", "last", "unread", "read", "mentions"}
    ids = [e["last"]["id"] if e["last"] else 0 for e in listing]
    assert ids == sorted(ids, reverse=True)
    # the others' lists hold only their own conversations with alice
    assert [e["with"] for e in conversations(carol) if "with" in e] == [alice.name]


@pytest.fixture
def capped(start_server, database_url):
    return start_server(database_url, max_unread_count=3, max_conversations=2, bots="")


def test_unread_counts_stop_at_max_unread_count_and_only_max_conversations_are_listed(capped, clients):
    alice = clients(capped, "alice")
    bob, carol, dave = (clients(capped, n) for n in ("bob", "carol", "dave"))
    directs(bob, "alice", 5)
    directs(carol, "alice", 2)
    directs(dave, "alice", 1)
    post(bob, "group 1")
    post(bob, "group 2")
    for i in range(3):
        post(alice, f"own {i}")
    listing = conversations(alice)
    assert [(e.get("with"), e.get("room"), e["unread"]) for e in listing] == [
        (None, "general", 2), ("dave", None, 1), ("carol", None, 2),
    ]
    post(bob, "group 3")
    post(bob, "group 4")
    assert general_entry(conversations(alice))["unread"] == 3  # 4, counted up to the cap
    directs(bob, "alice", 1)
    assert [(e.get("with"), e["unread"]) for e in conversations(alice)][:2] == [("bob", 3), (None, 3)]


def test_the_next_holder_of_a_guest_name_sees_none_of_the_earlier_holders_conversations(start_server, database_url):
    server = start_server(database_url, guest_hold=GUEST_HOLD, bots="")
    name, friend_name = unique("victim"), unique("friend")
    friend = server.connect(friend_name)
    friend.handshake()
    victim = server.connect(name, resume=False)
    victim.handshake()
    secret = post(friend, "the door code is 4711", to=name)
    victim.recv_type("direct")
    post(victim, "hello all")
    read(victim, **{"with": friend_name, "id": secret["id"]})
    read(victim, room="general", id=MAX_ID)
    assert entry_with(conversations(victim), friend_name)["last"]["msg"] == "the door code is 4711"
    victim.close()
    post(friend, "sent after you left", to=name)

    attacker, _ = connect_when_free(server, name)
    welcome = attacker.recv_type("welcome")
    attacker.recv_type("history")
    assert [e for e in welcome["conversations"] if "with" in e] == []
    assert general_entry(welcome["conversations"])["read"] == 0  # how far the earlier holder read is not shown either
    assert entry_with(conversations(attacker), friend_name) is None
    fresh = post(friend, "hello, whoever you are", to=name)
    attacker.recv_type("direct")
    assert entry_with(conversations(attacker), friend_name) == {
        "with": friend_name, "last": {"type": "direct", "id": fresh["id"], "user": friend_name, "to": name,
                                      "msg": "hello, whoever you are", "ts": fresh["ts"]}, "unread": 1, "read": 0,
    }
    for client in (friend, attacker):
        client.close()


# ---- typing -----------------------------------------------------------------------------------------------------------


def test_typing_reaches_the_other_party_and_not_the_typists_own_tabs(chat):
    tab1, tab2, bob, carol = chat.connect("alice"), chat.connect("alice"), chat.connect("bob"), chat.connect("carol")
    tab1.send({"type": "typing", "with": bob.name})
    alice = chat.name("alice")
    assert bob.recv_type("typing") == {"type": "typing", "user": alice, "with": alice, "ttl": 6}
    sent = post(tab1, "hello bob", to=bob.name)
    assert tab2.recv_type("direct")["id"] == sent["id"]  # no typing notice came before it
    assert bob.recv_type("direct")["id"] == sent["id"]
    marker = post(tab1, "to all")
    assert carol.recv_type("message")["id"] == marker["id"]  # carol heard no one-to-one typing


def test_typing_in_general_reaches_everyone_but_the_typists_tabs(chat):
    tab1, tab2, bob, carol = chat.connect("alice"), chat.connect("alice"), chat.connect("bob"), chat.connect("carol")
    tab1.send({"type": "typing", "room": "general"})
    for other in (bob, carol):
        assert other.recv_type("typing") == {"type": "typing", "user": chat.name("alice"), "room": "general", "ttl": 6}
    sent = post(tab1, "typed it")
    assert tab2.recv_type("message")["id"] == sent["id"]  # no typing notice came before it


def test_typing_is_neither_stored_nor_replayed(chat):
    alice, bob = chat.connect("alice"), chat.connect("bob")
    first = post(alice, "before typing", to=bob.name)
    alice.send({"type": "typing", "with": bob.name})
    alice.send({"type": "typing", "room": "general"})
    after = post(alice, "after typing", to=bob.name)
    bob.close()
    replay = chat.connect("bob", f"?since={first['id'] - 1}", handshake=False)
    replay.recv_type("welcome")
    history = replay.recv_type("history")
    mine = [m for m in history["messages"] if m.get("to") == bob.name]
    assert [m["id"] for m in mine] == [first["id"], after["id"]]
    assert {m["type"] for m in history["messages"]} <= {"message", "direct"}
    alice.send({"type": "history", "with": bob.name, "ref": "h"})
    page = alice.recv_type("history")
    assert [m["id"] for m in page["messages"]] == [first["id"], after["id"]]
    bodies = [r[0] for r in db_execute(chat.server.database_url, "SELECT body FROM messages WHERE sender = ? ORDER BY id", [alice.name])]
    assert bodies == ["before typing", "after typing"]


def test_a_second_typing_within_the_interval_is_not_forwarded(chat):
    alice, bob = chat.connect("alice"), chat.connect("bob")
    alice.send({"type": "typing", "with": bob.name})
    alice.send({"type": "typing", "with": bob.name})
    sent = post(alice, "done typing", to=bob.name)
    assert bob.recv_type("typing")["user"] == alice.name
    assert bob.recv_type("direct")["id"] == sent["id"]  # exactly one typing came before the message


def test_typing_refusals(chat):
    alice = chat.connect("alice")
    stranger = unique("nobody")
    assert refusal(alice, {"type": "typing", "with": stranger})["code"] == "unknown_user"
    assert refusal(alice, {"type": "typing", "with": alice.name})["code"] == "bad_field"
    assert refusal(alice, {"type": "typing", "room": "lobby"})["code"] == "no_such_room"
    assert refusal(alice, {"type": "typing"})["code"] == "bad_field"


# ---- several processes ---------------------------------------------------------------------------------------------------


def test_reads_and_typing_cross_processes(pair, clients):
    a, b = pair
    alice_a, alice_b, bob_b = clients(a, "alice"), clients(b, "alice"), clients(b, "bob")
    online_everywhere(alice_a, "alice", "bob")
    online_everywhere(bob_b, "alice", "bob")
    sent = post(bob_b, "across", to="alice")
    assert alice_a.recv_type("direct")["id"] == sent["id"]
    assert alice_b.recv_type("direct")["id"] == sent["id"]
    assert read(alice_a, **{"with": "bob", "id": sent["id"]})["id"] == sent["id"]
    assert alice_b.recv_type("read") == {"type": "read", "with": "bob", "id": sent["id"]}
    alice_a.send({"type": "typing", "with": "bob"})
    assert bob_b.recv_type("typing") == {"type": "typing", "user": "alice", "with": "alice", "ttl": 6}
    alice_a.send({"type": "typing", "room": "general"})
    assert bob_b.recv_type("typing") == {"type": "typing", "user": "alice", "room": "general", "ttl": 6}
    marker = post(alice_a, "marker")
    assert alice_b.recv_type("message")["id"] == marker["id"]  # the typist's tab on B heard no typing
    # the conversation list is the same on either process: the markers are in the database
    assert conversations(alice_b) == conversations(alice_a)


# ---- hostile clients ----------------------------------------------------------------------------------------------------


def test_a_typing_flood_costs_the_bystanders_nothing_and_forwards_one_per_interval(start_server, database_url):
    server = start_server(database_url, typing_interval=60, bots="")
    watch = Bystanders(server)
    victim = server.connect(unique("victim"))
    victim_welcome, _ = victim.handshake()
    flooder = server.connect(unique("flooder"))
    flooder_welcome, _ = flooder.handshake()
    frame = json.dumps({"type": "typing", "with": victim_welcome["user"]})
    general = json.dumps({"type": "typing", "room": "general"})
    for i in range(2000):
        flooder.send(frame if i % 2 else general)
        if i % 500 == 0:
            watch.check()
    sent = post(flooder, "the flood is over", to=victim_welcome["user"])
    flooder_name = flooder_welcome["user"]
    typing = []
    while True:
        event = victim.recv()
        if event["type"] == "direct":
            assert event["id"] == sent["id"]
            break
        if event["type"] == "typing":
            typing.append(event)
        else:
            assert event["type"] in ("presence", "message"), event  # the bystanders' group messages
    assert typing == [
        {"type": "typing", "user": flooder_name, "room": "general", "ttl": 6},
        {"type": "typing", "user": flooder_name, "with": flooder_name, "ttl": 6},
    ]
    watch.check()
    for client in (victim, flooder):
        client.close()
    watch.close()
