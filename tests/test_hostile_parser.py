"""Hostile clients against the parser and the message writer (issue 12, cases 1 and 3): what parses is what the store
stores and the encoder encodes, a message the database refuses is refused to its sender alone, deep nesting is bad JSON."""
import json
import uuid

import gevent
import pytest
import requests

from tests.support.bystanders import Bystanders
from chat.config import load_settings
from chat.records import MessageRecord
from chat.app import build_chat
from chat.store import Store, StoreUnavailable
from chat.messaging.writer import MessageWriter
from tests.support.databases import db_execute
from tests.support.rawws import OP_TEXT, RawWebSocket
from tests.support.webusers import get_token, signed_up
from tests.support.polling import wait_until

POISON = "poison"  # a body the test trigger makes the database refuse
REFUSED_UPLOAD = "[file] refused"  # and the start of another
REFUSED = f"NEW.body = '{POISON}' OR SUBSTR(NEW.body, 1, {len(REFUSED_UPLOAD)}) = '{REFUSED_UPLOAD}'"


@pytest.fixture
def server(shared_server):
    """One server per store for the module (the tests use names of their own), its database refusing what REFUSED says."""
    refuse_in_database(shared_server.database_url, REFUSED)
    return shared_server


def unique(prefix):
    return f"{prefix}{uuid.uuid4().hex[:6]}"


@pytest.fixture
def opened():
    """opened(x) -> x, closed after the test (clients, Bystanders): a server then stops without waiting on them."""
    things = []
    yield lambda thing: things.append(thing) or thing
    for thing in things:
        thing.close()


def next_event(client, kind, match=lambda e: True, limit=10_000):
    """The client's next event of `kind` that `match`es, skipping everything else (deliveries, presence, history)."""
    for _ in range(limit):
        event = client.recv()
        if event["type"] == kind and match(event):
            return event
    raise AssertionError(f"no {kind} event in {limit} events")


def next_answer(client):
    """The next ack or error (what a sent frame is answered with), skipping deliveries and presence."""
    for _ in range(10_000):
        event = client.recv()
        if event["type"] in ("ack", "error"):
            return event
    raise AssertionError("no ack or error")


def health(server):
    response = requests.get(server.http_url + "/healthz", timeout=10)
    return response.status_code, response.json()


def stored_bodies(database_url, sender):
    return [row[0] for row in db_execute(database_url, "SELECT body FROM messages WHERE sender = ? ORDER BY id", (sender,))]


def refuse_in_database(database_url, condition):
    """A trigger that makes the real database refuse every message row for which `condition` (SQL on NEW) holds."""
    if database_url.startswith("sqlite"):
        db_execute(
            database_url,
            f"CREATE TRIGGER IF NOT EXISTS refuse_poison BEFORE INSERT ON messages WHEN {condition} "
            "BEGIN SELECT RAISE(ABORT, 'refused by the test trigger'); END",
        )
    else:
        db_execute(
            database_url,
            f"CREATE TRIGGER IF NOT EXISTS refuse_poison BEFORE INSERT ON messages FOR EACH ROW BEGIN IF {condition} THEN "
            "SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'refused by the test trigger'; END IF; END",
        )


def assert_text_only(event):
    """Everything the server sent encodes as UTF-8: nothing of an unpaired surrogate was echoed."""
    json.dumps(event, ensure_ascii=False).encode("utf-8")


# ---- case 1: lone surrogates --------------------------------------------------------------------------------------


def test_lone_surrogate_message_is_refused_and_storage_goes_on(server, opened):
    watch = opened(Bystanders(server))
    name = unique("mallory")
    attacker = opened(server.connect(name))
    attacker.handshake()
    attacker.send('{"type":"message","msg":"x\\ud800y","ref":"p1"}')  # json.loads accepts it: "x", U+D800, "y"
    error = next_answer(attacker)
    assert (error["type"], error["code"], error["ref"]) == ("error", "bad_field", "p1")
    assert_text_only(error)
    attacker.send({"type": "message", "msg": "x\U0001F600y", "ref": "p2"})  # a proper pair is text like any other
    assert next_answer(attacker)["type"] == "ack"
    watch.check()
    assert stored_bodies(server.database_url, name) == ["x\U0001F600y"]
    assert health(server)[1]["status"] == "ok"


