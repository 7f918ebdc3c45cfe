"""Messages that live on (issue 15, first slice), end to end over real sockets on each store and across two processes:
edits, deletions, reactions and replies as events in the message stream, reaching exactly those who see the message,
their rules, the database after a delete, `?since=` replays, history in the current state, and hostile input."""
import json
import subprocess
import sys
import uuid

import pytest
import requests

from tests.support.clients import acked, answer, online_everywhere, post
from tests.support.clients import make_room as support_make_room
from tests.support.databases import db_execute
from tests.support.servers import ROOT
from tests.support.webusers import account, token_socket

NOWHERE = 2**62  # a message id nobody has


def unique(short):
    return f"{short}-{uuid.uuid4().hex[:6]}"


def refused(client, payload):
    event = answer(client, payload)
    assert event["type"] == "error", event
    return event


def next_event(client):
    """The next event that is not a presence change."""
    return client.recv_type("message", "direct", "edit", "delete", "reaction", "member", "topic", "ack", "error", "history")


def skip_to(client, message_id):
    """Read until the delivery of `message_id` (the other events before it are setup, not under test)."""
    while True:
        event = client.recv()
        if event.get("id") == message_id and event["type"] in ("message", "direct"):
            return event


def make_room(owner, members, private=True):
    """A room of `owner` with `members` in it, everyone's queue read up to a marker posted after the setup."""
    room = support_make_room(owner, members, unique("dev"), private)
    marker = acked(owner, {"type": "message", "room": room, "msg": "setup done"})
    for member in members:
        skip_to(member, marker["id"])
    return room


def marker_reaches(sender, receivers):
    """`sender` posts to general; it is the next event each receiver gets: nothing else came before it."""
    marker = post(sender, "marker " + uuid.uuid4().hex[:6])
    for receiver in receivers:
        event = next_event(receiver)
        assert (event["type"], event["id"]) == ("message", marker["id"]), event


def rows(server, query, params=()):
    return [tuple(r) for r in db_execute(server.database_url, query, params)]


# ---- who gets the events ----------------------------------------------------------------------------------------------


def test_an_edit_in_general_reaches_everyone_and_is_acknowledged_to_its_author(chat):
    alice, tab2, bob = chat.connect("alice"), chat.connect("alice"), chat.connect("bob")
    sent = post(alice, "helo")
    assert next_event(bob)["id"] == sent["id"]
    assert next_event(tab2)["id"] == sent["id"]
    ack = acked(alice, {"type": "edit", "of": sent["id"], "msg": "hello"})
    assert set(ack) == {"type", "id", "ts", "of", "ref"} and ack["of"] == sent["id"] and ack["id"] > sent["id"]
    expected = {"type": "edit", "id": ack["id"], "of": sent["id"], "user": alice.name, "msg": "hello", "ts": ack["ts"]}
    assert next_event(bob) == expected
    assert next_event(tab2) == expected  # the author's other tabs too
    marker_reaches(bob, [alice])  # the editing connection got the ack, not a copy


def test_events_on_a_direct_reach_only_its_two_parties(chat):
    alice, bob, carol = chat.connect("alice"), chat.connect("bob"), chat.connect("carol")
    sent = post(alice, "psst", to=bob.name)
    assert next_event(bob)["id"] == sent["id"]
    reaction = acked(bob, {"type": "react", "of": sent["id"], "key": "👍", "op": "add"})
    assert reaction["to"] == alice.name and reaction["of"] == sent["id"]
    assert next_event(alice) == {"type": "reaction", "id": reaction["id"], "of": sent["id"], "user": bob.name, "to": alice.name,
                                 "key": "👍", "op": "add", "ts": reaction["ts"]}
    edit = acked(alice, {"type": "edit", "of": sent["id"], "msg": "psst!"})
    assert next_event(bob) == {"type": "edit", "id": edit["id"], "of": sent["id"], "user": alice.name, "to": bob.name,
                               "msg": "psst!", "ts": edit["ts"]}
    delete = acked(alice, {"type": "delete", "of": sent["id"]})
    assert next_event(bob) == {"type": "delete", "id": delete["id"], "of": sent["id"], "user": alice.name, "to": bob.name,
                               "ts": delete["ts"]}
    marker_reaches(alice, [carol, bob])  # carol heard none of it
    # carol may not touch it: the same answer as for a message that does not exist
    for payload in ({"type": "react", "of": sent["id"], "key": "👍"}, {"type": "edit", "of": sent["id"], "msg": "x"}):
        assert refused(carol, payload)["code"] == "not_found"


