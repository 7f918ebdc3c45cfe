"""Hostile history (issue 12 case 2): content that grows when JSON-escaped, non-reading newcomers, live bursts."""
import json
import os
import threading

import pytest

from tests.support.browser import CHROMIUM, LAUNCH_ARGS
from tests.support.bystanders import Bystanders
from tests.support.clients import presence_changes
from tests.support.databases import db_execute
from tests.support.rawws import RawWebSocket

from chat.config import load_settings
from chat.messaging.history import largest_history_event

# 64 KiB of a control character: the largest message, and 6 times larger once JSON-escaped (\x01 -> \u0001).
HOSTILE = "\x01" * 65536
FRAME_BYTES = 256 * 1024  # history_frame_bytes' default


def post_all(client, texts):
    """Send each text as a text frame, then wait for every ack; returns the ids in order."""
    for text in texts:
        client.send_text(text)
    ids = []
    while len(ids) < len(texts):
        event = client.recv_event()
        if event["type"] == "ack":
            ids.append(event["id"])
        else:
            assert event["type"] in ("presence", "message", "direct"), event
    return ids


def read_history(client, **expected_fields):
    """Every event of the next history, checked frame by frame: (messages, events, payload sizes)."""
    messages, events, sizes = [], [], []
    while True:
        fin, opcode, payload = client.recv_frame()
        if opcode != 0x1:
            continue
        event = json.loads(payload)
        if event["type"] != "history":
            assert event["type"] in ("presence", "message", "direct"), event  # live traffic beside a reply
            continue
        for key, value in expected_fields.items():
            assert event.get(key) == value, (key, event.get(key))
        events.append(event)
        sizes.append(len(payload))
        messages += event["messages"]
        if event.get("complete", True):
            break
        assert event["complete"] is False
    if len(events) > 1:
        assert [e.get("complete") for e in events] == [False] * (len(events) - 1) + [True]
    else:
        assert "complete" not in events[0]  # one event is what clients always got
    return messages, events, sizes


def assert_frames_fit(sizes, messages_per_event, frame_bytes=FRAME_BYTES):
    for size, count in zip(sizes, messages_per_event):
        assert size <= frame_bytes or count == 1, (size, count)


def newcomer(server, name, query="", **kwargs):
    """A raw client for a guest name; one the server gave a resume token comes back with it (the name is held)."""
    token = server.resume_tokens.get(name)
    if token is not None:
        query += ("&" if "?" in query else "?") + "resume=" + token
    client = RawWebSocket.connect(server.port, f"/ws/{name}{query}", timeout=kwargs.pop("timeout", 30), **kwargs)
    welcome = client.recv_type("welcome")
    if "resume" in welcome:
        server.resume_tokens[name] = welcome["resume"]
    return client


def test_eleven_escaped_messages_lock_nobody_out(server):
    """The exact attack: 12 messages of 64 KiB of \\x01 (4.7 MB once escaped, more than send_queue_bytes)."""
    watch = Bystanders(server)
    attacker = newcomer(server, "attacker")
    read_history(attacker)
    hostile = []
    for _ in range(3):  # the bystanders read between rounds, at a normal pace
        hostile += post_all(attacker, [HOSTILE] * 4)
        watch.check()

    def assert_whole(messages, events, sizes):
        ids = [m["id"] for m in messages]
        assert ids == sorted(set(ids)) and set(hostile) <= set(ids)
        assert all(m["msg"] == HOSTILE for m in messages if m["id"] in hostile)
        assert len(events) > 1
        assert_frames_fit(sizes, [len(e["messages"]) for e in events])

    # A newcomer gets the whole history, in several events, each within history_frame_bytes.
    one = newcomer(server, "newcomer")
    assert_whole(*read_history(one))
    one.send_json({"type": "message", "msg": "hello after the history", "ref": 1})
    assert one.recv_type("ack")["ref"] == 1
    watch.check()

    # A reconnect replaying everything.
    replay = newcomer(server, "newcomer", "?since=0")
    messages, events, sizes = read_history(replay, since=0)
    assert_whole(messages, events, sizes)
    assert "hello after the history" in [m["msg"] for m in messages]

    # A history request: several events with the same ref; "more" keeps its meaning.
    replay.send_json({"type": "history", "limit": 200, "ref": "page"})
    messages, events, sizes = read_history(replay, ref="page", more=False)
    assert_whole(messages, events, sizes)
    replay.send_json({"type": "history", "limit": 3, "ref": "short"})
    messages, _, _ = read_history(replay, ref="short", more=True)
    assert len(messages) == 3
    watch.check()

    # Across a restart.
    for client in (one, replay, attacker):
        client.close()
    watch.close()
    server.restart()
    watch = Bystanders(server)
    assert_whole(*read_history(newcomer(server, "latecomer")))
    watch.check()


