"""Delivery guarantees under faults: kill -9, database outage, slow consumers, dead peers, shutdown, connection storms."""
import asyncio
import json
import re
import signal
import socket
import sqlite3
import urllib.error
import urllib.request

import pytest
import websockets

from tests.support.clients import presence_changes
from tests.support.mariadb_instance import needs_mariadb_binaries
from tests.support.rawws import RawWebSocket


# These tests send as fast as they can on purpose; the per-connection rate limit is not what they test.
UNLIMITED = dict(rate_limit=1e9, rate_burst=10**9)


def stored_messages(database_url):
    """{id: (sender, recipient, body)} straight from the database."""
    if database_url.startswith("sqlite"):
        conn = sqlite3.connect(database_url[len("sqlite:///"):])
        rows = conn.execute("SELECT id, sender, recipient, body FROM messages").fetchall()
        conn.close()
    else:
        import pymysql
        from urllib.parse import urlsplit

        p = urlsplit(database_url)
        conn = pymysql.connect(host=p.hostname, port=p.port, user=p.username, password=p.password or "",
                               database=p.path.lstrip("/"), charset="utf8mb4")
        with conn.cursor() as cur:
            cur.execute("SELECT id, sender, recipient, body FROM messages")
            rows = cur.fetchall()
        conn.close()
    return {row[0]: tuple(row[1:]) for row in rows}


def health(server):
    try:
        with urllib.request.urlopen(server.http_url + "/healthz", timeout=5) as r:
            return r.status, json.load(r)
    except urllib.error.HTTPError as e:
        return e.code, json.load(e)


async def _blast_until_killed(server, senders, kill_after_acks):
    """Several clients send as fast as they can; the server is SIGKILLed mid-stream. Returns {id: (user, text)} acked."""
    acked = {}
    killed = asyncio.Event()

    async def sender(name):
        async with websockets.connect(server.ws_url(f"/ws/{name}"), max_size=None, max_queue=None) as ws:
            texts = {}

            async def reader():
                try:
                    async for raw in ws:
                        event = json.loads(raw)
                        if event["type"] == "ack":
                            acked[event["id"]] = (name, texts[event["ref"]])
                            if len(acked) >= kill_after_acks and not killed.is_set():
                                server.proc.send_signal(signal.SIGKILL)
                                killed.set()
                except websockets.ConnectionClosed:
                    pass

            read_task = asyncio.create_task(reader())
            try:
                for i in range(100000):
                    if killed.is_set():
                        break
                    ref = f"{name}-{i}"
                    texts[ref] = f"message {i} from {name} ✓"
                    await ws.send(json.dumps({"type": "message", "msg": texts[ref], "ref": ref}))
                    if i % 50 == 0:
                        await asyncio.sleep(0)  # let the reader see acks between bursts
            except websockets.ConnectionClosed:
                pass
            await asyncio.wait_for(read_task, 30)

    await asyncio.wait_for(asyncio.gather(*(sender(n) for n in senders)), 120)
    assert killed.is_set(), f"the senders stopped before the kill, after {len(acked)} acks"
    return acked


def test_kill_9_loses_no_acknowledged_message(start_server, database_url):
    server = start_server(database_url, **UNLIMITED)
    acked = asyncio.run(_blast_until_killed(server, [f"writer{i}" for i in range(4)], kill_after_acks=2000))
    server.proc.wait(10)
    assert server.proc.returncode == -signal.SIGKILL
    assert len(acked) >= 2000
    stored = stored_messages(database_url)
    missing = [i for i in acked if i not in stored]
    assert not missing, f"{len(missing)} acknowledged messages lost, e.g. {missing[:5]}"
    for message_id, (user, text) in acked.items():
        assert stored[message_id] == (user, None, text)
    # The restarted server carries on with fresh, larger ids.
    server.start()
    with server.connect("after") as client:
        client.handshake()
        client.send({"type": "message", "msg": "after the crash", "ref": 1})
        assert client.recv_type("ack")["id"] > max(stored)


@needs_mariadb_binaries
def test_database_outage_buffers_then_stores_and_acks(start_server, throwaway_mariadb, clients):
    db = throwaway_mariadb
    buffer = 40
    server = start_server(db.url, write_buffer=buffer, db_connect_timeout=1, **UNLIMITED)
    alice = clients(server, "alice")
    bob = clients(server, "bob")
    alice.send({"type": "message", "msg": "before the outage", "ref": "r0"})
    assert alice.recv_type("ack")["ref"] == "r0"
    bob.recv_type("message")

    db.stop()
    # Users keep chatting live while the database is down, up to the buffer's size.
    live_ids = []
    for i in range(buffer):
        alice.send({"type": "message", "msg": f"during the outage {i}", "ref": f"o{i}"})
        event = bob.recv_type("message")
        assert event["msg"] == f"during the outage {i}"
        live_ids.append(event["id"])
    status, body = health(server)
    assert status == 503 and body["status"] == "degraded"
    assert body["pending_writes"] == buffer
    # The buffer is full: the next message is refused with an error, not acknowledged and not delivered.
    alice.send({"type": "message", "msg": "one too many", "ref": "over"})
    error = alice.recv_type("error")
    assert (error["code"], error["ref"]) == ("not_stored", "over")
    bob.send({"type": "message", "msg": "bob also sees the refusal was not delivered", "ref": "b"})
    assert bob.recv_type("error")["code"] == "not_stored"

    db.start()
    acks = [alice.recv_type("ack", timeout=30) for _ in range(buffer)]
    assert [a["ref"] for a in acks] == [f"o{i}" for i in range(buffer)]
    assert [a["id"] for a in acks] == live_ids
    stored = {row[0]: row[1] for row in db.query("SELECT id, body FROM messages")}
    assert all(stored[i] == f"during the outage {n}" for n, i in enumerate(live_ids))
    assert "one too many" not in stored.values()
    status, body = health(server)
    assert status == 200 and body["status"] == "ok" and body["pending_writes"] == 0
    log = server.read_log()
    assert log.count("database unavailable") == 1, log
    assert log.count("database is back") == 1, log