def test_events_in_a_private_room_reach_its_members_only(chat):
    alice, bob, carol = chat.connect("alice"), chat.connect("bob"), chat.connect("carol")
    room = make_room(alice, [bob])
    sent = acked(alice, {"type": "message", "room": room, "msg": "members only"})
    assert next_event(bob)["id"] == sent["id"]
    reaction = acked(bob, {"type": "react", "of": sent["id"], "key": "🎉"})
    assert next_event(alice) == {"type": "reaction", "id": reaction["id"], "of": sent["id"], "room": room, "user": bob.name,
                                 "key": "🎉", "op": "add", "ts": reaction["ts"]}
    edit = acked(alice, {"type": "edit", "of": sent["id"], "msg": "members only!"})
    assert next_event(bob)["id"] == edit["id"]
    marker_reaches(alice, [carol, bob])
    # an outsider cannot tell the room's message from one that does not exist
    for payload in (
        {"type": "edit", "of": sent["id"], "msg": "mine now"},
        {"type": "delete", "of": sent["id"]},
        {"type": "react", "of": sent["id"], "key": "👍"},
        {"type": "message", "msg": "re", "reply_to": sent["id"]},
    ):
        error = refused(carol, payload)
        missing = refused(carol, {**payload, "of": NOWHERE} if "of" in payload else {**payload, "reply_to": NOWHERE})
        assert (error["code"], error["message"].replace(str(sent["id"]), "N")) == (
            "not_found", missing["message"].replace(str(NOWHERE), "N"))
    marker_reaches(bob, [alice])  # and the members heard nothing of her attempts


# ---- the rules -----------------------------------------------------------------------------------------------------------


def test_only_the_author_edits(chat):
    alice, bob = chat.connect("alice"), chat.connect("bob")
    sent = post(alice, "mine")
    error = refused(bob, {"type": "edit", "of": sent["id"], "msg": "now mine"})
    assert error["code"] == "forbidden"
    assert rows(chat.server, "SELECT body FROM messages WHERE id = ? OR target_id = ?", [sent["id"], sent["id"]]) == [("mine",)]


def test_a_member_cannot_delete_anothers_message_a_moderator_can(chat):
    alice, bob, dave = chat.connect("alice"), chat.connect("bob"), chat.connect("dave")
    room = make_room(alice, [bob, dave], private=False)
    sent = acked(bob, {"type": "message", "room": room, "msg": "spam spam"})
    for other in (alice, dave):
        assert next_event(other)["id"] == sent["id"]
    assert refused(dave, {"type": "delete", "of": sent["id"]})["code"] == "forbidden"
    role = acked(alice, {"type": "role", "room": room, "user": dave.name, "role": "moderator"})
    for other in (bob, dave):
        assert next_event(other)["id"] == role["id"]
    delete = acked(dave, {"type": "delete", "of": sent["id"]})
    event = {"type": "delete", "id": delete["id"], "of": sent["id"], "room": room, "user": dave.name, "ts": delete["ts"]}
    assert next_event(alice) == event
    assert next_event(bob) == event
    # in general nobody but the author deletes
    general = post(bob, "in general")
    assert refused(alice, {"type": "delete", "of": general["id"]})["code"] == "forbidden"
    # a deleted message is gone for every purpose
    for payload in ({"type": "delete", "of": sent["id"]}, {"type": "react", "of": sent["id"], "key": "👍"}):
        assert refused(bob, payload)["code"] == "not_found"


