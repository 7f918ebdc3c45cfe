"""The real server as a subprocess on a free port (`python run_server.py`), and per-test user names on a shared one.

Starting a server takes about half a second; tests that only need live delivery share one per module (the
`shared_server` and `chat` fixtures) and use names no other test uses. Tests that look at global state (who is
online, presence, group history, restarts) use a fresh `server` instead.
"""
import itertools
import json
import os
import socket
import subprocess
import sys
import urllib.request

from tests.support.clients import ChatClient

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# Many tests send bursts on purpose (durability, history paging, acks in order); the per-connection rate limit
# (default 20 messages/s, burst 40) is not what they test, so test servers lift it unless a test sets its own.
# tests/test_access_control.py tests the limit; tests/test_accounts_browser.py runs the page with the real defaults.
# Likewise sign-ins per address (tests/test_hostile_signin.py) and the upload rate (tests/test_hostile_uploads.py tests it
# and the upload quotas, which stay at their defaults), and room creations per address (every test client shares
# 127.0.0.1; tests/test_rooms.py tests the budget).
SUITE_SETTINGS = {
    "rate_limit": 1_000_000,
    "rate_burst": 1_000_000,
    "login_rate_per_address": 1_000_000,
    "upload_rate": 1_000_000,
    "upload_burst": 1_000_000,
    "rooms_created_per_address": 1_000_000,
}

_tags = itertools.count(1)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


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


def health(server):
    """The server's /healthz answer, as JSON."""
    with urllib.request.urlopen(server.http_url + "/healthz", timeout=10) as response:
        return json.loads(response.read())


class Chat:
    """Names unique to one test: chat.name("alice") is e.g. "alice-t7"; chat.connect("alice") connects as it."""

    def __init__(self, server, clients):
        self.server = server
        self._clients = clients
        self.tag = f"t{next(_tags)}"

    def name(self, short):
        return f"{short}-{self.tag}"

    def connect(self, short, query="", handshake=True):
        client = self._clients(self.server, self.name(short), query, handshake)
        client.name = self.name(short)
        return client


def connect_when_free(server, name, timeout=30):
    """Connect as guest `name` with no resume token, retrying while an earlier guest's hold runs (HTTP 409): (client
    before its welcome, the refusals' texts meanwhile). A retry pace like a person trying again."""
    import websocket  # websocket-client

    from tests.support.polling import wait_until

    refusals = []

    def admitted():
        try:
            return server.connect(name, resume=False)
        except websocket.WebSocketBadStatusException as e:
            assert e.status_code == 409, e
            refusals.append(json.loads(e.resp_body)["error"])
            return None

    return wait_until(admitted, timeout=timeout, interval=0.1, message=f"{name} to be freed"), refusals
