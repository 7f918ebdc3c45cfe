"""Named rooms (issue 14, ROOMS-CONTRACT.md) end to end over real sockets, on SQLite and MariaDB: every room action's
event reaches exactly its audience and its actor gets an ack; every refusal code; room messages reach members only;
private rooms stay secret (errors, lists, replays, history); kicked and banned users stop hearing at once on every tab;
lists, conversations, read markers and typing in rooms; the slash commands; hostile input; wscat; two processes.

Absence is proven by order, never by waiting: `upto_marker` has a user in no room post to general, and every
connection's events before that marker are exactly what it heard (a connection receives events in id order)."""
import uuid

import pytest
import requests

from tests.support.bystanders import Bystanders
from tests.support.clients import ChatClient, online_everywhere, post, wait_presence
from tests.support.databases import fresh_database_url
from tests.support.polling import wait_until
from tests.support.servers import connect_when_free
from tests.support.rooms import (
    MAX_ID,
    act,
    act_text,
    answer,
    answer_text,
    delivered,
    history_events,
    member_event,
    refused,
    room_ack,
    room_name,
    say,
    topic_event,
    upto_marker,
)
from tests.support.servers import Chat, ServerProcess, health
from tests.support.webusers import PASSWORD, get_token
from tests.support.wscat import Wscat

TOPIC_LIMIT = 20  # max_topic_length of the `limited` server
ROOMS_PER_USER = 3  # max_rooms_per_user of the `limited` server
ROOMS_LISTED = 4  # max_rooms_listed of the `limited` server
MEMBERS_LISTED = 3  # max_members_listed of the `limited` server
DEFAULT_TOPIC_LIMIT = 300  # max_topic_length's default (chat/config.py)


def create(client, room, private=False, topic="a topic"):
    """Create `room` as `client` and return its created event (after checking the ack)."""
    ack, event = act(client, {"type": "create", "room": room, "private": private, "topic": topic})
    assert ack == room_ack(ack, room)
    return event


def join(client, room):
    ack, event = act(client, {"type": "join", "room": room})
    assert ack == room_ack(ack, room)
    assert event == member_event(ack, room, client.name, client.name, "joined", role="member")
    return event


def invite(actor, room, user):
    ack, event = act(actor, {"type": "invite", "room": room, "user": user})
    assert event == member_event(ack, room, user, actor.name, "invited")
    return event


def no_room_error(room, code="no_such_room"):
    return {"code": code, "message": f"no room named {room}"}


def code_and_text(error):
    return {"code": error["code"], "message": error["message"]}


def room_items(messages, room):
    return [m for m in messages if m.get("room") == room]


@pytest.fixture
def herald(chat):
    """A user in no room whose group messages are the markers `upto_marker` waits for."""
    return chat.connect("herald")


# ---- each action: its ack, its event, its audience ------------------------------------------------------------------


def test_create_acks_the_creator_and_only_the_creators_connections_hear_of_it(chat, herald):
    tab1, tab2, bob = chat.connect("alice"), chat.connect("alice"), chat.connect("bob")
    alice = chat.name("alice")
    room = room_name("lobby")
    ack, event = act(tab1, {"type": "create", "room": room, "private": False, "topic": "all about lobbies", "ref": "c1"})
    assert ack == {"type": "ack", "id": ack["id"], "ts": ack["ts"], "room": room, "ref": "c1"}
    assert event == member_event(ack, room, alice, alice, "joined", role="owner", created=True, private=False,
                                 topic="all about lobbies")
    assert upto_marker(herald, tab1, tab2, bob) == [[], [event], []]

    secret = room_name("den")
    ack, event = act(tab2, {"type": "create", "room": secret, "private": True, "topic": "shh"})
    assert event == member_event(ack, secret, alice, alice, "joined", role="owner", created=True, private=True, topic="shh")
    assert upto_marker(herald, tab1, tab2, bob) == [[event], [], []]

    # names are case-insensitive and kept in lower case, as user names are
    shouted = room_name("hall")
    ack, event = act(tab1, {"type": "create", "room": shouted.upper(), "topic": "loud"})
    assert (ack["room"], event["room"]) == (shouted, shouted)
    assert event["private"] is False  # "private" left out: a public room
    assert refused(bob, {"type": "create", "room": shouted})["code"] == "room_exists"


def test_join_and_leave_reach_the_members_and_the_leaver_and_nobody_else(chat, herald):
    alice, bob, carol, dave = (chat.connect(n) for n in ("alice", "bob", "carol", "dave"))
    room = room_name("club")
    create(alice, room)
    join(carol, room)
    assert upto_marker(herald, alice, bob, carol, dave)[3] == []

    joined = join(bob, room)
    assert upto_marker(herald, alice, bob, carol, dave) == [[joined], [], [joined], []]

    ack, left = act(bob, {"type": "leave", "room": room})
    assert ack == room_ack(ack, room)
    assert left == member_event(ack, room, bob.name, bob.name, "left")
    assert upto_marker(herald, alice, bob, carol, dave) == [[left], [], [left], []]

    # bob hears nothing of the room any more; carol does
    said = say(alice, room, "after bob left")
    assert upto_marker(herald, alice, bob, carol, dave) == [[], [], [delivered(said, room, alice.name, "after bob left")], []]


def test_invite_kick_ban_and_unban_reach_the_members_and_their_subject(chat, herald):
    alice, bob, carol, dave = (chat.connect(n) for n in ("alice", "bob", "carol", "dave"))
    den = room_name("den")
    create(alice, den, private=True)

    invited = invite(alice, den, bob.name)
    assert upto_marker(herald, alice, bob, carol, dave) == [[], [invited], [], []]
    joined = join(bob, den)
    assert upto_marker(herald, alice, bob, carol, dave) == [[joined], [], [], []]

    invited_carol = invite(alice, den, carol.name)
    assert upto_marker(herald, alice, bob, carol, dave) == [[], [invited_carol], [invited_carol], []]

    # a kick of someone only invited revokes the invitation
    ack, kicked = act(alice, {"type": "kick", "room": den, "user": carol.name})
    assert kicked == member_event(ack, den, carol.name, alice.name, "kicked")
    assert upto_marker(herald, alice, bob, carol, dave) == [[], [kicked], [kicked], []]
    assert code_and_text(refused(carol, {"type": "join", "room": den})) == no_room_error(den)

    ack, banned = act(alice, {"type": "ban", "room": den, "user": bob.name})
    assert banned == member_event(ack, den, bob.name, alice.name, "banned")
    assert upto_marker(herald, alice, bob, carol, dave) == [[], [banned], [], []]
    # banned and no longer a member of a private room: it does not exist for him
    assert code_and_text(refused(bob, {"type": "join", "room": den})) == no_room_error(den)

    ack, unbanned = act(alice, {"type": "unban", "room": den, "user": bob.name})
    assert unbanned == member_event(ack, den, bob.name, alice.name, "unbanned")
    assert upto_marker(herald, alice, bob, carol, dave) == [[], [unbanned], [], []]
    # unbanned is not invited: a private room still needs an invitation
    assert code_and_text(refused(bob, {"type": "join", "room": den})) == no_room_error(den)
    invite(alice, den, bob.name)
    join(bob, den)


def test_a_banned_user_cannot_rejoin_a_public_room_until_unbanned_and_a_kicked_one_can(chat, herald):
    alice, bob, carol = (chat.connect(n) for n in ("alice", "bob", "carol"))
    room = room_name("square")
    create(alice, room)
    join(bob, room)
    join(carol, room)
    upto_marker(herald, alice, bob, carol)

    ack, kicked = act(alice, {"type": "kick", "room": room, "user": bob.name})
    assert upto_marker(herald, alice, bob, carol) == [[], [kicked], [kicked]]
    rejoined = join(bob, room)
    assert upto_marker(herald, alice, bob, carol) == [[rejoined], [], [rejoined]]

    ack, banned = act(alice, {"type": "ban", "room": room, "user": bob.name})
    assert banned == member_event(ack, room, bob.name, alice.name, "banned")
    assert upto_marker(herald, alice, bob, carol) == [[], [banned], [banned]]
    error = refused(bob, {"type": "join", "room": room})
    assert error["code"] == "banned"
    assert refused(bob, {"type": "message", "room": room, "msg": "let me in"})["code"] == "not_member"
    assert upto_marker(herald, alice, bob, carol) == [[], [], []]

    ack, unbanned = act(alice, {"type": "unban", "room": room, "user": bob.name})
    assert unbanned == member_event(ack, room, bob.name, alice.name, "unbanned")
    assert upto_marker(herald, alice, bob, carol) == [[], [unbanned], [unbanned]]
    back = join(bob, room)
    assert upto_marker(herald, alice, bob, carol) == [[back], [], [back]]


