"""GET /metrics against the real server: it parses with prometheus_client's parser, its counters move when chatting
(one process on each store, and two workers summed), it answers loopback and, from elsewhere, only the metrics token
(a forwarded client behind a trusted proxy is not loopback), and --no-metrics takes it away."""
import os
import signal
import socket

import pytest
import requests
from hypothesis import given, strategies as st
from prometheus_client.parser import text_string_to_metric_families

from chat.messaging.writer import COMMIT_SECONDS_BOUNDS
from chat.metrics.readings import cumulative_buckets
from chat.tally import Buckets
from tests.support.clients import ChatClient, post
from tests.support.polling import wait_until
from tests.support.servers import free_port, health
from tests.support.webusers import account, handshake_status

TIMEOUT = 10
TOKEN = "metrics-secret-0123456789"


def scrape(server, headers=None, base=None):
    return requests.get((base or server.http_url) + "/metrics", headers=headers or {}, timeout=TIMEOUT)


def samples(response):
    """{(sample name, ((label, value), ...)): value} of a 200 answer, parsed by prometheus_client."""
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    found = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def read(server):
    return samples(scrape(server))


def value(found, name, **labels):
    return found.get((name, tuple(sorted(labels.items()))), 0.0)


def moved(before, after, name, **labels):
    return value(after, name, **labels) - value(before, name, **labels)


def test_counters_move_when_chatting(start_server, database_url, clients):
    server = start_server(database_url, bots="", rate_limit=0.01, rate_burst=4)
    first = read(server)
    assert value(first, "chat_connections") == 0
    assert value(first, "chat_messages_accepted_total") == 0
    alice = clients(server, "alice")
    bob = clients(server, "bob")
    start = read(server)
    assert value(start, "chat_connections") == 2
    assert moved(first, start, "chat_connections_opened_total") == 2
    assert value(start, "chat_users_online") == 2

    # A group message reaches bob's one socket (not the sender's own); a direct one reaches bob too.
    post(alice, "hello everyone")
    assert bob.recv_type("message")["msg"] == "hello everyone"
    post(alice, "hi bob", to="bob")
    assert bob.recv_type("direct")["msg"] == "hi bob"
    chatted = read(server)
    for name in ("chat_messages_accepted_total", "chat_messages_stored_total", "chat_acks_total", "chat_messages_delivered_total"):
        assert moved(start, chatted, name) == 2, name
    assert value(chatted, "chat_write_buffer_messages") == 0
    assert value(chatted, "chat_commit_batch_size_count") >= 1
    assert value(chatted, "chat_commit_batch_size_sum") == value(chatted, "chat_messages_stored_total")
    assert value(chatted, "chat_commit_seconds_count") == value(chatted, "chat_commit_batch_size_count")
    assert value(chatted, "chat_commit_seconds_bucket", le="+Inf") == value(chatted, "chat_commit_seconds_count")

    # Past its burst (4, two used), alice's socket is refused: rate_limited, counted, and nothing accepted.
    for i in range(5):
        alice.send({"type": "message", "msg": f"flood {i}", "ref": f"f{i}"})
    refused = 0
    while refused < 3:
        event = alice.recv_type("ack", "error")
        refused += event["type"] == "error" and event["code"] == "rate_limited"
    limited = read(server)
    assert moved(chatted, limited, "chat_rate_limited_total", limit="messages") == 3
    assert moved(chatted, limited, "chat_messages_accepted_total") == 2

    # Handshake refusals, by reason: a bad name, and a guest name another guest holds.
    assert handshake_status(server, "/ws/bad%20name")[0] == 400
    taken = server.connect("alice", resume=False, suppress_origin=True)
    assert taken.recv_close()[0] == 4009
    taken.close()
    refusals = read(server)
    assert moved(limited, refusals, "chat_handshake_refusals_total", reason="bad_name") == 1
    assert moved(limited, refusals, "chat_handshake_refusals_total", reason="name_in_use") == 1
    # Labels come from fixed sets: no user name (nor any other client text) ever becomes one.
    label_values = {v for (_, labels) in refusals for _, v in labels}
    assert not label_values & {"alice", "bob", "bad name", "hello everyone"}

    # Upload bytes: a file stored by POST /files (an account's token; the rate limit above is per socket).
    _, _, token = account(server, "uploader")
    data = b"metrics upload\n" * 100
    response = requests.post(server.http_url + "/files", headers={"Authorization": f"Bearer {token}"},
                             files={"file": ("notes.txt", data, "text/plain")}, timeout=30)
    assert response.status_code == 201, response.text
    uploaded = read(server)
    assert moved(refusals, uploaded, "chat_upload_bytes_total") == len(data)
    assert moved(refusals, uploaded, "chat_uploads_total") == 1

    bob.close()
    left = wait_until(lambda: (lambda f: f if value(f, "chat_connections") == 1 else None)(read(server)),
                      message="bob's socket to be gone from chat_connections")
    assert value(left, "chat_users_online") == 1


