"""The message lifecycle on the chat page, in headless Chromium over the real server: edits, deletions, reactions and
replies made on one page shown on the other (live, and after a reconnect as a ?since= replay), a moderator's delete in
a room, refusals shown readably, links made clickable (and nothing else), user text never run, day separators across
history pages and live messages.

One server (SQLite) serves the module; every test uses names and texts of its own. The replay test has its own server,
which it restarts. Nothing here sleeps to synchronise: expect() polls an observable condition until its timeout.
"""
import re
import sqlite3
from datetime import datetime, timezone

import pytest

from tests.support.browser import require_browser
from tests.support.clients import post
from tests.support.servers import ServerProcess
from tests.support.webusers import unique

require_browser("tests/test_lifecycle_browser.py")

from playwright.sync_api import expect  # noqa: E402  (after require_browser, which checks that playwright is there)

MAX_REACTION_KEYS = 3


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """One server for the module; a message carries at most MAX_REACTION_KEYS emoji, so a refusal is easy to cause."""
    directory = tmp_path_factory.mktemp("lifecycle-browser")
    server = ServerProcess(f"sqlite:///{directory / 'chat.db'}", directory / "server.log", bots="",
                           max_reaction_keys=MAX_REACTION_KEYS).start()
    server.db_path = directory / "chat.db"
    yield server
    server.stop()


def names(*shorts):
    return [unique(s)[:32] for s in shorts]


def message(chat, text):
    """The one message of the open conversation whose text contains `text` (exactly one, or expect() fails), once the
    server stored it, located by its id (so it stays found when its text changes)."""
    loc = chat.messages().filter(has=chat.page.locator(".bubble .text", has_text=text))
    expect(loc).to_have_count(1)
    expect(loc).to_have_attribute("data-id", re.compile(r"^\d+$"))
    return chat.page.locator(f'#thread li.msg[data-id="{loc.get_attribute("data-id")}"]')


def act(chat, li, action):
    """Click one of a message's action buttons (Reply, React, Edit, Delete), as a mouse user does: hover, then click."""
    li.hover()
    li.locator(f".msg-actions .act-{action}").click()


def sent_frames(chat):
    sent = []
    chat.page.on("websocket", lambda ws: ws.on("framesent", lambda p: sent.append(p)))
    return sent


def test_an_edit_and_a_delete_on_one_page_show_on_the_other(server, open_page):
    a, b = names("ed-alice", "ed-bob")
    alice = open_page(server, a)
    bob = open_page(server, b)
    text = f"meet at 8 {a}"
    alice.send(text)
    mine = message(alice, text)
    expect(mine).to_have_attribute("data-id", re.compile(r"^\d+$"))
    theirs = message(bob, text)
    # Bob may reply and react to alice's message, not edit or delete it (general has no moderators).
    theirs.hover()
    expect(theirs.locator(".act-reply")).to_be_visible()
    expect(theirs.locator(".act-edit")).to_have_count(0)
    expect(theirs.locator(".act-delete")).to_be_hidden()  # there for a server admin only (the last test)

    # Alice edits: the inline editor saves on Enter; bob sees the new text marked edited, with the time in a title.
    act(alice, mine, "edit")
    editor = mine.locator(".edit-input")
    expect(editor).to_be_focused()
    expect(editor).to_have_value(text)
    editor.fill(f"meet at 9 {a}")
    editor.press("Enter")
    expect(mine.locator(".edit-form")).to_have_count(0)
    expect(mine.locator(".text")).to_have_text(f"meet at 9 {a}")
    for li in (mine, message(bob, f"meet at 9 {a}")):
        expect(li.locator(".edited")).to_have_text("(edited)")
        expect(li.locator(".edited")).to_have_attribute("title", re.compile(r"^Edited \S"))
    expect(bob.messages(text)).to_have_count(0)

    # Escape cancels an edit: nothing is sent, the text stays.
    act(alice, mine, "edit")
    mine.locator(".edit-input").fill("never sent")
    mine.locator(".edit-input").press("Escape")
    expect(mine.locator(".edit-form")).to_have_count(0)
    expect(mine.locator(".text")).to_have_text(f"meet at 9 {a}")
    expect(mine.locator(".act-edit")).to_be_focused()

    # Delete asks first; Cancel keeps it, Delete makes it a tombstone on both pages: no text, no actions.
    act(alice, mine, "delete")
    expect(mine.locator(".delete-confirm")).to_contain_text("Delete this message for everyone?")
    mine.locator(".delete-no").click()
    expect(mine.locator(".delete-confirm")).to_have_count(0)
    act(alice, mine, "delete")
    mine.locator(".delete-yes").click()
    for chat in (alice, bob):
        tomb = chat.page.locator(f'#thread li.msg[data-id="{mine.get_attribute("data-id")}"]')
        expect(tomb).to_have_class(re.compile(r"\bdeleted\b"))
        expect(tomb.locator(".bubble")).to_have_text("Message deleted")
        expect(tomb.locator(".msg-actions")).to_have_count(0)
        expect(chat.messages(f"meet at 9 {a}")).to_have_count(0)
    expect(bob.conv("*").locator(".conv-preview")).to_contain_text("Message deleted")


