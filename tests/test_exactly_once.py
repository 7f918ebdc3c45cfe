"""Exactly-once sends (issue 17): a message sent again with the same "client_id" by the same user, on the same
connection before its commit, after a dropped connection, after a restart, or on another process (also at the same
moment), is acknowledged with the original id, and the database (queried directly) holds one row that every recipient
gets once, live and in a ?since= replay; on each store. Hostile client_ids, another user's client_id, a reused client_id
with other content, the window and the bounded memory."""
import json
import threading
import uuid

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chat.messaging.protocol import ProtocolError, SendDirect, SendGroup, parse_inbound
from chat.records import Duplicate, MessageRecord
from chat.store import Store

from tests.support.clients import next_message, online_everywhere
from tests.support.databases import db_execute
from tests.support.polling import wait_until
from tests.support.rawws import OP_TEXT, build_frame
from tests.support.rooms import act
from tests.support.servers import health
from tests.support.wscat import Wscat


def unique(short):
    return f"{short}-{uuid.uuid4().hex[:6]}"


def rows(database_url, body):
    return [tuple(r) for r in db_execute(database_url, "SELECT id, sender FROM messages WHERE body = ?", (body,))]


def sent_rows(database_url, sender):
    return [tuple(r) for r in db_execute(database_url, "SELECT client_id, message_id FROM sent_messages WHERE sender = ?", (sender,))]


def send(client, msg, client_id, ref, **fields):
    client.send({"type": "message", "msg": msg, "client_id": client_id, "ref": ref, **fields})


def answer(client, ref):
    """The ack or error with `ref`, skipping messages and presence on the way."""
    while True:
        event = client.recv_type("ack", "error", "message", "direct")
        if event["type"] in ("ack", "error") and event.get("ref") == ref:
            return event


def ack(client, ref):
    event = answer(client, ref)
    assert event["type"] == "ack", event
    return event


def received_until(client, marker):
    """The texts of the messages `client` gets up to and including `marker`'s: what came before it, each as often as
    it came (the server delivers in order, so a duplicate would be among them)."""
    texts = []
    while True:
        text = next_message(client)["msg"]
        texts.append(text)
        if text == marker:
            return texts


def replay_texts(server, clients, name, since):
    replay = clients(server, name, f"?since={since}", handshake=False)
    replay.recv_type("welcome")
    texts = []
    while True:
        event = replay.recv_type("history")
        texts += [m["msg"] for m in event["messages"]]
        if event.get("complete", True) or "next" in event:
            return texts


@pytest.fixture
def one(start_server, database_url):
    return start_server(database_url, bots="")


# ---- the parser and the store, without a server -------------------------------------------------------------------

CLIENT_ID_ALPHABET = "ABCXYZabcxyz0189_.:~-"


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.text(max_size=80), st.text(alphabet=CLIENT_ID_ALPHABET, min_size=1, max_size=70)),
       st.sampled_from(["message", "direct"]))
def test_a_client_id_is_accepted_exactly_when_it_follows_the_rule_and_is_kept_as_sent(client_id, kind):
    frame = {"type": kind, "msg": "hi", "client_id": client_id, "ref": 1}
    if kind == "direct":
        frame["to"] = "bob"
    valid = 1 <= len(client_id) <= 64 and all(c.isascii() and (c.isalnum() or c in "_.:~-") for c in client_id)
    try:
        command = parse_inbound(json.dumps(frame), max_name_length=32, default_history=50, max_history=200)
    except ProtocolError as e:
        assert not valid and (e.code, e.ref) == ("bad_field", 1)
    else:
        assert valid and type(command) in (SendGroup, SendDirect) and command.client_id == client_id


@pytest.fixture
def store(database_url):
    s = Store(database_url, pool_size=2, connect_timeout=3)
    s.ensure_schema()
    yield s
    s.close()