def admin_command(server, *args):
    done = subprocess.run([sys.executable, "-m", "chat.admin", *args, "--database", server.database_url], cwd=ROOT,
                          capture_output=True, text=True, timeout=30)
    return done.returncode, done.stdout + done.stderr


def test_a_server_admin_deletes_in_any_room_but_not_in_others_one_to_one(chat):
    server = chat.server
    _, root, token = account(server, "root")
    bob, carol = chat.connect("bob"), chat.connect("carol")
    room = make_room(bob, [carol])  # private: root is not in it
    said = acked(carol, {"type": "message", "room": room, "msg": "abuse"})
    general = post(carol, "more abuse")
    direct = post(carol, "private words", to=bob.name)
    skip_to(bob, direct["id"])
    assert admin_command(server, "grant-admin", chat.name("guest"))[0] == 1  # a guest name has no account
    with token_socket(server, root, token, handshake=False) as admin:
        assert "admin" not in admin.handshake()[0]  # the welcome's hint
        assert refused(admin, {"type": "delete", "of": said["id"]})["code"] == "not_found"  # not an admin yet
        assert admin_command(server, "grant-admin", root) == (0, f"{root} is now a server admin\n")
        with token_socket(server, root, token, handshake=False) as again:
            assert again.handshake()[0]["admin"] is True  # a connection made after the grant says so
        delete = acked(admin, {"type": "delete", "of": said["id"]})
        assert next_event(bob) == {"type": "delete", "id": delete["id"], "of": said["id"], "room": room, "user": root,
                                   "ts": delete["ts"]}
        acked(admin, {"type": "delete", "of": general["id"]})
        assert refused(admin, {"type": "delete", "of": direct["id"]})["code"] == "not_found"
        assert refused(admin, {"type": "edit", "of": general["id"], "msg": "x"})["code"] == "not_found"  # deleted
        assert admin_command(server, "revoke-admin", root)[0] == 0
        again = acked(carol, {"type": "message", "msg": "abuse again"})
        assert refused(admin, {"type": "delete", "of": again["id"]})["code"] == "forbidden"
    assert rows(server, "SELECT body FROM messages WHERE id IN (?, ?)", [said["id"], general["id"]]) == [("",), ("",)]


def test_after_a_delete_the_text_and_its_edits_are_gone_from_the_database(chat):
    alice, bob = chat.connect("alice"), chat.connect("bob")
    sent = post(alice, "my password is hunter2")
    acked(alice, {"type": "edit", "of": sent["id"], "msg": "my password is hunter3"})
    acked(bob, {"type": "react", "of": sent["id"], "key": "😱"})
    assert rows(chat.server, "SELECT body FROM messages WHERE id = ?", [sent["id"]]) == [("my password is hunter3",)]
    assert rows(chat.server, "SELECT user, emoji FROM reactions WHERE message_id = ?", [sent["id"]]) == [(bob.name, "😱")]
    acked(alice, {"type": "delete", "of": sent["id"]})  # an ack means committed
    stored = rows(chat.server, "SELECT id, kind, body FROM messages WHERE id = ? OR target_id = ? ORDER BY id", [sent["id"], sent["id"]])
    assert [(kind, body) for _, kind, body in stored] == [(None, ""), ("edit", ""), ("reaction", '{"key": "😱", "op": "add"}'), ("delete", "")]
    everything = rows(chat.server, "SELECT body FROM messages")
    assert not any("hunter" in body for (body,) in everything)
    assert rows(chat.server, "SELECT COUNT(*) FROM reactions WHERE message_id = ?", [sent["id"]]) == [(0,)]


