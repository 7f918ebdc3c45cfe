"""The chat page in a real browser: Debian's Chromium, headless, driven by Python Playwright.

Every test runs against the real server (a subprocess on a free port, SQLite store) with one browser
context per user. Nothing here sleeps to synchronise: Playwright's expect() and wait_for_* retry
until their timeout.
"""
import glob
import json
import os
import re
import urllib.request
from html.parser import HTMLParser

import pytest

from tests.support.browser import DESKTOP, PHONE, no_horizontal_overflow, require_browser

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ARTIFACTS = os.path.join(ROOT, "test-artifacts")

require_browser("tests/test_chat_page_browser.py")

from playwright.sync_api import expect  # noqa: E402  (after require_browser, which checks that playwright is there)


@pytest.fixture
def chat_server(start_server, sqlite_url):
    return start_server(sqlite_url)


def save_screenshot(page, name):
    os.makedirs(ARTIFACTS, exist_ok=True)
    path = os.path.join(ARTIFACTS, name)
    page.screenshot(path=path)
    return path


def presence_changes(event):
    """The presence changes an event carries: one, or several gathered by the server."""
    if event.get("type") != "presence":
        return []
    return event["changes"] if "changes" in event else [{"user": event["user"], "online": event["online"]}]


# ---- the tests -------------------------------------------------------------------------------


def test_online_list_follows_presence(chat_server, open_page, clients):
    alice = open_page(chat_server, "alice")
    expect(alice.page.locator('#online li[data-user="eliza"]')).to_be_visible()  # a bot, always online
    expect(alice.page.locator("#online-count")).to_have_text("2")
    # Connections close together: the server may gather their presence changes into one event.
    others = [clients(chat_server, name, handshake=False) for name in ("dan", "erin", "finn")]
    for name in ("dan", "erin", "finn"):
        expect(alice.page.locator(f'#online li[data-user="{name}"]')).to_be_visible()
    expect(alice.page.locator("#online-count")).to_have_text("5")
    expect(alice.page.locator("#chat-sub")).to_have_text("5 people online")
    for client in others:
        client.close()
    expect(alice.page.locator("#online li[data-user]")).to_have_count(1)
    expect(alice.page.locator("#online-count")).to_have_text("2")
    expect(alice.page.locator("#online li.me")).to_contain_text("alice")


def test_group_message_reaches_both_users_and_own_messages_are_set_apart(chat_server, open_page):
    alice = open_page(chat_server, "alice")
    bob = open_page(chat_server, "bob")
    expect(alice.page.locator('#online li[data-user="bob"]')).to_be_visible()  # presence, live

    alice.send("hello bob")
    received = bob.messages("hello bob")
    expect(received).to_have_count(1)
    expect(received.locator(".sender")).to_have_text("alice")
    expect(received).not_to_have_class(re.compile(r"\bown\b"))
    mine = alice.messages("hello bob")
    expect(mine).to_have_count(1)
    expect(mine).to_have_class(re.compile(r"\bown\b"))
    expect(mine).to_have_attribute("data-id", re.compile(r"^\d+$"))  # acknowledged: it has the server's id
    expect(mine).not_to_have_class(re.compile(r"\bpending\b"))
    assert mine.get_attribute("data-id") == received.get_attribute("data-id")
    expect(alice.input).to_be_focused()
    expect(alice.input).to_have_value("")

    # Shift+Enter is a new line inside one message; Enter sends it.
    bob.input.click()
    bob.input.press_sequentially("line one")
    bob.input.press("Shift+Enter")
    bob.input.press_sequentially("line two")
    expect(bob.messages("line one")).to_have_count(0)
    bob.input.press("Enter")
    expect(alice.messages("line one")).to_have_count(1)
    assert alice.messages("line one").locator(".text").text_content() == "line one\nline two"
    expect(bob.input).to_be_focused()

    # A second tab of alice's (same browser profile, so she is signed in) gets a copy of what the first sends.
    alice2 = open_page(chat_server, context=alice.context)
    alice2.wait_online()
    expect(alice2.page.locator("#me-name")).to_have_text("alice")
    alice.send("from the first tab")
    copy = alice2.messages("from the first tab")
    expect(copy).to_have_count(1)
    expect(copy).to_have_class(re.compile(r"\bown\b"))
    expect(bob.messages("from the first tab")).to_have_count(1)
    expect(alice.messages("from the first tab")).to_have_count(1)
    expect(alice.messages("from the first tab")).to_have_attribute("data-id", re.compile(r"^\d+$"))
    assert alice.texts() == bob.texts() == alice2.texts()