def test_reactions_added_and_removed_on_one_page_show_on_the_other(server, open_page):
    a, b = names("re-alice", "re-bob")
    alice = open_page(server, a)
    bob = open_page(server, b)
    text = f"ship it? {a}"
    alice.send(text)
    expect(message(alice, text)).to_have_attribute("data-id", re.compile(r"^\d+$"))
    theirs = message(bob, text)

    # Bob picks 🎉 from the picker, with the keyboard: it opens focused on its first emoji, Escape closes it.
    act(bob, theirs, "react")
    picker = theirs.locator(".emoji-picker")
    expect(picker.locator(".picker-emoji").first).to_be_focused()
    bob.page.keyboard.press("Escape")
    expect(picker).to_have_count(0)
    expect(theirs.locator(".act-react")).to_be_focused()
    bob.page.keyboard.press("Enter")
    picker.locator('.picker-emoji[data-key="🎉"]').click()
    expect(picker).to_have_count(0)
    for chat in (alice, bob):
        chip = message(chat, text).locator('.reaction-chip[data-key="🎉"]')
        expect(chip).to_have_text("🎉1")
        expect(chip).to_have_attribute("title", re.compile(f"^{'You' if chat is bob else re.escape(b)} reacted with 🎉$"))
    expect(theirs.locator(".reaction-chip")).to_have_attribute("aria-pressed", "true")
    mine = message(alice, text)
    expect(mine.locator(".reaction-chip")).to_have_attribute("aria-pressed", "false")

    # Alice clicks the chip: hers is added (highlighted for her only); bob clicks his: his is taken back.
    mine.locator('.reaction-chip[data-key="🎉"]').click()
    expect(mine.locator(".reaction-chip")).to_have_class(re.compile(r"\bmine\b"))
    expect(theirs.locator(".reaction-chip")).to_have_text("🎉2")
    expect(theirs.locator(".reaction-chip")).to_have_attribute("title", f"You, {a} reacted with 🎉")
    theirs.locator(".reaction-chip").click()
    expect(mine.locator(".reaction-chip")).to_have_text("🎉1")
    expect(mine.locator(".reaction-chip")).to_have_attribute("title", "You reacted with 🎉")
    expect(theirs.locator(".reaction-chip")).not_to_have_class(re.compile(r"\bmine\b"))
    mine.locator(".reaction-chip").click()
    for li in (mine, theirs):
        expect(li.locator(".reactions")).to_have_count(0)

    # Past the server's max_reaction_keys, a new emoji is refused (forbidden): the page says so, in words.
    for key in ["👍", "🔥", "👀"]:
        act(bob, theirs, "react")
        theirs.locator(f'.emoji-picker .picker-emoji[data-key="{key}"]').click()
        expect(mine.locator(f'.reaction-chip[data-key="{key}"]')).to_have_count(1)
    act(bob, theirs, "react")
    theirs.locator('.emoji-picker .picker-emoji[data-key="❤️"]').click()
    expect(bob.page.locator("#notice-text")).to_have_text(
        f"Could not react to that message: a message carries at most {MAX_REACTION_KEYS} different reactions")
    expect(theirs.locator(".reaction-chip")).to_have_count(MAX_REACTION_KEYS)


