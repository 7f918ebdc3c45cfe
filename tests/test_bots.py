"""Bots over real sockets (eliza, and the test-only crasher from tests/support/chatbots.py), plus the bot pieces that need no server.

Most tests share one server per store with bots "eliza,crasher" and use names of their own;
tests of settings (bots off, rate limit) start their own.
"""
from datetime import datetime

import pytest

from chat.bots import Bot, load_bots, register, reserved_names
from chat.bots.eliza import GREETING, Eliza
from chat.bots.runner import BotClient, mention_pattern
from chat.config import Settings
from chat.records import MessageRecord
from tests.support.databases import fresh_database_url
from tests.support.rawws import RawWebSocket, origin, terminal_refusal
from tests.support.servers import Chat, ServerProcess

TEST_BOTS = dict(bots="eliza,crasher", bot_modules="tests.support.chatbots")


@pytest.fixture(scope="module", params=["sqlite", "mysql"])
def bot_server(request, tmp_path_factory):
    directory = tmp_path_factory.mktemp("bots")
    server = ServerProcess(fresh_database_url(request, request.param, directory), directory / "server.log", **TEST_BOTS).start()
    yield server
    server.stop()


@pytest.fixture
def chat(bot_server, clients):
    return Chat(bot_server, clients)


def next_event(client, *types):
    """The next event of `types`, skipping presence only: anything else first fails the test."""
    return client.recv_type(*types)


def ack_and_reply(client, reply_type):
    """After a send: its ack and the bot's reply, in whichever order they come."""
    events = {}
    while len(events) < 2:
        event = client.recv_type("ack", reply_type)
        assert event["type"] not in events, event
        events[event["type"]] = event
    return events["ack"], events[reply_type]


# ---- one-to-one ------------------------------------------------------------------------------


def test_direct_message_to_eliza_is_answered_to_that_user_only(chat):
    alice, bob, carol = (chat.connect(n) for n in ("alice", "bob", "carol"))
    alice.send({"type": "direct", "to": "eliza", "msg": "I need a holiday", "ref": "d1"})
    ack, reply = ack_and_reply(alice, "direct")
    assert (ack["ref"], ack["to"]) == ("d1", "eliza")
    assert (reply["user"], reply["to"]) == ("eliza", alice.name)
    assert "a holiday" in reply["msg"]  # every answer ELIZA has to "I need X" repeats X
    assert reply["id"] > ack["id"]
    # Nobody else got it: had they, it would be queued before anything sent from now on.
    bob.send({"type": "message", "msg": "after the reply", "ref": "b1"})
    assert next_event(bob, "ack", "message", "direct")["ref"] == "b1"
    event = next_event(carol, "message", "direct")
    assert (event["type"], event["user"], event["msg"]) == ("message", bob.name, "after the reply")
    event = next_event(alice, "message", "direct")
    assert (event["user"], event["msg"]) == (bob.name, "after the reply")


def test_eliza_reply_is_stored_and_reaches_every_tab(chat):
    tab1, tab2 = chat.connect("alice"), chat.connect("alice")
    tab1.send({"type": "direct", "to": "eliza", "msg": "I need some sleep"})
    ack, reply = ack_and_reply(tab1, "direct")
    copy = next_event(tab2, "direct")  # the other tab gets a copy of what tab1 sent ...
    assert (copy["id"], copy["user"], copy["to"]) == (ack["id"], chat.name("alice"), "eliza")
    assert next_event(tab2, "direct") == reply  # ... and eliza's reply
    tab1.send({"type": "history", "with": "eliza", "ref": "h"})
    history = next_event(tab1, "history")
    assert [(m["id"], m["user"], m["msg"]) for m in history["messages"]] == [
        (ack["id"], chat.name("alice"), "I need some sleep"),
        (reply["id"], "eliza", reply["msg"]),
    ]


def test_two_users_at_once_each_get_their_own_replies(chat):
    alice, bob = chat.connect("alice"), chat.connect("bob")
    # Interleaved: each user's conversation must keep to its own words.
    alice.send({"type": "direct", "to": "eliza", "msg": "My cat is lost"})
    bob.send({"type": "direct", "to": "eliza", "msg": "My bike is red"})
    alice.send({"type": "direct", "to": "eliza", "msg": "I need a holiday"})
    bob.send({"type": "direct", "to": "eliza", "msg": "I need a bicycle"})
    alice.send({"type": "direct", "to": "eliza", "msg": "hmm"})
    bob.send({"type": "direct", "to": "eliza", "msg": "hmm"})
    for client, said, needed in ((alice, "your cat is lost", "a holiday"), (bob, "your bike is red", "a bicycle")):
        replies = [next_event(client, "ack", "direct") for _ in range(6)]
        replies = [e for e in replies if e["type"] == "direct"]
        assert [(e["user"], e["to"]) for e in replies] == [("eliza", client.name)] * 3
        first, second, third = (e["msg"] for e in replies)
        assert said in first  # "I see, your cat is lost." and the like
        assert needed in second
        assert said in third  # ELIZA's memory: with no keyword to answer, she recalls what this user said


