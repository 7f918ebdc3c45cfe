"""Test fixtures: the real server as a subprocess on a free port, each store (SQLite, MariaDB), real websocket clients."""
import json
import os
import socket
import subprocess
import sys
import sqlite3
import uuid
from urllib.parse import unquote, urlsplit

import pymysql
import pytest
import websocket  # websocket-client

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RECV_TIMEOUT = 10.0
MYSQL_ADMIN_URL = os.environ.get("CHAT_TEST_MYSQL_URL", "mysql://root@127.0.0.1:3306/test")


def _mysql_params(url):
    from urllib.parse import urlsplit

    p = urlsplit(url)
    return dict(host=p.hostname or "127.0.0.1", port=p.port or 3306, user=p.username or "root", password=p.password or "")


def mysql_reachable():
    try:
        pymysql.connect(connect_timeout=2, **_mysql_params(MYSQL_ADMIN_URL)).close()
        return True
    except pymysql.err.MySQLError as e:
        return str(e)


def pytest_report_header(config):
    reachable = mysql_reachable()
    return [f"MySQL/MariaDB for store tests: {MYSQL_ADMIN_URL} -> {'reachable' if reachable is True else reachable}"]


class MySQLDatabases:
    """Creates fresh, uniquely named databases on the test server and drops them afterwards."""

    def __init__(self):
        self.params = _mysql_params(MYSQL_ADMIN_URL)
        self.created = []

    def create(self):
        name = "chat_test_" + uuid.uuid4().hex[:12]
        conn = pymysql.connect(**self.params)
        with conn.cursor() as cur:
            cur.execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin")
        conn.close()
        self.created.append(name)
        p = self.params
        auth = p["user"] + (":" + p["password"] if p["password"] else "")
        return f"mysql://{auth}@{p['host']}:{p['port']}/{name}"

    def drop_all(self):
        conn = pymysql.connect(**self.params)
        with conn.cursor() as cur:
            for name in self.created:
                cur.execute(f"DROP DATABASE IF EXISTS `{name}`")
        conn.close()


@pytest.fixture(scope="session")
def mysql_databases():
    reachable = mysql_reachable()
    if reachable is not True:
        if os.environ.get("CI"):
            pytest.fail(f"MySQL/MariaDB is required in CI but not reachable at {MYSQL_ADMIN_URL}: {reachable}")
        pytest.skip(f"MySQL/MariaDB not reachable at {MYSQL_ADMIN_URL} ({reachable}); set CHAT_TEST_MYSQL_URL to run these")
    dbs = MySQLDatabases()
    yield dbs
    dbs.drop_all()


def fresh_database_url(request, kind, directory):
    """A fresh, empty database: a SQLite file in `directory`, or a new database on the MariaDB test server."""
    if kind == "mysql":
        return request.getfixturevalue("mysql_databases").create()
    return f"sqlite:///{directory / 'chat.db'}"


@pytest.fixture(params=["sqlite", "mysql"])
def database_url(request, tmp_path):
    """A fresh, empty database of each kind."""
    return fresh_database_url(request, request.param, tmp_path)


@pytest.fixture
def sqlite_url(tmp_path):
    return f"sqlite:///{tmp_path / 'chat.db'}"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# Many tests send bursts on purpose (durability, history paging, acks in order); the per-connection rate limit
# (default 20 messages/s, burst 40) is not what they test, so test servers lift it unless a test sets its own.
# tests/test_security.py tests the limit; tests/test_auth_browser.py runs the page with the real defaults.
# Likewise sign-ins per address (tests/test_hostile_signin.py) and the upload rate (tests/test_hostile_uploads.py tests it
# and the upload quotas, which stay at their defaults).
SUITE_SETTINGS = {
    "rate_limit": 1_000_000,
    "rate_burst": 1_000_000,
    "login_rate_per_address": 1_000_000,
    "upload_rate": 1_000_000,
    "upload_burst": 1_000_000,
}