def test_direct_message_reaches_only_the_addressee_and_unread_counts_change(chat_server, open_page):
    alice = open_page(chat_server, "alice")
    bob = open_page(chat_server, "bob")
    carol = open_page(chat_server, "carol")

    # Clicking a name in the online list opens a one-to-one conversation.
    alice.page.locator('#online li[data-user="bob"] button').click()
    expect(alice.page.locator("#chat-title")).to_have_text("bob")
    expect(alice.conv("bob")).to_have_class(re.compile(r"\bactive\b"))
    assert alice.page.url.endswith("/?with=bob")
    alice.send("just for bob")
    expect(alice.messages("just for bob")).to_have_attribute("data-id", re.compile(r"^\d+$"))

    # Bob, looking at Everyone, gets an unread count on a new "alice" entry.
    expect(bob.conv("alice").locator(".badge")).to_have_text("1")
    expect(bob.conv("alice").locator(".conv-preview")).to_have_text("just for bob")
    expect(bob.conv("*").locator(".badge")).to_be_hidden()
    expect(bob.page).to_have_title("(1) Chat")
    expect(bob.messages("just for bob")).to_have_count(0)  # not in the group conversation
    bob.open("alice")
    expect(bob.messages("just for bob")).to_have_count(1)
    expect(bob.conv("alice").locator(".badge")).to_be_hidden()
    expect(bob.page).to_have_title("Chat")

    # A group message while bob reads the one-to-one: Everyone's count goes up, then down when opened.
    alice.open("*")
    alice.send("hello all")
    expect(bob.conv("*").locator(".badge")).to_have_text("1")
    expect(bob.messages("hello all")).to_have_count(0)
    bob.open("*")
    expect(bob.messages("hello all")).to_have_count(1)
    expect(bob.conv("*").locator(".badge")).to_be_hidden()

    # Carol got the later group message, so the direct one would have arrived before it: she never saw it.
    expect(carol.messages("hello all")).to_have_count(1)
    expect(carol.page.get_by_text("just for bob")).to_have_count(0)
    expect(carol.conv("alice")).to_have_count(0)
    expect(carol.conv("bob")).to_have_count(0)
    assert "just for bob" not in carol.page.content()


