"""Mentions and notifications on the chat page, in headless Chromium: a mention raises the "@N" badge on the mentioned
user's page (live, and from the server's count in a new tab) and reading clears it everywhere; the message is
highlighted; the page never asks for notification permission on load, only on the Notify button's click; and with
permission granted and the tab hidden, a mention and a direct raise a notification (plain text, opening their
conversation on click) while a plain message does not.

Each test runs against the real server (a subprocess on a free port, SQLite store). Nothing here sleeps to
synchronise: Playwright's expect() and wait_until() poll an observable condition until their timeout.
"""
import re
import uuid

import pytest

from tests.support.browser import require_browser
from tests.support.clients import post
from tests.support.polling import wait_until

require_browser("tests/test_mentions_browser.py")

from playwright.sync_api import expect  # noqa: E402  (after require_browser, which checks that playwright is there)

# Recorded in the page before its scripts run: every Notification made and every permission request, and a
# visibilityState the test can turn to "hidden" (headless Chromium's tab is always visible).
WATCH_NOTIFICATIONS = """
(() => {
  window.__asked = 0;
  window.__notes = [];
  window.__hidden = false;
  Object.defineProperty(Document.prototype, "visibilityState", {
    configurable: true, get() { return window.__hidden ? "hidden" : "visible"; } });
  Object.defineProperty(Document.prototype, "hidden", { configurable: true, get() { return window.__hidden; } });
  const Real = window.Notification;
  if (typeof Real !== "function") return;
  class Recorded {
    constructor(title, options) {
      this.title = title;
      this.options = options || {};
      this.onclick = null;
      this.closed = false;
      window.__notes.push(this);
    }
    close() { this.closed = true; }
    static get permission() { return Real.permission; }
    static requestPermission() {
      window.__asked += 1;
      return Real.requestPermission().then((answer) => { window.__answer = answer; return answer; });
    }
  }
  window.Notification = Recorded;
})();
"""


@pytest.fixture
def chat_server(start_server, sqlite_url):
    return start_server(sqlite_url, bots="")


def unique(short):
    return f"{short}-{uuid.uuid4().hex[:6]}"


def guest(server, name):
    client = server.connect(name)
    client.handshake()
    return client


def notes(chat):
    return chat.page.evaluate("window.__notes.map(n => ({title: n.title, body: n.options.body, tag: n.options.tag}))")


def hide(chat):
    chat.page.evaluate("window.__hidden = true; document.dispatchEvent(new Event('visibilitychange'))")


def test_a_mention_raises_the_badge_and_reading_clears_it(open_page, chat_server, browser):
    alice_name, bob_name = unique("alice"), unique("bob")
    bob = guest(chat_server, bob_name)
    alice = open_page(chat_server, alice_name)
    post(bob, "hello alice", to=alice_name)
    alice.open(bob_name)  # general is not open: its messages stay unread
    general = alice.conv("*")
    post(bob, "just chatting")
    post(bob, f"@{alice_name} have a look")
    expect(general.locator(".badge")).to_have_text("2")
    expect(general.locator(".mention-badge")).to_have_text("@1")
    post(bob, f"and you, @{alice_name.upper()}?")
    expect(general.locator(".mention-badge")).to_have_text("@2")
    expect(alice.page).to_have_title(re.compile(r"@2 Chat$"))
    # a second tab (opening bob's conversation, so that it reads nothing of general) shows the server's count
    tab = open_page(chat_server, path=f"/?with={bob_name}", context=alice.context)
    tab.wait_online()
    expect(tab.conv(bob_name)).to_have_class(re.compile(r"\bactive\b"))
    expect(tab.conv("*").locator(".mention-badge")).to_have_text("@2")
    # reading general in the first tab clears the badge in both, and the server's count with it
    alice.open("*")
    expect(general.locator(".mention-badge")).to_be_hidden()
    expect(tab.conv("*").locator(".mention-badge")).to_be_hidden()
    expect(alice.page).to_have_title("Chat")
    expect(alice.messages("have a look")).to_have_class(re.compile(r"\bmention\b"))
    expect(alice.messages("just chatting")).not_to_have_class(re.compile(r"\bmention\b"))
    third = open_page(chat_server, path=f"/?with={bob_name}", context=alice.context)
    third.wait_online()
    expect(third.conv("*").locator(".badge")).to_be_hidden()
    expect(third.conv("*").locator(".mention-badge")).to_be_hidden()
    bob.close()