@needs_mariadb_binaries
def test_healthz_503_when_store_unreachable(start_server, throwaway_mariadb):
    server = start_server(throwaway_mariadb.url, db_connect_timeout=1)
    assert health(server)[0] == 200
    throwaway_mariadb.stop()
    status, body = health(server)
    assert status == 503 and body["store_reachable"] is False


def test_slow_consumer_is_closed_and_others_unaffected(start_server, sqlite_url, clients):
    server = start_server(
        sqlite_url, send_queue_messages=200, send_queue_bytes=256 * 1024, close_timeout=60,
        max_message_size=32768, history_frame_bytes=65536, **UNLIMITED,  # so one history event fits in the small queue
    )
    slow = RawWebSocket.connect(server.port, "/ws/slow", timeout=30, rcvbuf=4096)  # connects, then never reads
    sender = clients(server, "sender")
    fast = clients(server, "fast")
    # More than the kernel's socket buffers can absorb (loopback send buffers grow to 4 MiB).
    payload = "x" * 30000
    count, chunk = 400, 20
    seen = 0
    left = False
    for start in range(0, count, chunk):
        for i in range(start, start + chunk):
            sender.send({"type": "message", "msg": f"{i} {payload}"})
        while seen < start + chunk:
            event = fast.recv_type("message", "presence")
            if event["type"] == "message":
                assert event["msg"].startswith(f"{seen} ")
                seen += 1
            elif ("slow", False) in presence_changes(event):
                left = True
    # The fast client got everything in order; now the slow one reads what it was sent: a 1008 close.
    code, reason = slow.recv_close()
    assert (code, reason) == (1008, "send queue overflow: client too slow")
    slow.close()
    if not left:
        fast.wait_presence("slow", False)
    assert "closing a slow consumer" in server.read_log()


def test_dead_peer_is_closed_and_leaves_presence(start_server, sqlite_url, clients):
    server = start_server(sqlite_url, ping_interval=0.5, ping_timeout=0.5, close_timeout=0.5)
    watcher = clients(server, "watcher")  # websocket-client answers pings while it waits in recv()
    dead = RawWebSocket.connect(server.port, "/ws/silent")  # never answers pings
    watcher.wait_presence("silent", True)
    watcher.wait_presence("silent", False, timeout=15)
    frames = dead.frames_until_eof()
    assert any(opcode == 0x9 for opcode, _ in frames), "the server never pinged"
    assert frames[-1][0] == 0x8 and int.from_bytes(frames[-1][1][:2], "big") == 1011
    # The live watcher, which answered the pings, is still connected.
    watcher.send("still here")
    assert watcher.recv_type("ack")["id"] > 0
    _, body = health(server)
    assert body["connections"] == 1


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_graceful_shutdown_flushes_and_closes_1001(start_server, database_url, clients, signum):
    server = start_server(database_url, **UNLIMITED)
    watchers = [clients(server, f"watcher{i}") for i in range(3)]
    sender = clients(server, "sender")
    for i in range(300):
        sender.send({"type": "message", "msg": f"m{i}", "ref": i})
    last = None
    for _ in range(300):
        last = watchers[0].recv_type("message")
    server.proc.send_signal(signum)
    assert server.proc.wait(30) == 0
    for client in watchers + [sender]:
        assert client.recv_close()[0] == 1001
    stored = stored_messages(database_url)
    assert last["id"] in stored
    assert len([1 for s, r, b in stored.values() if s == "sender"]) == 300
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", server.port), timeout=2).close()
    assert re.search(r"stopped cleanly", server.read_log())


def test_connection_storm_all_upgraded(start_server, sqlite_url):
    n = 2000
    server = start_server(sqlite_url, max_connections_per_address=n)  # the storm comes from one address

    async def storm():
        async def one(i):
            ws = await websockets.connect(server.ws_url(f"/ws/storm{i}"), open_timeout=30, ping_interval=None, max_queue=None)
            welcome = json.loads(await ws.recv())
            return ws, welcome

        results = await asyncio.gather(*(one(i) for i in range(n)))
        assert all(w["type"] == "welcome" for _, w in results)
        _, body = health(server)
        await asyncio.gather(*(ws.close() for ws, _ in results))
        return body

    body = asyncio.run(storm())
    assert body["connections"] == n