def test_topic_and_role_reach_the_members_and_ranks_decide_who_may_moderate(chat, herald):
    alice, bob, carol, dave = (chat.connect(n) for n in ("alice", "bob", "carol", "dave"))
    room = room_name("forum")
    create(alice, room)
    join(bob, room)
    join(carol, room)
    upto_marker(herald, alice, bob, carol, dave)

    ack, promoted = act(alice, {"type": "role", "room": room, "user": bob.name, "role": "moderator"})
    assert ack == room_ack(ack, room)
    assert promoted == member_event(ack, room, bob.name, alice.name, "role", role="moderator")
    assert upto_marker(herald, alice, bob, carol, dave) == [[], [promoted], [promoted], []]

    ack, topic = act(bob, {"type": "topic", "room": room, "topic": "moderated now"})
    assert ack == room_ack(ack, room)
    assert topic == topic_event(ack, room, bob.name, "moderated now")
    assert upto_marker(herald, alice, bob, carol, dave) == [[topic], [], [topic], []]

    # a moderator may not touch the owner, nor give roles; a member may do none of it
    for payload in ({"type": "kick", "room": room, "user": alice.name}, {"type": "ban", "room": room, "user": alice.name},
                    {"type": "role", "room": room, "user": carol.name, "role": "moderator"}):
        assert refused(bob, payload)["code"] == "forbidden", payload
    for payload in ({"type": "topic", "room": room, "topic": "mine"}, {"type": "kick", "room": room, "user": bob.name},
                    {"type": "invite", "room": room, "user": dave.name}):
        assert refused(carol, payload)["code"] == "forbidden", payload
    assert upto_marker(herald, alice, bob, carol, dave) == [[], [], [], []]

    # a moderator may kick a member
    ack, kicked = act(bob, {"type": "kick", "room": room, "user": carol.name})
    assert kicked == member_event(ack, room, carol.name, bob.name, "kicked")
    assert upto_marker(herald, alice, bob, carol, dave) == [[kicked], [], [kicked], []]

    ack, demoted = act(alice, {"type": "role", "room": room, "user": bob.name, "role": "member"})
    assert demoted == member_event(ack, room, bob.name, alice.name, "role", role="member")
    assert upto_marker(herald, alice, bob, carol, dave) == [[], [demoted], [], []]
    assert refused(bob, {"type": "topic", "room": room, "topic": "not any more"})["code"] == "forbidden"


# ---- every refusal code -----------------------------------------------------------------------------------------------


def test_every_refusal_code_changes_nothing_and_nobody_hears_of_it(chat, herald):
    """One cast, every refusal the contract names; the mismatches are gathered so one run shows them all."""
    alice, mod, bob, carol, eve = (chat.connect(n) for n in ("alice", "mod", "bob", "carol", "eve"))
    room, den, ghost = room_name("hall"), room_name("den"), room_name("ghost")
    create(alice, room)
    create(alice, den, private=True)
    for member in (mod, bob, eve):
        join(member, room)
    act(alice, {"type": "role", "room": room, "user": mod.name, "role": "moderator"})
    act(alice, {"type": "ban", "room": room, "user": eve.name})
    invite(alice, den, bob.name)
    join(bob, den)
    everyone = (alice, mod, bob, carol, eve)
    upto_marker(herald, *everyone)
    stranger = f"never-{uuid.uuid4().hex[:8]}"
    long_topic = "t" * (DEFAULT_TOPIC_LIMIT + 1)

    cases = [
        # not_member
        (carol, {"type": "leave", "room": room}, "not_member"),
        (carol, {"type": "message", "room": room, "msg": "hi"}, "not_member"),
        (carol, {"type": "read", "room": room, "id": MAX_ID}, "not_member"),
        (carol, {"type": "typing", "room": room}, "not_member"),
        # no_such_room
        (carol, {"type": "join", "room": ghost}, "no_such_room"),
        (alice, {"type": "leave", "room": ghost}, "no_such_room"),
        (alice, {"type": "message", "room": ghost, "msg": "hello?"}, "no_such_room"),
        (alice, {"type": "history", "room": ghost}, "no_such_room"),
        (alice, {"type": "members", "room": ghost}, "no_such_room"),
        (alice, {"type": "who", "room": ghost}, "no_such_room"),
        (alice, {"type": "topic", "room": ghost, "topic": "x"}, "no_such_room"),
        (alice, {"type": "invite", "room": ghost, "user": carol.name}, "no_such_room"),
        # room_exists
        (carol, {"type": "create", "room": room}, "room_exists"),
        (alice, {"type": "create", "room": room.upper(), "private": True}, "room_exists"),
        (bob, {"type": "create", "room": den}, "room_exists"),
        # forbidden
        (bob, {"type": "invite", "room": room, "user": carol.name}, "forbidden"),
        (bob, {"type": "kick", "room": room, "user": mod.name}, "forbidden"),
        (bob, {"type": "ban", "room": room, "user": mod.name}, "forbidden"),
        (bob, {"type": "unban", "room": room, "user": eve.name}, "forbidden"),
        (bob, {"type": "topic", "room": room, "topic": "mine now"}, "forbidden"),
        (bob, {"type": "role", "room": room, "user": bob.name, "role": "moderator"}, "forbidden"),
        (mod, {"type": "role", "room": room, "user": bob.name, "role": "moderator"}, "forbidden"),
        (mod, {"type": "kick", "room": room, "user": alice.name}, "forbidden"),
        (bob, {"type": "invite", "room": den, "user": carol.name}, "forbidden"),
        (alice, {"type": "leave", "room": "general"}, "forbidden"),
        (alice, {"type": "kick", "room": "general", "user": bob.name}, "forbidden"),
        (alice, {"type": "ban", "room": "general", "user": bob.name}, "forbidden"),
        (alice, {"type": "topic", "room": "general", "topic": "everyone"}, "forbidden"),
        # banned
        (eve, {"type": "join", "room": room}, "banned"),
        # already_member
        (bob, {"type": "join", "room": room}, "already_member"),
        (alice, {"type": "join", "room": room}, "already_member"),
        (alice, {"type": "invite", "room": den, "user": bob.name}, "already_member"),
        # unknown_user
        (alice, {"type": "invite", "room": den, "user": stranger}, "unknown_user"),
        (alice, {"type": "ban", "room": room, "user": stranger}, "unknown_user"),
        # not_banned
        (alice, {"type": "unban", "room": room, "user": bob.name}, "not_banned"),
        (mod, {"type": "unban", "room": room, "user": carol.name}, "not_banned"),
        # bad_name
        (alice, {"type": "create", "room": "two words"}, "bad_name"),
        (alice, {"type": "create", "room": "-dash-first"}, "bad_name"),
        (alice, {"type": "create", "room": "x" * 33}, "bad_name"),
        (alice, {"type": "create", "room": ""}, "bad_name"),
        (alice, {"type": "create", "room": "caf\u00e9"}, "bad_name"),
        (carol, {"type": "join", "room": "no/slashes"}, "bad_name"),
        # bad_field
        (alice, {"type": "create", "room": room_name("long"), "topic": long_topic}, "bad_field"),
        (alice, {"type": "topic", "room": room, "topic": long_topic}, "bad_field"),
        (alice, {"type": "topic", "room": room, "topic": 7}, "bad_field"),
        (alice, {"type": "create", "room": 5}, "bad_field"),
        (alice, {"type": "create", "room": room_name("p"), "private": "yes"}, "bad_field"),
        (alice, {"type": "role", "room": room, "user": bob.name, "role": "admin"}, "bad_field"),
        (alice, {"type": "join", "room": ["list"]}, "bad_field"),
        # bad_command (slash commands missing their arguments)
        (alice, "/create", "bad_command"),
        (alice, "/join", "bad_command"),
        (alice, f"/kick #{room}", "bad_command"),
    ]
    mismatches = []
    for client, payload, code in cases:
        try:
            error = refused(client, payload)
        except Exception as e:  # accepted, or not answered: noted, and the next case goes on
            mismatches.append(f"{client.name}: {payload!r} -> {e!r}, expected {code}")
            continue
        if error["code"] != code:
            mismatches.append(f"{client.name}: {payload!r} -> {error['code']} ({error['message']}), expected {code}")
        if code == "no_such_room" and error["message"] != f"no room named {ghost}":
            mismatches.append(f"{payload!r}: message {error['message']!r}, expected 'no room named {ghost}'")
    assert mismatches == []
    # none of it changed anything anyone hears of, or the rooms
    assert upto_marker(herald, *everyone) == [[], [], [], [], []]
    listing = {r["room"]: r for r in answer(alice, {"type": "rooms"}, "rooms")["rooms"]}
    assert (listing[room]["members"], listing[den]["members"], ghost in listing) == (3, 2, False)