def test_the_page_asks_for_notifications_only_when_the_button_is_clicked(open_page, chat_server, browser):
    context = browser.new_context()
    try:
        context.add_init_script(WATCH_NOTIFICATIONS)
        alice = open_page(chat_server, unique("alice"), context=context)
        toggle = alice.page.locator("#notify-toggle")
        expect(toggle).to_be_visible()
        expect(toggle).to_have_attribute("aria-pressed", "false")
        alice.page.reload()
        alice.wait_online()
        assert alice.page.evaluate("window.__asked") == 0
        toggle = alice.page.locator("#notify-toggle")
        toggle.click()
        answer = wait_until(lambda: alice.page.evaluate("window.__answer || null"), timeout=10, interval=0.05,
                            message="the browser to answer the permission request")
        assert alice.page.evaluate("window.__asked") == 1
        # not granted (headless Chromium does not grant without the test's grant): still off, saying why when blocked
        assert answer in ("denied", "default"), answer
        expect(toggle).to_have_attribute("title", re.compile("blocked" if answer == "denied" else "Be notified"))
        expect(toggle).to_have_attribute("aria-pressed", "false")
    finally:
        context.close()


def test_with_permission_and_a_hidden_tab_a_mention_and_a_direct_notify_and_a_plain_message_does_not(open_page, chat_server,
                                                                                                      browser):
    context = browser.new_context()
    try:
        context.grant_permissions(["notifications"], origin=chat_server.http_url)
        context.add_init_script(WATCH_NOTIFICATIONS)
        alice_name, bob_name = unique("alice"), unique("bob")
        bob = guest(chat_server, bob_name)
        alice = open_page(chat_server, alice_name, context=context)
        toggle = alice.page.locator("#notify-toggle")
        toggle.click()
        expect(toggle).to_have_attribute("aria-pressed", "true")
        post(bob, f"@{alice_name} while you were visible")  # the tab is in front: no notification
        expect(alice.conv("*").locator(".conv-preview")).to_contain_text("while you were visible")
        hide(alice)
        post(bob, "a plain message")
        post(bob, f"<b>@{alice_name}</b> look at this")
        post(bob, "<i>psst</i>", to=alice_name)
        post(bob, f"mail {alice_name}@example.com, not a mention")
        post(bob, "the last one")
        expect(alice.conv("*").locator(".conv-preview")).to_contain_text("the last one")
        assert notes(alice) == [
            {"title": f"{bob_name} mentioned you in Everyone", "body": f"<b>@{alice_name}</b> look at this", "tag": "chat:*"},
            {"title": bob_name, "body": "<i>psst</i>", "tag": f"chat:{bob_name}"},
        ]
        # clicking the direct's notification opens that conversation
        alice.page.evaluate("window.__notes[1].onclick()")
        expect(alice.conv(bob_name)).to_have_class(re.compile(r"\bactive\b"))
        assert alice.page.evaluate("window.__notes[1].closed") is True
        # turned off: nothing more, and remembered across a reload
        alice.page.evaluate("window.__hidden = false")
        toggle.click()
        expect(toggle).to_have_attribute("aria-pressed", "false")
        alice.page.reload()
        alice.wait_online()
        expect(alice.page.locator("#notify-toggle")).to_have_attribute("aria-pressed", "false")
        hide(alice)
        post(bob, f"@{alice_name} again")
        post(bob, "another last one")
        expect(alice.conv("*").locator(".conv-preview")).to_contain_text("another last one")
        assert notes(alice) == []
        assert alice.page.evaluate("window.__asked") == 0  # granted already: the click needed no question
        bob.close()
    finally:
        context.close()