def test_history_on_open_older_pages_and_after_reload(chat_server, open_page, clients, browser):
    # alice has connected once, so bob can write to her while she is away.
    bob = clients(chat_server, "bob")
    alice_once = clients(chat_server, "alice")
    while {"user": "alice", "online": True} not in presence_changes(bob.recv()):
        pass
    alice_once.close()
    while {"user": "alice", "online": False} not in presence_changes(bob.recv()):
        pass  # the server has noted what alice last saw
    for i in range(1, 61):
        bob.send({"type": "message", "msg": f"old message {i}", "ref": i})
    for i in range(1, 4):
        bob.send({"type": "direct", "to": "alice", "msg": f"while you were away {i}", "ref": 100 + i})
    acked = [bob.recv_type("ack")["ref"] for _ in range(63)]
    assert sorted(acked) == list(range(1, 61)) + [101, 102, 103]

    # The page comes back as that same guest: its storage has the resume token the earlier socket was given.
    context = browser.new_context(viewport=DESKTOP)
    token = json.dumps(chat_server.resume_tokens["alice"])
    context.add_init_script(f"localStorage.setItem('chat.resume.alice', {json.dumps(token)})")
    alice = open_page(chat_server, "alice", context=context)
    expect(alice.messages("old message 60")).to_have_count(1)
    expect(alice.messages()).to_have_count(50)  # one page
    assert alice.texts() == [f"old message {i}" for i in range(11, 61)]
    expect(alice.conv("bob").locator(".badge")).to_have_text("3")  # delivered on connect, not yet read

    older = alice.page.locator("#load-older")
    expect(older).to_be_visible()
    older.click()
    expect(alice.messages()).to_have_count(60)
    assert alice.texts() == [f"old message {i}" for i in range(1, 61)]
    expect(older).to_be_hidden()  # that was all

    alice.open("bob")
    expect(alice.messages()).to_have_count(3)
    assert alice.texts() == [f"while you were away {i}" for i in range(1, 4)]
    assert alice.page.url.endswith("/?with=bob")

    # A reload comes back to the same conversation, with its history from the server.
    alice.page.reload()
    alice.wait_online()
    expect(alice.page.locator("#chat-title")).to_have_text("bob")
    expect(alice.messages()).to_have_count(3)
    assert alice.texts() == [f"while you were away {i}" for i in range(1, 4)]
    alice.open("*")
    expect(alice.messages("old message 60")).to_have_count(1)
    expect(alice.messages()).to_have_count(50)


def test_with_parameter_opens_that_conversation_and_refusals_show_next_to_the_message(chat_server, open_page, clients):
    bob = clients(chat_server, "bob")
    alice = open_page(chat_server, path="/?with=bob")
    expect(alice.page.locator("#join-form")).to_be_visible()  # first visit: pick a name
    alice.join("alice")
    expect(alice.page.locator("#chat-title")).to_have_text("bob")
    expect(alice.conv("bob")).to_have_class(re.compile(r"\bactive\b"))
    expect(alice.page.locator("#chat-sub")).to_have_text("online")
    alice.send("hi, I came from a link")
    # Writing it told bob that alice was typing to him (the key as he sees the conversation), before the message itself.
    assert bob.recv_type("typing") == {"type": "typing", "user": "alice", "with": "alice", "ttl": 6}
    event = bob.recv_type("direct")
    assert (event["user"], event["to"], event["msg"]) == ("alice", "bob", "hi, I came from a link")
    expect(alice.messages("hi, I came from a link")).to_have_attribute("data-id", str(event["id"]))

    # A name that never connected: the server refuses, and says why next to the message.
    alice.page.goto(chat_server.http_url + "/?with=nobody")
    alice.wait_online()
    expect(alice.page.locator("#chat-title")).to_have_text("nobody")
    alice.send("anyone there?")
    refused = alice.messages("anyone there?")
    expect(refused).to_have_class(re.compile(r"\bfailed\b"))
    expect(refused.locator(".status")).to_contain_text("no user named 'nobody'")
    expect(alice.input).to_be_focused()
    refused.get_by_role("button", name="Delete").click()
    expect(alice.messages("anyone there?")).to_have_count(0)