def test_a_reply_carries_reply_to_and_shows_its_quote_which_follows_the_original(server, open_page):
    a, b = names("rp-alice", "rp-bob")
    alice = open_page(server, a)
    bob = open_page(server)
    bob_sent = sent_frames(bob)
    bob.join(b)
    original = f"lunch at noon? {a}"
    alice.send(original)
    expect(message(alice, original)).to_have_attribute("data-id", re.compile(r"^\d+$"))
    original_id = int(message(alice, original).get_attribute("data-id"))

    act(bob, message(bob, original), "reply")
    expect(bob.page.locator("#reply-bar")).to_be_visible()
    expect(bob.page.locator("#reply-what")).to_have_text(a + original)
    expect(bob.input).to_be_focused()
    # Escape in the composer cancels the reply; Reply again and send.
    bob.input.press("Escape")
    expect(bob.page.locator("#reply-bar")).to_be_hidden()
    act(bob, message(bob, original), "reply")
    bob.send(f"yes please {b}")
    expect(bob.page.locator("#reply-bar")).to_be_hidden()
    assert any(f'"reply_to":{original_id}' in f for f in bob_sent if isinstance(f, str)), bob_sent
    for chat in (alice, bob):
        answer = message(chat, f"yes please {b}")
        expect(answer.locator(".quote")).to_have_text(f"Reply to {a}{original}")
        expect(answer).to_have_attribute("data-id", re.compile(r"^\d+$"))

    # Clicking the quote brings the original into view, highlighted.
    message(alice, f"yes please {b}").locator(".quote").click()
    expect(message(alice, original)).to_have_class(re.compile(r"\bflash\b"))

    # The original edited: the quote follows; deleted: "deleted message". After a reload the history says the same.
    act(alice, message(alice, original), "edit")
    message(alice, original).locator(".edit-input").fill(f"lunch at one? {a}")
    message(alice, original).locator(".edit-input").press("Enter")
    expect(message(bob, f"yes please {b}").locator(".quote")).to_have_text(f"Reply to {a}lunch at one? {a}")
    act(alice, message(alice, f"lunch at one? {a}"), "delete")
    message(alice, f"lunch at one? {a}").locator(".delete-yes").click()
    for chat in (alice, bob):
        expect(message(chat, f"yes please {b}").locator(".quote")).to_have_text("Reply to deleted message")
    bob.page.reload()
    bob.wait_online()
    expect(message(bob, f"yes please {b}").locator(".quote")).to_have_text("Reply to deleted message")

    # A reply to a message deleted before it was sent is refused (not_found): shown next to it, in words.
    alice.send(f"second thoughts {a}")
    act(bob, message(bob, f"second thoughts {a}"), "reply")
    act(alice, message(alice, f"second thoughts {a}"), "delete")
    message(alice, f"second thoughts {a}").locator(".delete-yes").click()
    expect(bob.messages(f"second thoughts {a}")).to_have_count(0)
    bob.send(f"too late {b}")
    expect(bob.messages(f"too late {b}")).to_have_class(re.compile(r"\bfailed\b"))
    expect(bob.messages(f"too late {b}").locator(".status-text")).to_have_text("Not sent: the message it answers was deleted.")