@pytest.mark.parametrize("assign_ids", [False, True], ids=["ids at post", "ids at commit"])
def test_the_store_keeps_one_row_per_sender_and_client_id_and_answers_the_rest_with_the_original(store, assign_ids):
    def record(message_id, sender, body, client_id):
        return MessageRecord(None if assign_ids else message_id, sender, None, body, 1_700_000_000_000 + message_id,
                             client_id=client_id)

    insert = store.insert_assigning_ids if assign_ids else store.insert_messages
    first = insert([record(1, "alice", "one", "k1"), record(2, "alice", "one", "k1"), record(3, "bob", "one", "k1"),
                    record(4, "alice", "plain", None)])
    assert [type(o) for o in first] == [MessageRecord, Duplicate, MessageRecord, MessageRecord]
    assert first[1].original_id == first[0].id and first[1].original_ms == first[0].created_ms
    later = insert([record(5, "alice", "two", "k1"), record(6, "bob", "one", "k2")])
    assert type(later[0]) is Duplicate and later[0].original_id == first[0].id
    assert type(later[1]) is MessageRecord
    assert store.count_messages() == 4
    assert store.sent_message("alice", "k1")[0] == first[0].id and store.sent_message("carol", "k1") is None
    if assign_ids:  # a duplicate takes no id: the ids stay without gaps
        assert later[1].id == first[3].id + 1
    assert store.purge_sent(1_700_000_000_000 + 100) == 3 and store.sent_message("alice", "k1") is None


# ---- one process -------------------------------------------------------------------------------------------------


def test_a_resend_after_a_dropped_connection_gets_the_original_id_and_one_row(one, clients, database_url):
    alice, bob = unique("alice"), unique("bob")
    reader = clients(one, bob)
    sender = clients(one, alice)
    before = ack_of_plain(sender, "before")
    text, cid = f"lost ack {uuid.uuid4().hex}", str(uuid.uuid4())
    send(sender, text, cid, "r1")
    sender.close()  # gone before reading its ack: it cannot know whether the message was stored

    again = clients(one, alice)
    send(again, text, cid, "r1")  # wscat users reuse refs: the ack answers this frame's
    first = ack(again, "r1")
    send(again, text, cid, "r2")
    assert ack(again, "r2")["id"] == first["id"]
    again.send({"type": "message", "msg": "after", "ref": "m"})
    ack(again, "m")

    assert rows(database_url, text) == [(first["id"], alice)]
    assert sent_rows(database_url, alice) == [(cid, first["id"])]
    assert received_until(reader, "after").count(text) == 1
    assert replay_texts(one, clients, unique("carol"), before).count(text) == 1


def ack_of_plain(client, text):
    client.send({"type": "message", "msg": text, "ref": "plain"})
    return ack(client, "plain")["id"]


def test_a_resend_on_the_same_connection_before_the_commit_is_acknowledged_once_per_frame(one, clients, database_url):
    alice = unique("alice")
    reader = clients(one, unique("bob"))
    sender = clients(one, alice)
    text, cid = f"twice {uuid.uuid4().hex}", uuid.uuid4().hex
    frame = {"type": "message", "msg": text, "client_id": cid}
    # Both frames in one read of the server, so the second is handled while the first waits for its commit.
    sender.ws.sock.sendall(b"".join(build_frame(OP_TEXT, json.dumps({**frame, "ref": r})) for r in ("a", "b")))
    first, second = ack(sender, "a"), ack(sender, "b")
    assert first["id"] == second["id"] and first["ts"] == second["ts"]
    send(sender, "after", "marker-" + cid, "m")
    ack(sender, "m")
    assert len(rows(database_url, text)) == 1
    assert received_until(reader, "after").count(text) == 1


@pytest.mark.parametrize("kind", ["room", "direct", "reply"])
def test_room_messages_directs_and_replies_are_sent_once(one, clients, database_url, kind):
    alice, bob = unique("alice"), unique("bob")
    sender, reader = clients(one, alice), clients(one, bob)
    room = unique("r")
    fields = {}
    if kind == "room":
        act(sender, {"type": "create", "room": room})
        act(reader, {"type": "join", "room": room})
        sender.recv_type("member")  # bob joined: alice, in the room, hears it
        fields = {"room": room}
    elif kind == "direct":
        fields = {"type": "direct", "to": bob}
    else:
        fields = {"reply_to": ack_of_plain(sender, "question")}
    text, cid = f"{kind} {uuid.uuid4().hex}", uuid.uuid4().hex
    send(sender, text, cid, "1", **fields)
    first = ack(sender, "1")
    sender.close()
    again = clients(one, alice)
    send(again, text, cid, "2", **fields)
    second = ack(again, "2")
    assert second["id"] == first["id"] and {k: v for k, v in second.items() if k != "ref"} == {k: v for k, v in first.items() if k != "ref"}
    send(again, "after", uuid.uuid4().hex, "m", **fields)
    ack(again, "m")
    assert len(rows(database_url, text)) == 1
    assert received_until(reader, "after").count(text) == 1


