"""Several server processes, one chat, over a real Redis: delivery, presence, ids and ?since= across processes,
a process killed with SIGKILL, Redis restarted under load, and --workers."""
import subprocess
import sys
import time

import pytest
import requests

from tests.support.clients import next_message, online_everywhere, post, presence_changes
from tests.support.polling import wait_until
from tests.support.servers import ROOT, free_port, health

CLUSTER_SETTINGS = {"bots": ""}


@pytest.fixture
def cluster(start_server, database_url, redis_server):
    """start(**settings) -> another server process on the same database and Redis."""

    def start(**settings):
        return start_server(database_url, redis_url=redis_server.url, **{**CLUSTER_SETTINGS, **settings})

    return start


@pytest.fixture
def pair(cluster):
    """Two processes, each counting the other in its cluster."""
    a, b = cluster(), cluster()
    joined(a, b)
    return a, b


def joined(a, b):
    """Wait until processes a and b each count the other in their cluster."""
    wait_until(lambda: health(a)["instances"] == 2 and health(b)["instances"] == 2,
               timeout=10, message="both processes to see each other")


def replayed(client, history, count):
    """The ids of a reconnect's history, then of the live messages after it, until `count`: what a process has not
    delivered yet when the client connects (a publication still on its way) is not in the history but follows it."""
    ids = [m["id"] for m in history["messages"]]
    while len(ids) < count:
        ids.append(next_message(client)["id"])
    return ids


def test_group_direct_and_presence_across_processes(pair, clients):
    a, b = pair
    alice = clients(a, "alice")
    bob = clients(b, "bob")
    carol = clients(b, "carol")
    assert set(online_everywhere(alice, "alice", "bob", "carol")) == {"alice", "bob", "carol"}
    assert set(online_everywhere(bob, "alice", "bob", "carol")) == {"alice", "bob", "carol"}

    ack = post(alice, "hello from A")
    for reader in (bob, carol):
        event = next_message(reader)
        assert (event["type"], event["user"], event["msg"], event["id"]) == ("message", "alice", "hello from A", ack["id"])

    ack2 = post(bob, "psst, alice", to="alice")
    event = next_message(alice)
    assert (event["type"], event["user"], event["to"], event["msg"], event["id"]) == ("direct", "bob", "alice", "psst, alice", ack2["id"])
    assert ack2["id"] > ack["id"]  # ids increase across processes

    # carol (same process as bob) must not get the direct: her next message is the next group one.
    ack3 = post(alice, "marker")
    assert next_message(carol)["id"] == ack3["id"]
    assert next_message(bob)["id"] == ack3["id"]


def test_a_user_with_a_tab_on_each_process_gets_every_copy_once(pair, clients):
    a, b = pair
    tab_a = clients(a, "dave")
    tab_b = clients(b, "dave")
    eve = clients(a, "eve")
    online_everywhere(eve, "dave", "eve")
    online_everywhere(tab_b, "dave", "eve")

    group = post(eve, "to everyone")
    direct_in = post(eve, "to dave", to="dave")
    assert [next_message(tab_a)["id"] for _ in range(2)] == [group["id"], direct_in["id"]]
    direct_out = post(tab_a, "dave's answer", to="eve")
    assert next_message(eve)["id"] == direct_out["id"]
    marker = post(eve, "marker")
    assert next_message(tab_a)["id"] == marker["id"]  # its own direct came back as the ack only
    # The other tab, on the other process: every message once, in id order, then the marker.
    assert [next_message(tab_b)["id"] for _ in range(4)] == [group["id"], direct_in["id"], direct_out["id"], marker["id"]]


def test_since_catch_up_works_on_either_process(pair, clients):
    a, b = pair
    reader = clients(a, "reader")
    writer_a = clients(a, "wa")
    writer_b = clients(b, "wb")
    first = post(writer_b, "before the gap")
    assert next_message(reader)["id"] == first["id"]
    reader.close()

    missed = []
    for i in range(10):
        missed.append(post(writer_a if i % 2 else writer_b, f"missed {i}")["id"])
    assert missed == sorted(missed)

    for server in (b, a):  # the other process, then the one it was on
        again = clients(server, "reader", f"?since={first['id']}", handshake=False)
        again.recv_type("welcome")
        history = again.recv_type("history")
        assert history["since"] == first["id"]
        assert replayed(again, history, len(missed)) == missed
        again.close()