# ---- the group -------------------------------------------------------------------------------


def test_mention_in_the_group_gets_a_group_reply_everyone_sees(chat):
    alice, bob, carol = (chat.connect(n) for n in ("alice", "bob", "carol"))
    alice.send("good morning everyone")  # no mention: no answer
    alice.send("@Eliza, I need a coffee")
    for client in (bob, carol):
        assert next_event(client, "message")["msg"] == "good morning everyone"
        assert next_event(client, "message")["msg"] == "@Eliza, I need a coffee"
    replies = [next_event(client, "message") for client in (bob, carol)]
    assert replies[0] == replies[1]
    reply = replies[0]
    assert reply["user"] == "eliza"
    assert reply["msg"].startswith(f"@{alice.name} ") and "a coffee" in reply["msg"]
    events = [next_event(alice, "ack", "message") for _ in range(3)]
    assert [e["type"] for e in events].count("ack") == 2
    assert [e for e in events if e["type"] == "message"] == [reply]
    bob.send("/history 3")
    assert [m["msg"] for m in next_event(bob, "history")["messages"]][-2:] == ["@Eliza, I need a coffee", reply["msg"]]


# ---- a bot that fails ------------------------------------------------------------------------


def test_a_bot_that_raises_does_not_disturb_chat(chat):
    alice, bob = chat.connect("alice"), chat.connect("bob")
    alice.send({"type": "direct", "to": "crasher", "msg": "boom", "ref": "c1"})
    assert next_event(alice, "ack")["ref"] == "c1"  # stored and acknowledged like any message
    alice.send({"type": "message", "msg": "@crasher boom", "ref": "c2"})
    assert next_event(alice, "ack")["ref"] == "c2"
    assert next_event(bob, "message")["msg"] == "@crasher boom"
    # People still chat ...
    bob.send("still here")
    assert next_event(alice, "message")["msg"] == "still here"
    # ... the bot still answers (in order, so both failures came before this) ...
    alice.send({"type": "direct", "to": "crasher", "msg": "ping"})
    ack, reply = ack_and_reply(alice, "direct")
    assert (reply["user"], reply["msg"]) == ("crasher", "pong: ping")
    # ... and so do the other bots.
    alice.send({"type": "direct", "to": "eliza", "msg": "I need calm"})
    assert "calm" in ack_and_reply(alice, "direct")[1]["msg"]
    log = chat.server.read_log()
    assert f"RuntimeError: crasher was told to crash by {alice.name}" in log
    assert "bot crasher failed on a message; carrying on" in log


# ---- presence and names ----------------------------------------------------------------------


def test_bots_are_online_in_welcome_and_who(start_server, sqlite_url, clients):
    server = start_server(sqlite_url)
    alice = clients(server, "alice", handshake=False)
    welcome, _ = alice.handshake()
    assert welcome["online"] == ["alice", "eliza"]
    alice.send("/who")
    assert alice.recv_type("who")["online"] == ["alice", "eliza"]


@pytest.mark.parametrize("path", ["/ws/eliza", "/ws/Eliza", "/ws/crasher"])
def test_connecting_as_a_bot_is_refused_with_403(bot_server, path):
    raw, response = RawWebSocket.open_http(bot_server.port, path, extra_headers=(origin(bot_server),))
    raw.close()
    assert response.status == 403
    assert "sec-websocket-accept" not in response.headers
    assert "reserved for a bot" in response.json()["error"]
    assert terminal_refusal(bot_server.port, path) == (4003, response.json()["error"])  # no Origin: 4003 after the upgrade


