"""Accounts over real HTTP for the account and access-control tests: where sessions live (database or Redis), a cookie-keeping
user that registers and signs in through the real forms (CSRF token and all), tokens, and websockets carrying them."""
import itertools
import os
import re
import subprocess
import sys
import uuid

import pytest
import requests
import websocket  # websocket-client

from tests.support.clients import ChatClient
from tests.support.databases import fresh_database_url
from tests.support.rawws import RawWebSocket
from tests.support.servers import ROOT

REDIS_URL = os.environ.get("CHAT_TEST_REDIS_URL", "redis://127.0.0.1:6379/11")
CSRF_RE = re.compile(r'name="csrf_token"[^>]*?value="([^"]+)"')
PASSWORD = "correct horse battery"
COOKIE = "chat_session"
_tags = itertools.count(1)


def unique(short):
    """A user name no other test (or earlier run against the same database) uses."""
    return f"{short}-{uuid.uuid4().hex[:6]}{next(_tags)}"


def redis_client():
    import redis

    client = redis.Redis.from_url(REDIS_URL, socket_timeout=2, socket_connect_timeout=2)
    try:
        client.ping()
    except redis.exceptions.RedisError as e:
        if os.environ.get("CI"):
            pytest.fail(f"Redis is required in CI but not reachable at {REDIS_URL}: {e}")
        pytest.skip(f"Redis not reachable at {REDIS_URL} ({e}); set CHAT_TEST_REDIS_URL to run the Redis session tests")
    return client


class Backend:
    """Where a test server keeps accounts (always the database) and sessions/tokens (the database, or Redis)."""

    def __init__(self, kind, database_url):
        self.kind = kind
        self.database_url = database_url
        self.settings = {}
        self.redis = None
        if kind == "redis":
            self.redis = redis_client()
            self.prefix = f"chat-test-{uuid.uuid4().hex[:10]}:"  # this test's keys only
            self.settings = {"redis_url": REDIS_URL, "redis_prefix": self.prefix}

    def redis_keys(self):
        return sorted(k.decode() for k in self.redis.scan_iter(match=self.prefix + "*", count=1000))

    def cleanup(self):
        if self.redis is not None:
            keys = list(self.redis.scan_iter(match=self.prefix + "*", count=1000))
            if keys:
                self.redis.delete(*keys)
            self.redis.close()


def make_backend(request, kind, directory):
    # sqlite, and sqlite + Redis sessions, use a SQLite file
    return Backend(kind, fresh_database_url(request, "mysql" if kind == "mysql" else "sqlite", directory))


BACKENDS = ["sqlite", "mysql", "redis"]
DATABASES = ["sqlite", "mysql"]  # for what only the database holds (accounts, messages)


def on(*kinds):
    """Run a test on these backends of `shared_auth_server` only."""
    return pytest.mark.parametrize("shared_auth_server", list(kinds), indirect=True)


class WebUser:
    """One browser-like HTTP client (its own cookie jar) using the real pages and forms."""

    def __init__(self, server):
        self.server = server
        self.http = requests.Session()

    def url(self, path):
        return self.server.http_url + path

    def csrf(self, path):
        page = self.http.get(self.url(path), timeout=10)
        match = CSRF_RE.search(page.text)
        assert match, f"no CSRF token on {path} ({page.status_code})"
        return match.group(1)

    def post_form(self, path, fields, csrf_from=None):
        data = dict(fields)
        if csrf_from is not None:
            data["csrf_token"] = self.csrf(csrf_from)
        return self.http.post(self.url(path), data=data, allow_redirects=False, timeout=10)

    def register(self, name, password=PASSWORD, confirm=None):
        fields = {"username": name, "password": password, "confirm": password if confirm is None else confirm}
        return self.post_form("/register", fields, csrf_from="/register")

    def login(self, name, password=PASSWORD):
        return self.post_form("/login", {"username": name, "password": password}, csrf_from="/login")

    def logout(self):
        return self.post_form("/logout", {}, csrf_from="/")  # the sign-out form on the chat page

    @property
    def cookie(self):
        value = self.http.cookies.get(COOKIE)
        assert value, "not signed in: no session cookie"
        return f"{COOKIE}={value}"

    @property
    def origin(self):
        return self.server.http_url

    def socket(self, name, query="", handshake=True):
        """A websocket as the browser page opens it: the session cookie and the page's own Origin."""
        client = ChatClient.connect(self.server.ws_url(f"/ws/{name}{query}"), cookie=self.cookie, origin=self.origin)
        if handshake:
            client.handshake()
        return client