SURROGATE_FRAMES = [
    ('{"type":"direct","to":"bob\\udc00","msg":"hi","ref":"to"}', "to"),
    ('{"to_sender":"\\ud800","msg":"hi","ref":"to_sender"}', "to_sender"),
    ('{"to":"\\udbff","msg":"hi","ref":"seed_to"}', "seed_to"),
    ('{"type":"\\ud800message","ref":"type"}', "type"),
    ('{"type":"history","with":"a\\udfff","ref":"with"}', "with"),
    ('{"type":"message","msg":"\\udc00\\ud800","ref":"reversed_pair"}', "reversed_pair"),
    ('{"msg":"hi","ref":"x\\ud800"}', None),  # the ref itself: the error cannot carry it
]


def test_lone_surrogates_in_any_field_are_refused_and_the_session_lives(server, opened):
    watch = opened(Bystanders(server))
    name = unique("mallory")
    attacker = opened(server.connect(name))
    attacker.handshake()
    for frame, ref in SURROGATE_FRAMES:
        attacker.send(frame)
        error = next_answer(attacker)
        assert (error["type"], error["code"], error.get("ref")) == ("error", "bad_field", ref), frame
        assert_text_only(error)
    attacker.send({"type": "message", "msg": "after all that", "ref": "last"})
    ack = next_answer(attacker)
    assert (ack["type"], ack["ref"]) == ("ack", "last")
    watch.check()
    assert stored_bodies(server.database_url, name) == ["after all that"]


INVALID_UTF8 = [b'{"msg":"\xed\xa0\x80"}', b"\xed\xbf\xbf", b"caf\xc3", b"\xc0\xaf", b"\xf4\x90\x80\x80"]
# an encoded surrogate (high, low), a truncated sequence, an overlong form, a code point above U+10FFFF


def test_invalid_utf8_text_frames_are_closed_1007(server, opened):
    watch = opened(Bystanders(server))
    for payload in INVALID_UTF8:
        raw = RawWebSocket.connect(server.port, f"/ws/{unique('mallory')}")
        raw.handshake()
        raw.send_frame(OP_TEXT, payload)
        assert raw.recv_close()[0] == 1007, payload
        raw.close()
    watch.check()


# ---- case 3: deep nesting -----------------------------------------------------------------------------------------

DEEP_FRAMES = ['{"a":' * 13000, '{"a":' + "[" * 60000, '{"ref":' + '{"x":' * 13000]  # each under 64 KiB


def test_deep_nesting_is_bad_json_and_the_session_lives(server, opened):
    watch = opened(Bystanders(server))
    attacker = opened(server.connect(unique("mallory")))
    attacker.handshake()
    for frame in DEEP_FRAMES:
        attacker.send(frame)
        error = next_answer(attacker)
        assert (error["type"], error["code"]) == ("error", "bad_json")
    attacker.send({"type": "message", "msg": "still here", "ref": "alive"})
    assert next_answer(attacker)["ref"] == "alive"
    watch.check()


def test_deep_nesting_and_surrogate_refs_while_rate_limited_keep_the_session(start_server, database_url, opened):
    # One message per 1000 s: the burst of one is spent by the first frame, every later one is rate limited.
    server = start_server(database_url, rate_limit=0.001, rate_burst=1, rate_limit_strikes=50)
    watch = opened(Bystanders(server))
    attacker = opened(server.connect(unique("mallory")))
    attacker.handshake()
    attacker.send({"type": "message", "msg": "the one allowed", "ref": "first"})
    assert next_answer(attacker)["ref"] == "first"
    for frame in DEEP_FRAMES + ['{"msg":"hi","ref":"\\ud800"}']:
        attacker.send(frame)
        error = next_answer(attacker)
        assert (error["code"], "ref" in error) == ("rate_limited", False)
        assert_text_only(error)
    attacker.send({"type": "message", "msg": "refused but answered", "ref": 7})
    assert next_answer(attacker)["code"] == "rate_limited"  # answered: the session is alive
    watch.check()


# ---- case 2: one record the database refuses ------------------------------------------------------------------------


