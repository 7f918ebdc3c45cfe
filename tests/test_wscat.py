"""The real `wscat` (npm, installed by `npm install` into node_modules/.bin) as a terminal client of the server."""
import json
import os
import queue
import shutil
import subprocess
import threading
import time

import pytest

from conftest import ROOT
from servers import chat, shared_server  # noqa: F401  (fixtures)

WSCAT = os.path.join(ROOT, "node_modules", ".bin", "wscat")
WAIT = 10.0


@pytest.fixture
def wscat_path():
    if not os.path.exists(WSCAT):
        pytest.skip(f"wscat is not installed at {WSCAT}: run `npm install` in {ROOT} (needs npm)")
    if shutil.which("node") is None:
        pytest.skip("node is not on PATH: wscat cannot run")
    return WSCAT


class Wscat:
    """`wscat -c URL` with stdin held open by us (wscat quits when its stdin closes) and stdout read line by line."""

    def __init__(self, path, url):
        self.proc = subprocess.Popen(
            [path, "-c", url],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=dict(os.environ, NO_COLOR="1", FORCE_COLOR="0"),
        )
        self.lines = queue.Queue()
        self.output = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self):
        for raw in iter(self.proc.stdout.readline, b""):
            self.lines.put(raw.decode("utf-8", "replace"))
        self.lines.put(None)

    def send_line(self, text):
        self.proc.stdin.write(text.encode("utf-8") + b"\n")
        self.proc.stdin.flush()

    def expect(self, predicate, timeout=WAIT):
        """The first JSON event wscat prints that satisfies `predicate` (non-JSON output and other events are skipped)."""
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"wscat did not print the expected event within {timeout}s; output: {''.join(self.output)!r}")
            try:
                line = self.lines.get(timeout=remaining)
            except queue.Empty:
                continue
            if line is None:
                raise AssertionError(f"wscat exited ({self.proc.poll()}); output: {''.join(self.output)!r}")
            self.output.append(line)
            start = line.find("{")  # wscat may put its "> " prompt in front
            if start < 0:
                continue
            try:
                event = json.loads(line[start:])
            except ValueError:
                continue
            if predicate(event):
                return event

    def quit(self):
        try:
            self.proc.stdin.close()  # wscat quits when its stdin closes
        except OSError:
            pass
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture
def wscat(wscat_path):
    started = []

    def start(url):
        process = Wscat(wscat_path, url)
        started.append(process)
        return process

    yield start
    for process in started:
        process.quit()


def test_wscat_line_reaches_another_client_and_wscat_prints_theirs(chat, wscat):
    bob = chat.connect("bob")
    term_name = chat.name("term")
    term = wscat(chat.server.ws_url(f"/ws/{term_name}"))
    welcome = term.expect(lambda e: e["type"] == "welcome")
    assert welcome["user"] == term_name and bob.name in welcome["online"]

    # a line typed into wscat is a group message
    term.send_line("hello from wscat 😀")
    event = bob.recv_type("message")
    assert (event["user"], event["msg"]) == (term_name, "hello from wscat 😀")
    ack = term.expect(lambda e: e["type"] == "ack")
    assert ack["id"] == event["id"]

    # and wscat prints what another client sends
    bob.send("hello from python ✓")
    event = term.expect(lambda e: e["type"] == "message")
    assert (event["user"], event["msg"]) == (bob.name, "hello from python ✓")


def test_wscat_slash_commands_and_json(chat, wscat):
    bob = chat.connect("bob")
    term_name = chat.name("term")
    term = wscat(chat.server.ws_url(f"/ws/{term_name}"))
    term.expect(lambda e: e["type"] == "history")

    term.send_line(f"/msg {bob.name} psst")
    event = bob.recv_type("direct")
    assert (event["user"], event["to"], event["msg"]) == (term_name, bob.name, "psst")

    term.send_line(json.dumps({"to": bob.name, "msg": "seed form", "ref": "w1"}))
    assert bob.recv_type("direct")["msg"] == "seed form"
    assert term.expect(lambda e: e.get("ref") == "w1")["type"] == "ack"

    bob.send({"to": term_name, "msg": "back at you"})
    event = term.expect(lambda e: e["type"] == "direct")
    assert (event["user"], event["msg"]) == (bob.name, "back at you")

    term.send_line("/who")
    online = term.expect(lambda e: e["type"] == "who")["online"]
    assert {term_name, bob.name} <= set(online)

    term.send_line("{broken")
    assert term.expect(lambda e: e["type"] == "error")["code"] == "bad_json"
