"""The chat page's conversation list, unread counts and typing notices as the server keeps them, in headless Chromium.

Each test runs against the real server (a subprocess on a free port, SQLite store). Nothing here sleeps to
synchronise: Playwright's expect() and wait_until() poll an observable condition until their timeout.
"""
import json
import re

import pytest

from tests.support.browser import DESKTOP, require_browser
from tests.support.polling import wait_until

require_browser("tests/test_conversations_browser.py")

from playwright.sync_api import expect  # noqa: E402  (after require_browser, which checks that playwright is there)


@pytest.fixture
def chat_server(start_server, sqlite_url):
    return start_server(sqlite_url)


def record_frames(chat):
    """What `chat`'s page sends and receives on its sockets from now on, as parsed JSON, in order."""
    sent, received = [], []

    def watch(ws):
        ws.on("framesent", lambda payload: isinstance(payload, str) and sent.append(json.loads(payload)))
        ws.on("framereceived", lambda payload: isinstance(payload, str) and received.append(json.loads(payload)))

    chat.page.on("websocket", watch)
    return sent, received


def playwright_sleep(page):
    """A pause for wait_until() that lets Playwright run: its sync API records socket frames only while it is called."""
    return lambda seconds: page.wait_for_timeout(seconds * 1000)


def of_type(frames, kind):
    return [f for f in frames if f.get("type") == kind]


def without_ref(frame):
    return {k: v for k, v in frame.items() if k != "ref"}


def send_acked(client, commands):
    """Send each command (with a ref) from a raw client; the message ids the server gave them, in order."""
    for i, command in enumerate(commands):
        client.send({**command, "ref": i})
    acks = {}
    while len(acks) < len(commands):
        ack = client.recv_type("ack")
        acks[ack["ref"]] = ack["id"]
    return [acks[i] for i in range(len(commands))]


def list_state(chat):
    """The conversation list as shown: (key, badge or None, preview) per entry, in order."""
    return chat.page.locator("#conversations li.conv").evaluate_all(
        """els => els.map(li => {
            const badge = li.querySelector('.badge');
            return [li.dataset.conv, badge.hidden ? null : badge.textContent, li.querySelector('.conv-preview').textContent];
        })"""
    )


def storage_keys(chat):
    return sorted(chat.page.evaluate("() => Object.keys(localStorage)"))


# ---- the tests -------------------------------------------------------------------------------


def test_a_read_in_one_tab_clears_the_unread_count_in_the_other(chat_server, open_page, clients):
    bob = clients(chat_server, "bob")
    tab_a = open_page(chat_server)
    sent_a, received_a = record_frames(tab_a)
    tab_a.join("alice")
    sent_b = []  # what tab B sends: it opens on its own, so its socket is watched from the context
    tab_a.context.on("page", lambda page: page.on("websocket", lambda ws: ws.on("framesent", lambda f: sent_b.append(json.loads(f)))))
    tab_b = open_page(chat_server, context=tab_a.context)  # same profile: the remembered name joins again
    tab_b.wait_online()

    ids = send_acked(bob, [{"type": "direct", "to": "alice", "msg": f"unread {i}"} for i in range(1, 4)])
    for tab in (tab_a, tab_b):
        expect(tab.conv("bob").locator(".badge")).to_have_text("3")
        expect(tab.conv("bob").locator(".conv-preview")).to_have_text("unread 3")
        expect(tab.page).to_have_title("(3) Chat")

    # Tab A opens the conversation: it reads up to the newest message it shows, and the server tells tab B.
    tab_a.open("bob")
    expect(tab_a.messages("unread 3")).to_have_count(1)
    expect(tab_a.conv("bob").locator(".badge")).to_be_hidden()
    expect(tab_b.conv("bob").locator(".badge")).to_be_hidden()
    expect(tab_b.page).to_have_title("Chat")
    expect(tab_a.page).to_have_title("Chat")
    pump = playwright_sleep(tab_a.page)
    wait_until(lambda: of_type(sent_a, "read"), sleep=pump, message="tab A's read")
    assert [without_ref(f) for f in of_type(sent_a, "read")] == [{"type": "read", "with": "bob", "id": ids[-1]}]

    # A burst of messages while it is open is read with fewer frames than messages, the last up to the newest.
    burst = send_acked(bob, [{"type": "direct", "to": "alice", "msg": f"burst {i}"} for i in range(1, 9)])
    expect(tab_a.messages("burst 8")).to_have_count(1)
    expect(tab_b.conv("bob").locator(".conv-preview")).to_have_text("burst 8")
    expect(tab_b.conv("bob").locator(".badge")).to_be_hidden()  # read up to burst 8 in tab A
    wait_until(lambda: of_type(sent_a, "read")[-1]["id"] == burst[-1], sleep=pump, message="tab A's read of the burst")
    reads = of_type(sent_a, "read")[1:]
    assert 1 <= len(reads) < len(burst), reads
    assert [r["id"] for r in reads] == sorted(r["id"] for r in reads)
    assert without_ref(reads[-1]) == {"type": "read", "with": "bob", "id": burst[-1]}

    # The other way round, in the group chat: tab B has it open and reads it (by room), which clears it in tab A.
    group = send_acked(bob, [{"type": "message", "msg": "to everyone"}])
    expect(tab_b.messages("to everyone")).to_have_count(1)
    wait_until(lambda: {"type": "read", "room": "general", "id": group[0]} in map(without_ref, sent_b), sleep=pump, message="tab B's read of the group chat")
    wait_until(lambda: {"type": "read", "room": "general", "id": group[0]} in of_type(received_a, "read"), sleep=pump, message="tab B's read, as tab A hears it")
    expect(tab_a.conv("*").locator(".conv-preview")).to_have_text("bob: to everyone")
    expect(tab_a.conv("*").locator(".badge")).to_be_hidden()
    expect(tab_a.page).to_have_title("Chat")
    for tab in (tab_a, tab_b):
        assert storage_keys(tab) == ["chat.name", "chat.resume.alice"]  # no conversation list, no read state