def test_a_resend_after_a_restart_gets_the_original_id(one, clients, database_url):
    alice = unique("alice")
    sender = clients(one, alice)
    text, cid = f"restart {uuid.uuid4().hex}", uuid.uuid4().hex
    send(sender, text, cid, "1")
    first = ack(sender, "1")
    sender.close()
    one.restart()
    again = clients(one, alice)
    send(again, text, cid, "2")
    assert ack(again, "2")["id"] == first["id"]
    assert len(rows(database_url, text)) == 1


def test_a_client_id_sent_again_with_other_content_is_refused_and_nothing_is_stored(one, clients, database_url):
    alice, bob = unique("alice"), unique("bob")
    sender = clients(one, alice)
    clients(one, bob)
    cid = "no-digits-" + uuid.uuid4().hex.translate(str.maketrans("0123456789", "ghijklmnop"))
    send(sender, "the original", cid, "1")
    first = ack(sender, "1")
    for other in ({"msg": "edited text"}, {"type": "direct", "to": bob, "msg": "the original"},
                  {"reply_to": first["id"], "msg": "the original"}):
        sender.send({"type": "message", "client_id": cid, "ref": "2", **other})
        error = answer(sender, "2")
        assert (error["type"], error["code"]) == ("error", "client_id_reused"), error
        assert "id" not in error and str(first["id"]) not in error["message"]
    send(sender, "the original", cid, "3")
    assert ack(sender, "3")["id"] == first["id"]  # the original still answers
    assert rows(database_url, "edited text") == [] and len(rows(database_url, "the original")) == 1


def test_another_users_client_id_never_collides_and_reveals_nothing(one, clients, database_url):
    alice, mallory = unique("alice"), unique("mallory")
    victim, attacker = clients(one, alice), clients(one, mallory)
    cid = uuid.uuid4().hex
    send(victim, "alice's words", cid, "1")
    original = ack(victim, "1")
    send(attacker, "alice's words", cid, "x")  # the same client_id and text, from someone else
    theirs = ack(attacker, "x")
    assert theirs["id"] != original["id"]
    assert sorted(rows(database_url, "alice's words")) == sorted([(original["id"], alice), (theirs["id"], mallory)])
    send(attacker, "other words", cid, "y")  # only mallory's own message under it counts
    assert answer(attacker, "y")["code"] == "client_id_reused"


HOSTILE_CLIENT_IDS = [
    "", "x" * 65, "a b", "é", "😀", "a\u0000b", "line\n", "<script>", "a/b", 7, 1.5, True, ["a"], {"a": 1},
    "x" * 60_000,  # as long as a frame may be (max_message_size, 64 KiB)
]


def test_a_hostile_client_id_is_a_bad_field_and_nothing_is_stored(one, clients, database_url):
    alice = unique("alice")
    client = clients(one, alice)
    for i, bad in enumerate(HOSTILE_CLIENT_IDS):
        text = f"hostile {i}"
        send(client, text, bad, f"h{i}")
        error = answer(client, f"h{i}")
        assert (error["type"], error["code"]) == ("error", "bad_field") and "client_id" in error["message"], bad
        assert rows(database_url, text) == []
    assert sent_rows(database_url, alice) == []
    send(client, "still here", "x" * 64, "ok")  # the longest allowed
    assert ack(client, "ok")["id"] > 0


def test_many_distinct_client_ids_cost_one_row_each_and_bounded_memory(start_server, database_url, clients):
    server = start_server(database_url, bots="", client_id_memory=5, rate_limit=1000, rate_burst=1000)
    alice = unique("alice")
    client = clients(server, alice)
    ids = {}
    for i in range(40):
        cid = f"{i:04d}-{uuid.uuid4().hex}"
        send(client, f"many {i}", cid, str(i))
        ids[cid] = ack(client, str(i))["id"]
    assert dict(sent_rows(database_url, alice)) == ids  # one row per message
    assert health(server)["client_ids_in_memory"] <= 5
    oldest = next(iter(ids))  # forgotten here, still known to the database
    lookups = health(server)["client_id_lookups"]
    send(client, "many 0", oldest, "again")
    assert ack(client, "again")["id"] == ids[oldest]
    assert health(server)["client_id_lookups"] == lookups + 1
    assert len(rows(database_url, "many 0")) == 1