def test_history_request_window_is_oldest_first_across_events(server):
    """A reply larger than one event is read from the store in chunks, and still comes oldest first, exactly once."""
    watch = Bystanders(server)
    sender = newcomer(server, "sender")
    read_history(sender)
    texts = [f"{i} " + "\x02" * 40000 for i in range(40)]  # 30 of them are more than one event's worth of text
    ids = []
    for start in range(0, len(texts), 10):
        ids += post_all(sender, texts[start:start + 10])
        watch.check()
    sender.send_json({"type": "history", "limit": 30, "before": ids[35], "ref": 7})
    messages, events, sizes = read_history(sender, ref=7, more=True, before=ids[35])
    window = db_execute(
        server.database_url, "SELECT id, body FROM messages WHERE recipient IS NULL AND id < ? ORDER BY id DESC LIMIT 30", (ids[35],)
    )
    assert [(m["id"], m["msg"]) for m in messages] == [tuple(row) for row in reversed(window)]
    assert set(ids[15:35]) <= {m["id"] for m in messages}
    assert len(events) > 1
    assert_frames_fit(sizes, [len(e["messages"]) for e in events])
    watch.check()


def test_live_burst_of_largest_messages_reaches_a_reader(start_server, sqlite_url):
    """As many worst-case messages as the rate limit lets one sender send at once reach a client that reads.
    (Live delivery does not touch the store: one kind of database is enough.)"""
    server = start_server(sqlite_url, rate_limit=20, rate_burst=40)
    watch = Bystanders(server)
    reader = newcomer(server, "reader")
    read_history(reader)
    sender = newcomer(server, "sender")
    read_history(sender)
    received = []

    def read_at_a_normal_pace():
        while len(received) < 40:
            event = reader.recv_event()
            assert event["type"] in ("direct", "presence"), event
            if event["type"] == "direct":
                received.append(event["id"])

    reading = threading.Thread(target=read_at_a_normal_pace)
    reading.start()
    for _ in range(40):
        sender.send_text("/msg reader " + HOSTILE[: 65536 - len("/msg reader ")])
    acks = []
    while len(acks) < 40:
        event = sender.recv_event()
        assert event["type"] in ("ack", "presence"), event
        if event["type"] == "ack":
            acks.append(event["id"])
    reading.join(60)
    assert received == acks
    reader.send_json({"type": "who", "ref": "still"})
    assert reader.recv_type("who")["ref"] == "still"
    watch.check()


