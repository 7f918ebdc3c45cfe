"""History on each store: on connect, by request (paged, per conversation), ?since= catch-up, offline directs, restarts."""
from tests.support.clients import connect_and_leave, wait_presence
EMOJI = "stored 😀🎉👍🏽 中文 𝄞 ünïcødé"


def recv_ack(client):
    """The client's next ack, skipping deliveries of other people's messages."""
    while True:
        event = client.recv_type("ack", "message", "direct")
        if event["type"] == "ack":
            return event


def recv_history(client):
    """The client's next history event, skipping live deliveries."""
    while True:
        event = client.recv_type("history", "message", "direct")
        if event["type"] == "history":
            return event


def send_all(client, payloads):
    """Send each payload and wait for its ack; returns the ids, in order."""
    ids = []
    for payload in payloads:
        client.send(payload)
        ids.append(recv_ack(client)["id"])
    return ids


def send_burst(client, payloads):
    """Send everything at once, then collect the acks (in order)."""
    for i, payload in enumerate(payloads):
        client.send({**payload, "ref": i} if isinstance(payload, dict) else {"msg": payload, "ref": i})
    acks = [recv_ack(client) for _ in payloads]
    assert [a["ref"] for a in acks] == list(range(len(payloads)))
    return [a["id"] for a in acks]


def ids_of(event):
    return [m["id"] for m in event["messages"]]


# ---- on connect -------------------------------------------------------------------------------


def test_history_on_connect_is_the_last_50_group_messages(server, clients):
    alice = clients(server, "alice")
    ids = send_burst(alice, [f"message {i}" for i in range(55)])
    bob = clients(server, "bob", handshake=False)
    bob.recv_type("welcome")
    history = bob.recv_type("history")
    assert ids_of(history) == ids[-50:]
    first = history["messages"][0]
    assert (first["type"], first["user"], first["msg"]) == ("message", "alice", "message 5")
    assert "ts" in first


def test_history_on_connect_limit_setting(start_server, database_url, clients):
    server = start_server(database_url, history_on_connect=3)
    alice = clients(server, "alice")
    carol = clients(server, "carol")
    group = send_all(alice, ["g1", "g2", "g3", "g4"])
    send_all(alice, [{"to": "carol", "msg": "not for bob"}])
    group += send_all(carol, ["g5"])
    bob = clients(server, "bob", handshake=False)
    bob.recv_type("welcome")
    history = bob.recv_type("history")
    assert ids_of(history) == group[-3:]
    assert [m["msg"] for m in history["messages"]] == ["g3", "g4", "g5"]
    assert all(m["type"] == "message" for m in history["messages"])


def test_offline_direct_is_delivered_on_next_connect(server, clients):
    alice = clients(server, "alice")
    connect_and_leave(clients, server, alice, "bob")  # bob is now a known user, offline

    (direct_id,) = send_all(alice, [{"to": "bob", "msg": "while you were away 😀"}])
    (group_id,) = send_all(alice, ["group while away"])

    bob = clients(server, "bob", handshake=False)
    bob.recv_type("welcome")
    history = bob.recv_type("history")
    assert ids_of(history) == [direct_id, group_id]
    direct = history["messages"][0]
    assert (direct["type"], direct["user"], direct["to"], direct["msg"]) == ("direct", "alice", "bob", "while you were away 😀")

    # received now: the next connect does not deliver it again
    wait_presence(alice, "bob", True)
    bob.close()
    wait_presence(alice, "bob", False)
    bob = clients(server, "bob", handshake=False)
    bob.recv_type("welcome")
    assert ids_of(bob.recv_type("history")) == [group_id]


def test_offline_directs_are_only_the_users_own(server, clients):
    alice = clients(server, "alice")
    for name in ("bob", "carol"):
        connect_and_leave(clients, server, alice, name)
    to_bob, to_carol = send_all(alice, [{"to": "bob", "msg": "b"}, {"to": "carol", "msg": "c"}])
    bob = clients(server, "bob", handshake=False)
    bob.recv_type("welcome")
    assert ids_of(bob.recv_type("history")) == [to_bob]