def test_the_same_user_and_emoji_count_once_and_a_remove_takes_it_back(chat):
    alice, bob, carol = chat.connect("alice"), chat.connect("bob"), chat.connect("carol")
    sent = post(alice, "react to me")
    acked(bob, {"type": "react", "of": sent["id"], "key": "👍"})
    acked(bob, {"type": "react", "of": sent["id"], "key": "👍"})
    acked(carol, {"type": "react", "of": sent["id"], "key": "👍"})
    acked(carol, {"type": "react", "of": sent["id"], "key": "❤️"})
    acked(carol, {"type": "react", "of": sent["id"], "key": "❤️", "op": "remove"})
    assert rows(chat.server, "SELECT user, emoji FROM reactions WHERE message_id = ? ORDER BY event_id", [sent["id"]]) == [
        (bob.name, "👍"), (carol.name, "👍")]
    page = acked_history(alice, {"type": "history", "limit": 200})
    (mine,) = [m for m in page if m["id"] == sent["id"]]
    assert mine["reactions"] == {"👍": [bob.name, carol.name]}


def test_replies_stay_in_their_conversation(chat):
    alice, bob, carol = chat.connect("alice"), chat.connect("bob"), chat.connect("carol")
    direct = post(alice, "a secret", to=bob.name)
    group = post(alice, "for all")
    # a reply in general to a direct: bob sees it, but it is another conversation
    assert refused(bob, {"type": "message", "msg": "re", "reply_to": direct["id"]})["code"] == "bad_field"
    assert refused(carol, {"type": "message", "msg": "re", "reply_to": direct["id"]})["code"] == "not_found"
    assert refused(bob, {"type": "direct", "to": alice.name, "msg": "re", "reply_to": group["id"]})["code"] == "bad_field"
    reply = acked(bob, {"type": "direct", "to": alice.name, "msg": "re: secret", "reply_to": direct["id"]})
    skip_to(alice, reply["id"])
    # /reply answers in the conversation of the message it names: here a direct to alice
    bob.send(f"/reply {direct['id']} got it")
    ack = next_event(bob)
    assert (ack["type"], ack["to"]) == ("ack", alice.name)
    assert next_event(alice) == {"type": "direct", "id": ack["id"], "user": bob.name, "to": alice.name, "msg": "got it",
                                 "reply_to": direct["id"], "ts": ack["ts"], "quote": {"user": alice.name, "msg": "a secret"}}
    marker_reaches(alice, [carol])


def test_the_slash_commands(chat):
    alice, bob = chat.connect("alice"), chat.connect("bob")
    sent = post(alice, "typo hree")
    assert next_event(bob)["id"] == sent["id"]
    alice.send(f"/edit {sent['id']} typo here")
    assert next_event(alice)["of"] == sent["id"]
    assert next_event(bob)["msg"] == "typo here"
    bob.send(f"/react {sent['id']} 👍")
    bob.send(f"/unreact {sent['id']} 👍")
    bob.send(f"/reply {sent['id']} indeed")
    acks = [next_event(bob) for _ in range(3)]
    assert [e["type"] for e in acks] == ["ack"] * 3
    got = [next_event(alice) for _ in range(3)]
    assert [(e["type"], e.get("key"), e.get("op")) for e in got] == [("reaction", "👍", "add"), ("reaction", "👍", "remove"),
                                                                     ("message", None, None)]
    assert (got[2]["msg"], got[2]["reply_to"]) == ("indeed", sent["id"])
    assert got[2]["quote"] == {"user": alice.name, "msg": "typo here"}  # live, as it stands (edited), as history quotes
    alice.send(f"/delete {sent['id']}")
    assert next_event(alice)["type"] == "ack"
    assert (next_event(bob)["type"], acks[2]["id"]) == ("delete", got[2]["id"])
    for bad in (f"/edit {sent['id']}", "/delete", "/delete x", f"/react {sent['id']} thumbs", "/reply 0 hi"):
        alice.send(bad)
        assert next_event(alice)["code"] in ("bad_command", "empty_message"), bad


def acked_history(client, request):
    """The messages of a history answer (one event)."""
    client.send({**request, "ref": "h"})
    while True:
        event = client.recv()
        if event["type"] == "history" and event.get("ref") == "h":
            assert "complete" not in event
            return event["messages"]


# ---- replays and history -----------------------------------------------------------------------------------------------