def test_links_are_clickable_and_nothing_else_is_a_link_or_runs(server, open_page):
    a, b = names("ln-alice", "ln-bob")
    alice = open_page(server, a)
    bob = open_page(server, b)
    text = f"docs at https://example.com/a_(b)?q=1#x. and (see http://example.org/path) {a}"
    hostile = [f"javascript:window.__pwned=1 {a}", f"<img src=x onerror=window.__pwned=1> {a}",
               f"data:text/html,<script>window.__pwned=1</script> {a}", f"https://\"onmouseover=window.__pwned=1 {a}"]
    for t in [text, *hostile]:
        alice.send(t)
    for chat in (alice, bob):
        links = message(chat, text).locator("a")
        expect(links).to_have_count(2)
        expect(links.nth(0)).to_have_text("https://example.com/a_(b)?q=1#x")
        expect(links.nth(0)).to_have_attribute("href", "https://example.com/a_(b)?q=1#x")
        expect(links.nth(1)).to_have_text("http://example.org/path")
        for i in range(2):
            expect(links.nth(i)).to_have_attribute("rel", "noopener noreferrer")
            expect(links.nth(i)).to_have_attribute("target", "_blank")
        expect(message(chat, text).locator(".text")).to_have_text(text)
        for t in hostile:
            li = message(chat, t)
            expect(li.locator(".text")).to_have_text(t)
            expect(li.locator("a")).to_have_count(0)
        message(chat, hostile[0]).locator(".text").click()
        message(chat, hostile[1]).locator(".text").hover()
        assert chat.page.evaluate("() => window.__pwned === undefined && document.querySelectorAll('#thread img').length === 0")
    # An edit's text is linked the same way.
    act(alice, message(alice, hostile[0]), "edit")
    message(alice, hostile[0]).locator(".edit-input").fill(f"now https://example.net/ {a}")
    message(alice, hostile[0]).locator(".edit-input").press("Enter")
    expect(message(bob, f"now https://example.net/ {a}").locator("a")).to_have_attribute("href", "https://example.net/")


SPLITS = [
    ("see https://example.com.", [["see ", None], ["https://example.com", "https://example.com/"], [".", None]]),
    ("(https://example.com/x)", [["(", None], ["https://example.com/x", "https://example.com/x"], [")", None]]),
    ("https://en.wikipedia.org/wiki/Foo_(bar)", [["https://en.wikipedia.org/wiki/Foo_(bar)", "https://en.wikipedia.org/wiki/Foo_(bar)"]]),
    ("HTTPS://EXAMPLE.COM/A!?", [["HTTPS://EXAMPLE.COM/A", "https://example.com/A"], ["!?", None]]),
    ("javascript:alert(1) data:text/html,x ftp://example.com", [["javascript:alert(1) data:text/html,x ftp://example.com", None]]),
    ("http:// https://?x xhttps://example.com", [["http:// https://?x xhttps://example.com", None]]),
    ("a https://x.io, b https://y.io; c", [["a ", None], ["https://x.io", "https://x.io/"], [", b ", None],
                                           ["https://y.io", "https://y.io/"], ["; c", None]]),
    ("", [["", None]]),
]


def test_the_link_splitter_keeps_the_text_and_links_only_http_addresses(server, open_page):
    """js/links.js itself, imported by the page: each text splits as expected and joins back to itself."""
    chat = open_page(server)
    texts = [text for text, _ in SPLITS]
    got = chat.page.evaluate(
        "async (texts) => { const { splitLinks } = await import('/static/js/links.js');"
        " return texts.map(t => splitLinks(t).map(p => [p.text, p.href || null])); }", texts)
    for (text, expected), parts in zip(SPLITS, got):
        assert parts == expected, text
        assert "".join(p[0] for p in parts) == text


