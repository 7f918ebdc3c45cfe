"""Deployment (docs/deploy.md), with real processes: gunicorn with chat.gunicorn_worker.ChatWebSocketWorker (chat, presence,
SIGTERM closes with 1001 and loses nothing acknowledged), gevent-websocket's stock gunicorn worker refused with a clear 1011,
and nginx with docs/nginx-chat.conf in front of two server processes."""
import json
import os
import pwd
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.request

import pytest
import websocket  # websocket-client

from tests.support.clients import ChatClient, next_message, online_everywhere, post
from tests.support.polling import wait_until
from tests.support.servers import ROOT, SUITE_SETTINGS, free_port, health

CHAT_WORKER = "chat.gunicorn_worker.ChatWebSocketWorker"
STOCK_WORKER = "geventwebsocket.gunicorn.workers.GeventWebSocketWorker"
GRACEFUL_TIMEOUT = 15
NGINX_CONF = os.path.join(ROOT, "docs", "nginx-chat.conf")


class GunicornProcess:
    """`gunicorn -k WORKER -w N chat.wsgi:app` in a subprocess, settings in CHAT_* variables; its log is read as it comes."""

    def __init__(self, log_path, worker_class, workers, chat_env):
        self.port = free_port()
        self.log_path = log_path
        self.worker_class = worker_class
        self.workers = workers
        self.chat_env = chat_env
        self.proc = None
        self.lines = []
        self._changed = threading.Condition()
        self._reader = None

    def start(self):
        args = [
            sys.executable, "-m", "gunicorn",
            "-k", self.worker_class,
            "-w", str(self.workers),
            "-b", f"127.0.0.1:{self.port}",
            "--graceful-timeout", str(GRACEFUL_TIMEOUT),
            "--no-control-socket",  # gunicorn 27's default control socket is one path per user: tests run side by side
            "chat.wsgi:app",
        ]
        # Only the settings given here: none leaks in from the environment running the tests.
        env = {k: v for k, v in os.environ.items() if not k.startswith("CHAT_")}
        env.update(PYTHONUNBUFFERED="1", **{"CHAT_" + k.upper(): str(v) for k, v in SUITE_SETTINGS.items()}, **self.chat_env)
        self.proc = subprocess.Popen(args, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        return self

    def _read(self):
        with open(self.log_path, "ab") as log:
            for raw in self.proc.stdout:
                log.write(raw)
                log.flush()
                with self._changed:
                    self.lines.append(raw.decode(errors="replace"))
                    self._changed.notify_all()
        with self._changed:
            self._changed.notify_all()

    def log_text(self):
        with self._changed:
            return "".join(self.lines)

    def count(self, text):
        return self.log_text().count(text)

    def wait_for_log(self, text, times=1, timeout=30):
        """Until `text` has appeared `times` times in gunicorn's output (no fixed sleep: woken by each line)."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while "".join(self.lines).count(text) < times:
                if self.proc.poll() is not None and not self._reader.is_alive():
                    raise AssertionError(f"gunicorn exited ({self.proc.returncode}) before {text!r}: {''.join(self.lines)[-3000:]}")
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"no {text!r} x{times} in gunicorn's output after {timeout} s: {''.join(self.lines)[-3000:]}")
                self._changed.wait(left)

    def wait_ready(self, instances=None, timeout=60):
        """Every worker booted (gunicorn says so per worker), then /healthz answers; with Redis, until all workers joined."""
        self.wait_for_log("Booting worker with pid", times=self.workers, timeout=timeout)

        def ready():
            if self.proc.poll() is not None:
                raise AssertionError(f"gunicorn exited ({self.proc.returncode}): {self.log_text()[-3000:]}")
            try:
                h = health(self)
            except OSError:
                return False
            return h["status"] == "ok" and (instances is None or h.get("instances") == instances)

        wait_until(ready,
                   timeout=timeout, message=f"gunicorn on port {self.port} to answer /healthz with {instances} instances")
        return self

    @property
    def http_url(self):
        return f"http://127.0.0.1:{self.port}"

    def connect(self, name, query="", **kwargs):
        return ChatClient.connect(f"ws://127.0.0.1:{self.port}/ws/{name}{query}", **kwargs)

    def terminate(self, timeout=GRACEFUL_TIMEOUT + 10):
        """SIGTERM to the master (gunicorn's graceful stop) and wait; the exit code."""
        self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(timeout)
        self._reader.join(10)
        return code

    def kill(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()  # the master; its workers see their parent go and exit
            self.proc.wait()
        if self._reader is not None:
            self._reader.join(10)


@pytest.fixture
def start_gunicorn(tmp_path):
    """start_gunicorn(worker_class, workers, **chat_env) -> a GunicornProcess started (not yet ready); killed after the test."""
    started = []

    def start(worker_class, workers, **chat_env):
        env = {"CHAT_INSTANCE_DIR": str(tmp_path / "instance"), "CHAT_BOTS": "", **chat_env}
        g = GunicornProcess(tmp_path / f"gunicorn{len(started)}.log", worker_class, workers, env)
        started.append(g)
        return g.start()

    yield start
    for g in started:
        g.kill()


def read_until_close(client, timeout=20):
    """Every event until the server's close frame: (ack ids, (code, reason))."""
    acks = []
    client.ws.settimeout(timeout)
    while True:
        opcode, data = client.ws.recv_data(control_frame=True)
        if opcode == websocket.ABNF.OPCODE_CLOSE:
            code = int.from_bytes(data[:2], "big") if len(data) >= 2 else 1005
            return acks, (code, data[2:].decode("utf-8", "replace"))
        if opcode == websocket.ABNF.OPCODE_TEXT:
            event = json.loads(data)
            if event["type"] == "ack":
                acks.append(event["id"])


def first_ack(client):
    """The id of the next ack, skipping everything else."""
    while True:
        event = client.recv()
        if event["type"] == "ack":
            return event["id"]


def stored_ids(db_path):
    conn = sqlite3.connect(db_path)
    try:
        return [row[0] for row in conn.execute("SELECT id FROM messages ORDER BY id")]
    finally:
        conn.close()


def test_gunicorn_chat_worker_serves_the_chat_and_stops_in_order(start_gunicorn, redis_server, clients, tmp_path):
    db_path = tmp_path / "chat.db"
    g = start_gunicorn(CHAT_WORKER, 2, CHAT_REDIS_URL=redis_server.url, CHAT_DATABASE_URL=f"sqlite:///{db_path}")
    g.wait_ready(instances=2)

    # Connect until each worker holds a socket (the kernel hands each connect to whichever worker accepts first).
    users, per_worker = [], {}
    while len(per_worker) < 2 or not all(per_worker.values()):
        # Linux may hand a run of connects to the same waiting worker; 48 stays under max_connections_per_address.
        assert len(users) < 48, f"48 connects never reached both workers: {per_worker}"
        name = f"user{len(users)}"
        users.append((name, clients(g, name)))
        for _ in range(6):
            h = health(g)
            per_worker[h["instance"]] = h["connections"]
    names = [name for name, _ in users]

    # Presence: everyone sees everyone, whichever worker each is on.
    for _, client in users:
        assert set(names) <= set(online_everywhere(client, *names))

    acked = []
    # Group: one message reaches every other user.
    sender = users[0][1]
    ack = post(sender, "hello everyone")
    acked.append(ack["id"])
    for _, client in users[1:]:
        event = next_message(client)
        assert (event["type"], event["user"], event["msg"], event["id"]) == ("message", "user0", "hello everyone", ack["id"])
    # Direct: a ring, so some direct crosses from one worker to the other.
    for i, (name, client) in enumerate(users):
        to_name, to_client = users[(i + 1) % len(users)]
        ack = post(client, f"from {name} to {to_name}", to=to_name)
        acked.append(ack["id"])
        event = next_message(to_client)
        assert (event["type"], event["user"], event["to"], event["id"]) == ("direct", name, to_name, ack["id"])

    # A burst from everyone; once each has its first one acknowledged, gunicorn's graceful stop while the rest is
    # being stored and delivered.
    for name, client in users:
        for i in range(50):
            client.send({"type": "message", "msg": f"burst {i} from {name}"})
    for name, client in users:
        acked.append(first_ack(client))
    stopped_at = time.monotonic()
    g.proc.send_signal(signal.SIGTERM)

    for name, client in users:
        acks, close = read_until_close(client)
        assert close == (1001, "server shutting down"), (name, close)
        acked += acks
    code = g.proc.wait(GRACEFUL_TIMEOUT + 10)
    g._reader.join(10)
    took = time.monotonic() - stopped_at
    log = g.log_text()
    assert code == 0, log[-3000:]
    assert took < GRACEFUL_TIMEOUT, (took, log[-3000:])
    assert log.count("stopped cleanly") == 2, log[-3000:]  # each worker ran the chat's shutdown
    assert "Worker graceful timeout" not in log and "SIGKILL" not in log

    # Everything acknowledged is in the database, once.
    stored = stored_ids(db_path)
    assert len(stored) == len(set(stored))
    missing = sorted(set(acked) - set(stored))
    assert not missing, f"{len(missing)} acknowledged messages not stored: {missing[:10]}"
    assert len(stored) >= len(acked)
    # What each sender got stored of its burst has no holes: the messages read before its socket closed, in order.
    conn = sqlite3.connect(db_path)
    rows = conn.execute("SELECT sender, body FROM messages WHERE body LIKE 'burst %' ORDER BY id").fetchall()
    conn.close()
    for name in names:
        numbers = [int(body.split()[1]) for sender, body in rows if sender == name]
        assert numbers == list(range(len(numbers))), (name, numbers)
        assert numbers, f"nothing of {name}'s burst was stored"


def _metric_totals(url):
    """{sample name: value} of the unlabelled samples of GET /metrics, parsed by prometheus_client."""
    from prometheus_client.parser import text_string_to_metric_families

    with urllib.request.urlopen(url + "/metrics", timeout=10) as response:
        text = response.read().decode()
    return {s.name: s.value for f in text_string_to_metric_families(text) for s in f.samples if not s.labels}


def test_gunicorn_workers_are_summed_in_metrics(start_gunicorn, redis_server, clients, tmp_path):
    metrics_dir = tmp_path / "metrics"
    metrics_dir.mkdir()
    g = start_gunicorn(CHAT_WORKER, 2, CHAT_REDIS_URL=redis_server.url, CHAT_DATABASE_URL=f"sqlite:///{tmp_path / 'chat.db'}",
                       CHAT_METRICS_DIR=str(metrics_dir), CHAT_METRICS_FLUSH_INTERVAL="0.2")
    g.wait_ready(instances=2)
    users, per_worker = [], {}
    while len(per_worker) < 2 or not all(per_worker.values()):
        assert len(users) < 48, f"48 connects never reached both workers: {per_worker}"
        users.append(clients(g, f"user{len(users)}"))
        for _ in range(6):
            h = health(g)
            per_worker[h["instance"]] = h["connections"]
    n = len(users)
    for i, client in enumerate(users):
        post(client, f"from {i}")
    want = {"chat_connections": n, "chat_messages_accepted_total": n, "chat_acks_total": n,
            "chat_messages_delivered_total": n * (n - 1)}
    totals = wait_until(lambda: (lambda t: t if all(t.get(k) == v for k, v in want.items()) else None)(_metric_totals(g.http_url)),
                        timeout=15, message="GET /metrics to sum both gunicorn workers")
    assert max(per_worker.values()) < totals["chat_connections"]


def test_gunicorn_workers_without_a_metrics_dir_are_warned(start_gunicorn, redis_server, tmp_path):
    g = start_gunicorn(CHAT_WORKER, 2, CHAT_REDIS_URL=redis_server.url, CHAT_DATABASE_URL=f"sqlite:///{tmp_path / 'chat.db'}")
    g.wait_for_log("without CHAT_METRICS_DIR: GET /metrics reports only the worker a scrape reaches", times=2)


def test_gunicorn_quick_stop_still_closes_with_1001(start_gunicorn, clients, tmp_path):
    """SIGINT to the master (Ctrl-C) is gunicorn's quick stop: it sends SIGQUIT to the workers and kills them soon after."""
    db_path = tmp_path / "chat.db"
    g = start_gunicorn(CHAT_WORKER, 1, CHAT_DATABASE_URL=f"sqlite:///{db_path}")
    g.wait_ready()
    alice = clients(g, "alice")
    ack = post(alice, "before the quick stop")
    g.proc.send_signal(signal.SIGINT)
    _, close = read_until_close(alice)
    assert close == (1001, "server shutting down")
    assert g.proc.wait(10) == 0
    g._reader.join(10)
    assert "quick stop" in g.log_text() and "stopped cleanly" in g.log_text()
    assert ack["id"] in stored_ids(db_path)


def test_gevent_websockets_own_gunicorn_worker_is_refused_clearly(start_gunicorn, tmp_path):
    g = start_gunicorn(STOCK_WORKER, 1, CHAT_DATABASE_URL=f"sqlite:///{tmp_path / 'chat.db'}")
    g.wait_ready()
    for name in ("alice", "bob"):
        with g.connect(name) as client:  # gevent-websocket's handler has already answered 101
            code, reason = client.recv_close()
        assert code == 1011
        assert "chat.gunicorn_worker.ChatWebSocketWorker" in reason
    assert health(g)["status"] == "ok"  # plain HTTP is unaffected
    assert g.terminate() == 0
    log = g.log_text()
    assert log.count("websocket upgraded by gevent-websocket's own handler") == 1, log[-3000:]  # logged once, not per socket


# ---- nginx ---------------------------------------------------------------------------------------------------------


@pytest.fixture
def nginx_binary():
    binary = shutil.which("nginx") or ("/usr/sbin/nginx" if os.access("/usr/sbin/nginx", os.X_OK) else None)
    if binary is None:
        message = "nginx is not installed (apt-get install -y nginx-light): the nginx deployment test needs it"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return binary


def render_nginx_conf(upstream_ports, listen_port):
    """docs/nginx-chat.conf with its example ports replaced; each placeholder must be there exactly once."""
    with open(NGINX_CONF, encoding="utf-8") as f:
        text = f.read()
    replacements = {
        "server 127.0.0.1:8001;": f"server 127.0.0.1:{upstream_ports[0]};",
        "server 127.0.0.1:8002;": f"server 127.0.0.1:{upstream_ports[1]};",
        "listen 80;": f"listen 127.0.0.1:{listen_port};",
    }
    for old, new in replacements.items():
        assert text.count(old) == 1, f"docs/nginx-chat.conf should contain {old!r} once"
        text = text.replace(old, new)
    return text


class NginxProcess:
    """nginx in the foreground with its own prefix, pid file, logs and temp directories under `prefix`."""

    def __init__(self, binary, prefix):
        self.binary = binary
        self.prefix = prefix
        self.port = free_port()
        self.proc = None

    def start(self, site_conf):
        p = self.prefix
        for d in ("logs", "temp"):
            (p / d).mkdir(parents=True, exist_ok=True)
        (p / "chat.conf").write_text(site_conf)
        user = f"user {pwd.getpwuid(os.geteuid()).pw_name};\n" if os.geteuid() == 0 else ""  # workers would drop to nobody
        temp = "".join(f"    {kind}_temp_path {p / 'temp' / kind};\n" for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
        (p / "nginx.conf").write_text(
            f"{user}daemon off;\nworker_processes 1;\npid {p / 'nginx.pid'};\nerror_log {p / 'logs' / 'error.log'} info;\n"
            f"events {{ worker_connections 256; }}\n"
            f"http {{\n    access_log {p / 'logs' / 'access.log'};\n{temp}    include {p / 'chat.conf'};\n}}\n"
        )
        self._out = open(p / "logs" / "stdout.log", "ab")
        self.proc = subprocess.Popen(
            [self.binary, "-p", str(p), "-c", str(p / "nginx.conf"), "-e", str(p / "logs" / "error.log")],
            stdout=self._out, stderr=subprocess.STDOUT,
        )
        return self

    def error_log(self):
        try:
            return (self.prefix / "logs" / "error.log").read_text(errors="replace")
        except FileNotFoundError:
            return ""

    @property
    def http_url(self):
        return f"http://127.0.0.1:{self.port}"

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGQUIT)  # graceful; SIGTERM would be fast
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc is not None:
            self._out.close()


def test_the_deploy_doc_shows_the_tested_nginx_conf():
    with open(os.path.join(ROOT, "docs", "deploy.md"), encoding="utf-8") as f:
        doc = f.read()
    with open(NGINX_CONF, encoding="utf-8") as f:
        conf = f.read()
    assert "```nginx\n" + conf + "```\n" in doc, "docs/deploy.md must show docs/nginx-chat.conf exactly"


def test_nginx_proxies_pages_and_websockets_to_two_processes(nginx_binary, start_server, sqlite_url, redis_server, tmp_path):
    a = start_server(sqlite_url, redis_url=redis_server.url, bots="", trust_proxy=True)
    b = start_server(sqlite_url, redis_url=redis_server.url, bots="", trust_proxy=True)
    wait_until(lambda: health(a)["instances"] == 2 and health(b)["instances"] == 2,
               timeout=10, message="both processes to see each other")

    nginx = NginxProcess(nginx_binary, tmp_path / "nginx")
    nginx.start(render_nginx_conf((a.port, b.port), nginx.port))
    try:

        def answering():
            if nginx.proc.poll() is not None:
                raise AssertionError(f"nginx exited ({nginx.proc.returncode}): {nginx.error_log()[-3000:]}")
            try:
                return health(nginx)["status"] == "ok"
            except OSError:
                return False

        wait_until(answering, timeout=20, message="nginx to answer /healthz")
        with urllib.request.urlopen(nginx.http_url + "/healthz", timeout=10) as response:
            assert response.status == 200
            assert json.loads(response.read())["instances"] == 2

        # As a browser page served through nginx would: its Origin is nginx's host and port, which the servers
        # learn from X-Forwarded-Host (--trust-proxy); a wrong Host there would get HTTP 403.
        origin = f"http://127.0.0.1:{nginx.port}"
        url = f"ws://127.0.0.1:{nginx.port}/ws/"
        alice = ChatClient.connect(url + "alice", origin=origin)
        bob = ChatClient.connect(url + "bob", origin=origin)
        try:
            alice.handshake()
            bob.handshake()
            # least_conn sent the two websockets to different processes.
            assert sorted([health(a)["connections"], health(b)["connections"]]) == [1, 1]
            online_everywhere(alice, "alice", "bob")
            online_everywhere(bob, "alice", "bob")
            ack = post(alice, "hello through nginx")
            event = next_message(bob)
            assert (event["type"], event["user"], event["msg"], event["id"]) == ("message", "alice", "hello through nginx", ack["id"])
            ack = post(bob, "and back", to="alice")
            event = next_message(alice)
            assert (event["type"], event["user"], event["to"], event["id"]) == ("direct", "bob", "alice", ack["id"])
        finally:
            alice.close()
            bob.close()

        # An Origin the servers do not know is still refused through the proxy (before the upgrade, so nginx passes the 403 on).
        with pytest.raises(websocket.WebSocketBadStatusException) as refused:
            ChatClient.connect(url + "carol", origin="http://evil.example")
        assert refused.value.status_code == 403
    finally:
        nginx.stop()
