"""Exactly-once sends from the chat page (issue 17), in Debian's Chromium: the page gives every message a client_id and
sends it again with the same one after a reconnect, so a message whose ack was lost with the connection is stored,
shown and delivered once; on each store."""
import json
import re
import uuid

import pytest

from tests.support.browser import require_browser
from tests.support.databases import db_execute

require_browser("tests/test_exactly_once_browser.py")

from playwright.sync_api import expect  # noqa: E402  (after require_browser, which checks that playwright is there)


class AckThief:
    """Relays the page's websockets to the server, and once armed, takes the ack of the next message the page sends
    and drops that connection instead of handing it over: the message is stored, the page does not know it."""

    def __init__(self):
        self.armed = False
        self.sent = []  # every chat message frame the page sent, as JSON
        self.stolen = None

    def route(self, ws):
        server = ws.connect_to_server()
        refs = set()

        def from_page(message):
            event = json.loads(message)
            if event.get("type") in ("message", "direct"):
                self.sent.append(event)
                if self.armed:
                    refs.add(event.get("ref"))
            server.send(message)

        def from_server(message):
            event = json.loads(message)
            if self.armed and event.get("type") == "ack" and event.get("ref") in refs:
                self.armed = False
                self.stolen = event
                server.close()
                ws.close(code=4000, reason="connection lost")
                return
            ws.send(message)

        ws.on_message(from_page)
        server.on_message(from_server)


@pytest.mark.parametrize("to_bob", [False, True], ids=["group", "direct"])
def test_a_message_whose_ack_was_lost_is_sent_again_and_shown_stored_and_delivered_once(
    start_server, database_url, open_page, clients, to_bob
):
    server = start_server(database_url, bots="")
    alice, bob_name = f"alice{uuid.uuid4().hex[:5]}", f"bob{uuid.uuid4().hex[:5]}"
    bob = clients(server, bob_name)
    thief = AckThief()
    page = open_page(server)
    page.page.route_web_socket(re.compile(r"/ws/"), thief.route)
    page.join(alice)
    if to_bob:
        page.page.locator(f'#online li[data-user="{bob_name}"] button').click()
        expect(page.conv(bob_name)).to_have_class(re.compile(r"\bactive\b"))

    text = f"sent once {uuid.uuid4().hex[:8]}"
    thief.armed = True
    page.send(text)
    expect(page.conn).not_to_have_attribute("data-state", "online")  # the connection dropped with the ack
    page.wait_online()  # reconnected: the page sends it again, with its client_id
    mine = page.messages(text)
    expect(mine).to_have_count(1)
    expect(mine).to_have_attribute("data-id", str(thief.stolen["id"]))
    expect(mine).not_to_have_class(re.compile(r"\bpending\b"))

    sends = [event for event in thief.sent if event["msg"] == text]
    assert len(sends) == 2 and sends[0]["client_id"] == sends[1]["client_id"] and sends[0]["ref"] == sends[1]["ref"]
    assert re.fullmatch(r"[0-9a-f]{32}", sends[0]["client_id"])
    stored = db_execute(database_url, "SELECT id FROM messages WHERE body = ?", (text,))
    assert [tuple(r) for r in stored] == [(thief.stolen["id"],)]

    page.send("after")
    got = []
    while "after" not in got:  # every message bob gets up to "after", in order (typing notices and presence aside)
        event = bob.recv()
        if event["type"] in ("message", "direct"):
            got.append(event["msg"])
    assert got.count(text) == 1

    page.page.reload()  # what the server has: still once (the page joins again under its kept name)
    page.wait_online()
    if to_bob:
        page.open(bob_name)
    expect(page.messages(text)).to_have_count(1)