def test_past_the_window_a_client_id_is_forgotten_and_purged(start_server, database_url, clients):
    server = start_server(database_url, bots="", client_id_window=1.0)
    alice = unique("alice")
    client = clients(server, alice)
    cid = uuid.uuid4().hex
    send(client, "old news", cid, "1")
    first = ack(client, "1")
    wait_until(lambda: sent_rows(database_url, alice) == [], timeout=10, message="the purge of the window's rows")
    send(client, "old news", cid, "2")  # outside the window: a new message, as documented
    assert ack(client, "2")["id"] > first["id"]


def test_a_wscat_user_sends_the_same_line_again_after_reconnecting_and_it_is_stored_once(one, clients, database_url,
                                                                                        wscat_path):
    alice = unique("alice")
    reader = clients(one, unique("bob"))
    line = json.dumps({"type": "message", "msg": "deploying now", "client_id": "deploy-1", "ref": "d"})
    acks, query = [], ""
    for _ in range(2):  # as docs/guide.md shows: the same line, typed again on a new connection (with the name's token)
        term = Wscat(wscat_path, one.ws_url(f"/ws/{alice}{query}"))
        try:
            query = "?resume=" + term.expect(lambda e: e.get("type") == "welcome")["resume"]
            term.expect(lambda e: e.get("type") == "history")
            term.send_line(line)
            acks.append(term.expect(lambda e: e.get("type") == "ack" and e.get("ref") == "d"))
        finally:
            term.quit()
    assert acks[0]["id"] == acks[1]["id"] and len(rows(database_url, "deploying now")) == 1
    ack_of_plain(clients(one, unique("carol")), "after")
    assert received_until(reader, "after").count("deploying now") == 1


# ---- several processes -------------------------------------------------------------------------------------------


def test_a_resend_on_another_process_gets_the_original_id(pair, clients, database_url):
    a, b = pair
    alice, bob, carol = unique("alice"), unique("bob"), unique("carol")
    on_a, on_b = clients(a, bob), clients(b, carol)
    sender = clients(a, alice)
    online_everywhere(on_b, alice, bob, carol)
    before = ack_of_plain(sender, "before")
    text, cid = f"moved {uuid.uuid4().hex}", uuid.uuid4().hex
    send(sender, text, cid, "1")
    sender.close()  # possibly before its commit: the resend on b may race it
    again = clients(b, alice)
    send(again, text, cid, "2")
    resent = ack(again, "2")
    send(again, "after", uuid.uuid4().hex, "m")
    ack(again, "m")
    assert rows(database_url, text) == [(resent["id"], alice)]
    for reader in (on_a, on_b):
        assert received_until(reader, "after").count(text) == 1
    assert replay_texts(a, clients, unique("dave"), before).count(text) == 1


def test_two_processes_sending_the_same_client_id_at_once_store_and_deliver_it_once(pair, clients, database_url):
    a, b = pair
    alice, bob, carol = unique("alice"), unique("bob"), unique("carol")
    on_a, on_b = clients(a, bob), clients(b, carol)
    tabs = [clients(a, alice), clients(b, alice)]  # one user, a tab on each process
    online_everywhere(on_a, alice, bob, carol)
    for round_ in range(5):
        text, cid = f"race {round_} {uuid.uuid4().hex}", uuid.uuid4().hex
        start = threading.Barrier(2)

        def fire(tab, ref):
            start.wait()
            send(tab, text, cid, ref)

        threads = [threading.Thread(target=fire, args=(tab, f"t{i}")) for i, tab in enumerate(tabs)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        acks = [ack(tab, f"t{i}") for i, tab in enumerate(tabs)]
        assert acks[0]["id"] == acks[1]["id"], acks
        assert rows(database_url, text) == [(acks[0]["id"], alice)]
        send(tabs[0], f"after {round_}", uuid.uuid4().hex, "m")
        ack(tabs[0], "m")
        for reader in (on_a, on_b):
            assert received_until(reader, f"after {round_}").count(text) == 1