def test_a_killed_process_users_go_offline_within_the_presence_timeout(pair, clients):
    a, b = pair  # the default presence_heartbeat (1 s) and presence_timeout (5 s)
    alice = clients(a, "alice")
    frank = clients(b, "frank")
    online_everywhere(alice, "alice", "frank")
    b.kill()  # SIGKILL: no goodbye, only missing heartbeats
    killed_at = time.monotonic()
    while True:
        event = alice.recv_type("presence", timeout=10)
        if ("frank", False) in presence_changes(event):
            break
    waited = time.monotonic() - killed_at
    # The README's promise: gone within presence_timeout + presence_heartbeat (6 s by default); 1 s slack for a busy machine.
    assert waited < 5.0 + 1.0 + 1.0, waited
    assert "frank" not in online_everywhere(alice, "alice")
    assert health(a)["instances"] == 1
    frank.close()


def test_redis_restart_loses_nothing_and_both_processes_recover(pair, clients, redis_server):
    a, b = pair
    alice = clients(a, "alice")
    bob = clients(b, "bob")
    online_everywhere(alice, "alice", "bob")

    acked = [post(alice, "before")["id"]]
    assert next_message(bob)["id"] == acked[0]

    redis_server.kill()
    wait_until(lambda: not health(a)["bus_connected"] and not health(b)["bus_connected"],
               timeout=10, message="both to notice Redis is gone")
    # Meanwhile each process serves its own users and relays through the database.
    for i in range(5):
        acked.append(post(alice, f"while redis is down {i}")["id"])
    received = [next_message(bob)["id"] for _ in range(5)]
    assert received == acked[1:]

    redis_server.start()
    wait_until(lambda: health(a)["bus_connected"] and health(b)["bus_connected"],
               timeout=15, message="both to reconnect to Redis")
    joined(a, b)
    for i in range(5):
        acked.append(post(bob, f"after {i}")["id"])
    assert [next_message(alice)["id"] for _ in range(5)] == acked[6:]
    assert acked == sorted(acked)

    # Everything acknowledged is stored, once, in order, whichever process is asked.
    auditor = clients(a, "auditor", "?since=0", handshake=False)
    auditor.recv_type("welcome")
    assert replayed(auditor, auditor.recv_type("history"), len(acked)) == acked
    assert online_everywhere(bob, "alice", "bob")


def test_workers_share_the_port_and_deliver_across_each_other(start_server, sqlite_url, redis_server, clients):
    server = start_server(sqlite_url, redis_url=redis_server.url, workers=2, bots="")
    users = []
    instances = {}
    for i in range(40):
        users.append(clients(server, f"user{i}"))
        if i >= 3:
            for _ in range(4):
                h = health(server)
                instances[h["instance"]] = h["connections"]
            if len(instances) == 2 and all(instances.values()):
                break
    assert len(instances) == 2 and all(instances.values()), f"connections per worker: {instances}"
    online_everywhere(users[0], *[f"user{i}" for i in range(len(users))])
    ack = post(users[0], "to both workers")
    for client in users[1:]:
        assert next_message(client)["id"] == ack["id"]


def test_more_than_one_worker_without_redis_is_refused(sqlite_url):
    result = subprocess.run(
        [sys.executable, "run_server.py", "--workers", "2", "--port", str(free_port()), "--database", sqlite_url],
        cwd=ROOT, capture_output=True, text=True, timeout=30,
    )
    assert result.returncode == 2
    assert "--workers 2 needs Redis" in result.stderr
    assert "Traceback" not in result.stderr


def test_revoking_a_token_on_one_process_closes_its_sockets_on_the_others(pair, clients):
    from tests.support.webusers import get_token, signed_up, token_socket

    a, b = pair
    _, name = signed_up(a, "kick")
    token = get_token(a, name)
    on_b = token_socket(b, name, token, header=True)
    watcher = clients(a, "watcher")
    online_everywhere(watcher, name)
    response = requests.delete(a.http_url + "/api/token", headers={"Authorization": f"Bearer {token}"}, timeout=10)
    assert response.status_code == 204
    assert on_b.recv_close() == (4001, "token revoked")
    on_b.close()


def test_a_file_uploaded_to_one_process_reaches_users_on_the_other(pair, clients):
    from tests.support import filesamples
    from tests.support.webusers import get_token, signed_up

    a, b = pair
    _, name = signed_up(a, "uploader")
    token = get_token(a, name)
    viewer = clients(b, "viewer")
    online_everywhere(viewer, "viewer")
    picture = filesamples.png(64, 48)
    response = requests.post(
        a.http_url + "/files", headers={"Authorization": f"Bearer {token}"},
        files={"file": ("dot.png", picture, "image/png")}, timeout=30,
    )
    assert response.status_code == 201, response.text
    posted = response.json()
    event = next_message(viewer)
    assert (event["id"], event["user"], event["attachment"]["name"]) == (posted["id"], name, "dot.png")
    assert event["attachment"]["url"].startswith("/files/")
    served = requests.get(b.http_url + event["attachment"]["url"], timeout=30)  # fetched from the other process
    assert served.status_code == 200 and served.headers["Content-Type"] == "image/png"