def test_reconnects_after_a_server_restart_and_shows_what_was_missed_once(chat_server, open_page, clients):
    bob = clients(chat_server, "bob")
    alice = open_page(chat_server, "alice")
    bob.send("before the outage")
    expect(alice.messages("before the outage")).to_have_count(1)

    chat_server.kill()
    expect(alice.conn).to_have_attribute("data-state", "reconnecting")
    expect(alice.page.locator("#banner")).to_be_visible()
    expect(alice.page.locator("#conn-text")).to_have_text("Reconnecting…")
    # Keep the page off the network while the others talk, so what they say can only reach it as a replay.
    alice.context.set_offline(True)
    open_page.expected_console.append(r"WebSocket connection to .* failed")
    alice.send("written while offline")
    expect(alice.messages("written while offline")).to_have_class(re.compile(r"\bpending\b"))

    chat_server.start()
    bob = clients(chat_server, "bob")
    missed = [f"missed {i}" for i in range(1, 4)]
    for i, text in enumerate(missed):
        bob.send({"type": "message", "msg": text, "ref": i})
    bob.send({"type": "direct", "to": "alice", "msg": "missed direct", "ref": 9})
    for _ in range(4):
        bob.recv_type("ack")

    alice.context.set_offline(False)
    alice.wait_online()
    for text in ["before the outage", *missed]:
        expect(alice.messages(text)).to_have_count(1)
    expect(alice.conv("bob").locator(".badge")).to_have_text("1")
    mine = alice.messages("written while offline")
    expect(mine).to_have_attribute("data-id", re.compile(r"^\d+$"))
    expect(mine).not_to_have_class(re.compile(r"\bpending\b"))
    assert bob.recv_type("message")["msg"] == "written while offline"
    expect(alice.page.locator("#banner")).to_be_hidden()
    assert any(re.search(r"/ws/alice\?since=\d+&resume=[\w-]+$", url) for url in alice.sockets), alice.sockets
    assert alice.texts() == ["before the outage", *missed, "written while offline"]
    alice.open("bob")
    expect(alice.messages("missed direct")).to_have_count(1)


def test_user_text_is_shown_as_text_and_never_run(chat_server, open_page, clients):
    payloads = ["<img src=x onerror=alert(1)>", "<script>alert(1)</script>", '"><svg onload=alert(1)>']
    alice = open_page(chat_server, "alice")
    bob = open_page(chat_server, "bob")
    carol = clients(chat_server, "carol")
    for text in payloads:
        alice.send(text)
    carol.send({"type": "direct", "to": "bob", "msg": "<b onmouseover=alert(1)>bold?</b>"})
    for page in (alice, bob):
        for text in payloads:
            expect(page.messages().locator(".text", has_text=text)).to_have_count(1)
    expect(bob.conv("carol").locator(".conv-preview")).to_have_text("<b onmouseover=alert(1)>bold?</b>")
    bob.open("carol")
    expect(bob.messages().locator(".text")).to_have_text("<b onmouseover=alert(1)>bold?</b>")
    bob.page.locator("#thread .text").hover()
    for page in (alice, bob):
        counts = page.page.evaluate(
            "() => ({img: document.querySelectorAll('img').length, svgInThread: document.querySelectorAll('#thread svg').length,"
            " b: document.querySelectorAll('#app b').length,"
            " scripts: Array.from(document.scripts).map(s => s.src)})"
        )
        assert counts["img"] == 0 and counts["svgInThread"] == 0 and counts["b"] == 0, counts
        assert [s.rsplit("/", 1)[-1] for s in counts["scripts"]] == ["app.js"], counts
        assert page.dialogs == []


def test_phone_width_has_no_horizontal_overflow(chat_server, open_page):
    alice = open_page(chat_server, "alice", viewport=PHONE)
    bob = open_page(chat_server, "bob")
    bob.send("hi from a desktop")
    alice.send("a long word: " + "x" * 300)
    alice.send("https://example.invalid/" + "a-very-long-path/" * 20)
    expect(alice.messages("hi from a desktop")).to_have_count(1)
    expect(alice.messages().last).to_have_attribute("data-id", re.compile(r"^\d+$"))
    expect(alice.page.locator("#sidebar")).to_be_hidden()  # one column: the conversation
    assert no_horizontal_overflow(alice.page) is True
    save_screenshot(alice.page, "chat-phone.png")

    alice.page.locator("#back").click()  # to the list of conversations
    expect(alice.page.locator("#sidebar")).to_be_visible()
    expect(alice.page.locator("#chat")).to_be_hidden()
    expect(alice.page.locator('#online li[data-user="bob"]')).to_be_visible()
    assert no_horizontal_overflow(alice.page) is True
    alice.page.locator('#online li[data-user="bob"] button').click()
    expect(alice.page.locator("#chat-title")).to_have_text("bob")
    expect(alice.input).to_be_visible()
    assert no_horizontal_overflow(alice.page) is True