def test_database_refusing_one_message_refuses_it_alone(server, opened):
    """A trigger makes the real database refuse one message; the messages sent around it, in the same batches, are
    stored and acknowledged, the writer goes on, and only the poisoned sender hears of it."""
    refused_before = health(server)[1]["refused_writes"]
    watch = opened(Bystanders(server))
    crowd_name, attacker_name = unique("crowd"), unique("mallory")
    crowd = opened(server.connect(crowd_name))
    crowd.handshake()
    attacker = opened(server.connect(attacker_name))
    attacker.handshake()
    # No waiting in between: the writer takes them in batches, the poison among the others.
    for i in range(40):
        crowd.send({"type": "message", "msg": f"before {i}", "ref": f"b{i}"})
    attacker.send({"type": "message", "msg": POISON, "ref": "poisoned"})
    for i in range(40):
        crowd.send({"type": "message", "msg": f"after {i}", "ref": f"a{i}"})
    error = next_answer(attacker)
    assert (error["type"], error["code"], error["ref"]) == ("error", "not_stored", "poisoned")
    acks = [next_answer(crowd) for _ in range(80)]
    assert [a["ref"] for a in acks] == [f"b{i}" for i in range(40)] + [f"a{i}" for i in range(40)]
    ids = [a["id"] for a in acks]
    assert ids == sorted(ids)
    rows = dict(db_execute(server.database_url, f"SELECT id, body FROM messages WHERE sender = '{crowd_name}'"))
    assert [rows[i] for i in ids] == [f"before {i}" for i in range(40)] + [f"after {i}" for i in range(40)]
    assert stored_bodies(server.database_url, attacker_name) == []
    # The writer goes on, for the attacker too.
    attacker.send({"type": "message", "msg": "an honest one", "ref": "honest"})
    assert next_answer(attacker)["ref"] == "honest"
    watch.check()
    status, body = health(server)
    assert (status, body["status"], body["writer_running"], body["refused_writes"]) == (200, "ok", True, refused_before + 1)
    assert "the database refused a message from " + attacker_name in server.read_log()
    # What the server keeps in memory forgot it too: a replay from before it (answered from memory: the recent stream)
    # and a fresh connect's history (general's newest, from memory) hold the messages around it, not it.
    with server.connect(unique("late"), f"?since={ids[0] - 1}") as late:
        _, event = late.handshake()
        replayed = event["messages"]
        while event.get("complete") is False:
            event = late.recv_type("history")
            replayed += event["messages"]
    replayed_ids = [m["id"] for m in replayed]
    assert set(ids) <= set(replayed_ids) and POISON not in [m.get("msg") for m in replayed]
    with server.connect(unique("fresh")) as fresh:
        _, history = fresh.handshake()
    assert "an honest one" in [m.get("msg") for m in history["messages"]]
    assert POISON not in [m.get("msg") for m in history["messages"]]


def test_upload_whose_message_the_database_refuses_is_answered(server, opened):
    """The uploader learns of the refusal (500), instead of waiting for a commit that never comes (503)."""
    watch = opened(Bystanders(server))
    _, name = signed_up(server, "uploader")
    token = get_token(server, name)
    response = requests.post(
        server.http_url + "/files", headers={"Authorization": f"Bearer {token}"},
        files={"file": ("refused.txt", b"plain text\n", "text/plain")}, timeout=60,
    )
    assert response.status_code == 500, response.text
    assert "refused" in response.json()["error"]
    fine = requests.post(
        server.http_url + "/files", headers={"Authorization": f"Bearer {token}"},
        files={"file": ("fine.txt", b"plain text\n", "text/plain")}, timeout=60,
    )
    assert fine.status_code == 201, fine.text
    watch.check()


@pytest.fixture
def two_processes(start_server, database_url, redis_server):  # noqa: F811  (the fixture imported above)
    """Two server processes on one database and one Redis, each counting the other."""
    a, b = (start_server(database_url, redis_url=redis_server.url, bots="") for _ in range(2))
    wait_until(lambda: all(health(s)[1].get("instances") == 2 for s in (a, b)), timeout=15,
               message="the two processes to see each other")
    return a, b


