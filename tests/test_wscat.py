"""The real `wscat` (npm, installed by `npm install` into node_modules/.bin) as a terminal client of the server."""
import json

import pytest

from tests.support.wscat import Wscat


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