def set_time(db_path, ids, when):
    """Move messages `ids` to `when` (UTC) in the server's database, as if they had been written then."""
    ms = int(when.timestamp() * 1000)
    with sqlite3.connect(db_path, timeout=10) as db:
        db.executemany("UPDATE messages SET created_ms = ? WHERE id = ?", [(ms, i) for i in ids])


def test_day_separators_between_days_across_history_pages_and_live_messages(server, open_page, clients):
    a, b = names("dy-alice", "dy-bob")
    alice = open_page(server, a)
    bob = clients(server, b)
    acks = [post(bob, f"old {i} {b}", to=a) for i in range(52)]  # one more page than the page asks for (50), and 2
    ids = [ack["id"] for ack in acks]
    # Noon UTC is the same calendar day in any browser time zone within 11 hours of UTC.
    set_time(server.db_path, ids[:2], datetime(2026, 6, 14, 12, tzinfo=timezone.utc))
    set_time(server.db_path, ids[2:], datetime(2026, 6, 15, 12, tzinfo=timezone.utc))
    alice.page.reload()
    alice.wait_online()
    alice.open(b)
    seps = alice.page.locator("#thread li.day-sep")
    expect(seps).to_have_count(1)
    expect(seps).to_have_attribute("data-day", "2026-06-15")
    expect(alice.messages()).to_have_count(50)
    alice.page.locator("#load-older").click()
    expect(alice.messages()).to_have_count(52)
    expect(seps).to_have_count(2)
    # A live message today: a third day, below; each separator sits right before the first message of its day.
    bob.send({"type": "direct", "to": a, "msg": f"new {b}"})
    expect(message(alice, f"new {b}")).to_be_visible()
    expect(seps).to_have_count(3)
    assert seps.evaluate_all("els => els.map(e => e.dataset.day)")[:2] == ["2026-06-14", "2026-06-15"]
    expect(seps.nth(2)).to_have_text("Today")
    expect(seps.nth(0)).to_contain_text("2026")
    firsts = alice.page.locator("#thread li.day-sep + li").evaluate_all("els => els.map(e => e.querySelector('.text').textContent)")
    assert firsts == [f"old 0 {b}", f"old 2 {b}", f"new {b}"]
    # A message of the same day continues it: no new separator.
    alice.send(f"reply {a}")
    expect(message(alice, f"reply {a}")).to_have_attribute("data-id", re.compile(r"^\d+$"))
    expect(seps).to_have_count(3)


def test_a_room_owner_deletes_a_members_message_and_a_member_cannot(server, open_page):
    a, b, room = names("md-alice", "md-bob", "mdroom")
    alice = open_page(server, a)
    bob = open_page(server, b)
    alice.send(f"/create #{room}")
    expect(alice.conv("#" + room)).to_be_visible()
    bob.send(f"/join #{room}")
    expect(bob.conv("#" + room)).to_be_visible()
    bob.open("#" + room)
    alice.open("#" + room)
    bob.send(f"spam {b}")
    alice.send(f"hello {a}")
    expect(message(bob, f"hello {a}")).to_have_attribute("data-id", re.compile(r"^\d+$"))
    # Bob, a member, has no Delete on alice's message; alice, the owner, has one on his.
    message(bob, f"hello {a}").hover()
    expect(message(bob, f"hello {a}").locator(".act-delete")).to_be_hidden()
    theirs = message(alice, f"spam {b}")
    act(alice, theirs, "delete")
    expect(theirs.locator(".delete-confirm")).to_contain_text(f"Delete {b}’s message for everyone?")
    theirs.locator(".delete-yes").click()
    for chat in (alice, bob):
        expect(chat.messages(f"spam {b}")).to_have_count(0)
        expect(chat.page.locator("#thread li.msg.deleted")).to_have_count(1)