# ---- room messages ----------------------------------------------------------------------------------------------------


def test_a_room_message_reaches_its_members_only_and_carries_the_room(chat, herald):
    tab1, tab2, bob, carol = chat.connect("alice"), chat.connect("alice"), chat.connect("bob"), chat.connect("carol")
    alice = chat.name("alice")
    room = room_name("kitchen")
    create(tab1, room)
    join(bob, room)
    upto_marker(herald, tab1, tab2, bob, carol)

    tab1.send({"type": "message", "room": room, "msg": "soup is ready", "ref": "m1"})
    ack = tab1.recv_type("ack")
    assert ack == {"type": "ack", "id": ack["id"], "ts": ack["ts"], "room": room, "ref": "m1"}
    copy = delivered(ack, room, alice, "soup is ready")
    # the members (the sender's other tab too) get it; carol, in no room, hears nothing of it
    assert upto_marker(herald, tab1, tab2, bob, carol) == [[], [copy], [copy], []]

    # general messages carry no "room", whether or not the frame names general
    for frame in ({"type": "message", "msg": "to all", "ref": "g1"}, {"type": "message", "room": "general", "msg": "to all", "ref": "g1"}):
        bob.send(frame)
        ack = bob.recv_type("ack")
        assert ack == {"type": "ack", "id": ack["id"], "ts": ack["ts"], "ref": "g1"}
        expected = {"type": "message", "id": ack["id"], "user": bob.name, "msg": "to all", "ts": ack["ts"]}
        for other in (tab1, tab2, carol):
            assert other.recv_type("message") == expected


def test_a_member_of_two_rooms_gets_each_rooms_messages_with_its_own_room(chat, herald):
    alice, bob, carol = chat.connect("alice"), chat.connect("bob"), chat.connect("carol")
    red, blue = room_name("red"), room_name("blue")
    create(alice, red)
    create(carol, blue)
    join(bob, red)
    join(bob, blue)
    upto_marker(herald, alice, bob, carol)
    in_red = say(alice, red, "red words")
    in_blue = say(carol, blue, "blue words")
    assert upto_marker(herald, alice, bob, carol) == [
        [],
        [delivered(in_red, red, alice.name, "red words"), delivered(in_blue, blue, carol.name, "blue words")],
        [],
    ]


def test_a_room_everyone_left_keeps_its_name_and_history(chat, herald):
    alice, bob = chat.connect("alice"), chat.connect("bob")
    room = room_name("attic")
    create(alice, room, topic="dusty")
    said = say(alice, room, "remember me")
    act(alice, {"type": "leave", "room": room})
    listing = {r["room"]: r for r in answer(bob, {"type": "rooms"}, "rooms")["rooms"]}
    assert listing[room] == {"room": room, "private": False, "topic": "dusty", "members": 0, "joined": False, "role": None,
                             "invited": False}
    assert refused(bob, {"type": "create", "room": room})["code"] == "room_exists"
    history = answer(bob, {"type": "history", "room": room}, "history")
    assert [m for m in history["messages"] if m["type"] == "message"] == [delivered(said, room, alice.name, "remember me")]
    join(bob, room)
    assert say(bob, room, "anyone here?")["room"] == room


def test_no_room_is_created_past_max_rooms(start_server, database_url, clients):
    server = start_server(database_url, max_rooms=2, bots="")
    alice, bob, carol = (named(clients(server, n), n) for n in ("alice", "bob", "carol"))
    create(alice, "one")
    create(bob, "two")
    assert refused(carol, {"type": "create", "room": "three"})["code"] == "too_many_rooms"
    assert refused(alice, {"type": "create", "room": "four", "private": True})["code"] == "too_many_rooms"
    join(carol, "one")  # joining is not creating
    names = [r["room"] for r in answer(carol, {"type": "rooms"}, "rooms")["rooms"]]
    assert (names[0], sorted(names[1:])) == ("general", ["one", "two"])


def test_one_address_creates_at_most_rooms_created_per_address_rooms_whatever_the_names(start_server, database_url, clients):
    server = start_server(database_url, rooms_created_per_address=2, bots="")
    watch = Bystanders(server)
    guests = [named(clients(server, f"guest{i}"), f"guest{i}") for i in range(4)]  # free names, one address
    create(guests[0], "first")
    create(guests[1], "second")
    for guest in guests[2:]:
        assert refused(guest, {"type": "create", "room": f"more-{guest.name}"})["code"] == "too_many_rooms"
    watch.check()
    join(guests[2], "first")  # joining costs no creation
    names = [r["room"] for r in answer(guests[3], {"type": "rooms"}, "rooms")["rooms"]]
    assert sorted(names[1:]) == ["first", "second"]
    watch.close()


# ---- private rooms stay secret ----------------------------------------------------------------------------------------


def test_an_outsider_gets_the_same_answer_for_a_private_room_as_for_no_room_at_all(chat, herald):
    alice, bob, carol, eve = (chat.connect(n) for n in ("alice", "bob", "carol", "eve"))
    den, ghost, public = room_name("den"), room_name("ghost"), room_name("open")
    create(alice, den, private=True, topic="the secret plan")
    create(alice, public)
    invite(alice, den, bob.name)
    join(bob, den)
    invite(alice, den, eve.name)
    join(eve, den)
    act(alice, {"type": "ban", "room": den, "user": eve.name})  # eve: banned, no longer a member
    say(alice, den, "secret words")
    upto_marker(herald, alice, bob, carol, eve)

    frames = [
        lambda r: {"type": "join", "room": r},
        lambda r: {"type": "leave", "room": r},
        lambda r: {"type": "history", "room": r},
        lambda r: {"type": "members", "room": r},
        lambda r: {"type": "who", "room": r},
        lambda r: {"type": "message", "room": r, "msg": "knock knock"},
        lambda r: {"type": "read", "room": r, "id": MAX_ID},
        lambda r: {"type": "typing", "room": r},
        lambda r: {"type": "topic", "room": r, "topic": "defaced"},
        lambda r: {"type": "invite", "room": r, "user": carol.name},
        lambda r: {"type": "kick", "room": r, "user": bob.name},
        lambda r: {"type": "ban", "room": r, "user": bob.name},
        lambda r: {"type": "unban", "room": r, "user": eve.name},
        lambda r: {"type": "role", "room": r, "user": bob.name, "role": "moderator"},
    ]
    mismatches = []
    for outsider in (carol, eve):
        for frame in frames:
            hidden, missing = refused(outsider, frame(den)), refused(outsider, frame(ghost))
            if code_and_text(missing) != no_room_error(ghost):
                mismatches.append(f"{frame(ghost)}: {missing}, expected {no_room_error(ghost)}")
            if code_and_text(hidden) != no_room_error(den):
                mismatches.append(f"{outsider.name} {frame(den)}: {code_and_text(hidden)}, expected {no_room_error(den)}")
        for line in (f"/join #{den}", f"/members #{den}", f"/say #{den} psst", f"/topic #{den} x", f"/room #{den}"):
            hidden, missing = refused(outsider, line), refused(outsider, line.replace(den, ghost))
            if code_and_text(hidden) != no_room_error(den) or code_and_text(missing) != no_room_error(ghost):
                mismatches.append(f"{outsider.name} {line!r}: {hidden} / {missing}")
    # creating it: the same refusal as for a public room that exists (the name is taken, and that is all it says)
    hidden, taken = refused(carol, {"type": "create", "room": den}), refused(carol, {"type": "create", "room": public})
    if hidden["code"] != "room_exists" or hidden["message"] != taken["message"].replace(public, den):
        mismatches.append(f"create of the private room: {hidden} vs a public one: {taken}")
    assert mismatches == []
    # and none of it reached the members
    assert upto_marker(herald, alice, bob, carol, eve) == [[], [], [], []]