def test_history_frame_bytes_at_its_boundary(start_server, sqlite_url):
    """An event of exactly history_frame_bytes holds its messages; one byte less and they are split.
    (How events are cut does not depend on the store, whose paging the other tests cover on both kinds.)"""
    server = start_server(sqlite_url, history_frame_bytes=65536)
    watch = Bystanders(server)
    sender = newcomer(server, "sender")
    read_history(sender)
    ids = post_all(sender, [f"{i} " + "\x03" * 300 for i in range(3)])
    request = {"type": "history", "limit": 3, "before": ids[-1] + 1, "ref": "r"}
    sender.send_json(request)
    messages, events, _ = read_history(sender, ref="r")
    assert len(events) == 1 and [m["id"] for m in messages] == ids
    # The first event of [m1, m2] + [m3], as the server writes it.
    first = {"type": "history", "messages": messages[:2], "before": ids[-1] + 1, "more": True, "ref": "r", "complete": False}
    exact = len(json.dumps(first, ensure_ascii=False, separators=(",", ":")).encode())
    sender.close()
    watch.close()

    for frame_bytes, split in ((exact, [2, 1]), (exact - 1, [1, 1, 1])):
        server.settings["history_frame_bytes"] = frame_bytes
        server.restart()
        watch = Bystanders(server)
        client = newcomer(server, "sender")
        read_history(client)
        client.send_json(request)
        got, events, sizes = read_history(client, ref="r", more=True)
        assert [len(e["messages"]) for e in events] == split
        assert got == messages
        assert max(sizes) <= frame_bytes
        if split == [2, 1]:
            assert sizes[0] == frame_bytes
        watch.check()
        client.close()
        watch.close()


def test_live_messages_held_during_a_stalled_history_are_bounded(start_server, database_url):
    """A newcomer that stops reading mid-history: live messages wait for it up to send_queue_messages, then it is
    closed with a reason that says how to recover, and a ?since= reconnect gets everything."""
    server = start_server(database_url, send_queue_messages=5, close_timeout=60)
    watch = Bystanders(server)
    accomplice = newcomer(server, "accomplice")
    read_history(accomplice)
    accomplice.close()
    attacker = newcomer(server, "attacker")
    read_history(attacker)
    # Direct messages, so the bystanders are not sent 12 MB they would have to read; four at a time, so that
    # the acks fit in the attacker's own small send queue.
    direct = "/msg accomplice " + HOSTILE[: 65536 - len("/msg accomplice ")]
    hostile = []
    for _ in range(8):
        hostile += post_all(attacker, [direct] * 4)
    sender = newcomer(server, "sender")
    read_history(sender)
    while ("sender", True) not in presence_changes(attacker.recv_type("presence")):
        pass  # announced before the stall: held, it would count against the limit

    def stalled_newcomer_then_live(count):
        # Welcomed, so in the hub; its replay (16 MB) is stuck on a full socket while it does not read.
        stalled = newcomer(server, "accomplice", "?since=0", timeout=60, rcvbuf=4096)
        live = []
        for i in range(count):
            live += post_all(sender, [f"live {i}"])
        return stalled, live

    def visible_to_accomplice():
        query = "SELECT id FROM messages WHERE recipient IS NULL OR recipient = ? OR sender = ? ORDER BY id"
        return [row[0] for row in db_execute(server.database_url, query, ("accomplice", "accomplice"))]

    # At the limit: the history, then what of the five it did not hold already: each once, in order.
    stalled, live = stalled_newcomer_then_live(5)
    messages, _, _ = read_history(stalled, since=0)
    ids = [m["id"] for m in messages]
    ids += [stalled.recv_type("message")["id"] for _ in set(live) - set(ids)]
    assert ids == visible_to_accomplice() and set(hostile) | set(live) <= set(ids)
    stalled.close()
    watch.check()

    # One past: closed with 1008 and a reason saying how to resume, after the part of the history it was sent.
    stalled, live = stalled_newcomer_then_live(6)
    seen = []
    while True:
        fin, opcode, payload = stalled.recv_frame()
        if opcode == 0x8:
            code, reason = int.from_bytes(payload[:2], "big"), payload[2:].decode()
            break
        event = json.loads(payload)
        assert event["type"] == "history" and event["complete"] is False, event
        seen += [m["id"] for m in event["messages"]]
    assert (code, reason) == (1008, "too many live messages while sending history: reconnect with ?since=LAST_ID")
    stalled.close()
    everything = visible_to_accomplice()
    assert seen == everything[: len(seen)] and set(live) <= set(everything)
    last = seen[-1] if seen else 0
    resumed = newcomer(server, "accomplice", f"?since={last}")
    rest, _, _ = read_history(resumed, since=last)
    assert [m["id"] for m in rest] == [i for i in everything if i > last]
    for client in (resumed, attacker, sender):
        client.close()
    watch.check()
    watch.close()  # an open client would hold the server's shutdown for its whole timeout