def test_bots_off_makes_eliza_an_unknown_name(start_server, sqlite_url, clients):
    server = start_server(sqlite_url, bots="")
    alice = clients(server, "alice", handshake=False)
    welcome, _ = alice.handshake()
    assert welcome["online"] == ["alice"]
    alice.send({"type": "direct", "to": "eliza", "msg": "hello?", "ref": "x"})
    error = alice.recv_type("error")
    assert (error["code"], error["ref"]) == ("unknown_user", "x")
    alice.send("@eliza hello?")
    assert alice.recv_type("ack", "message")["type"] == "ack"  # just a group message; nobody answers
    alice.send("/who")
    assert alice.recv_type("who")["online"] == ["alice"]
    code, reason = terminal_refusal(server.port, "/ws/eliza")  # still nobody may take the name
    assert code == 4003 and "reserved for a bot" in reason


def test_test_bots_are_not_available_by_default(start_server, sqlite_url):
    with pytest.raises(RuntimeError, match="unknown bot 'crasher'"):
        start_server(sqlite_url, bots="eliza,crasher")


def test_a_bot_is_rate_limited_like_a_person(start_server, sqlite_url, clients):
    server = start_server(sqlite_url, rate_limit=5, rate_burst=1)  # the limits of every connection, bots included
    users = [clients(server, name) for name in ("ann", "ben", "cid")]
    for user in users:
        user.send({"type": "direct", "to": "eliza", "msg": "I need an answer"})
    replies = sorted((ack_and_reply(user, "direct")[1] for user in users), key=lambda r: r["id"])
    assert sorted(r["to"] for r in replies) == ["ann", "ben", "cid"]
    stamps = [datetime.fromisoformat(r["ts"]).timestamp() for r in replies]
    gaps = [b - a for a, b in zip(stamps, stamps[1:])]
    assert all(gap >= 0.15 for gap in gaps), gaps  # one message at once, then 5 a second: 0.2 s apart


# ---- without a server: the pieces ------------------------------------------------------------


def test_eliza_keeps_a_conversation_per_user_and_forgets_the_oldest():
    eliza = Eliza(max_conversations=2)
    assert "your dog barks" in eliza.reply("alice", "My dog barks", True)
    assert "your car is old" in eliza.reply("bob", "My car is old", True)
    assert "your car is old" in eliza.reply("bob", "well", True)  # bob's memory, not alice's
    answers = {eliza.reply("bob", "I need rest", True) for _ in range(3)}
    assert len(answers) == 3  # a rule's answers take turns rather than repeat at random
    eliza.reply("carol", "hi", True)  # a third conversation: alice's, the least recently active, is forgotten
    assert "dog" not in eliza.reply("alice", "well", True)
    assert eliza.reply("alice", "  ", False) == GREETING


def test_mentions_are_whole_names():
    mention = mention_pattern("eliza")
    assert all(mention.search(t) for t in ("@eliza hi", "hi @Eliza", "(@eliza)", "@eliza, hi", "@eliza.", "x @ELIZA: y"))
    assert not any(mention.search(t) for t in ("eliza hi", "a@eliza.org", "@elizabeth", "@eliza-2", "@eliza.x", "@eliza_x"))


class _Service:
    def __init__(self):
        self.settings = Settings()


def test_bot_inbox_keeps_only_what_may_concern_it_and_drops_the_oldest_when_full(caplog):
    client = BotClient(_Service(), Eliza(), inbox_size=2, bot_names=frozenset({"eliza"}))
    client.take(MessageRecord(1, "bob", None, "hello all", 1))
    client.take(MessageRecord(2, "bob", "carol", "@eliza is not in this conversation", 1))
    client.take(MessageRecord(3, "eliza", None, "@eliza talking to itself", 1))
    assert len(client._inbox) == 0
    directs = [MessageRecord(i, "bob", "eliza", f"n{i}", 1) for i in (4, 5, 6)]
    for record in directs:
        client.take(record)
    mention = MessageRecord(7, "bob", None, "hi @eliza", 1)
    client.take(mention)
    assert list(client._inbox) == [directs[2], mention]
    assert client.dropped == 2
    assert sum("inbox full" in r.getMessage() for r in caplog.records) == 1  # logged once per overflow, not per message


def test_bots_are_chosen_by_setting_and_their_names_reserved():
    assert [type(b) for b in load_bots(Settings(bots=" Eliza, "))] == [Eliza]
    assert load_bots(Settings(bots="")) == []
    with pytest.raises(ValueError, match="unknown bot 'nobody'"):
        load_bots(Settings(bots="nobody"))
    with pytest.raises(ValueError, match="twice"):
        load_bots(Settings(bots="eliza,eliza"))
    assert "eliza" in reserved_names()
    with pytest.raises(ValueError, match="not a valid"):

        @register
        class Shouting(Bot):
            name = "SHOUT!"