def test_page_sends_a_content_security_policy_and_has_no_inline_script(chat_server):
    with urllib.request.urlopen(chat_server.http_url + "/", timeout=5) as r:
        csp = r.headers["Content-Security-Policy"]
        html = r.read().decode()
    assert csp, "no Content-Security-Policy header"
    directives = {d.split()[0]: d.split()[1:] for d in csp.split(";") if d.strip()}
    assert directives["script-src"] == ["'self'"]
    assert "'unsafe-inline'" not in csp and "'unsafe-eval'" not in csp
    assert directives["default-src"] == ["'self'"]
    assert directives["frame-ancestors"] == ["'none'"]

    class Inline(HTMLParser):
        problems = []

        def handle_starttag(self, tag, attrs):
            attrs = dict(attrs)
            if tag == "script" and not attrs.get("src"):
                self.problems.append("inline <script>")
            for name, value in attrs.items():
                if name.startswith("on") or name == "style":
                    self.problems.append(f"{name}= on <{tag}>")
                if name in ("src", "href") and value and re.match(r"(?i)^(https?:)?//", value):
                    self.problems.append(f"non-local asset {value}")

    parser = Inline()
    parser.feed(html)
    assert parser.problems == []
    for asset in re.findall(r'(?:src|href)="(/static/[^"]+)"', html):
        with urllib.request.urlopen(chat_server.http_url + asset, timeout=5) as r:
            assert r.status == 200
    with urllib.request.urlopen(chat_server.http_url + "/healthz", timeout=5) as r:
        assert json.load(r)["status"] == "ok"


def test_every_script_module_is_served_as_javascript_with_nosniff(chat_server):
    # A module script (and each module it imports) runs only with a JavaScript MIME type; nosniff makes the browser check it.
    static = os.path.join(ROOT, "static")
    modules = [os.path.join(static, "app.js")] + sorted(glob.glob(os.path.join(static, "js", "**", "*.js"), recursive=True))
    assert len(modules) > 1
    for path in modules:
        url = chat_server.http_url + "/static/" + os.path.relpath(path, static).replace(os.sep, "/")
        with urllib.request.urlopen(url, timeout=5) as r:
            assert re.match(r"(text|application)/javascript\b", r.headers["Content-Type"]), (url, r.headers["Content-Type"])
            assert r.headers["X-Content-Type-Options"] == "nosniff", url
        with open(path, encoding="utf-8") as f:
            assert f.readline().startswith("// "), f"{path} does not start with a one-line comment saying its purpose"