def test_a_since_reconnect_gets_the_message_its_edit_a_reaction_and_its_deletion_once_in_order(chat):
    alice, bob = chat.connect("alice"), chat.connect("bob")
    before = post(alice, "before")
    sent = post(alice, "first words")
    edit = acked(alice, {"type": "edit", "of": sent["id"], "msg": "second words"})
    reaction = acked(bob, {"type": "react", "of": sent["id"], "key": "👀"})
    delete = acked(alice, {"type": "delete", "of": sent["id"]})
    ids = [sent["id"], edit["id"], reaction["id"], delete["id"]]
    for since, expected in ((before["id"], ids), (sent["id"], ids[1:])):
        carol = chat.connect("carol", f"?since={since}", handshake=False)
        carol.recv_type("welcome")
        history = carol.recv_type("history")
        replay = [m for m in history["messages"] if m["id"] in ids]
        assert [m["id"] for m in history["messages"]] == sorted(m["id"] for m in history["messages"])
        assert [m["id"] for m in replay] == expected
        by_type = {m["type"]: m for m in replay}
        assert by_type["edit"] == {"type": "edit", "id": edit["id"], "of": sent["id"], "user": alice.name, "msg": "",
                                   "ts": edit["ts"]}  # the text went with the deletion
        assert by_type["reaction"]["key"] == "👀"
        assert by_type["delete"] == {"type": "delete", "id": delete["id"], "of": sent["id"], "user": alice.name, "ts": delete["ts"]}
        if sent["id"] in expected:
            assert replay[0] == {"type": "message", "id": sent["id"], "user": alice.name, "ts": sent["ts"], "deleted": True}
        marker_reaches(alice, [carol])  # and nothing of it comes again live
        carol.close()


def test_history_shows_each_message_as_it_stands(chat):
    alice, bob, carol = chat.connect("alice"), chat.connect("bob"), chat.connect("carol")
    first = post(alice, "frist")
    edit = acked(alice, {"type": "edit", "of": first["id"], "msg": "first"})
    reply = acked(bob, {"type": "message", "msg": "agreed", "reply_to": first["id"]})
    doomed = post(alice, "oops")
    acked(bob, {"type": "react", "of": first["id"], "key": "👍"})
    acked(carol, {"type": "react", "of": first["id"], "key": "👍"})
    acked(carol, {"type": "react", "of": first["id"], "key": "🙂"})
    acked(alice, {"type": "delete", "of": doomed["id"]})
    gone_reply = acked(carol, {"type": "message", "msg": "what oops?", "reply_to": first["id"]})
    expected = [
        {"type": "message", "id": first["id"], "user": alice.name, "msg": "first", "ts": first["ts"], "edited": edit["ts"],
         "reactions": {"👍": [bob.name, carol.name], "🙂": [carol.name]}},
        {"type": "message", "id": reply["id"], "user": bob.name, "msg": "agreed", "reply_to": first["id"], "ts": reply["ts"],
         "quote": {"user": alice.name, "msg": "first"}},
        {"type": "message", "id": doomed["id"], "user": alice.name, "ts": doomed["ts"], "deleted": True},
        {"type": "message", "id": gone_reply["id"], "user": carol.name, "msg": "what oops?", "reply_to": first["id"],
         "ts": gone_reply["ts"], "quote": {"user": alice.name, "msg": "first"}},
    ]
    ours = {e["id"] for e in expected}
    page = acked_history(alice, {"type": "history", "limit": 200})
    assert [m for m in page if m["id"] in ours] == expected
    assert {m["type"] for m in page} == {"message"}  # the events themselves are not in history pages
    dave = chat.connect("dave", handshake=False)
    dave.recv_type("welcome")
    connect_history = dave.recv_type("history")["messages"]
    assert [m for m in connect_history if m["id"] in ours] == expected
    # a reply to a message deleted since shows a deleted quote
    acked(alice, {"type": "delete", "of": first["id"]})
    page = acked_history(alice, {"type": "history", "limit": 200})
    assert [m.get("quote") for m in page if m["id"] in (reply["id"], gone_reply["id"])] == [{"deleted": True}] * 2