def test_edits_reactions_and_deletes_missed_while_away_come_in_the_replay_once(start_server, sqlite_url, open_page, clients):
    # Its own server, restarted: the page is away while bob changes his messages, so the changes reach it only as a
    # ?since= replay (events about messages it holds), and it ends where the server is, each message shown once.
    server = start_server(sqlite_url, bots="")
    bob = clients(server, "bob")
    alice = open_page(server, "alice")
    first = post(bob, "see you at 8")["id"]
    second = post(bob, "oops, wrong chat")["id"]
    expect(alice.messages("oops, wrong chat")).to_have_count(1)
    server.kill()
    expect(alice.conn).to_have_attribute("data-state", "reconnecting")
    alice.context.set_offline(True)
    open_page.expected_console.append(r"WebSocket connection to .* failed")
    server.start()
    bob = clients(server, "bob")
    carol = clients(server, "carol")
    for who, change in [(bob, {"type": "edit", "of": first, "msg": "see you at 9"}),
                        (carol, {"type": "react", "of": first, "key": "👍"}),
                        (bob, {"type": "react", "of": first, "key": "👍"}),
                        (carol, {"type": "react", "of": second, "key": "😂"}),
                        (bob, {"type": "delete", "of": second}),
                        (bob, {"type": "message", "msg": "after the changes", "reply_to": first})]:
        who.send(dict(change, ref="r"))
        while (answer := who.recv())["type"] not in ("ack", "error"):
            pass  # the other's changes, delivered live to this client
        assert answer["type"] == "ack", answer
    alice.context.set_offline(False)
    alice.wait_online()
    expect(alice.messages("after the changes")).to_have_count(1)
    edited = alice.page.locator(f'#thread li.msg[data-id="{first}"]')
    expect(edited.locator(".bubble .text")).to_have_text("see you at 9")
    expect(edited.locator(".edited")).to_have_text("(edited)")
    expect(edited.locator(".reaction-chip")).to_have_text("👍2")
    expect(edited.locator(".reaction-chip")).to_have_attribute("title", "carol, bob reacted with 👍")
    gone = alice.page.locator(f'#thread li.msg[data-id="{second}"]')
    expect(gone.locator(".bubble")).to_have_text("Message deleted")
    expect(gone.locator(".reactions")).to_have_count(0)
    expect(alice.messages("after the changes").locator(".quote")).to_have_text("Reply to bobsee you at 9")
    assert alice.texts() == ["see you at 9", "Message deleted", "after the changes"]
    assert any(re.search(r"/ws/alice\?since=\d+", url) for url in alice.sockets), alice.sockets


def test_a_server_admin_gets_delete_on_everyones_message_in_general(server, open_page, browser):
    import subprocess
    import sys

    from tests.support.browser import DESKTOP
    from tests.support.servers import ROOT
    from tests.support.webusers import COOKIE, signed_up

    user, root = signed_up(server, "pageroot")
    done = subprocess.run([sys.executable, "-m", "chat.admin", "grant-admin", root, "--database", server.database_url],
                          cwd=ROOT, capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stdout + done.stderr
    (b,) = names("ad-bob")
    bob = open_page(server, b)
    context = browser.new_context(viewport=DESKTOP)
    context.add_cookies([{"name": COOKIE, "value": user.http.cookies.get(COOKIE), "url": server.http_url}])
    admin = open_page(server, context=context)
    admin.wait_online()
    bob.send(f"abuse from {b}")
    theirs = message(admin, f"abuse from {b}")
    act(admin, theirs, "delete")
    expect(theirs.locator(".delete-confirm")).to_contain_text(f"Delete {b}’s message for everyone?")
    theirs.locator(".delete-yes").click()
    for chat in (admin, bob):
        expect(chat.messages(f"abuse from {b}")).to_have_count(0)
    # bob, no admin, has no Delete on the admin's message
    admin.send(f"notice from {root}")
    message(bob, f"notice from {root}").hover()
    expect(message(bob, f"notice from {root}").locator(".act-delete")).to_be_hidden()
    context.close()