def test_a_private_room_is_listed_to_its_members_and_invitees_only(chat, herald):
    alice, bob, carol, dave = (chat.connect(n) for n in ("alice", "bob", "carol", "dave"))
    den, public = room_name("den"), room_name("plaza")
    create(alice, den, private=True, topic="members only")
    create(carol, public, topic="everyone welcome")
    invite(alice, den, bob.name)
    join(bob, den)
    invite(alice, den, dave.name)
    upto_marker(herald, alice, bob, carol, dave)

    def listing(client):
        event = answer(client, {"type": "rooms"}, "rooms")
        assert set(event) == {"type", "rooms", "more", "ref"} and event["more"] is False
        assert event["rooms"][0]["room"] == "general", event["rooms"][:1]
        return {r["room"]: r for r in event["rooms"]}

    assert listing(alice)[den] == {"room": den, "private": True, "topic": "members only", "members": 2, "joined": True,
                                   "role": "owner", "invited": False}
    assert listing(bob)[den] == {"room": den, "private": True, "topic": "members only", "members": 2, "joined": True,
                                 "role": "member", "invited": False}
    assert listing(dave)[den] == {"room": den, "private": True, "topic": "members only", "members": 2, "joined": False,
                                  "role": None, "invited": True}
    carols = listing(carol)
    assert den not in carols
    assert carols[public] == {"room": public, "private": False, "topic": "everyone welcome", "members": 1, "joined": True,
                              "role": "owner", "invited": False}
    assert listing(alice)[public] == {"room": public, "private": False, "topic": "everyone welcome", "members": 1,
                                      "joined": False, "role": None, "invited": False}
    assert answer_text(carol, "/rooms", "rooms")["rooms"] == answer(carol, {"type": "rooms"}, "rooms")["rooms"]
    # kicked from the invitation, dave no longer sees it
    ack, kicked = act(alice, {"type": "kick", "room": den, "user": dave.name})
    assert upto_marker(herald, dave) == [[kicked]]
    assert den not in listing(dave)


def test_a_since_replay_holds_a_rooms_items_for_its_members_once_in_order_and_none_for_outsiders(chat, herald):
    alice, tab1, tab2, carol = chat.connect("alice"), chat.connect("bob"), chat.connect("bob"), chat.connect("carol")
    dave = chat.connect("dave")
    bob = chat.name("bob")
    den, public = room_name("den"), room_name("porch")
    create(alice, den, private=True)
    create(alice, public)
    invite(alice, den, bob)
    joined = join(tab1, den)
    upto_marker(herald, alice, tab1, tab2, carol)
    since = joined["id"]

    general_before = post(carol, "general words")
    say(alice, public, "public, but carol is not in it")
    say(alice, den, "first secret")
    act(alice, {"type": "topic", "room": den, "topic": "plans"})
    mine = say(tab1, den, "bob's secret")
    invite(alice, den, dave.name)
    say(alice, den, "last secret")
    live = upto_marker(herald, tab2)[0]  # bob's other tab heard all of it: every room item after `since`
    live_room = room_items(live, den)
    assert [e["type"] for e in live_room] == ["message", "topic", "message", "member", "message"]
    assert live_room[2]["id"] == mine["id"]

    tab1.close()
    replay = chat.connect("bob", f"?since={since}", handshake=False)
    _, messages = history_events(replay)
    assert room_items(messages, den) == live_room  # each once, in id order, as they were delivered live
    ids = [m["id"] for m in messages]
    assert ids == sorted(set(ids))
    assert general_before["id"] in ids

    carol.close()
    nosy = chat.connect("carol", f"?since={since}", handshake=False)
    _, messages = history_events(nosy)
    assert [m for m in messages if "room" in m] == []
    assert general_before["id"] in [m["id"] for m in messages]


def test_a_kicked_members_replay_holds_the_kick_and_nothing_of_the_room_after_it(chat, herald):
    alice, bob = chat.connect("alice"), chat.connect("bob")
    den = room_name("den")
    create(alice, den, private=True)
    invite(alice, den, bob.name)
    join(bob, den)
    before = say(alice, den, "while bob was here")
    ack, kicked = act(alice, {"type": "kick", "room": den, "user": bob.name})
    say(alice, den, "bob is gone")
    assert room_items(upto_marker(herald, bob)[0], den) == [delivered(before, den, alice.name, "while bob was here"), kicked]
    bob.close()
    replay = chat.connect("bob", f"?since={before['id']}", handshake=False)
    _, messages = history_events(replay)
    assert room_items(messages, den) == [kicked]


def test_a_rooms_history_is_for_its_members_when_private_and_for_anyone_when_public(chat):
    alice, bob, carol = chat.connect("alice"), chat.connect("bob"), chat.connect("carol")
    den, public = room_name("den"), room_name("hall")
    create(alice, den, private=True)
    create(alice, public)
    invite(alice, den, bob.name)
    join(bob, den)
    said = [say(alice, den, f"secret {i}") for i in range(3)]
    aired = say(alice, public, "public words")

    page = answer(bob, {"type": "history", "room": den, "limit": 2}, "history")
    assert page["room"] == den and page["more"] is True
    assert page["messages"] == [delivered(a, den, alice.name, f"secret {i}") for i, a in enumerate(said)][1:]
    older = answer(bob, {"type": "history", "room": den, "before": said[1]["id"]}, "history")
    assert [m["id"] for m in older["messages"] if m["type"] == "message"] == [said[0]["id"]]
    assert all(m["room"] == den for m in older["messages"])

    assert code_and_text(refused(carol, {"type": "history", "room": den})) == no_room_error(den)
    page = answer(carol, {"type": "history", "room": public}, "history")
    assert page["room"] == public
    assert [m for m in page["messages"] if m["type"] == "message"] == [delivered(aired, public, alice.name, "public words")]
    # the general history holds no room's messages
    general = answer(carol, {"type": "history", "limit": 200}, "history")
    assert [m for m in general["messages"] if "room" in m] == []


def test_an_offline_users_replay_holds_the_invitation_about_them_and_nothing_else_of_the_room(chat):
    alice, dave = chat.connect("alice"), chat.connect("dave")
    den = room_name("den")
    create(alice, den, private=True)
    before = say(alice, den, "before the invitation")
    dave.close()
    invited = invite(alice, den, dave.name)
    say(alice, den, "after the invitation")
    replay = chat.connect("dave", f"?since={before['id'] - 1}", handshake=False)
    _, messages = history_events(replay)
    assert room_items(messages, den) == [invited]


# ---- kicked and banned: at once, on every tab -------------------------------------------------------------------------


@pytest.mark.parametrize("change", ["kick", "ban"])
def test_a_kicked_or_banned_member_stops_hearing_the_room_at_once_on_every_tab(chat, herald, change):
    alice, tab1, tab2, carol = chat.connect("alice"), chat.connect("bob"), chat.connect("bob"), chat.connect("carol")
    bob = chat.name("bob")
    room = room_name("stage")
    create(alice, room)
    join(tab1, room)
    join(carol, room)
    upto_marker(herald, alice, tab1, tab2, carol)

    ack, event = act(alice, {"type": change, "room": room, "user": bob})
    assert event == member_event(ack, room, bob, alice.name, {"kick": "kicked", "ban": "banned"}[change])
    said = say(alice, room, "now that bob is out")
    assert upto_marker(herald, alice, tab1, tab2, carol) == [
        [], [event], [event], [event, delivered(said, room, alice.name, "now that bob is out")],
    ]
    # typing is not stored and has no id: the typist's own next message is what it must come before
    carol.send({"type": "typing", "room": room})
    assert upto_marker(carol, alice, tab1, tab2) == [[{"type": "typing", "user": carol.name, "room": room, "ttl": 6}], [], []]
    assert refused(tab2, {"type": "message", "room": room, "msg": "still here?"})["code"] == "not_member"
    # the room is no longer among bob's conversations, so not even its last message reaches him that way
    listing = answer(tab1, {"type": "conversations"}, "conversations")["conversations"]
    assert [e for e in listing if e.get("room") == room] == []
    if change == "ban":
        assert refused(tab2, {"type": "join", "room": room})["code"] == "banned"


# ---- lists, conversations, read markers, typing ------------------------------------------------------------------------