def signed_up(server, short="user"):
    """(WebUser, name): a freshly registered and signed-in account."""
    user = WebUser(server)
    name = unique(short)
    response = user.register(name)
    assert response.status_code == 302, response.text
    return user, name


def account(server, label):
    """(WebUser, name, token) of an account registered once per server and label, for tests that only use it
    (password hashing is deliberately slow; registering one per test would dominate the run)."""
    cache = server.__dict__.setdefault("_accounts", {})
    if label not in cache:
        user, name = signed_up(server, label)
        cache[label] = (user, name, get_token(server, name))
    return cache[label]


def get_token(server, name, password=PASSWORD):
    response = requests.post(server.http_url + "/api/token", json={"username": name, "password": password}, timeout=10)
    assert response.status_code == 200, response.text
    return response.json()["token"]


def token_socket(server, name, token, header=False, handshake=True):
    """A terminal-style client (no Origin, like wscat) with a token in the URL or an Authorization header."""
    if header:
        client = ChatClient.connect(server.ws_url(f"/ws/{name}"), header=[f"Authorization: Bearer {token}"], suppress_origin=True)
    else:
        client = ChatClient.connect(server.ws_url(f"/ws/{name}?token={token}"), suppress_origin=True)
    if handshake:
        client.handshake()
    return client


def handshake_status(server, path, *headers):
    """(status, JSON body or None) of an upgrade request to `path` with raw `headers` (no Origin unless given).

    A refusal of a client without Origin comes after the upgrade, as a close frame (4000 + status - 400, 1013 for
    503): it is given back here as that status and {"error": reason}, with "closed": the close code."""
    raw, response = RawWebSocket.open_http(server.port, path, extra_headers=headers)
    try:
        if response.status == 101 and not any(h.lower().startswith("origin:") for h in headers):
            refusal = _refusal_close(raw)
            if refusal is not None:
                return refusal
        body = response.json() if response.status != 101 and response.body else None
        return response.status, body
    finally:
        raw.sock.close()


def _refusal_close(raw):
    """(status, body) of a refusal sent as the first frame after the upgrade, or None when the first is no close."""
    fin, opcode, payload = raw.recv_frame()
    if opcode != 0x8:
        return None  # an event: the socket was admitted
    code = int.from_bytes(payload[:2], "big")
    assert code == 1013 or 4000 <= code < 4100, f"a refusal closes with 4000 + a 4xx status or 1013, not {code}"
    raw.finish_close(code)
    return (503 if code == 1013 else code - 4000 + 400), {"error": payload[2:].decode("utf-8"), "closed": code}


def refused(server, path, *headers):
    """The status and reason of a handshake that must be refused: before the upgrade (HTTP), or for a client without
    Origin right after it with a close code that carries the status (see handshake_status)."""
    status, body = handshake_status(server, path, *headers)
    assert status != 101, f"{path} was upgraded"
    return status, body["error"]


def admin(*args):
    """Run `python3 -m chat.admin ...` as an operator would; (exit code, output)."""
    done = subprocess.run([sys.executable, "-m", "chat.admin", *args], cwd=ROOT, capture_output=True, text=True, timeout=30)
    return done.returncode, done.stdout + done.stderr


def admin_settings(server):
    """The flags that point chat.admin at `server`'s stores and address."""
    args = ["--database", server.database_url, "--port", str(server.port)]
    for key, value in server.backend.settings.items():
        args += ["--" + key.replace("_", "-"), str(value)]
    return args


def close_code(client, timeout=10):
    """The (code, reason) the server closed `client` with, skipping the events before it."""
    return client.recv_close(timeout)


def is_closed_error(exc):
    return isinstance(exc, (websocket.WebSocketConnectionClosedException, ConnectionError, OSError))