class ServerProcess:
    """`python run_server.py` in a subprocess; ready once it prints its listening line."""

    def __init__(self, database_url, log_path, port=None, env=None, **settings):
        self.database_url = database_url
        self.port = port or free_port()
        self.settings = settings
        self.log_path = log_path
        self.extra_env = env or {}
        self.proc = None
        self.resume_tokens = {}  # guest name -> the resume token its last welcome gave (as the page keeps it)

    def start(self):
        args = [sys.executable, os.path.join(ROOT, "run_server.py"), "--port", str(self.port), "--database", self.database_url]
        for key, value in {**SUITE_SETTINGS, **self.settings}.items():
            flag = "--" + key.replace("_", "-")
            if value is True:
                args.append(flag)
            elif value is False:
                args.append("--no-" + flag[2:])
            else:
                args += [flag, str(value)]
        env = dict(os.environ, PYTHONUNBUFFERED="1", **self.extra_env)
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(args, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=self._log)
        line = self.proc.stdout.readline().decode()  # blocks until the server prints it, or exits
        if "listening on" not in line:
            self.proc.wait(10)
            raise RuntimeError(f"server did not start (exit {self.proc.returncode}): {self.read_log()[-3000:]}")
        return self

    @property
    def http_url(self):
        return f"http://127.0.0.1:{self.port}"

    def ws_url(self, path):
        return f"ws://127.0.0.1:{self.port}{path}"

    def connect(self, name, query="", resume=True, **kwargs):
        """A client for /ws/NAME; a guest name this server gave a resume token comes back with it (resume=False: without)."""
        token = self.resume_tokens.get(name) if resume else None
        if token is not None and "resume=" not in query:
            query += ("&" if "?" in query else "?") + "resume=" + token
        client = ChatClient.connect(self.ws_url(f"/ws/{name}{query}"), **kwargs)
        client.on_welcome = self._remember_resume
        return client

    def _remember_resume(self, welcome):
        if "resume" in welcome:
            self.resume_tokens[welcome["user"]] = welcome["resume"]

    def read_log(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode(errors="replace")

    def stop(self, timeout=15):
        """SIGTERM and wait; returns the exit code."""
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode if self.proc else None

    def kill(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def restart(self):
        self.stop()
        return self.start()


@pytest.fixture
def start_server(tmp_path):
    """start_server(database_url, **settings) -> a running ServerProcess, stopped after the test."""
    servers = []
    resume_tokens = {}  # shared: a guest may reconnect to another of the test's processes

    def start(database_url, **settings):
        server = ServerProcess(database_url, tmp_path / f"server{len(servers)}.log", **settings)
        server.resume_tokens = resume_tokens
        servers.append(server)
        return server.start()

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def server(start_server, database_url):
    """A running server on a fresh database of each kind."""
    return start_server(database_url)


def presence_changes(event):
    """[(user, online)] from a presence event in either form: single, or batched under "changes"."""
    if "changes" in event:
        return [(c["user"], c["online"]) for c in event["changes"]]
    return [(event["user"], event["online"])]


class ChatClient:
    """A real websocket client (websocket-client) that reads JSON events."""

    def __init__(self, ws):
        self.ws = ws
        self.on_welcome = None  # called with the welcome event (ServerProcess.connect: keeps the resume token)

    @classmethod
    def connect(cls, url, timeout=RECV_TIMEOUT, **kwargs):
        ws = websocket.create_connection(url, timeout=timeout, **kwargs)
        return cls(ws)

    def send(self, payload):
        self.ws.send(payload if isinstance(payload, str) else json.dumps(payload))

    def recv(self, timeout=RECV_TIMEOUT):
        self.ws.settimeout(timeout)
        event = json.loads(self.ws.recv())
        if self.on_welcome is not None and event.get("type") == "welcome":
            self.on_welcome(event)
        return event

    def recv_type(self, *types, timeout=RECV_TIMEOUT):
        """The next event of one of `types`, skipping presence events and pongs in between."""
        while True:
            event = self.recv(timeout)
            if event["type"] in types:
                return event
            if event["type"] not in ("presence",):
                raise AssertionError(f"expected {types}, got {event}")

    def wait_presence(self, user, online, timeout=RECV_TIMEOUT):
        """Read until a presence event (single or batched form) says `user` went online/offline."""
        while True:
            event = self.recv_type("presence", timeout=timeout)
            if (user, online) in presence_changes(event):
                return event

    def handshake(self):
        """Read the welcome and history events every connection starts with."""
        welcome = self.recv_type("welcome")
        history = self.recv_type("history")
        return welcome, history

    def recv_close(self, timeout=RECV_TIMEOUT):
        """Read until the server's close frame; returns (code, reason). Other frames are skipped."""
        self.ws.settimeout(timeout)
        while True:
            opcode, data = self.ws.recv_data(control_frame=True)
            if opcode == websocket.ABNF.OPCODE_CLOSE:
                code = int.from_bytes(data[:2], "big") if len(data) >= 2 else 1005
                return code, data[2:].decode("utf-8", "replace")

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        try:
            self.ws.close(timeout=1)
        except Exception:
            pass


@pytest.fixture
def clients():
    """Opens ChatClients and closes them after the test: clients(server, name, query='')."""
    opened = []

    def connect(server, name, query="", handshake=True):
        client = server.connect(name, query)
        opened.append(client)
        if handshake:
            client.handshake()
        return client

    yield connect
    for client in opened:
        client.close()


def db_execute(database_url, query, params=()):
    """Run one statement straight on the server's database (checks of what it stored, and the odd fixture)."""
    if database_url.startswith("sqlite"):
        conn = sqlite3.connect(unquote(urlsplit(database_url).path)[1:])
        try:
            rows = conn.execute(query, params).fetchall()
            conn.commit()
            return rows
        finally:
            conn.close()
    p = urlsplit(database_url)
    conn = pymysql.connect(host=p.hostname, port=p.port or 3306, user=p.username or "root", password=p.password or "",
                           database=p.path.lstrip("/"), autocommit=True)
    try:
        with conn.cursor() as cur:
            cur.execute(query.replace("?", "%s"), params)
            return cur.fetchall()
    finally:
        conn.close()