@pytest.mark.parametrize("max_message_size", [65536, 1000])
def test_send_queue_must_fit_one_history_event(max_message_size):
    """Configuration: send_queue_bytes at the size of the largest history event is accepted, one byte less refused."""
    needed = largest_history_event(FRAME_BYTES, max_message_size)
    settings = dict(environ={}, max_message_size=max_message_size, history_frame_bytes=FRAME_BYTES)
    assert load_settings(send_queue_bytes=needed, **settings).send_queue_bytes == needed
    with pytest.raises(ValueError, match="send_queue_bytes must be at least"):
        load_settings(send_queue_bytes=needed - 1, **settings)
    with pytest.raises(ValueError, match="history_frame_bytes must be at least 1024"):
        load_settings(environ={}, history_frame_bytes=1023)
    assert load_settings(environ={}, history_frame_bytes=1024).history_frame_bytes == 1024


# ---- the page (real Chromium) -----------------------------------------------------------------



def test_page_renders_a_history_in_many_events(start_server, sqlite_url):
    """history_frame_bytes at its minimum: the connect-time history, a reply and a ?since= replay all come in many
    events; the page shows each message once, in order, and stays connected."""
    try:
        from playwright.sync_api import expect, sync_playwright
    except ImportError as e:
        pytest.skip(f"python playwright is not installed ({e}); pip install -r requirements-dev.txt")
    if not CHROMIUM:
        pytest.skip("no Chromium (apt-get install -y chromium)")
    server = start_server(sqlite_url, history_frame_bytes=1024)
    watch = Bystanders(server)
    bob = newcomer(server, "bob")
    read_history(bob)
    texts = [f"old \x01 message {i}" for i in range(1, 61)]
    post_all(bob, texts)
    watch.check()
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=LAUNCH_ARGS, headless=True)
        try:
            context = browser.new_context()
            page = context.new_page()
            errors = []
            page.on("pageerror", lambda err: errors.append(str(err)))
            page.goto(server.http_url + "/")
            page.locator("#join-name").fill("alice")
            page.locator("#join-name").press("Enter")
            conn, shown = page.locator("#conn"), page.locator("#thread li.msg .text")
            expect(conn).to_have_attribute("data-state", "online")
            expect(page.locator("#thread li.msg")).to_have_count(50)  # the newest 50: bob's and a bystander's
            older = page.locator("#load-older")
            older.click()
            expect(page.locator("#thread li.msg")).to_have_count(61)
            expect(older).to_be_hidden()
            assert [t for t in shown.all_text_contents() if t.startswith("old")] == texts
            # A ?since= replay in many events, after the server comes back.
            server.stop()
            expect(conn).to_have_attribute("data-state", "reconnecting")
            context.set_offline(True)  # so what is said meanwhile can only reach the page in its replay
            server.start()
            watch = Bystanders(server)
            bob = newcomer(server, "bob")
            read_history(bob)
            missed = [f"missed \x01 {i}" for i in range(1, 31)]
            post_all(bob, missed)
            context.set_offline(False)
            expect(conn).to_have_attribute("data-state", "online")
            expect(page.locator("#thread li.msg")).to_have_count(91)
            assert [t for t in shown.all_text_contents() if t.startswith(("old", "missed"))] == texts + missed
            assert not errors
        finally:
            browser.close()
    watch.check()