def test_a_message_over_max_message_size_is_refused_on_the_page_and_one_at_the_limit_is_delivered(start_server, sqlite_url, open_page):
    limit = 400
    server = start_server(sqlite_url, max_message_size=limit)
    alice = open_page(server)
    frames = []  # what alice's page sent on its sockets, in order
    alice.page.on("websocket", lambda ws: ws.on("framesent", lambda payload: frames.append(payload)))
    alice.join("alice")
    bob = open_page(server, "bob")
    expect(alice.page.locator("body")).to_have_attribute("data-max-message-size", str(limit))

    # The page counts the whole command in UTF-8 bytes, as the server does: learn its envelope from a first message.
    alice.send("probe")
    expect(bob.messages("probe")).to_have_count(1)
    probe = next(json.loads(f) for f in frames if isinstance(f, str) and '"probe"' in f)
    seq, stamp = probe["ref"][1:].split(".")
    envelope = {**probe, "msg": "", "ref": f"m{int(seq) + 1}.{stamp}"}  # the next send's ref: the next number
    room = limit - len(json.dumps(envelope, ensure_ascii=False, separators=(",", ":")).encode())
    at_limit = "é" * (room // 2) + "x" * (room % 2)  # 2 bytes a character: fewer characters than bytes

    alice.send(at_limit)
    expect(bob.messages(at_limit)).to_have_count(1)
    expect(alice.messages(at_limit)).to_have_attribute("data-id", re.compile(r"^\d+$"))
    assert [len(f.encode()) for f in frames if isinstance(f, str) and at_limit in f] == [limit]
    expect(alice.page.locator("#notice")).to_be_hidden()

    over = at_limit + "é"
    alice.send(over)
    expect(alice.page.locator("#notice")).to_be_visible()
    expect(alice.page.locator("#notice-text")).to_have_text(re.compile(r"too long to send .*the limit is 400 B"))
    expect(alice.input).to_have_value(over)  # kept, to shorten
    expect(alice.page.locator("#thread li.msg.pending, #thread li.msg.failed")).to_have_count(0)

    # Nothing of it was sent: a message sent after it arrives, with nothing in between, on the same socket.
    alice.input.fill("")
    alice.send("after")
    expect(bob.messages("after")).to_have_count(1)
    assert bob.texts()[-2:] == [at_limit, "after"]
    assert not any(over in f for f in frames if isinstance(f, str))
    assert max(len(f.encode() if isinstance(f, str) else f) for f in frames) == limit
    assert len(alice.sockets) == 1
    expect(alice.conn).to_have_attribute("data-state", "online")


def test_screenshot_of_a_short_conversation(chat_server, open_page, clients):
    dave = clients(chat_server, "dave")
    alice = open_page(chat_server, "alice")
    bob = open_page(chat_server, "bob")
    carol = open_page(chat_server, "carol")
    conversation = [
        (bob, "Morning everyone! Is the release still on for today?"),
        (alice, "Yes, final checks are running now."),
        (alice, "CI is green on both stores, so we're good to go."),
        (carol, "Nice. I'll update the changelog and tag it."),
        (bob, "Great work, all!"),
    ]
    for who, text in conversation:
        who.send(text)
        expect(alice.messages(text)).to_have_count(1)
    dave.send({"type": "direct", "to": "alice", "msg": "Got a minute to look at my PR after the release?"})
    expect(alice.conv("dave").locator(".badge")).to_have_text("1")
    alice.input.fill("Sounds good, shipping it now")
    for page in (alice, bob, carol):
        expect(page.messages().last).to_have_attribute("data-id", re.compile(r"^\d+$"))
    alice.page.set_viewport_size({"width": 1100, "height": 640})
    expect(alice.messages().last).to_be_in_viewport()
    path = save_screenshot(alice.page, "chat-desktop.png")
    assert os.path.getsize(path) > 10_000  # the README's picture is tests/test_screenshot_browser.py's (a room)


def test_a_replay_longer_than_max_replay_is_paged_on_until_nothing_is_missed(start_server, sqlite_url, open_page, clients):
    # The server replays at most 2 items on reconnect, then says "next": the page asks for the rest until it has all.
    server = start_server(sqlite_url, max_replay=2, bots="")
    bob = clients(server, "bob")
    alice = open_page(server, "alice")
    bob.send("before the outage")
    expect(alice.messages("before the outage")).to_have_count(1)
    server.kill()
    expect(alice.conn).to_have_attribute("data-state", "reconnecting")
    # Off the network while bob talks, so what he says can only reach the page as a replay (as in the test above).
    alice.context.set_offline(True)
    open_page.expected_console.append(r"WebSocket connection to .* failed")
    server.start()
    bob = clients(server, "bob")
    missed = [f"missed {i}" for i in range(1, 8)]
    for i, text in enumerate(missed):
        bob.send({"type": "message", "msg": text, "ref": i})
    for _ in missed:
        bob.recv_type("ack")
    alice.context.set_offline(False)
    alice.wait_online()
    for text in missed:
        expect(alice.messages(text)).to_have_count(1)
    assert alice.texts() == ["before the outage", *missed]
