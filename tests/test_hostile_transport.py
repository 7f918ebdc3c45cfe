"""Hostile clients against the transport (issue 12): sockets per address, the total send budget, fragments, ping floods,
request bodies, slow headers and bodies, descriptors under a low limit, and tokens in the access log.

Each test runs the attack against the real server over real sockets and then checks that two honest bystanders still
chat (acknowledged, delivered, stored). The store does not matter to these limits: the servers use SQLite.
"""
import json
import os
import socket
import struct
import uuid

import pytest
import requests

from tests.support.bystanders import Bystanders
from tests.support.rawws import OP_CLOSE, OP_CONTINUATION, OP_PING, OP_PONG, OP_TEXT, RawWebSocket, build_frame
from tests.support.servers import ServerProcess
from tests.support.polling import wait_until

from chat.websocket import frames

SLOW_CONSUMER = (1008, "send queue overflow: client too slow")
DEADLINE = 20.0  # seconds any polled condition may take before the test fails


def descriptors(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


def http_exchange(port, request, timeout=10.0):
    """Send raw bytes; return (status, headers, body, at_eof) of the answer, reading until the server closes."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        try:
            sock.sendall(request)
        except OSError:
            pass  # the server may answer and close before taking everything
        data = b""
        while True:
            try:
                chunk = sock.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            data += chunk
    finally:
        sock.close()
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:] if ": " in line)
    return int(lines[0].split(" ")[1]), headers, body


def masked_frame(opcode, payload):
    """A client frame, masked with the fast XOR (rawws masks byte by byte, too slow for megabytes)."""
    key = os.urandom(4)
    return _header(opcode, len(payload)) + key + frames.unmask(payload, key)


def masked_text_frame(text):
    return masked_frame(OP_TEXT, text.encode())


def _header(opcode, n):
    if n < 126:
        return struct.pack("!BB", 0x80 | opcode, 0x80 | n)
    if n < 65536:
        return struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, n)
    return struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, n)


def post_big_messages(server, count, size, to=None):
    """Post `count` messages of about `size` bytes each (to the group, or directly `to` someone) as a fresh user;
    returns once all are acknowledged."""
    raw = RawWebSocket.connect(server.port, f"/ws/bigposter{uuid.uuid4().hex[:8]}")  # a new guest each time
    raw.handshake()
    for i in range(count):
        message = {"type": "message", "msg": f"{i:03d}" + "x" * size, "ref": i}
        if to is not None:
            message.update(type="direct", to=to)
        raw.send_raw(masked_text_frame(json.dumps(message)))
        while raw.recv_event()["type"] != "ack":
            pass
    raw.close()


@pytest.fixture(scope="module")
def limits_server(tmp_path_factory):
    """One server with small limits for the attacks that need no server of their own."""
    directory = tmp_path_factory.mktemp("limits")
    server = ServerProcess(
        f"sqlite:///{directory / 'chat.db'}",
        directory / "server.log",
        max_fragments=8,
        max_request_body=1024,
        http_header_timeout=1.0,
        http_body_timeout=1.0,
        log_level="DEBUG",  # the access log (chat.access) is at DEBUG
    ).start()
    yield server
    server.stop()


# ---- frames: fragments and pings ----------------------------------------------------------------


def test_parser_refuses_one_fragment_past_max_fragments():
    parser = frames.FrameParser(1000, max_fragments=3)
    at_limit = [build_frame(OP_TEXT, "a", fin=False), build_frame(OP_CONTINUATION, "", fin=False), build_frame(OP_CONTINUATION, "b")]
    assert parser.feed(b"".join(at_limit)) == ["ab"]
    parser.feed(build_frame(OP_TEXT, "a", fin=False) + build_frame(OP_CONTINUATION, "", fin=False) * 2)
    with pytest.raises(frames.FrameError) as refused:
        parser.feed(build_frame(OP_CONTINUATION, ""))
    assert (refused.value.code, refused.value.reason) == (1009, "message in more than 3 fragments")


def test_endless_empty_continuation_frames_are_closed_with_1009(limits_server):
    watch = Bystanders(limits_server)
    # At the limit: 8 frames make one message, which is handled.
    raw = RawWebSocket.connect(limits_server.port, "/ws/fragmenter")
    raw.handshake()
    text = json.dumps({"type": "message", "msg": "in eight pieces", "ref": "f8"})
    raw.send_frame(OP_TEXT, text[:5], fin=False)
    for _ in range(6):
        raw.send_frame(OP_CONTINUATION, "", fin=False)
    raw.send_frame(OP_CONTINUATION, text[5:])
    assert raw.recv_type("ack")["ref"] == "f8"
    # The flood: a message that never ends, in empty frames.
    raw.send_frame(OP_TEXT, "{", fin=False)
    flood = build_frame(OP_CONTINUATION, "", fin=False) * 10_000
    try:
        raw.send_raw(flood)
    except OSError:
        pass  # closed before it took the lot
    assert raw.recv_close() == (1009, "message in more than 8 fragments")
    raw.close()
    watch.check()
    watch.close()


def test_ping_flood_from_a_client_that_does_not_read_gets_only_the_latest_pong(limits_server):
    watch = Bystanders(limits_server)
    raw = RawWebSocket.connect(limits_server.port, "/ws/pinger", rcvbuf=4096)
    raw.handshake()
    pings = 200_000  # 25 MB of pongs if every one were kept, far more than the kernel's socket buffers
    batch = 1000
    for start in range(0, pings, batch):
        raw.send_raw(b"".join(masked_frame(OP_PING, b"%08d" % i + b"." * 117) for i in range(start, start + batch)))
    raw.send_frame(OP_PING, b"last")
    pongs = []
    while not pongs or pongs[-1] != b"last":
        _, opcode, payload = raw.recv_frame()
        if opcode == OP_PONG:
            pongs.append(payload)
    # What the kernel buffers held went out; the rest of the flood was answered by one pong, to the latest ping.
    assert len(pongs) < pings // 2, len(pongs)
    raw.send_json({"type": "message", "msg": "still here", "ref": "after"})
    assert raw.recv_type("ack")["ref"] == "after"
    raw.close()
    watch.check()
    watch.close()


# ---- HTTP: bodies and timeouts ------------------------------------------------------------------

BODY_ENDPOINTS = [
    ("POST", "/api/token"),
    ("DELETE", "/api/token"),
    ("POST", "/admin/disconnect"),
    ("POST", "/login"),
    ("POST", "/register"),
    ("POST", "/logout"),
]


@pytest.mark.parametrize("method, path", BODY_ENDPOINTS)
def test_request_body_over_max_request_body_is_refused_413_everywhere(limits_server, method, path):
    url = limits_server.http_url + path
    at_limit = requests.request(method, url, data=b"{" + b" " * 1022 + b"}", headers={"Content-Type": "application/json"})
    assert at_limit.status_code != 413
    over = requests.request(method, url, data=b"{" + b" " * 1023 + b"}", headers={"Content-Type": "application/json"})
    assert over.status_code == 413, (over.status_code, over.text[:200])
    assert over.json() == {"error": "the request body is too large: at most 1024 bytes"}


def test_huge_declared_body_is_refused_without_being_read(limits_server):
    watch = Bystanders(limits_server)
    before = descriptors(limits_server.proc.pid)
    head = (
        f"POST /api/token HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"Content-Length: {200 * 1024 * 1024}\r\n\r\n"
    ).encode()
    status, _, body = http_exchange(limits_server.port, head + b'{"username": "' + b"x" * 60_000)
    assert status == 413 and json.loads(body)["error"].startswith("the request body is too large")
    # The server closed the connection (http_exchange read to the end) rather than reading 200 MB.
    wait_until(lambda: descriptors(limits_server.proc.pid) <= before,
               timeout=DEADLINE, interval=0.05, message="the connection's descriptor to close")
    watch.check()
    watch.close()


def test_half_sent_requests_are_closed_after_the_header_timeout(limits_server):
    watch = Bystanders(limits_server)
    pid = limits_server.proc.pid
    before = descriptors(pid)
    partial = [
        b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n",  # headers never end
        b"GET /heal",  # request line never ends
        b"GET /ws/halfway HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n",  # a handshake
    ]
    socks = []
    for i in range(150):
        sock = socket.create_connection(("127.0.0.1", limits_server.port), timeout=DEADLINE)
        sock.sendall(partial[i % len(partial)])
        socks.append(sock)
    for sock in socks:
        assert sock.recv(100) == b""  # the server closed it without an answer (the recv would time out otherwise)
        sock.close()
    wait_until(lambda: descriptors(pid) <= before,
               timeout=DEADLINE, interval=0.05, message="the half-sent requests' descriptors to close")
    # A request that is complete within the timeout is answered, on a kept-alive connection too.
    session = requests.Session()
    assert session.get(limits_server.http_url + "/healthz").status_code == 200
    assert session.get(limits_server.http_url + "/healthz").status_code == 200
    watch.check()
    watch.close()


def test_half_sent_body_is_refused_408_after_the_body_timeout(limits_server):
    watch = Bystanders(limits_server)
    head = b"POST /api/token HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n"
    sock = socket.create_connection(("127.0.0.1", limits_server.port), timeout=DEADLINE)
    sock.sendall(head + b'{"username"')
    data = b""
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            break  # and the server closed the connection after answering
        data += chunk
    sock.close()
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 408"), head
    assert json.loads(body) == {"error": "the request body did not arrive in time"}
    watch.check()
    watch.close()


# ---- the access log -----------------------------------------------------------------------------


@pytest.mark.parametrize("logged, expected", [
    ('1.2.3.4 - - [t] "GET /ws/a?%74oken=S1&x=1 HTTP/1.1" 401 3 0.1', '1.2.3.4 - - [t] "GET /ws/a?%74oken=REDACTED&x=1 HTTP/1.1" 401 3 0.1'),
    ("/ws/a?since=3&To%4Ben=S2", "/ws/a?since=3&To%4Ben=REDACTED"),
    ("?token=S3&token=S4", "?token=REDACTED&token=REDACTED"),
    ("?+token+=S5", "?+token+=REDACTED"),  # Werkzeug reads " token " here: not the token, but redacted all the same
    ("/ws/a?tokens=kept&xtoken=kept", "/ws/a?tokens=kept&xtoken=kept"),
    ("/ws/a", "/ws/a"),
])
def test_redact_tokens_finds_every_spelling_of_the_name(logged, expected):
    from chat.websocket.handler import redact_tokens

    assert redact_tokens(logged) == expected


def test_tokens_are_redacted_from_the_access_log_in_any_spelling(limits_server):
    secrets_sent = {
        "/ws/redact1?%74oken=SECRETPCT": "%74oken=REDACTED",
        "/ws/redact2?since=0&to%6Ben=SECRETLOWHEX": "to%6Ben=REDACTED",
        "/api/names/redact3?TOKEN=SECRETUPPER&a=1": "TOKEN=REDACTED&a=1",
        "/api/names/redact4?%54%4F%4B%45%4E=SECRETALLHEX": "%54%4F%4B%45%4E=REDACTED",
        "/api/names/redact5?token=SECRETPLAIN": "token=REDACTED",
    }
    for path in secrets_sent:
        if path.startswith("/ws/"):
            # With an Origin, as a browser: the refusal is an HTTP answer with an access line (a terminal client's is
            # closed after the upgrade instead, and the upgrade's line is not written).
            origin = f"Origin: {limits_server.http_url}"
            raw, response = RawWebSocket.open_http(limits_server.port, path, extra_headers=(origin,))
            raw.close()
            if "%74oken" in path or "to%6Ben" in path:
                assert response.status == 401  # Werkzeug decodes the name: the server took it as a token
        else:  # raw: an HTTP library would normalise the escapes away
            assert http_exchange(limits_server.port, f"GET {path} HTTP/1.1\r\nConnection: close\r\n\r\n".encode())[0] == 200
    wait_until(lambda: all(redacted in limits_server.read_log() for redacted in secrets_sent.values()),
               timeout=DEADLINE, interval=0.05, message="the access log lines")
    assert "SECRET" not in limits_server.read_log()


# ---- sockets per address --------------------------------------------------------------------------


def test_sockets_per_address_are_capped_429_before_the_upgrade(start_server, sqlite_url):
    server = start_server(sqlite_url, max_connections_per_address=4)
    watch = Bystanders(server)  # two of the four
    first = RawWebSocket.connect(server.port, "/ws/many1")
    second = RawWebSocket.connect(server.port, "/ws/many2")  # the fourth: at the limit
    third, response = RawWebSocket.open_http(server.port, "/ws/many3")
    assert response.status == 429
    assert response.json() == {"error": "too many connections from your address: at most 4 at once"}
    third.close()
    first.close()

    def another_gets_in():
        raw, response = RawWebSocket.open_http(server.port, "/ws/many4")
        if response.status == 101:
            return raw
        raw.close()
        assert response.status == 429
        return None

    wait_until(another_gets_in,
               timeout=DEADLINE, interval=0.05, message="a socket to be admitted once one from the address has closed").close()
    second.close()
    watch.check()
    watch.close()


def test_behind_a_trusted_proxy_the_cap_counts_the_forwarded_address(start_server, sqlite_url):
    server = start_server(sqlite_url, max_connections_per_address=2, trust_proxy=True)
    watch = Bystanders(server)  # 127.0.0.1, the proxy's own address: two of its two

    def open_from(address, name):
        return RawWebSocket.open_http(server.port, f"/ws/{name}", extra_headers=[f"X-Forwarded-For: {address}"])

    opened = [open_from("203.0.113.7", f"proxied{i}") for i in range(3)]
    assert [response.status for _, response in opened] == [101, 101, 429]
    other, response = open_from("203.0.113.8", "proxied9")
    assert response.status == 101
    for raw, _ in opened + [(other, None)]:
        raw.close()
    watch.check()
    watch.close()


# ---- memory: the total send budget ----------------------------------------------------------------


def test_sockets_that_do_not_read_are_dropped_when_the_total_send_budget_is_full(start_server, sqlite_url):
    # Each hog is sent 6 MB of direct messages after its (small) history, then stops reading: that fits its own queue
    # (8 MiB) but a few of them fill the process's budget (8 MiB). Larger than the kernel's socket buffers (up to 4 MiB
    # here), so a socket that does not read backs up. Histories no longer can: they are sent as the client reads.
    budget = 8 * 1024 * 1024
    server = start_server(
        sqlite_url, max_message_size=256 * 1024, send_queue_bytes=budget, send_queue_total_bytes=budget, history_on_connect=1
    )
    watch = Bystanders(server)
    hogs = []
    for i in range(8):
        hog = RawWebSocket.connect(server.port, f"/ws/hog{i}", rcvbuf=4096)
        hog.handshake()
        hogs.append(hog)
    for i in range(len(hogs)):
        if f"send budget of {budget} bytes full" in server.read_log():
            break
        post_big_messages(server, 30, 200_000, to=f"hog{i}")
    wait_until(lambda: f"send budget of {budget} bytes full" in server.read_log(),
               timeout=DEADLINE, interval=0.05, message="the budget to drop a backed-up socket")
    watch.check()  # honest readers are never dropped: they take what they are sent
    served = 0
    for hog in hogs:
        hog.sock.settimeout(DEADLINE)
        try:
            hog.send_json({"type": "message", "msg": "anyone?", "ref": "hog"})
            while hog.recv_event()["type"] != "ack":
                pass  # the messages it was sent
            served += 1
        except (EOFError, ConnectionResetError, BrokenPipeError):
            pass  # dropped: the stream ends before its messages do
        hog.close()
    assert served < len(hogs)
    watch.check()
    watch.close()


def test_slow_consumer_close_while_the_writer_drains_logs_no_error(start_server, sqlite_url):
    # send_queue_bytes must hold one history event of the largest message escaped (6 x 160 KiB + 3 KiB: see config).
    server = start_server(sqlite_url, max_message_size=160 * 1024, send_queue_bytes=1024 * 1024, close_timeout=30)
    watch = Bystanders(server)
    slow = RawWebSocket.connect(server.port, "/ws/slowpoke", rcvbuf=4096)
    slow.handshake()
    post_big_messages(server, 70, 150_000, to="slowpoke")  # 10 MB: more than the kernel's buffers and the slow socket's queue hold
    wait_until(lambda: "closing a slow consumer" in server.read_log(),
               timeout=DEADLINE, interval=0.05, message="the slow consumer to be closed")
    # Our close frame first, then read: the server finishes the connection while its writer is still draining.
    slow.send_frame(OP_CLOSE, struct.pack("!H", 1000))
    assert slow.recv_close() == SLOW_CONSUMER
    assert slow.at_eof()
    slow.close()
    watch.check()
    log = server.read_log()
    assert "Traceback" not in log and "NoneType" not in log, log[-3000:]
    watch.close()


# ---- descriptors ----------------------------------------------------------------------------------

SITECUSTOMIZE = """\
import gc, os, resource
if os.environ.get("CHAT_TEST_GC_OFF"):
    gc.disable()
if os.environ.get("CHAT_TEST_NOFILE"):
    limit = int(os.environ["CHAT_TEST_NOFILE"])
    resource.setrlimit(resource.RLIMIT_NOFILE, (limit, limit))
"""


def test_connect_close_loop_under_a_low_descriptor_limit_without_gc(tmp_path, sqlite_url):
    """Sockets must give their descriptors back when they end, not when the cyclic garbage collector runs."""
    limit = 256
    (tmp_path / "site").mkdir()
    (tmp_path / "site" / "sitecustomize.py").write_text(SITECUSTOMIZE)
    env = {
        "PYTHONPATH": os.pathsep.join(filter(None, [str(tmp_path / "site"), os.environ.get("PYTHONPATH")])),
        "CHAT_TEST_GC_OFF": "1",
        "CHAT_TEST_NOFILE": str(limit),
    }
    server = ServerProcess(sqlite_url, tmp_path / "server.log", env=env, max_connections_per_address=10_000).start()
    try:
        pid = server.proc.pid
        with open(f"/proc/{pid}/limits") as f:
            assert any(line.startswith("Max open files") and f" {limit} " in line for line in f)
        watch = Bystanders(server)
        before = descriptors(pid)
        for i in range(4 * limit):
            raw = RawWebSocket.connect(server.port, f"/ws/loop{i}")
            raw.recv_type("welcome")
            raw.close()
            if i % 100 == 0:  # and plain HTTP requests in between
                assert requests.get(server.http_url + "/healthz", timeout=DEADLINE).status_code == 200
        wait_until(lambda: descriptors(pid) <= before + 5,
                   timeout=DEADLINE, interval=0.05, message=f"descriptors back near {before}")
        assert requests.get(server.http_url + "/healthz", timeout=DEADLINE).status_code == 200
        watch.check()
        watch.close()
    finally:
        server.stop()