def test_history_of_a_direct_and_of_a_room_show_the_current_state(chat):
    alice, bob = chat.connect("alice"), chat.connect("bob")
    direct = post(alice, "dm", to=bob.name)
    acked(bob, {"type": "react", "of": direct["id"], "key": "👋"})
    page = acked_history(alice, {"type": "history", "with": bob.name})
    assert page == [{"type": "direct", "id": direct["id"], "user": alice.name, "to": bob.name, "msg": "dm", "ts": direct["ts"],
                     "reactions": {"👋": [bob.name]}}]
    room = make_room(alice, [bob])
    said = acked(bob, {"type": "message", "room": room, "msg": "in the room"})
    acked(alice, {"type": "delete", "of": said["id"]})
    page = acked_history(alice, {"type": "history", "room": room})
    assert page[-1] == {"type": "message", "id": said["id"], "room": room, "user": bob.name, "ts": said["ts"], "deleted": True}
    assert [m["type"] for m in page] == ["member"] * 3 + ["message", "message"]  # create, invite, join; setup marker


def test_deleting_a_message_deletes_the_file_it_carries(chat):
    server = chat.server
    _, alice, token = account(server, "lifecycle")
    response = requests.post(server.http_url + "/files", headers={"Authorization": f"Bearer {token}"},
                             files={"file": ("note.txt", b"the secret file\n", "text/plain")}, timeout=30)
    assert response.status_code == 201, response.text
    sent = response.json()
    url = server.http_url + sent["attachment"]["url"]
    assert requests.get(url, timeout=30).content == b"the secret file\n"
    (total_before,) = rows(server, "SELECT bytes FROM upload_totals")
    with token_socket(server, alice, token) as ws:
        error = refused(ws, {"type": "edit", "of": sent["id"], "msg": "another text"})
        assert (error["code"], error["message"]) == ("forbidden", "a message that carries a file cannot be edited")
        acked(ws, {"type": "delete", "of": sent["id"]})
    assert requests.get(url, timeout=30).status_code == 410
    (data, deleted_ms), = rows(server, "SELECT data, deleted_ms FROM attachments WHERE id = ?", [sent["attachment"]["id"]])
    assert bytes(data) == b"" and deleted_ms is not None
    assert rows(server, "SELECT bytes FROM upload_totals") == [(total_before[0] - sent["attachment"]["size"],)]
    assert rows(server, "SELECT body FROM messages WHERE id = ?", [sent["id"]]) == [("",)]


# ---- hostile input -------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("key", ["", "a", "👍👍", "👍 ", ":+1:", "\u200d", "👍" + "\u200d👍" * 40, "x" * 10_000, 1, None, ["👍"]])
def test_a_reaction_key_that_is_not_one_emoji_is_bad_field(chat, key):
    alice = chat.connect("alice")
    sent = post(alice, "hello")
    assert refused(alice, {"type": "react", "of": sent["id"], "key": key})["code"] == "bad_field"
    assert refused(alice, {"type": "react", "of": sent["id"], "key": "👍", "op": "toggle"})["code"] == "bad_field"
    assert rows(chat.server, "SELECT COUNT(*) FROM messages WHERE target_id = ?", [sent["id"]]) == [(0,)]


@pytest.mark.parametrize("of", [0, -1, 2**63, "5", 1.5, True, None])
def test_an_absurd_target_is_bad_field(chat, of):
    alice = chat.connect("alice")
    for payload in ({"type": "edit", "of": of, "msg": "x"}, {"type": "delete", "of": of}, {"type": "react", "of": of, "key": "👍"},
                    {"type": "message", "msg": "x", "reply_to": of if of is not None else "x"}):
        assert refused(alice, payload)["code"] == "bad_field", payload


def test_an_event_cannot_be_edited_reacted_to_or_deleted(chat):
    alice = chat.connect("alice")
    sent = post(alice, "hello")
    edit = acked(alice, {"type": "edit", "of": sent["id"], "msg": "hello!"})
    for payload in ({"type": "edit", "of": edit["id"], "msg": "x"}, {"type": "delete", "of": edit["id"]},
                    {"type": "react", "of": edit["id"], "key": "👍"}):
        assert refused(alice, payload)["code"] == "not_found"