def test_members_and_who_list_a_rooms_members_with_role_and_presence(chat, herald):
    alice, bob, carol = chat.connect("alice"), chat.connect("bob"), chat.connect("carol")
    room = room_name("atrium")
    create(alice, room)
    join(bob, room)
    join(carol, room)
    act(alice, {"type": "role", "room": room, "user": bob.name, "role": "moderator"})

    def members(client):
        event = answer(client, {"type": "members", "room": room}, "members")
        assert set(event) == {"type", "room", "members", "more", "ref"} and (event["room"], event["more"]) == (room, False)
        return sorted(event["members"], key=lambda m: m["user"])

    assert members(alice) == [{"user": alice.name, "role": "owner", "online": True},
                              {"user": bob.name, "role": "moderator", "online": True},
                              {"user": carol.name, "role": "member", "online": True}]
    who = answer(bob, {"type": "who", "room": room}, "who")
    assert (who["room"], sorted(who["online"])) == (room, sorted([alice.name, bob.name, carol.name]))

    carol.close()
    wait_presence(alice, carol.name, False)
    assert members(alice)[2] == {"user": carol.name, "role": "member", "online": False}
    who = answer(alice, {"type": "who", "room": room}, "who")
    assert sorted(who["online"]) == sorted([alice.name, bob.name])
    # an outsider may list a public room's members; general lists everyone online
    outsider = chat.connect("dave")
    assert [m["user"] for m in members(outsider)] == sorted([alice.name, bob.name, carol.name])
    general = answer(outsider, {"type": "members", "room": "general"}, "members")
    assert {alice.name, bob.name, outsider.name, herald.name} <= {m["user"] for m in general["members"]}
    assert all(m["online"] is True for m in general["members"])


def test_conversations_list_the_users_rooms_and_a_read_clears_the_count_on_the_other_tab(chat, herald):
    alice, tab1, tab2, carol = chat.connect("alice"), chat.connect("bob"), chat.connect("bob"), chat.connect("carol")
    bob = chat.name("bob")
    room = room_name("study")
    create(alice, room)
    join(tab1, room)
    said = [say(alice, room, f"note {i}") for i in range(3)]
    upto_marker(herald, tab1, tab2, carol)

    first = answer(tab1, {"type": "read", "room": room, "id": said[0]["id"]}, "read")
    assert {k: v for k, v in first.items() if k != "ref"} == {"type": "read", "room": room, "id": said[0]["id"]}
    assert tab2.recv_type("read") == {"type": "read", "room": room, "id": said[0]["id"]}

    def entry(client):
        listing = answer(client, {"type": "conversations"}, "conversations")["conversations"]
        found = [e for e in listing if e.get("room") == room]
        assert len(found) <= 1
        return found[0] if found else None

    expected = {"room": room, "last": delivered(said[2], room, alice.name, "note 2"), "unread": 2, "read": said[0]["id"],
                "mentions": 0}
    assert entry(tab2) == expected
    assert entry(carol) is None  # not a member: not her conversation
    welcome, _ = history_events(chat.connect("bob", handshake=False))
    assert [e for e in welcome["conversations"] if e.get("room") == room] == [expected]
    assert entry(alice)["unread"] == 0  # her own words are not unread

    tab1.send(f"/read #{room}")
    assert tab1.recv_type("read") == {"type": "read", "room": room, "id": said[2]["id"]}
    assert tab2.recv_type("read") == {"type": "read", "room": room, "id": said[2]["id"]}
    assert entry(tab2) == {**expected, "unread": 0, "read": said[2]["id"]}
    # a read is clamped to the room's newest message
    newer = say(alice, room, "one more")
    post(carol, "a newer message in general")
    assert answer(tab2, {"type": "read", "room": room, "id": MAX_ID}, "read")["id"] == newer["id"]
    assert [tab1.recv_type("message", "read")["type"] for _ in range(3)] == ["message", "message", "read"]
    # left, the room is no longer among bob's conversations
    act(tab1, {"type": "leave", "room": room})
    assert entry(tab2) is None
    assert bob not in {m["user"] for m in answer(alice, {"type": "members", "room": room}, "members")["members"]}


def test_typing_in_a_room_reaches_its_members_only(chat, herald):
    tab1, tab2, bob, carol = chat.connect("alice"), chat.connect("alice"), chat.connect("bob"), chat.connect("carol")
    room = room_name("quiet")
    create(tab1, room)
    join(bob, room)
    upto_marker(herald, tab1, tab2, bob, carol)
    tab1.send({"type": "typing", "room": room})
    notice = {"type": "typing", "user": chat.name("alice"), "room": room, "ttl": 6}
    # typing is not stored and has no id: the typist's own next message (a copy on tab2) is what it must come before
    assert upto_marker(tab1, tab2, bob, carol) == [[], [notice], []]


# ---- slash commands ---------------------------------------------------------------------------------------------------


def test_slash_commands_create_join_and_talk_in_a_room_from_plain_text(chat, herald):
    alice, bob, carol = chat.connect("alice"), chat.connect("bob"), chat.connect("carol")
    room, den = room_name("porch"), room_name("attic")

    assert answer_text(alice, "/room", "room")["room"] == "general"  # the current room at first
    ack, created = act_text(alice, f"/create #{room}")
    assert ack == room_ack(ack, room)
    assert created == member_event(ack, room, alice.name, alice.name, "joined", role="owner", created=True, private=False,
                                   topic="")
    ack, private = act_text(alice, f"/create {den} private the attic plans")
    assert (private["private"], private["topic"]) == (True, "the attic plans")
    ack, joined = act_text(bob, f"/join #{room}")
    assert joined == member_event(ack, room, bob.name, bob.name, "joined", role="member")
    assert upto_marker(herald, alice, bob, carol) == [[joined], [], []]

    assert answer_text(alice, f"/room #{room}", "room") == {"type": "room", "room": room, "topic": ""}
    alice.send("hello porch")  # plain text goes to the current room
    ack = alice.recv_type("ack")
    assert ack["room"] == room
    text = "a JSON message without a room is still general"
    alice.send({"type": "message", "msg": text, "ref": "j"})
    general_ack = alice.recv_type("ack")
    assert general_ack == {"type": "ack", "id": general_ack["id"], "ts": general_ack["ts"], "ref": "j"}
    general = {"type": "message", "id": general_ack["id"], "user": alice.name, "msg": text, "ts": general_ack["ts"]}
    assert upto_marker(herald, alice, bob, carol) == [[], [delivered(ack, room, alice.name, "hello porch"), general], [general]]
    bob.send(f"/say #{room} hello back")
    said = bob.recv_type("ack")
    assert said == room_ack(said, room)
    assert upto_marker(herald, alice, bob, carol) == [[delivered(said, room, bob.name, "hello back")], [], []]

    who = answer_text(alice, "/who", "who")
    assert (who["room"], sorted(who["online"])) == (room, sorted([alice.name, bob.name]))
    history = answer_text(alice, "/history", "history")
    assert history["room"] == room
    assert [m["msg"] for m in history["messages"] if m["type"] == "message"] == ["hello porch", "hello back"]
    last = answer_text(alice, "/history 1", "history")
    assert (last["room"], [m.get("msg") for m in last["messages"]]) == (room, ["hello back"])
    members = answer_text(alice, f"/members #{room}", "members")
    assert sorted(m["user"] for m in members["members"]) == sorted([alice.name, bob.name])
    assert answer_text(alice, "/members", "members")["room"] == room  # the current room
    ack, topic = act_text(alice, f"/topic #{room} evening chat on the porch")
    assert topic == topic_event(ack, room, alice.name, "evening chat on the porch")
    assert bob.recv_type("topic") == topic
    assert answer_text(alice, "/room", "room") == {"type": "room", "room": room, "topic": "evening chat on the porch"}
    rooms = {r["room"]: r for r in answer_text(bob, "/rooms", "rooms")["rooms"]}
    assert rooms[room]["joined"] is True and den not in rooms

    ack, left = act_text(bob, f"/leave #{room}")
    assert left == member_event(ack, room, bob.name, bob.name, "left")
    assert alice.recv_type("member") == left
    # back to general: plain text carries no room again
    assert answer_text(alice, "/room general", "room")["room"] == "general"
    alice.send("back in general")
    ack = alice.recv_type("ack")
    assert "room" not in ack
    assert carol.recv_type("message") == {"type": "message", "id": ack["id"], "user": alice.name, "msg": "back in general",
                                          "ts": ack["ts"]}