def test_hostile_frames_in_one_process_stop_neither_delivery_nor_storage(two_processes, opened):
    a, b = two_processes
    refuse_in_database(a.database_url, REFUSED)
    watch_a, watch_b = opened(Bystanders(a)), opened(Bystanders(b))
    attacker = opened(a.connect(unique("mallory")))
    attacker.handshake()
    sender_name = unique("sender")
    sender = opened(a.connect(sender_name))
    sender.handshake()
    receiver = opened(b.connect(unique("receiver")))
    receiver.handshake()
    attacker.send('{"type":"message","msg":"x\\ud800y","ref":"surrogate"}')
    for i in range(20):
        sender.send({"type": "message", "msg": f"live {i}", "ref": i})
        if i == 10:
            attacker.send({"type": "message", "msg": POISON, "ref": "poisoned"})
    assert (next_answer(attacker)["code"], next_answer(attacker)["code"]) == ("bad_field", "not_stored")
    acks = [next_answer(sender) for _ in range(20)]
    assert [a["ref"] for a in acks] == list(range(20))
    ids = [a["id"] for a in acks]
    delivered = [next_event(receiver, "message", lambda e: e["user"] == sender_name) for _ in range(20)]
    assert [(d["id"], d["msg"]) for d in delivered] == [(i, f"live {n}") for n, i in enumerate(ids)]
    rows = dict(db_execute(a.database_url, f"SELECT id, body FROM messages WHERE sender = '{sender_name}'"))
    assert [rows[i] for i in ids] == [f"live {n}" for n in range(20)]
    watch_a.check()
    watch_b.check()


# ---- the writer: its retry limit at the boundary, its supervisor, /healthz ------------------------------------------


class RefusingStore:
    """A real SQLite store whose first `failures` inserts fail as an outage would, while it still answers pings."""

    def __init__(self, url, failures):
        self.store = Store(url)
        self.store.ensure_schema()
        self.failures = failures

    def insert_messages(self, records):
        if self.failures:
            self.failures -= 1
            raise StoreUnavailable("refused by the test")
        return self.store.insert_messages(records)

    def ping(self):
        return self.store.ping()


def _write_one(store, refusal_retries):
    writer = MessageWriter(store, capacity=10, batch_size=10, refusal_retries=refusal_retries)
    outcome = []
    record = MessageRecord(1, "alice", None, "hello", 1)
    writer.submit(record, lambda r: outcome.append("stored"), lambda r: outcome.append("refused"))
    assert writer.flush(30)
    return outcome, writer


@pytest.mark.parametrize("failures, expected", [(2, "stored"), (3, "refused")], ids=["at-the-limit", "one-past"])
def test_write_refusal_retries_boundary(tmp_path, failures, expected):
    url = f"sqlite:///{tmp_path / 'chat.db'}"
    store = RefusingStore(url, failures)
    outcome, writer = _write_one(store, refusal_retries=2)
    assert outcome == [expected]
    assert db_execute(url, "SELECT body FROM messages") == ([("hello",)] if expected == "stored" else [])
    assert (writer.refused, writer.healthy) == (int(expected == "refused"), True)


def test_writer_supervisor_restarts_it_and_healthz_says_degraded_meanwhile(tmp_path):
    url = f"sqlite:///{tmp_path / 'chat.db'}"
    settings = load_settings(environ={}, database_url=url, bots="", writer_restart_delay=3.0)
    service = build_chat(settings, Store(url)).service
    assert service.health()["status"] == "ok"

    def die(record):
        raise gevent.GreenletExit()  # not an Exception: nothing in the writer catches it, so the greenlet ends

    writer = service.writer
    writer.submit(MessageRecord(service.delivery.ids.next_id(), "alice", None, "kills the writer", 1), die)
    wait_until(lambda: not writer.running, timeout=15, interval=0.01, message="the writer to stop", sleep=gevent.sleep)
    health = service.health()
    assert (health["status"], health["writer_running"]) == ("degraded", False)
    assert health["degraded"] == ["message writer not running (restarting)"]
    wait_until(lambda: writer.running,
               timeout=15, interval=0.01, message="the supervisor to restart the writer", sleep=gevent.sleep)
    stored = []
    record = MessageRecord(service.delivery.ids.next_id(), "alice", None, "after the restart", 2)
    writer.submit(record, stored.append)
    assert writer.flush(30) and stored == [record]
    assert [row[0] for row in db_execute(url, "SELECT body FROM messages ORDER BY id")] == ["kills the writer", "after the restart"]
    health = service.health()
    assert (health["status"], health["writer_restarts"]) == ("ok", 1)