def test_a_huge_edit_closes_the_connection_like_a_huge_message_and_changes_nothing(chat):
    alice = chat.connect("alice")
    sent = post(alice, "short")
    alice.send({"type": "edit", "of": sent["id"], "msg": "x" * 70_000})
    assert alice.recv_close()[0] == 1009
    assert rows(chat.server, "SELECT body FROM messages WHERE id = ? OR target_id = ?", [sent["id"], sent["id"]]) == [("short",)]


@pytest.fixture
def limited(start_server, database_url):
    return start_server(database_url, max_edits=2, max_reaction_keys=3, bots="")


def test_edits_and_reaction_keys_are_limited(limited, clients):
    alice, bob = clients(limited, "alice"), clients(limited, "bob")
    sent = post(alice, "v0")
    for i in (1, 2):
        acked(alice, {"type": "edit", "of": sent["id"], "msg": f"v{i}"})
    error = refused(alice, {"type": "edit", "of": sent["id"], "msg": "v3"})
    assert (error["code"], error["message"]) == ("forbidden", "a message may be edited at most 2 times")
    for key in ("👍", "👎", "😀"):
        acked(alice, {"type": "react", "of": sent["id"], "key": key})
    error = refused(bob, {"type": "react", "of": sent["id"], "key": "🙃"})
    assert (error["code"], error["message"]) == ("forbidden", "a message carries at most 3 different reactions")
    acked(bob, {"type": "react", "of": sent["id"], "key": "👍"})  # one it carries: counted once more, not a new key
    assert rows(limited, "SELECT body FROM messages WHERE id = ?", [sent["id"]]) == [("v2",)]
    assert rows(limited, "SELECT COUNT(DISTINCT emoji), COUNT(*) FROM reactions WHERE message_id = ?", [sent["id"]]) == [(3, 4)]


# ---- several processes ---------------------------------------------------------------------------------------------------


def test_events_cross_processes_to_exactly_those_who_see_the_message(pair, clients):
    a, b = pair
    alice, bob, carol = clients(a, "alice"), clients(b, "bob"), clients(b, "carol")
    online_everywhere(alice, "alice", "bob", "carol")
    bob.name, alice.name, carol.name = "bob", "alice", "carol"
    room = make_room(alice, [bob])
    sent = acked(alice, {"type": "message", "room": room, "msg": "across"})
    assert next_event(bob)["id"] == sent["id"]
    reaction = acked(bob, {"type": "react", "of": sent["id"], "key": "🚀"})
    assert next_event(alice) == {"type": "reaction", "id": reaction["id"], "of": sent["id"], "room": room, "user": "bob",
                                 "key": "🚀", "op": "add", "ts": reaction["ts"]}
    edit = acked(alice, {"type": "edit", "of": sent["id"], "msg": "across!"})
    assert next_event(bob) == {"type": "edit", "id": edit["id"], "of": sent["id"], "room": room, "user": "alice",
                               "msg": "across!", "ts": edit["ts"]}
    long_text = "x" * 150
    general = post(bob, "to all " + long_text)
    assert next_event(alice)["id"] == general["id"]
    # a reply's live event quotes what it answers on every process (the frame crosses the bus as made)
    reply = acked(alice, {"type": "message", "msg": "re", "reply_to": general["id"]})
    quoted = {"type": "message", "id": reply["id"], "user": "alice", "msg": "re", "reply_to": general["id"],
              "ts": reply["ts"], "quote": {"user": "bob", "msg": ("to all " + long_text)[:100]}}
    assert next_event(bob) == quoted
    assert next_event(carol)["id"] == general["id"]
    assert next_event(carol) == quoted
    assert refused(alice, {"type": "delete", "of": general["id"]})["code"] == "forbidden"
    delete = acked(bob, {"type": "delete", "of": general["id"]})
    assert next_event(alice) == {"type": "delete", "id": delete["id"], "of": general["id"], "user": "bob", "ts": delete["ts"]}
    # carol, on bob's process, saw the general message and its deletion, and nothing of the room
    assert next_event(carol)["id"] == delete["id"]
    marker_reaches(alice, [carol, bob])
    # a ?since= replay on the other process: the room's events for a member, in order
    replay = clients(a, "bob", f"?since={sent['id'] - 1}", handshake=False)
    replay.recv_type("welcome")
    got = [(m["type"], m["id"]) for m in replay.recv_type("history")["messages"] if m["id"] >= sent["id"]]
    assert got[:3] == [("message", sent["id"]), ("reaction", reaction["id"]), ("edit", edit["id"])]
    assert ("delete", delete["id"]) in got
    assert [i for _, i in got] == sorted(i for _, i in got)