def test_direct_to_a_never_seen_name_is_unknown_user(server, clients):
    alice = clients(server, "alice")
    bob = clients(server, "bob")
    alice.send({"to": "nobody", "msg": "hello?", "ref": "u"})
    error = alice.recv_type("error")
    assert (error["code"], error["ref"]) == ("unknown_user", "u")
    assert error["message"]
    # nothing was stored or sent, and the connection is still fine
    alice.send("still here")
    ack = alice.recv_type("ack")
    assert bob.recv_type("message", "direct")["id"] == ack["id"]
    alice.send({"type": "history", "with": "nobody"})
    assert recv_history(alice)["messages"] == []


# ---- by request ---------------------------------------------------------------------------------


def test_history_request_pages_oldest_first(server, clients):
    alice = clients(server, "alice")
    bob = clients(server, "bob")
    group = send_burst(alice, [f"g{i}" for i in range(10)])
    send_all(alice, [{"to": "bob", "msg": "a direct is not group history"}])

    bob.send({"type": "history", "limit": 4, "ref": "p1"})
    page = recv_history(bob)
    assert ids_of(page) == group[6:]
    assert [m["msg"] for m in page["messages"]] == ["g6", "g7", "g8", "g9"]
    assert (page["ref"], page["more"]) == ("p1", True)

    bob.send({"type": "history", "limit": 4, "before": page["messages"][0]["id"]})
    page = recv_history(bob)
    assert ids_of(page) == group[2:6]
    assert page["before"] == group[6]

    bob.send({"type": "history", "limit": 4, "before": page["messages"][0]["id"]})
    page = recv_history(bob)
    assert ids_of(page) == group[:2]
    assert page["more"] is False


def test_history_request_default_limit_is_capped(start_server, database_url, clients):
    server = start_server(database_url, max_history_page=5)
    alice = clients(server, "alice")
    group = send_burst(alice, [f"g{i}" for i in range(8)])
    alice.send({"type": "history", "limit": 1000})
    assert ids_of(recv_history(alice)) == group[-5:]


def test_history_with_one_conversation(server, clients):
    alice, bob, carol = (clients(server, n) for n in ("alice", "bob", "carol"))
    ab = []
    ab += send_all(alice, [{"to": "bob", "msg": "ab1"}])
    ab += send_all(bob, [{"to": "alice", "msg": "ba1"}])
    send_all(alice, [{"to": "carol", "msg": "ac"}, "group"])
    send_all(carol, [{"to": "bob", "msg": "cb"}, {"to": "alice", "msg": "ca"}])
    ab += send_all(alice, [{"to": "bob", "msg": "ab2"}])
    ab += send_all(bob, [{"to": "alice", "msg": "ba2"}])

    alice.send({"type": "history", "with": "bob", "ref": 1})
    page = recv_history(alice)
    assert ids_of(page) == ab
    assert [m["msg"] for m in page["messages"]] == ["ab1", "ba1", "ab2", "ba2"]
    assert all(m["type"] == "direct" for m in page["messages"])
    assert (page["with"], page["ref"]) == ("bob", 1)

    bob.send({"type": "history", "with": "alice", "limit": 2, "before": ab[2]})
    page = recv_history(bob)
    assert ids_of(page) == ab[:2]

    # carol's conversation with bob is not alice's business
    carol.send({"type": "history", "with": "bob"})
    assert [m["msg"] for m in recv_history(carol)["messages"]] == ["cb"]


# ---- ?since= ----------------------------------------------------------------------------------