def test_a_new_browser_context_shows_the_same_conversations_and_counts(chat_server, open_page, clients, browser):
    bob = clients(chat_server, "bob")
    carol = clients(chat_server, "carol")
    dave = clients(chat_server, "dave")
    alice = open_page(chat_server)
    _, received = record_frames(alice)
    alice.join("alice")
    send_acked(dave, [{"type": "direct", "to": "alice", "msg": "from dave, read"}])
    send_acked(bob, [{"type": "direct", "to": "alice", "msg": f"from bob {i}"} for i in (1, 2)])
    send_acked(carol, [{"type": "direct", "to": "alice", "msg": "from carol"}, {"type": "message", "msg": "carol to all"}])
    expect(alice.conv("carol").locator(".badge")).to_have_text("1")
    expect(alice.conv("bob").locator(".badge")).to_have_text("2")
    expect(alice.messages("carol to all")).to_have_count(1)
    alice.open("dave")
    expect(alice.messages("from dave, read")).to_have_count(1)
    alice.open("*")
    # The server has stored both markers once it has told the page about them.
    wait_until(
        lambda: {"dave", "general"} <= {f.get("with", f.get("room")) for f in of_type(received, "read")},
        sleep=playwright_sleep(alice.page),
        message="the reads of dave and the group chat",
    )
    expect(alice.page).to_have_title("(3) Chat")
    before = list_state(alice)
    assert before == [
        ["*", None, "carol: carol to all"],
        ["carol", "1", "from carol"],
        ["bob", "2", "from bob 2"],
        ["dave", None, "from dave, read"],
    ]

    # Another browser (no storage of the first): the guest's resume token is all it takes to be alice again.
    token = alice.page.evaluate("() => localStorage.getItem('chat.resume.alice')")
    context = browser.new_context(viewport=DESKTOP)
    context.add_init_script(f"localStorage.setItem('chat.resume.alice', {json.dumps(token)})")
    elsewhere = open_page(chat_server, context=context)
    elsewhere.join("alice")
    expect(elsewhere.conv("dave")).to_have_count(1)
    expect(elsewhere.page).to_have_title("(3) Chat")
    assert list_state(elsewhere) == before
    for page in (alice, elsewhere):
        assert storage_keys(page) == ["chat.name", "chat.resume.alice"]


def test_typing_is_sent_while_writing_and_shown_until_the_message_arrives(start_server, sqlite_url, open_page, clients):
    # A long ttl: a notice that goes away before it can only have been ended by the message.
    server = start_server(sqlite_url, typing_ttl=60)
    alice = open_page(server, "alice")
    bob = open_page(server)
    bob_sent, _ = record_frames(bob)
    bob.join("bob")
    typing = alice.page.locator("#typing")
    alice.page.locator('#online li[data-user="bob"] button').click()
    expect(alice.page.locator("#chat-title")).to_have_text("bob")
    bob.page.locator('#online li[data-user="alice"] button').click()
    expect(bob.page.locator("#chat-title")).to_have_text("alice")
    expect(typing).to_be_hidden()

    bob.input.press_sequentially("hello")  # five input events, well within one typing_interval (2 s)
    expect(typing).to_have_text("bob is typing…")
    expect(typing).to_be_visible()
    assert [without_ref(f) for f in of_type(bob_sent, "typing")] == [{"type": "typing", "with": "alice"}]
    bob.input.press("Enter")
    expect(alice.messages("hello")).to_have_count(1)
    expect(typing).to_be_hidden()

    # The group chat: notices from its members are shown only while it is open, by how many type.
    carol = clients(server, "carol")
    dave = clients(server, "dave")
    erin = clients(server, "erin")
    carol.send({"type": "typing", "room": "general"})
    alice.open("*")
    expect(typing).to_have_text("carol is typing…")
    dave.send({"type": "typing", "room": "general"})
    expect(typing).to_have_text("carol and dave are typing…")
    erin.send({"type": "typing", "room": "general"})
    expect(typing).to_have_text("several people are typing…")
    alice.open("bob")
    expect(typing).to_be_hidden()
    alice.open("*")
    expect(typing).to_have_text("several people are typing…")
    erin.send({"type": "message", "msg": "<b>erin</b> is done"})
    expect(alice.messages("is done")).to_have_count(1)
    expect(typing).to_have_text("carol and dave are typing…")
    dave.send({"type": "message", "msg": "dave too"})
    expect(typing).to_have_text("carol is typing…")
    expect(typing.locator("*")).to_have_count(0)  # text only


def test_a_typing_notice_goes_away_after_its_ttl(start_server, sqlite_url, open_page, clients):
    server = start_server(sqlite_url, typing_ttl=1)
    bob = clients(server, "bob")
    alice = open_page(server, "alice", path="/?with=bob")
    expect(alice.page.locator("#chat-title")).to_have_text("bob")
    typing = alice.page.locator("#typing")
    bob.send({"type": "typing", "with": "alice"})
    expect(typing).to_have_text("bob is typing…")
    expect(typing).to_be_hidden()  # after 1 s, with nothing else happening
    expect(alice.messages()).to_have_count(0)