@pytest.mark.parametrize("several", [False, True], ids=["one-process", "over-redis"])
def test_a_burst_of_edits_and_reactions_sent_before_any_commit_stays_within_the_limits(start_server, database_url, redis_server,
                                                                                        clients, several):
    extra = {"redis_url": redis_server.url} if several else {}
    server = start_server(database_url, max_edits=2, max_reaction_keys=2, bots="", **extra)
    alice = clients(server, "alice")
    sent = post(alice, "v0")
    keys = ["😀", "😁", "😂", "🤣", "😃"]
    frames = [json.dumps({"type": "edit", "of": sent["id"], "msg": f"v{i}", "ref": f"e{i}"}) for i in range(1, 6)]
    frames += [json.dumps({"type": "react", "of": sent["id"], "key": k, "ref": f"r{i}"}) for i, k in enumerate(keys)]
    for frame in frames:  # all sent before the first answer is read
        alice.ws.send(frame)
    answers = {}
    while len(answers) < len(frames):
        event = alice.recv()
        if event["type"] in ("ack", "error"):
            answers[event["ref"]] = event["type"] if event["type"] == "ack" else event["code"]
    edits = [answers[f"e{i}"] for i in range(1, 6)]
    if several:  # an edit committing just as the next is checked may count twice there: never more than the limit
        assert 1 <= edits.count("ack") <= 2 and edits.count("forbidden") == 5 - edits.count("ack"), edits
    else:
        assert edits == ["ack", "ack", "forbidden", "forbidden", "forbidden"]
    assert [answers[f"r{i}"] for i in range(5)] == ["ack", "ack", "forbidden", "forbidden", "forbidden"]
    assert rows(server, "SELECT COUNT(*) FROM messages WHERE target_id = ? AND kind = 'edit'", [sent["id"]]) == [(edits.count("ack"),)]
    assert rows(server, "SELECT COUNT(*) FROM reactions WHERE message_id = ?", [sent["id"]]) == [(2,)]


def test_the_conversation_list_shows_its_last_message_as_it_stands_and_counts_no_events(chat):
    alice, bob = chat.connect("alice"), chat.connect("bob")
    sent = post(alice, "lunch at 12?", to=bob.name)
    edit = acked(alice, {"type": "edit", "of": sent["id"], "msg": "lunch at 1?"})
    acked(alice, {"type": "react", "of": sent["id"], "key": "🍕"})

    def entry(client, other):
        client.send({"type": "conversations", "ref": "c"})
        while True:
            event = client.recv()
            if event["type"] == "conversations":
                (found,) = [e for e in event["conversations"] if e.get("with") == other]
                return found

    assert entry(bob, alice.name) == {
        "with": alice.name, "unread": 1, "read": 0,
        "last": {"type": "direct", "id": sent["id"], "user": alice.name, "to": bob.name, "msg": "lunch at 1?", "ts": sent["ts"],
                 "edited": edit["ts"], "reactions": {"🍕": [alice.name]}},
    }
    acked(alice, {"type": "delete", "of": sent["id"]})
    assert entry(bob, alice.name)["last"] == {"type": "direct", "id": sent["id"], "user": alice.name, "to": bob.name,
                                              "ts": sent["ts"], "deleted": True}