def test_slash_commands_moderate_a_room(chat, herald):
    alice, bob, carol = chat.connect("alice"), chat.connect("bob"), chat.connect("carol")
    den = room_name("vault")
    act_text(alice, f"/create #{den} private")
    ack, invited = act_text(alice, f"/invite #{den} {bob.name}")
    assert invited == member_event(ack, den, bob.name, alice.name, "invited")
    act_text(bob, f"/join #{den}")
    ack, promoted = act_text(alice, f"/role #{den} {bob.name} moderator")
    assert promoted == member_event(ack, den, bob.name, alice.name, "role", role="moderator")
    act_text(bob, f"/invite #{den} {carol.name}")
    act_text(carol, f"/join #{den}")
    ack, kicked = act_text(bob, f"/kick #{den} {carol.name}")
    assert kicked == member_event(ack, den, carol.name, bob.name, "kicked")
    ack, banned = act_text(alice, f"/ban {den} {carol.name}")
    assert banned == member_event(ack, den, carol.name, alice.name, "banned")
    ack, unbanned = act_text(alice, f"/unban #{den} {carol.name}")
    assert unbanned == member_event(ack, den, carol.name, alice.name, "unbanned")
    upto_marker(herald, alice, bob, carol)
    assert refused(carol, f"/say #{den} let me in")["code"] == "no_such_room"


# ---- hostile input ----------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module", params=["sqlite", "mysql"])
def limited(request, tmp_path_factory):
    """One server per store for this module's hostile tests, with small room limits."""
    directory = tmp_path_factory.mktemp("rooms_limited")
    server = ServerProcess(fresh_database_url(request, request.param, directory), directory / "server.log",
                           max_topic_length=TOPIC_LIMIT, max_rooms_per_user=ROOMS_PER_USER, max_rooms_listed=ROOMS_LISTED,
                           max_members_listed=MEMBERS_LISTED, bots="")
    server.start()
    yield server
    server.stop()


@pytest.fixture
def limited_chat(limited, clients):
    return Chat(limited, clients)


def test_hostile_room_input_is_refused_and_an_honest_bystander_loses_nothing(limited_chat):
    chat = limited_chat
    watch = Bystanders(chat.server)
    watch.check()
    mallory, alice = chat.connect("mallory"), chat.connect("alice")
    room = room_name("target")
    create(alice, room, topic="x" * TOPIC_LIMIT)  # exactly the limit is fine

    # over-long topics, at creation and later
    assert refused(alice, {"type": "topic", "room": room, "topic": "y" * (TOPIC_LIMIT + 1)})["code"] == "bad_field"
    assert refused(mallory, {"type": "create", "room": room_name("m"), "topic": "z" * (TOPIC_LIMIT + 1)})["code"] == "bad_field"
    assert refused(mallory, {"type": "create", "room": room_name("m"), "topic": "z" * 60_000})["code"] == "bad_field"
    assert refused(alice, {"type": "topic", "room": room, "topic": "\ud800"})["code"] == "bad_field"
    watch.check()

    # bad names: refused, and the refusal does not echo a huge name back
    for name in ("Two Words", "-x", "x" * 33, "", " ", "é", "a/b", "#", "##r", "a\u0000b", "\ud800", "x" * 50_000):
        error = refused(mallory, {"type": "create", "room": name})
        assert error["code"] in ("bad_name", "bad_field"), (name[:40], error)
        assert error["code"] == ("bad_field" if name == "\ud800" else "bad_name"), (name[:40], error)
        assert len(error["message"]) < 300
    watch.check()

    # "room" of the wrong JSON type, in every frame that takes one
    for value in (5, 1.5, True, [], [room], {}, {"room": room}):
        for frame in ({"type": "message", "msg": "x"}, {"type": "create"}, {"type": "join"}, {"type": "leave"},
                      {"type": "read", "id": 1}, {"type": "typing"}, {"type": "history"}, {"type": "members"},
                      {"type": "who"}, {"type": "topic", "topic": "t"}, {"type": "invite", "user": alice.name}):
            error = refused(mallory, {**frame, "room": value})
            assert error["code"] == "bad_field", (frame, value, error)
    watch.check()

    # a guest creates rooms up to max_rooms_per_user, then no more
    made = [room_name("m") for _ in range(ROOMS_PER_USER)]
    for name in made:
        create(mallory, name)
    error = refused(mallory, {"type": "create", "room": room_name("one-too-many")})
    assert error["code"] == "too_many_rooms"
    for _ in range(200):  # and keeps being refused, cheaply
        mallory.send({"type": "create", "room": room_name("more")})
    for _ in range(200):
        assert mallory.recv_type("error")["code"] == "too_many_rooms"
    listing = {r["room"] for r in answer(mallory, {"type": "rooms"}, "rooms")["rooms"]}
    assert set(made) <= listing and not any(r.startswith("more-") or r.startswith("one-too-many") for r in listing)
    watch.check()

    # the room alice made is as she made it, and she still uses it
    rooms = {r["room"]: r for r in answer(alice, {"type": "rooms"}, "rooms")["rooms"]}
    assert rooms[room]["topic"] == "x" * TOPIC_LIMIT and rooms[room]["members"] == 1
    assert say(alice, room, "still mine")["room"] == room
    watch.check()
    watch.close()


def test_the_rooms_and_members_lists_stop_at_their_limits_and_say_there_is_more(limited_chat):
    chat = limited_chat
    owners = [chat.connect(f"owner{i}") for i in range(3)]
    rooms = [room_name(f"r{i}") for i in range(6)]
    for i, room in enumerate(rooms):
        create(owners[i % 3], room)
    for joiner in [chat.connect(f"joiner{i}") for i in range(3)]:
        join(joiner, rooms[0])
    viewer = chat.connect("viewer")
    listing = answer(viewer, {"type": "rooms"}, "rooms")
    names = [r["room"] for r in listing["rooms"]]
    assert listing["more"] is True and names[0] == "general"
    assert len(names) <= ROOMS_LISTED + 1 and len(set(names)) == len(names)
    members = answer(viewer, {"type": "members", "room": rooms[0]}, "members")
    assert (len(members["members"]), members["more"]) == (MEMBERS_LISTED, True)
    assert len({m["user"] for m in members["members"]}) == MEMBERS_LISTED
    everyone = answer(owners[0], {"type": "members", "room": rooms[3]}, "members")  # 1 member: all of it
    assert (everyone["members"], everyone["more"]) == ([{"user": owners[0].name, "role": "owner", "online": True}], False)


# ---- wscat ------------------------------------------------------------------------------------------------------------


def test_wscat_creates_joins_and_says_in_rooms(chat, wscat_path):
    bob = chat.connect("bob")
    term_name = chat.name("term")
    term = Wscat(wscat_path, chat.server.ws_url(f"/ws/{term_name}"))
    try:
        term.expect(lambda e: e["type"] == "history")
        mine, theirs = room_name("term"), room_name("bobs")

        term.send_line(f"/create #{mine} made in a terminal")
        got = [term.expect(lambda e: e["type"] in ("ack", "member") and e.get("room") == mine) for _ in range(2)]
        assert sorted(e["type"] for e in got) == ["ack", "member"]
        created = next(e for e in got if e["type"] == "member")
        assert (created["user"], created["change"], created["role"], created["topic"]) == (term_name, "joined", "owner",
                                                                                           "made in a terminal")
        joined = join(bob, mine)
        assert term.expect(lambda e: e["type"] == "member" and e.get("user") == bob.name) == joined

        term.send_line(f"/say #{mine} hello from wscat")
        ack = term.expect(lambda e: e["type"] == "ack")
        assert ack["room"] == mine
        assert bob.recv_type("message") == delivered(ack, mine, term_name, "hello from wscat")

        create(bob, theirs)
        term.send_line(f"/join #{theirs}")
        got = [term.expect(lambda e: e["type"] in ("ack", "member") and e.get("room") == theirs) for _ in range(2)]
        assert sorted(e["type"] for e in got) == ["ack", "member"]
        assert bob.recv_type("member")["user"] == term_name
        said = say(bob, theirs, "welcome, terminal")
        assert term.expect(lambda e: e["type"] == "message") == delivered(said, theirs, bob.name, "welcome, terminal")
    finally:
        term.quit()


# ---- two processes ----------------------------------------------------------------------------------------------------


# How processes race on room state is the same on either store (the fold is in memory, ids come from the database):
# these run on MariaDB, the store several processes share in production; the basic cross-process tests run on both.
MARIADB_ONLY = pytest.mark.parametrize("database_url", ["mysql"], indirect=True)


def named(client, name):
    client.name = name
    return client