def test_since_replays_what_the_user_may_see(server, clients):
    alice, bob, carol = (clients(server, n) for n in ("alice", "bob", "carol"))
    (g0,) = send_all(alice, ["before"])
    g1, to_bob = send_all(alice, ["g1", {"to": "bob", "msg": "to bob"}])
    (not_bobs,) = send_all(carol, [{"to": "alice", "msg": "carol to alice"}])
    (from_bob,) = send_all(bob, [{"to": "carol", "msg": "bob to carol"}])
    (g2,) = send_all(carol, ["g2"])

    again = clients(server, "bob", query=f"?since={g0}", handshake=False)
    again.recv_type("welcome")
    history = again.recv_type("history")
    assert history["since"] == g0
    assert ids_of(history) == [g1, to_bob, from_bob, g2]
    assert not_bobs not in ids_of(history)

    later = clients(server, "bob", query=f"?since={from_bob}", handshake=False)
    later.recv_type("welcome")
    assert ids_of(later.recv_type("history")) == [g2]

    latest = clients(server, "bob", query=f"?since={g2}", handshake=False)
    latest.recv_type("welcome")
    assert latest.recv_type("history")["messages"] == []

    # and a reconnected client gets live messages as usual, once
    alice.send("live")
    live = recv_ack(alice)["id"]
    for client in (again, later, latest):
        assert client.recv_type("message")["id"] == live


def test_since_zero_replays_everything_visible(server, clients):
    alice, bob = clients(server, "alice"), clients(server, "bob")
    ids = send_burst(alice, ["a", {"to": "bob", "msg": "b"}, "c"])
    carol = clients(server, "carol", query="?since=0", handshake=False)
    carol.recv_type("welcome")
    assert ids_of(carol.recv_type("history")) == [ids[0], ids[2]]
    bob2 = clients(server, "bob", query="?since=0", handshake=False)
    bob2.recv_type("welcome")
    assert ids_of(bob2.recv_type("history")) == ids


# ---- persistence ----------------------------------------------------------------------------------


def test_messages_survive_a_restart(server, clients):
    alice, bob = clients(server, "alice"), clients(server, "bob")
    wait_presence(alice, "bob", True)
    group = send_all(alice, ["before restart", EMOJI])
    (direct,) = send_all(alice, [{"to": "bob", "msg": "direct " + EMOJI}])
    bob.close()
    wait_presence(alice, "bob", False)
    (offline,) = send_all(alice, [{"to": "bob", "msg": "sent while bob was away"}])
    alice.close()

    server.restart()

    # group history on connect, with the emoji intact
    carol = clients(server, "carol", handshake=False)
    carol.recv_type("welcome")
    history = carol.recv_type("history")
    assert ids_of(history) == group
    assert [m["msg"] for m in history["messages"]] == ["before restart", EMOJI]

    # bob is still a known user, and gets what was sent while he was away
    bob = clients(server, "bob", handshake=False)
    bob.recv_type("welcome")
    assert ids_of(bob.recv_type("history")) == group + [offline]

    # the conversation, by request
    bob.send({"type": "history", "with": "alice"})
    page = recv_history(bob)
    assert ids_of(page) == [direct, offline]
    assert page["messages"][0]["msg"] == "direct " + EMOJI

    # ?since= across the restart
    again = clients(server, "bob", query="?since=0", handshake=False)
    again.recv_type("welcome")
    assert ids_of(again.recv_type("history")) == sorted(group + [direct, offline])

    # new ids keep increasing after the restart
    (after,) = send_all(carol, ["after restart"])
    assert after > max(group + [direct, offline])


def test_known_users_survive_a_restart(server, clients):
    clients(server, "bob").close()
    server.restart()  # bob's leave is recorded before the server stops
    alice = clients(server, "alice")
    alice.send({"to": "bob", "msg": "you exist"})
    assert alice.recv_type("ack", "error")["type"] == "ack"
    alice.send({"to": "zed", "msg": "you do not"})
    assert alice.recv_type("ack", "error")["code"] == "unknown_user"