def test_two_workers_are_summed(start_server, sqlite_url, redis_server, clients):
    server = start_server(sqlite_url, redis_url=redis_server.url, workers=2, bots="", metrics_flush_interval=0.2)
    users, instances = [], {}
    for i in range(40):  # until both workers hold sockets (the kernel picks the worker of each connect)
        users.append(clients(server, f"user{i}"))
        if i >= 3:
            for _ in range(4):
                h = health(server)
                instances[h["instance"]] = h["connections"]
            if len(instances) == 2 and all(instances.values()):
                break
    assert len(instances) == 2 and all(instances.values()), f"connections per worker: {instances}"
    n = len(users)
    for i, client in enumerate(users):
        post(client, f"from {i}")

    def totals():
        # Any worker may answer: its own numbers now, the other's as of its last write (every 0.2 s).
        found = read(server)
        want = {"chat_connections": n, "chat_connections_opened_total": n, "chat_messages_accepted_total": n,
                "chat_messages_stored_total": n, "chat_acks_total": n, "chat_users_online": n,
                "chat_messages_delivered_total": n * (n - 1)}
        return found if all(value(found, k) == v for k, v in want.items()) else None

    found = wait_until(totals, timeout=15, interval=0.1, message="the scrape to sum both workers")
    # Each worker alone holds only part of the sockets: the sum proves both were read.
    assert max(instances.values()) < value(found, "chat_connections")
    assert value(found, "chat_commit_batch_size_sum") == n  # the histograms are summed too
    assert value(found, "chat_commit_seconds_count") == value(found, "chat_commit_batch_size_count")
    assert value(found, "chat_bus_connected") == 1
    assert value(found, "chat_bus_batches_received_total") >= 1

    # A worker that dies: its sockets leave the gauge, its counts stay in the sums (counters never go down).
    per_worker = wait_until(lambda: _connections_per_worker(server, n), message="both workers' connection counts")
    victim, victim_sockets = next(iter(per_worker.items()))
    os.kill(int(victim.split("-")[-2]), signal.SIGKILL)  # instance ids are HOST-PID-HEX
    after = wait_until(lambda: (lambda f: f if value(f, "chat_connections") == n - victim_sockets else None)(read(server)),
                       timeout=15, interval=0.1, message="the dead worker's sockets to leave chat_connections")
    assert value(after, "chat_messages_accepted_total") == n
    assert value(after, "chat_messages_delivered_total") == n * (n - 1)


def _connections_per_worker(server, n):
    """{instance: its open sockets} once /healthz has been answered by both workers with counts that add up to n."""
    seen = {}
    for _ in range(20):
        h = health(server)
        seen[h["instance"]] = h["connections"]
        if len(seen) == 2:
            break
    return seen if len(seen) == 2 and sum(seen.values()) == n else None


def test_loopback_only_without_a_token(start_server, sqlite_url):
    server = start_server(sqlite_url, bots="", trust_proxy=True)
    assert "chat_connections" in scrape(server).text
    # Behind nginx on this host every request comes from 127.0.0.1: the forwarded client is who counts.
    refused = scrape(server, {"X-Forwarded-For": "203.0.113.7"})
    assert refused.status_code == 403 and "chat_" not in refused.text
    assert "metrics_token" in refused.json()["error"]


def test_a_forwarded_client_needs_the_token(start_server, sqlite_url):
    server = start_server(sqlite_url, bots="", trust_proxy=True, metrics_token=TOKEN)
    away = {"X-Forwarded-For": "203.0.113.7"}
    missing = scrape(server, away)
    assert missing.status_code == 401 and "chat_" not in missing.text
    assert missing.headers["WWW-Authenticate"].startswith("Bearer")
    for wrong in ("Bearer " + TOKEN[:-1], "Bearer " + TOKEN + "x", "Basic " + TOKEN, "Bearer"):
        answer = scrape(server, {**away, "Authorization": wrong})
        assert answer.status_code in (401, 403) and "chat_" not in answer.text, wrong
    assert value(samples(scrape(server, {**away, "Authorization": f"Bearer {TOKEN}"})), "chat_connections") == 0
    # A proxy chain that ends at this host is still the client it forwarded: the last address is the real one.
    assert scrape(server, {"X-Forwarded-For": "127.0.0.1, 203.0.113.7"}).status_code == 401
    # Without trust_proxy the header means nothing: loopback is loopback.
    plain = start_server(sqlite_url.replace("chat.db", "plain.db"), bots="", metrics_token=TOKEN)
    assert scrape(plain, away).status_code == 200


def _outward_address():
    """A non-loopback address of this machine, or None."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("192.0.2.1", 9))  # no packet is sent: this only picks the outward interface
        except OSError:
            return None
        address = s.getsockname()[0]
    return None if address.startswith("127.") or address == "0.0.0.0" else address


def test_a_direct_client_cannot_pass_for_loopback_with_a_forged_header(start_server, sqlite_url):
    address = _outward_address()
    if address is None:
        pytest.skip("this machine has no non-loopback IPv4 address to connect from")
    server = start_server(sqlite_url, bots="", host="0.0.0.0", trust_proxy=True, metrics_token=TOKEN)
    base = f"http://{address}:{server.port}"
    forged = scrape(server, {"X-Forwarded-For": "127.0.0.1"}, base=base)
    assert forged.status_code == 401 and "chat_" not in forged.text
    assert scrape(server, {"Authorization": f"Bearer {TOKEN}"}, base=base).status_code == 200


def test_metrics_off_is_not_found(start_server, sqlite_url):
    server = start_server(sqlite_url, bots="", metrics=False, metrics_token=TOKEN)
    assert scrape(server).status_code == 404
    assert scrape(server, {"Authorization": f"Bearer {TOKEN}"}).status_code == 404


@given(st.lists(st.floats(min_value=0, max_value=100, allow_nan=False), max_size=200))
def test_buckets_count_each_observation_at_or_under_its_bounds(observations):
    buckets = Buckets(COMMIT_SECONDS_BOUNDS)
    for x in observations:
        buckets.observe(x)
    cumulative = cumulative_buckets(buckets)
    assert [le for le, _ in cumulative][-1] == float("inf")
    for le, count in cumulative:  # "le": less than or equal, as Prometheus reads it
        assert count == sum(1 for x in observations if x <= le)
    assert buckets.sum == pytest.approx(sum(observations))