def test_rooms_work_across_two_processes(pair, clients):
    a, b = pair
    alice, herald = named(clients(a, "alice"), "alice"), named(clients(a, "herald"), "herald")
    bob, carol = named(clients(b, "bob"), "bob"), named(clients(b, "carol"), "carol")
    online_everywhere(alice, "alice", "bob", "carol", "herald")
    online_everywhere(bob, "alice", "bob", "carol", "herald")
    room, den = "span", "hideout"

    create(alice, room, topic="across")
    # B learns of the room when it delivers the created event (to nobody there): once B has delivered a later
    # message, it knows the room. (ROOMS-CONTRACT.md does not say how soon another process knows a new room.)
    upto_marker(herald, alice, bob, carol)
    joined = join(bob, room)  # on B, a room made on A
    assert upto_marker(herald, alice, bob, carol) == [[joined], [], []]
    said = say(bob, room, "from B")
    assert upto_marker(herald, alice, bob, carol) == [[delivered(said, room, "bob", "from B")], [], []]
    ack, topic = act(alice, {"type": "topic", "room": room, "topic": "still across"})
    assert upto_marker(herald, alice, bob, carol) == [[], [topic], []]
    carol.send({"type": "typing", "room": room})  # not a member: refused, and nobody hears it
    assert carol.recv_type("error")["code"] == "not_member"
    bob.send({"type": "typing", "room": room})
    typing = {"type": "typing", "user": "bob", "room": room, "ttl": 6}
    assert upto_marker(bob, alice, carol) == [[typing], []]  # bob's own next message follows his typing

    # a private room made on B: secret on A too, listed to its members on either
    create(bob, den, private=True)
    assert code_and_text(refused(alice, {"type": "join", "room": den})) == no_room_error(den)
    invited = invite(bob, den, "alice")
    assert upto_marker(herald, alice)[0] == [invited]
    den_joined = join(alice, den)
    # B has the join once bob got it (the ack says it is in effect on A, where alice is): then both list her
    on_a, on_b = upto_marker(herald, alice, bob)
    assert on_a == [] and den_joined in on_b
    assert {r["room"] for r in answer(alice, {"type": "rooms"}, "rooms")["rooms"]} >= {room, den}
    assert den not in {r["room"] for r in answer(carol, {"type": "rooms"}, "rooms")["rooms"]}
    assert answer(alice, {"type": "members", "room": den}, "members")["members"] == answer(
        bob, {"type": "members", "room": den}, "members")["members"]
    secret = say(alice, den, "from A, secretly")
    assert upto_marker(herald, alice, bob, carol) == [[], [delivered(secret, den, "alice", "from A, secretly")], []]

    # bob reconnects to the other process: his replay holds the rooms' items once, in order, and carol's none
    bob.close()
    replay = clients(a, "bob", f"?since={joined['id']}", handshake=False)
    _, messages = history_events(replay)
    items = [m for m in messages if "room" in m]
    assert [m["id"] for m in items] == sorted({m["id"] for m in items})
    assert [m["id"] for m in items if m["id"] in (said["id"], topic["id"], secret["id"])] == sorted(
        [said["id"], topic["id"], secret["id"]])
    assert {m["room"] for m in items} == {room, den}
    carol.close()
    nosy = clients(a, "carol", f"?since={joined['id']}", handshake=False)
    _, messages = history_events(nosy)
    assert [m for m in messages if "room" in m] == []


def test_kicked_and_banned_users_stop_hearing_a_room_on_both_processes_at_once(pair, clients):
    a, b = pair
    alice, herald = named(clients(a, "alice"), "alice"), named(clients(b, "herald"), "herald")
    bob_a, bob_b, carol = named(clients(a, "bob"), "bob"), named(clients(b, "bob"), "bob"), named(clients(b, "carol"), "carol")
    online_everywhere(alice, "alice", "bob", "carol", "herald")
    online_everywhere(carol, "alice", "bob", "carol", "herald")
    room = "arena"
    create(alice, room)
    upto_marker(herald, bob_b)  # B has delivered past the created event, so it knows the room (see above)
    join(bob_b, room)
    join(carol, room)
    upto_marker(herald, alice, bob_a, bob_b, carol)

    ack, kicked = act(alice, {"type": "kick", "room": room, "user": "bob"})
    said = say(alice, room, "bob was kicked")
    assert upto_marker(herald, alice, bob_a, bob_b, carol) == [
        [], [kicked], [kicked], [kicked, delivered(said, room, "alice", "bob was kicked")],
    ]
    back = join(bob_a, room)  # a kick is not a ban
    assert upto_marker(herald, alice, bob_a, bob_b, carol) == [[back], [], [back], [back]]

    ack, banned = act(alice, {"type": "ban", "room": room, "user": "bob"})
    said = say(alice, room, "bob was banned")
    assert upto_marker(herald, alice, bob_a, bob_b, carol) == [
        [], [banned], [banned], [banned, delivered(said, room, "alice", "bob was banned")],
    ]
    assert refused(bob_b, {"type": "join", "room": room})["code"] == "banned"
    assert refused(bob_a, {"type": "join", "room": room})["code"] == "banned"
    ack, unbanned = act(alice, {"type": "unban", "room": room, "user": "bob"})
    assert upto_marker(herald, alice, bob_a, bob_b, carol) == [[], [unbanned], [unbanned], [unbanned]]
    back = join(bob_b, room)
    assert upto_marker(herald, alice, bob_a, bob_b, carol) == [[back], [back], [], [back]]
    said = say(carol, room, "welcome back")
    heard = delivered(said, room, "carol", "welcome back")
    assert upto_marker(herald, alice, bob_a, bob_b, carol) == [[heard], [heard], [heard], []]


@pytest.fixture
def cluster(start_server, database_url, redis_server):
    """start(**settings) -> two processes on one database and one Redis, each counting the other."""

    def start(**settings):
        a, b = (start_server(database_url, redis_url=redis_server.url, bots="", **settings) for _ in range(2))
        wait_until(lambda: health(a)["instances"] == 2 and health(b)["instances"] == 2, timeout=10,
                   message="both processes to see each other")
        return a, b

    return start


def outcome(client, ref):
    """The ack or error that answers the frame sent with `ref` (other events pass)."""
    while True:
        event = client.recv()
        if event.get("ref") == ref and event["type"] in ("ack", "error"):
            return event


@MARIADB_ONLY
def test_two_creates_of_one_name_at_once_on_two_processes_leave_one_room_both_agree_on(cluster, clients):
    a, b = cluster()
    alice, bob = named(clients(a, "alice"), "alice"), named(clients(b, "bob"), "bob")
    herald_a, herald_b = clients(a, "herald"), clients(b, "herald")
    names = [f"race{i}" for i in range(6)]
    for name in names:  # alice's room is private, bob's public: the loser must not get into the winner's room
        alice.send({"type": "create", "room": name, "private": True, "topic": "alice's", "ref": f"a-{name}"})
        bob.send({"type": "create", "room": name, "private": False, "topic": "bob's", "ref": f"b-{name}"})
    answers = {name: (outcome(alice, f"a-{name}"), outcome(bob, f"b-{name}")) for name in names}
    for name, pair_ in answers.items():
        for answer_ in pair_:
            assert answer_["type"] == "ack" or answer_["code"] == "room_exists", answer_
    upto_marker(herald_a, herald_b, alice, bob)  # both processes have delivered every create

    for name in names:
        owners = []
        for client in (alice, bob):
            rooms = {r["room"]: r for r in answer(client, {"type": "rooms"}, "rooms")["rooms"]}
            owners.append((client.name, rooms.get(name, {}).get("role")))
        # exactly one of them owns it; the other is not in it
        assert sorted(role for _, role in owners if role is not None) == ["owner"], (name, owners)
        winner, loser = (alice, bob) if owners[0][1] == "owner" else (bob, alice)
        # alice's room is private: only she may list it; bob's is public: both processes list the same one member
        for viewer in (alice, bob) if winner is bob else (alice,):
            listed = answer(viewer, {"type": "members", "room": name}, "members")
            assert listed["members"] == [{"user": winner.name, "role": "owner", "online": True}], (name, listed)
        if winner is alice:  # private: the loser may not see it at all
            assert code_and_text(refused(loser, {"type": "join", "room": name})) == no_room_error(name)
        said = say(winner, name, f"in {name}")
        heard = upto_marker(herald_a, loser)[0]
        assert [e for e in heard if e.get("id") == said["id"]] == [], (name, heard)


