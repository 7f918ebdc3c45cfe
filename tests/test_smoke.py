"""Smoke: the server starts on each store and answers its health check."""
import json
import urllib.request


def test_healthz_ok(server):
    with urllib.request.urlopen(server.http_url + "/healthz", timeout=5) as r:
        assert r.status == 200
        body = json.load(r)
    assert body["status"] == "ok"
    assert body["store"] in ("sqlite", "mysql")


def test_group_message_reaches_other_user(server, clients):
    alice = clients(server, "alice")
    bob = clients(server, "bob")
    bob.send("hello everyone")
    assert bob.recv_type("ack")["id"] > 0
    event = alice.recv_type("message")
    assert (event["user"], event["msg"]) == ("bob", "hello everyone")
