"""The README's screenshot, made from the real page: two users chatting in a named room, with the rooms they are in
listed beside it. The picture is saved under test-artifacts/ on every run and copied to docs/screenshot.png when
CHAT_UPDATE_SCREENSHOT=1 (or when that file is missing).

Runs against the real server (a subprocess on a free port, SQLite store) in headless Chromium; nothing sleeps to
synchronise: Playwright's expect() polls until its timeout.
"""
import os
import re
import shutil

import pytest

from tests.support.browser import require_browser

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ARTIFACTS = os.path.join(ROOT, "test-artifacts")
README_SCREENSHOT = os.path.join(ROOT, "docs", "screenshot.png")

require_browser("tests/test_screenshot_browser.py")

from playwright.sync_api import expect  # noqa: E402  (after require_browser, which checks that playwright is there)


@pytest.fixture
def chat_server(start_server, sqlite_url):
    return start_server(sqlite_url)


def create_room(client, name, topic):
    """`client` creates the public room #name; returns once it has both the room's ack and its member event."""
    client.send(f"/create #{name} {topic}")
    seen = set()
    while seen != {"ack", "member"}:
        event = client.recv_type("ack", "member")
        if event.get("room") == name:
            seen.add(event["type"])


def join_room(chat, name):
    """Join a room with its Join button in the Rooms dialog; it opens in the page."""
    chat.page.locator("#rooms-open").click()
    item = chat.page.locator(f'#rooms-list li[data-room="{name}"]')
    expect(item.locator("button.room-join")).to_have_text("Join")
    item.locator("button.room-join").click()
    expect(chat.page.locator("#rooms-dialog")).to_be_hidden()
    expect(chat.conv("#" + name)).to_have_class(re.compile(r"\bactive\b"))


def test_screenshot_of_two_users_chatting_in_a_room(chat_server, open_page, clients):
    carol = clients(chat_server, "carol")
    dave = clients(chat_server, "dave")
    create_room(carol, "design", "mock-ups and colours")
    create_room(carol, "release", "v2.0: checks, tag, notes")
    alice = open_page(chat_server, "alice")
    bob = open_page(chat_server, "bob")
    join_room(alice, "design")
    join_room(bob, "release")
    join_room(alice, "release")
    conversation = [
        (bob, "Morning! Is the release still on for today?"),
        (alice, "Yes, final checks are running now."),
        (alice, "CI is green on both stores, so we're good to go."),
        (bob, "Great. I'll update the changelog and tag v2.0."),
    ]
    for who, text in conversation:
        who.send(text)
        expect(alice.messages(text)).to_have_count(1)
        expect(bob.messages(text)).to_have_count(1)
    carol.send("/say #design New colour palette is up for review")
    expect(alice.conv("#design").locator(".badge")).to_have_text("1")
    dave.send({"type": "direct", "to": "alice", "msg": "Got a minute to look at my PR after the release?"})
    expect(alice.conv("dave").locator(".badge")).to_have_text("1")
    alice.input.fill("Sounds good, shipping it now")
    for page in (alice, bob):
        expect(page.messages().last).to_have_attribute("data-id", re.compile(r"^\d+$"))
    alice.page.set_viewport_size({"width": 1100, "height": 640})
    expect(alice.messages().last).to_be_in_viewport()
    expect(alice.conv("#release")).to_be_in_viewport()
    expect(alice.conv("#design")).to_be_in_viewport()
    os.makedirs(ARTIFACTS, exist_ok=True)
    path = os.path.join(ARTIFACTS, "chat-room.png")
    alice.page.screenshot(path=path)
    assert os.path.getsize(path) > 10_000
    assert alice.problems() == {"dialogs": [], "page errors": [], "console errors": []}
    if os.environ.get("CHAT_UPDATE_SCREENSHOT") or not os.path.exists(README_SCREENSHOT):
        shutil.copyfile(path, README_SCREENSHOT)