@MARIADB_ONLY
def test_a_flood_of_creates_on_one_process_of_two_stays_within_max_rooms_per_user(cluster, clients):
    a, b = cluster(max_rooms_per_user=ROOMS_PER_USER)
    mallory, herald = named(clients(a, "mallory"), "mallory"), clients(b, "herald")
    watch = Bystanders(b)
    watch.check()
    names = [f"flood{i}" for i in range(30)]
    for name in names:
        mallory.send({"type": "create", "room": name, "ref": name})
    answers = [outcome(mallory, name) for name in names]
    acked = [name for name, event in zip(names, answers) if event["type"] == "ack"]
    refused_codes = {event["code"] for event in answers if event["type"] == "error"}
    upto_marker(herald, mallory)
    rooms = [r for r in answer(mallory, {"type": "rooms"}, "rooms")["rooms"] if r["joined"] and r["room"] != "general"]
    assert (len(acked), len(rooms), refused_codes) == (ROOMS_PER_USER, ROOMS_PER_USER, {"too_many_rooms"})
    watch.check()
    watch.close()


@MARIADB_ONLY
def test_a_flood_of_joins_on_one_process_of_two_stays_within_max_rooms_per_user(cluster, clients):
    a, b = cluster(max_rooms_per_user=ROOMS_PER_USER)
    owners = [named(clients(b, f"owner{i}"), f"owner{i}") for i in range(4)]
    names = [f"open{i}" for i in range(4 * ROOMS_PER_USER)]
    for i, name in enumerate(names):
        create(owners[i % 4], name)
    mallory, herald = named(clients(a, "mallory"), "mallory"), clients(b, "herald")
    upto_marker(herald, mallory)  # A has delivered every created event: it knows every room
    for name in names:
        mallory.send({"type": "join", "room": name, "ref": name})
    answers = [outcome(mallory, name) for name in names]
    acked = [name for name, event in zip(names, answers) if event["type"] == "ack"]
    upto_marker(herald, mallory)
    rooms = [r for r in answer(mallory, {"type": "rooms"}, "rooms")["rooms"] if r["joined"] and r["room"] != "general"]
    assert (len(acked), len(rooms)) == (ROOMS_PER_USER, ROOMS_PER_USER)


@MARIADB_ONLY
def test_an_action_sent_twice_at_once_on_one_process_of_two_is_done_once(cluster, clients):
    a, b = cluster()
    alice, bob, herald = named(clients(a, "alice"), "alice"), named(clients(a, "bob"), "bob"), clients(b, "herald")
    create(alice, "twice")
    upto_marker(herald, alice, bob)
    for frame in ({"type": "join", "room": "twice"}, {"type": "leave", "room": "twice"}):
        bob.send({**frame, "ref": "first"})
        bob.send({**frame, "ref": "second"})
        first, second = outcome(bob, "first"), outcome(bob, "second")
        assert (first["type"], second["type"], second.get("code")) == ("ack", "error", {"join": "already_member", "leave": "not_member"}[frame["type"]]), (frame, second)
        heard = upto_marker(herald, alice)[0]
        assert [e["change"] for e in heard if e["type"] == "member"] == [{"join": "joined", "leave": "left"}[frame["type"]]]


@MARIADB_ONLY
def test_an_acknowledged_join_or_create_is_in_effect_at_once_for_the_next_frame_on_one_process_of_two(cluster, clients):
    a, b = cluster()
    alice, bob, herald = named(clients(a, "alice"), "alice"), named(clients(a, "bob"), "bob"), clients(b, "herald")
    for i in range(5):
        room = f"quick{i}"
        create(alice, room)  # the ack, then at once a message to the new room
        assert say(alice, room, "first words")["room"] == room
        upto_marker(herald, bob)  # A has delivered the created event: bob's join is not what waits on it
        join(bob, room)  # the ack, then at once a message as a member
        assert say(bob, room, "hello")["room"] == room


# ---- a guest name changing hands ------------------------------------------------------------------------------------------

GUEST_HOLD = 2  # seconds: a short hold, so that the name changes hands soon


def take_when_free(server, name):
    """Connect as guest `name` without its resume token once the earlier holder's hold has run out."""
    client, _ = connect_when_free(server, name)
    client.name = name
    return client


def victim_in_rooms(server, clients, name):
    """alice's private rooms den (the victim in it) and den2 (the victim invited), and a public plaza the victim is in;
    the id of a secret said in den."""
    alice = named(clients(server, "alice"), "alice")
    victim = named(clients(server, name), name)
    create(alice, "den", private=True, topic="the plan")
    create(alice, "den2", private=True, topic="the other plan")
    create(alice, "plaza")
    invite(alice, "den", name)
    join(victim, "den")
    invite(alice, "den2", name)  # invited, never joined
    join(victim, "plaza")
    said = say(alice, "den", "the door code is 4711")
    return alice, victim, said


def nothing_of_the_rooms(client):
    """`client` (the name's new holder) is in none of the earlier holder's rooms, invited to none, sees neither den."""
    listing = {r["room"]: r for r in answer(client, {"type": "rooms"}, "rooms")["rooms"]}
    assert "den" not in listing and "den2" not in listing, listing
    assert (listing["plaza"]["joined"], listing["plaza"]["role"]) == (False, None)
    for room in ("den", "den2"):
        assert code_and_text(refused(client, {"type": "join", "room": room})) == no_room_error(room)
        assert code_and_text(refused(client, {"type": "history", "room": room})) == no_room_error(room)
    assert refused(client, {"type": "message", "room": "plaza", "msg": "still in?"})["code"] == "not_member"


def test_the_next_holder_of_a_guest_name_gets_none_of_the_earlier_holders_rooms_or_invitations(start_server, database_url,
                                                                                                 clients):
    server = start_server(database_url, guest_hold=GUEST_HOLD, bots="")
    name = f"victim-{uuid.uuid4().hex[:6]}"
    alice, victim, said = victim_in_rooms(server, clients, name)
    victim.close()

    attacker = take_when_free(server, name)
    welcome = attacker.recv_type("welcome")
    attacker.recv_type("history")
    assert [e["room"] for e in welcome["conversations"] if "room" in e] == ["general"]
    nothing_of_the_rooms(attacker)
    members = answer(alice, {"type": "members", "room": "den"}, "members")["members"]
    assert [m["user"] for m in members] == ["alice"]
    # a ?since= replay from before it all has nothing of the rooms, nor of the earlier holder's invitations
    replay = clients(server, name, "?since=1", handshake=False)
    _, messages = history_events(replay)
    assert [m for m in messages if m.get("room") in ("den", "den2")] == []
    attacker.close()


def test_an_account_registered_under_a_guests_name_gets_none_of_its_rooms_even_after_a_restart(start_server, database_url,
                                                                                                 clients):
    server = start_server(database_url, bots="")
    name = f"victim-{uuid.uuid4().hex[:6]}"
    victim_in_rooms(server, clients, name)
    response = requests.post(server.http_url + "/api/register", json={"username": name, "password": PASSWORD}, timeout=10)
    assert response.status_code == 201, response.text
    token = get_token(server, name)

    def as_account():
        client = named(ChatClient.connect(server.ws_url(f"/ws/{name}?token={token}"), suppress_origin=True), name)
        client.handshake()
        return client

    account = as_account()
    nothing_of_the_rooms(account)
    account.close()
    server.restart()  # the server folds the rooms' events again: the earlier holder's invitation must stay gone
    account = as_account()
    nothing_of_the_rooms(account)
    account.close()


@MARIADB_ONLY
def test_the_next_holder_of_a_guest_name_is_not_invited_on_the_other_process_either(cluster, clients):
    a, b = cluster(guest_hold=GUEST_HOLD)
    name = f"victim-{uuid.uuid4().hex[:6]}"
    alice = named(clients(a, "alice"), "alice")
    herald = clients(b, "herald")
    victim = named(b.connect(name, resume=False), name)
    victim.handshake()
    create(alice, "den", private=True)
    invite(alice, "den", name)
    upto_marker(herald, alice, victim)  # both processes know the invitation
    victim.close()

    attacker = take_when_free(a, name)  # the name changes hands on A
    attacker.handshake()
    on_b = named(b.connect(name), name)  # and the new holder opens a second tab on B
    on_b.handshake()
    for client in (attacker, on_b):
        assert code_and_text(refused(client, {"type": "join", "room": "den"})) == no_room_error("den")
        assert "den" not in {r["room"] for r in answer(client, {"type": "rooms"}, "rooms")["rooms"]}
    for client in (attacker, on_b):
        client.close()
