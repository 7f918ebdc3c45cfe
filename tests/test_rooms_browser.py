"""Named rooms on the chat page, in headless Chromium: created and joined from the Rooms dialog, their messages kept
apart from general, unread counts, member and topic events as system lines, a kick that takes the room off the list
live, user text (messages, topics) shown as text, and the moderation in the page: private rooms marked, invitations
sent from the Members dialog and accepted from their notice, roles, bans by name and by member, the topic editor.

Each test runs against the real server (a subprocess on a free port, SQLite store). Nothing here sleeps to
synchronise: Playwright's expect() and wait_until() poll an observable condition until their timeout.
"""
import json
import re

import pytest

from tests.support.browser import PHONE, no_horizontal_overflow, require_browser
from tests.support.polling import wait_until

require_browser("tests/test_rooms_browser.py")

from playwright.sync_api import expect  # noqa: E402  (after require_browser, which checks that playwright is there)

XSS = "<img src=x onerror=window.__pwned=1>"


@pytest.fixture
def chat_server(start_server, sqlite_url):
    return start_server(sqlite_url)


def record_sent(chat):
    """What `chat`'s page sends on its sockets from now on: JSON frames parsed, plain text frames as strings."""
    sent = []

    def parse(payload):
        if not isinstance(payload, str):
            return payload
        return json.loads(payload) if payload.startswith("{") else payload

    chat.page.on("websocket", lambda ws: ws.on("framesent", lambda payload: sent.append(parse(payload))))
    return sent


def record_received(chat):
    """The JSON events `chat`'s page receives on its sockets from now on."""
    received = []
    chat.page.on("websocket", lambda ws: ws.on("framereceived", lambda payload: isinstance(payload, str) and payload.startswith("{") and received.append(json.loads(payload))))
    return received


def without_ref(frame):
    return {k: v for k, v in frame.items() if k != "ref"}


def pump(chat):
    """A pause for wait_until() that lets Playwright run (its sync API records frames only while it is called)."""
    return lambda seconds: chat.page.wait_for_timeout(seconds * 1000)


def system_lines(chat):
    return chat.page.locator("#thread li.sys .sys-text")


def create_room(chat, name, topic="", private=False):
    """Create a room from the Rooms dialog; it opens in the page."""
    chat.page.locator("#rooms-open").click()
    expect(chat.page.locator("#rooms-dialog")).to_be_visible()
    chat.page.locator("#create-room-name").fill(name)
    chat.page.locator("#create-room-topic").fill(topic)
    if private:
        chat.page.locator("#create-room-private").check()
    chat.page.locator("#create-room-submit").click()
    expect(chat.page.locator("#rooms-dialog")).to_be_hidden()
    expect(chat.conv("#" + name)).to_have_class(re.compile(r"\bactive\b"))


def join_from_list(chat, name):
    """Join a room with its Join button in the Rooms dialog; it opens in the page."""
    chat.page.locator("#rooms-open").click()
    item = chat.page.locator(f'#rooms-list li[data-room="{name}"]')
    expect(item.locator("button.room-join")).to_have_text("Join")
    item.locator("button.room-join").click()
    expect(chat.page.locator("#rooms-dialog")).to_be_hidden()
    expect(chat.conv("#" + name)).to_have_class(re.compile(r"\bactive\b"))


def commands(sent):
    """The JSON frames of record_sent()'s list, without their refs."""
    return [without_ref(f) for f in sent if isinstance(f, dict)]


def open_members(chat):
    chat.page.locator("#room-members").click()
    expect(chat.page.locator("#members-dialog")).to_be_visible()
    expect(chat.page.locator("#members-status")).to_be_hidden()  # the list came


def by_name(chat, action, name):
    """Invite, ban or unban `name` with the Members dialog's name field."""
    chat.page.locator("#member-tools-name").fill(name)
    chat.page.locator(f"#member-{action}").click()


def member_row(chat, name):
    return chat.page.locator(f'#members-list li[data-user="{name}"]')


def private_mark(chat, key):
    return chat.conv(key).get_by_role("img", name="private")


def listed_keys(chat):
    return chat.page.locator("#conversations li.conv").evaluate_all("els => els.map(li => li.dataset.conv)")


# ---- the tests -------------------------------------------------------------------------------


def test_a_room_created_and_joined_in_the_page_keeps_its_messages_counts_and_members(chat_server, open_page):
    alice = open_page(chat_server)
    alice_sent = record_sent(alice)
    alice.join("alice")
    bob = open_page(chat_server)
    bob_sent = record_sent(bob)
    bob.join("bob")

    # Alice creates #launch from the dialog: it is listed after Everyone, opens, and shows its topic.
    create_room(alice, "launch", topic="Shipping on Friday")
    assert {"type": "create", "room": "launch", "private": False, "topic": "Shipping on Friday"} in map(without_ref, filter(lambda f: isinstance(f, dict), alice_sent))
    assert listed_keys(alice) == ["*", "#launch"]
    expect(alice.page.locator("#chat-title")).to_have_text("#launch")
    expect(alice.page.locator("#chat-sub")).to_have_text("Shipping on Friday")
    expect(system_lines(alice)).to_have_text(["alice created the room (topic: Shipping on Friday)"])

    # Bob sees it in the Rooms list and joins it; both see him join.
    bob.page.locator("#rooms-open").click()
    item = bob.page.locator('#rooms-list li[data-room="launch"]')
    expect(item.locator(".room-sub")).to_have_text("Shipping on Friday · 1 member")
    bob.page.locator("#rooms-close").click()
    join_from_list(bob, "launch")
    assert {"type": "join", "room": "launch"} in map(without_ref, filter(lambda f: isinstance(f, dict), bob_sent))
    assert listed_keys(bob) == ["*", "#launch"]
    expect(bob.page.locator("#chat-sub")).to_have_text("Shipping on Friday")
    expect(system_lines(alice)).to_have_text(["alice created the room (topic: Shipping on Friday)", "bob joined"])
    expect(system_lines(bob).last).to_have_text("bob joined")

    # A message in the room reaches bob's room view, and not general.
    alice.send("room only")
    expect(bob.messages("room only")).to_have_count(1)
    expect(alice.messages("room only")).to_have_attribute("data-id", re.compile(r"^\d+$"))  # acknowledged
    sent = [without_ref(f) for f in alice_sent if isinstance(f, dict) and f.get("msg") == "room only"]
    assert len(sent) == 1 and sent[0].pop("client_id")  # every message carries one, for exactly-once resends
    assert sent[0] == {"type": "message", "room": "launch", "msg": "room only"}
    expect(bob.conv("#launch").locator(".conv-preview")).to_have_text("alice: room only")
    bob.open("*")
    expect(bob.page.locator("#empty")).to_be_visible()
    expect(bob.messages("room only")).to_have_count(0)
    expect(bob.conv("*").locator(".badge")).to_be_hidden()

    # While bob views general, the room counts what he has not read; opening it reads it.
    alice.send("unread one")
    alice.send("unread two")
    expect(bob.conv("#launch").locator(".badge")).to_have_text("2")
    expect(bob.page).to_have_title("(2) Chat")
    expect(bob.conv("*").locator(".badge")).to_be_hidden()
    bob.open("#launch")
    expect(bob.messages("unread two")).to_have_count(1)
    expect(bob.conv("#launch").locator(".badge")).to_be_hidden()
    wait_until(
        lambda: any(isinstance(f, dict) and f.get("type") == "read" and f.get("room") == "launch" for f in bob_sent),
        sleep=pump(bob),
        message="bob's read of the room",
    )

    # Members: both, alice the owner; she may kick bob, he may kick nobody.
    bob.page.locator("#room-members").click()
    expect(bob.page.locator("#members-list li[data-user]")).to_have_count(2)
    expect(bob.page.locator('#members-list li[data-user="alice"] .room-tag')).to_have_text("owner")
    expect(bob.page.locator("#members-list .member-kick")).to_have_count(0)
    bob.page.locator("#members-close").click()
    alice.page.locator("#room-members").click()
    expect(alice.page.locator('#members-list li[data-user="bob"] .member-kick')).to_have_count(1)
    alice.page.locator("#members-close").click()

    # A slash command typed by alice kicks bob: the room leaves bob's list at once, and his view goes back to general.
    alice.send("/kick #launch bob")
    assert "/kick #launch bob" in alice_sent  # a plain text frame, which the server reads as a command
    expect(bob.conv("#launch")).to_have_count(0)
    assert listed_keys(bob) == ["*"]
    expect(bob.page.locator("#chat-title")).to_have_text("Everyone")
    expect(bob.page.locator("#notice-text")).to_have_text("You were kicked from #launch by alice.")
    expect(system_lines(alice).last).to_have_text("bob was kicked by alice")
    expect(alice.messages("/kick")).to_have_count(0)  # a command, not a message

    # Alice's topic change reaches her header as a system line; bob, outside, hears nothing of it.
    alice.send("/topic #launch Shipping next week")
    expect(alice.page.locator("#chat-sub")).to_have_text("Shipping next week")
    expect(system_lines(alice).last).to_have_text("alice set the topic to “Shipping next week”")

    # Bob may join again; the room comes back with its history, the kick among it.
    join_from_list(bob, "launch")
    expect(bob.messages("unread two")).to_have_count(1)
    expect(system_lines(bob).filter(has_text="bob was kicked by alice")).to_have_count(1)
    expect(bob.page.locator("#chat-sub")).to_have_text("Shipping next week")

    # The Kick button in alice's Members dialog does the same.
    alice.page.locator("#room-members").click()
    alice.page.locator('#members-list li[data-user="bob"] .member-kick').click()
    expect(bob.conv("#launch")).to_have_count(0)
    expect(alice.page.locator("#members-list li[data-user]")).to_have_count(1)  # the open dialog follows
    alice.page.locator("#members-close").click()


def test_leaving_and_a_new_page_follow_the_server(chat_server, open_page, browser):
    alice = open_page(chat_server, "alice")
    create_room(alice, "quiet", topic="")
    expect(alice.page.locator("#chat-sub")).to_have_text("Room · no topic")
    create_room(alice, "busy", topic="lots", private=True)
    assert listed_keys(alice) == ["*", "#busy", "#quiet"] or listed_keys(alice) == ["*", "#quiet", "#busy"]
    alice.send("hello busy")
    expect(alice.messages("hello busy")).to_have_attribute("data-id", re.compile(r"^\d+$"))

    # The same user in a new page: the welcome lists the rooms, the address opens one.
    again = open_page(chat_server, path="/?room=busy", context=alice.context)
    again.wait_online()
    expect(again.conv("#busy")).to_have_class(re.compile(r"\bactive\b"))
    expect(again.conv("#quiet")).to_have_count(1)
    expect(again.messages("hello busy")).to_have_count(1)
    expect(again.page.locator("#chat-sub")).to_have_text("lots")

    # Leave in one page: the room leaves both lists.
    again.page.locator("#room-leave").click()
    for page in (alice, again):
        expect(page.conv("#busy")).to_have_count(0)
    expect(again.page.locator("#chat-title")).to_have_text("Everyone")
    assert again.page.url.endswith("/")
    expect(alice.page.locator("#chat-title")).to_have_text("Everyone")

    # An address naming a room this user is not in opens general.
    stranger = open_page(chat_server, path="/?room=busy", context=browser.new_context())
    stranger.join("carol")
    expect(stranger.page.locator("#chat-title")).to_have_text("Everyone")
    assert listed_keys(stranger) == ["*"]  # #quiet is public, but carol is not in it


def test_room_text_and_topics_are_shown_as_text(chat_server, open_page):
    alice = open_page(chat_server, "alice")
    bob = open_page(chat_server, "bob")
    create_room(alice, "xss", topic=XSS)
    expect(alice.page.locator("#chat-sub")).to_have_text(XSS)
    join_from_list(bob, "xss")
    alice.send(XSS)
    alice.send("<script>window.__pwned=2</script>")
    expect(bob.messages().locator(".text", has_text=XSS)).to_have_count(1)
    expect(bob.messages().locator(".text", has_text="<script>")).to_have_count(1)
    expect(bob.conv("#xss").locator(".conv-preview")).to_have_text("alice: <script>window.__pwned=2</script>")
    expect(bob.page.locator("#chat-sub")).to_have_text(XSS)
    expect(system_lines(bob).first).to_have_text(f"alice created the room (topic: {XSS})")
    bob.page.locator("#rooms-open").click()
    expect(bob.page.locator('#rooms-list li[data-room="xss"] .room-sub')).to_have_text(f"{XSS} · 2 members")
    for page in (alice, bob):
        found = page.page.evaluate("() => ({img: document.querySelectorAll('img').length, pwned: window.__pwned || null})")
        assert found == {"img": 0, "pwned": None}, found


def acked(client, commands):
    """Send each command with a ref from a raw client and read (skipping other events) until all are acknowledged."""
    for i, command in enumerate(commands):
        client.send({**command, "ref": i})
    acks = {}
    while len(acks) < len(commands):
        event = client.recv()
        assert event["type"] != "error", event
        if event["type"] == "ack":
            acks[event["ref"]] = event["id"]
    return [acks[i] for i in range(len(commands))]


def test_a_room_pages_its_history_and_shows_who_types_there(chat_server, open_page, clients):
    dave = clients(chat_server, "dave")
    acked(dave, [{"type": "create", "room": "big", "private": False, "topic": "many messages"}])
    acked(dave, [{"type": "message", "room": "big", "msg": f"big {i}"} for i in range(1, 56)])
    erin = open_page(chat_server)
    erin_sent = record_sent(erin)
    erin.join("erin")
    join_from_list(erin, "big")

    # The newest page, then the older one on demand: both asked by room.
    expect(erin.messages("big 55")).to_have_count(1)
    expect(erin.messages()).to_have_count(49)  # the newest 50 of the room's stream: 49 messages and erin's join
    erin.page.locator("#load-older").click()
    expect(erin.messages()).to_have_count(55)
    expect(system_lines(erin)).to_have_text(["dave created the room (topic: many messages)", "erin joined"])
    pages = [without_ref(f) for f in erin_sent if isinstance(f, dict) and f.get("type") == "history" and f.get("room") == "big"]
    assert [p.get("before") is None for p in pages] == [True, False], pages
    assert erin.texts()[:2] == ["big 1", "big 2"]

    # Typing in the room shows under the room, not under general.
    typing = erin.page.locator("#typing")
    dave.send({"type": "typing", "room": "big"})
    expect(typing).to_have_text("dave is typing…")
    erin.open("*")
    expect(typing).to_be_hidden()
    erin.open("#big")
    expect(typing).to_have_text("dave is typing…")
    acked(dave, [{"type": "message", "room": "big", "msg": "done typing"}])
    expect(erin.messages("done typing")).to_have_count(1)
    expect(typing).to_be_hidden()

    # Erin types in the room: the server hears it by room.
    erin.input.press_sequentially("hi")
    wait_until(lambda: {"type": "typing", "room": "big"} in [without_ref(f) for f in erin_sent if isinstance(f, dict)], sleep=pump(erin), message="erin's typing")


def test_after_a_reconnect_the_rooms_are_as_the_server_says(chat_server, open_page, clients):
    dave = clients(chat_server, "dave")
    acked(dave, [{"type": "create", "room": "one", "private": False, "topic": ""}, {"type": "create", "room": "two", "private": True, "topic": "old"}])
    acked(dave, [{"type": "message", "room": "two", "msg": "before"}])
    alice = open_page(chat_server, "alice")
    join_from_list(alice, "one")
    acked(dave, [{"type": "invite", "room": "two", "user": "alice"}])
    expect(alice.page.locator('#invitations li[data-room="two"] .invitation-text')).to_have_text("dave invited you to #two")
    expect(alice.conv("#two")).to_have_count(0)  # invited is not in
    join_from_list(alice, "two")
    expect(alice.page.locator("#invitations")).to_be_hidden()  # joined: the invitation is settled
    expect(alice.messages("before")).to_have_count(1)
    alice.open("*")

    # kill -9 resets whatever request is in flight (the favicon Chromium asks for again after alice.open changed the
    # address): the page sees ERR_CONNECTION_RESET, which is the kill's doing, not the page's.
    open_page.expected_console.append(r"Failed to load resource: net::ERR_CONNECTION_RESET")
    chat_server.kill()
    expect(alice.conn).to_have_attribute("data-state", "reconnecting")
    alice.context.set_offline(True)
    open_page.expected_console.append(r"WebSocket connection to .* failed")
    # Opening a conversation changes the address (?room=): Chromium asks for the favicon again, which fails offline.
    open_page.expected_console.append(r"Failed to load resource: net::ERR_INTERNET_DISCONNECTED")
    alice.open("#two")
    alice.send("written offline")
    expect(alice.messages("written offline")).to_have_class(re.compile(r"\bpending\b"))
    alice.open("*")

    # Meanwhile alice is kicked from #one, and #two gets messages and a new topic.
    chat_server.start()
    dave = clients(chat_server, "dave")
    acked(dave, [
        {"type": "kick", "room": "one", "user": "alice"},
        {"type": "message", "room": "two", "msg": "missed 1"},
        {"type": "message", "room": "two", "msg": "missed 2"},
        {"type": "topic", "room": "two", "topic": "new"},
    ])

    alice.context.set_offline(False)
    alice.wait_online()
    expect(alice.conv("#one")).to_have_count(0)
    assert listed_keys(alice) == ["*", "#two"]
    expect(alice.conv("#two").locator(".badge")).to_have_text("2")
    alice.open("#two")
    expect(alice.page.locator("#chat-sub")).to_have_text("new")
    mine = alice.messages("written offline")
    expect(mine).to_have_attribute("data-id", re.compile(r"^\d+$"))
    expect(system_lines(alice).last).to_have_text("dave set the topic to “new”")
    assert alice.texts() == ["before", "missed 1", "missed 2", "written offline"]


def test_say_and_msg_typed_in_the_composer_show_where_they_went(chat_server, open_page, clients):
    alice = open_page(chat_server, "alice", viewport=PHONE)
    carol = clients(chat_server, "carol")
    alice.page.locator("#back").click()  # one column: the list first
    create_room(alice, "side", topic="a topic long enough to need cutting short on a phone, " * 3)
    expect(alice.page.locator("#room-leave")).to_be_visible()
    assert no_horizontal_overflow(alice.page) is True
    alice.page.locator("#back").click()
    alice.open("*")
    alice.send("/say #side from general")
    alice.send("/msg carol psst")
    alice.send("//not a command")
    alice.send("/members #side")  # answered with a members event: the dialog opens
    expect(alice.page.locator("#members-title")).to_have_text("Members of #side")
    expect(alice.page.locator("#members-list li[data-user]")).to_have_count(1)
    alice.page.locator("#members-close").click()
    alice.send("/rooms")
    expect(alice.page.locator('#rooms-list li[data-room="side"] .room-open')).to_have_text("Open")
    alice.page.locator("#rooms-close").click()
    expect(alice.messages("not a command")).to_have_count(1)
    assert alice.texts() == ["/not a command"]
    assert carol.recv_type("direct")["msg"] == "psst"  # no typing notice before it: a command is not a message being written
    alice.page.locator("#back").click()
    expect(alice.conv("#side").locator(".conv-preview")).to_have_text("You: from general")
    expect(alice.conv("carol").locator(".conv-preview")).to_have_text("You: psst")
    alice.open("#side")
    expect(alice.messages("from general")).to_have_attribute("data-id", re.compile(r"^\d+$"))
    assert no_horizontal_overflow(alice.page) is True


ACTIVE = re.compile(r"\bactive\b")


def test_a_private_room_is_shared_by_invitation_and_moderated_from_the_page(chat_server, open_page):
    alice = open_page(chat_server)
    alice_sent = record_sent(alice)
    alice.join("alice")
    bob = open_page(chat_server)
    bob_sent = record_sent(bob)
    bob.join("bob")
    carol = open_page(chat_server)
    carol_got = record_received(carol)
    carol.join("carol")

    # Alice creates a private room: the list marks it, and she, its owner, may set its topic.
    create_room(alice, "secret", topic="plans", private=True)
    expect(private_mark(alice, "#secret")).to_be_visible()
    expect(alice.conv("#secret").locator("button")).to_have_attribute("aria-label", "#secret, private")
    expect(alice.conv("*").locator(".conv-lock")).to_be_hidden()
    expect(alice.page.locator("#room-topic")).to_be_visible()

    # She invites from the Members dialog: refusals show there, an invitation says it was sent.
    open_members(alice)
    expect(alice.page.locator("#member-tools")).to_be_visible()
    by_name(alice, "invite", "nobody")
    expect(alice.page.locator("#members-error")).to_have_text("no user named 'nobody' has ever connected")
    by_name(alice, "invite", "bob")
    expect(alice.page.locator("#members-done")).to_have_text("Invited bob to #secret.")
    expect(alice.page.locator("#members-error")).to_be_hidden()
    assert {"type": "invite", "room": "secret", "user": "bob"} in commands(alice_sent)
    by_name(alice, "invite", "bob")
    expect(alice.page.locator("#members-error")).to_have_text("bob is already invited to #secret")
    alice.page.locator("#members-close").click()
    expect(system_lines(alice).last).to_have_text("bob was invited by alice")

    # Bob sees the invitation, and the room (private, invited) in the Rooms dialog; he joins from the invitation.
    invitation = bob.page.locator('#invitations li[data-room="secret"]')
    expect(invitation.locator(".invitation-text")).to_have_text("alice invited you to #secret")
    bob.page.locator("#rooms-open").click()
    item = bob.page.locator('#rooms-list li[data-room="secret"]')
    expect(item.locator(".room-tag")).to_have_text(["private", "invited"])
    expect(item.locator("button.room-join")).to_have_text("Join")
    bob.page.locator("#rooms-close").click()
    invitation.locator(".invitation-join").click()
    expect(bob.conv("#secret")).to_have_class(ACTIVE)
    assert {"type": "join", "room": "secret"} in commands(bob_sent)
    expect(bob.page.locator("#invitations")).to_be_hidden()
    expect(private_mark(bob, "#secret")).to_be_visible()  # his "joined" event does not say: the listing asked after it does
    expect(bob.page.locator("#chat-sub")).to_have_text("plans")
    expect(bob.page.locator("#room-topic")).to_be_hidden()  # a member may not set the topic
    expect(system_lines(alice).last).to_have_text("bob joined")

    # They talk in the room, and each sees the other typing there.
    bob.input.press_sequentially("psst")
    expect(alice.page.locator("#typing")).to_have_text("bob is typing…")
    bob.input.press("Enter")
    expect(alice.messages("psst")).to_have_count(1)
    expect(alice.page.locator("#typing")).to_be_hidden()
    alice.input.press_sequentially("secret plan")
    expect(bob.page.locator("#typing")).to_have_text("alice is typing…")
    alice.input.press("Enter")
    expect(bob.messages("secret plan")).to_have_count(1)

    # Carol never sees the room: not in her list, not in her Rooms dialog, not one of its frames. (A group message sent
    # after the room's reaches her, so the room's would have come before it.)
    alice.open("*")
    alice.send("after the secret")
    expect(carol.messages("after the secret")).to_have_count(1)
    assert [e for e in carol_got if e.get("room") == "secret"] == []
    assert listed_keys(carol) == ["*"]
    carol.page.locator("#rooms-open").click()
    expect(carol.page.locator('#rooms-list li[data-room="general"]')).to_have_count(1)
    expect(carol.page.locator('#rooms-list li[data-room="secret"]')).to_have_count(0)
    carol.page.locator("#rooms-close").click()
    expect(carol.messages("psst")).to_have_count(0)
    alice.open("#secret")

    # Bob, a member, sees no moderation in the Members dialog.
    open_members(bob)
    expect(member_row(bob, "alice").locator(".room-tag")).to_have_text("owner")
    expect(bob.page.locator("#members-list button")).to_have_count(0)
    expect(bob.page.locator("#member-tools")).to_be_hidden()

    # Alice makes him a moderator: his open dialog, his header and her dialog follow.
    open_members(alice)
    row = member_row(alice, "bob")
    expect(row.locator("button")).to_have_text(["Make moderator", "Kick", "Ban"])
    row.locator(".member-role").click()
    assert {"type": "role", "room": "secret", "user": "bob", "role": "moderator"} in commands(alice_sent)
    expect(row.locator(".room-tag")).to_have_text("moderator")
    expect(row.locator("button")).to_have_text(["Make member", "Kick", "Ban"])
    expect(alice.page.locator("#members-done")).to_have_text("bob is now a moderator of #secret.")
    expect(member_row(bob, "bob").locator(".room-tag")).to_have_text("moderator")
    expect(bob.page.locator("#member-tools")).to_be_visible()
    expect(bob.page.locator("#members-list button")).to_have_count(0)  # the owner outranks him; roles are hers to give
    bob.page.locator("#members-close").click()
    expect(bob.page.locator("#room-topic")).to_be_visible()
    expect(system_lines(bob).last).to_have_text("alice made bob a moderator")

    # Alice bans carol, who is not in the room, by name; a ban is not an invitation.
    by_name(alice, "ban", "carol")
    expect(alice.page.locator("#members-done")).to_have_text("carol is banned from #secret.")
    assert {"type": "ban", "room": "secret", "user": "carol"} in commands(alice_sent)
    expect(alice.page.locator("#member-tools-name")).to_have_value("")
    expect(carol.page.locator("#notice-text")).to_have_text("You were banned from #secret by alice.")
    by_name(alice, "invite", "carol")
    expect(alice.page.locator("#members-error")).to_have_text("carol is banned from #secret: /unban first")
    alice.page.locator("#members-close").click()
    expect(system_lines(bob).last).to_have_text("carol was banned by alice")
    carol.send("/join #secret")
    expect(carol.page.locator("#notice-text")).to_have_text("no room named secret")
    assert listed_keys(carol) == ["*"]

    # The topic, edited from alice's header, shows in bob's; Escape or Cancel leaves it as it was.
    alice.page.locator("#room-topic").click()
    editor = alice.page.locator("#topic-input")
    expect(editor).to_have_value("plans")
    expect(editor).to_be_focused()
    editor.press("Escape")
    expect(alice.page.locator("#topic-form")).to_be_hidden()
    alice.page.locator("#room-topic").click()
    editor.fill("  ship   on friday ")
    alice.page.locator("#topic-save").click()
    expect(alice.page.locator("#topic-form")).to_be_hidden()
    assert {"type": "topic", "room": "secret", "topic": "ship on friday"} in commands(alice_sent)
    expect(bob.page.locator("#chat-sub")).to_have_text("ship on friday")
    expect(system_lines(bob).last).to_have_text("alice set the topic to “ship on friday”")
    expect(alice.page.locator("#chat-sub")).to_have_text("ship on friday")
    assert [e for e in carol_got if e.get("room") == "secret" and e.get("type") != "member"] == []


def test_bans_and_roles_in_a_public_room_and_the_servers_topic_length(start_server, sqlite_url, open_page):
    server = start_server(sqlite_url, max_topic_length=12)
    alice = open_page(server, "alice")
    bob = open_page(server, "bob")
    carol = open_page(server, "carol")
    create_room(alice, "lobby", topic="hi all")
    join_from_list(bob, "lobby")

    # Carol, banned by name before she ever came, cannot join: the Rooms dialog says why.
    open_members(alice)
    by_name(alice, "ban", "carol")
    expect(alice.page.locator("#members-done")).to_have_text("carol is banned from #lobby.")
    expect(carol.page.locator("#notice-text")).to_have_text("You were banned from #lobby by alice.")
    carol.page.locator("#rooms-open").click()
    carol.page.locator('#rooms-list li[data-room="lobby"] button.room-join').click()
    expect(carol.page.locator("#rooms-error")).to_have_text("you are banned from #lobby")
    expect(carol.conv("#lobby")).to_have_count(0)
    carol.page.locator("#rooms-close").click()

    # Unbanned, she may join; unbanning her twice is refused.
    by_name(alice, "unban", "carol")
    expect(alice.page.locator("#members-done")).to_have_text("carol may join #lobby again.")
    by_name(alice, "unban", "carol")
    expect(alice.page.locator("#members-error")).to_have_text("carol is not banned from #lobby")
    by_name(alice, "ban", "not a name!")
    expect(alice.page.locator("#members-error")).to_have_text("“not a name!” is not a user name.")
    join_from_list(carol, "lobby")
    expect(member_row(alice, "carol")).to_have_count(1)  # the open dialog follows

    # Bob, made moderator, may kick and ban carol but not alice; he bans her from her row.
    member_row(alice, "bob").locator(".member-role").click()
    expect(member_row(alice, "bob").locator(".room-tag")).to_have_text("moderator")
    open_members(bob)
    expect(member_row(bob, "alice").locator("button")).to_have_count(0)
    expect(member_row(bob, "carol").locator("button")).to_have_text(["Kick", "Ban"])
    member_row(bob, "carol").locator(".member-ban").click()
    expect(carol.conv("#lobby")).to_have_count(0)
    expect(carol.page.locator("#notice-text")).to_have_text("You were banned from #lobby by bob.")
    expect(bob.page.locator("#members-done")).to_have_text("carol is banned from #lobby.")
    expect(member_row(bob, "carol")).to_have_count(0)
    expect(member_row(alice, "carol")).to_have_count(0)

    # Made a member again, bob loses the controls in his open dialog and his header.
    member_row(alice, "bob").locator(".member-role").click()
    expect(member_row(alice, "bob").locator(".room-tag")).to_have_count(0)
    expect(bob.page.locator("#member-tools")).to_be_hidden()
    bob.page.locator("#members-close").click()
    alice.page.locator("#members-close").click()
    expect(bob.page.locator("#room-topic")).to_be_hidden()

    # The topic editor takes no more than the server's max_topic_length (12 here), which the page was told.
    alice.page.locator("#room-topic").click()
    editor = alice.page.locator("#topic-input")
    expect(editor).to_have_attribute("maxlength", "12")
    editor.fill("")
    editor.press_sequentially("twelve chars and more")
    expect(editor).to_have_value("twelve chars")
    editor.press("Enter")
    expect(bob.page.locator("#chat-sub")).to_have_text("twelve chars")


def test_two_tabs_share_a_rooms_read_marker_and_invitations(chat_server, open_page, clients):
    dave = clients(chat_server, "dave")
    acked(dave, [{"type": "create", "room": "news", "private": False, "topic": ""}, {"type": "create", "room": "hush", "private": True, "topic": ""}])
    tab_a = open_page(chat_server, "bob")
    join_from_list(tab_a, "news")
    tab_a.open("*")
    acked(dave, [{"type": "invite", "room": "hush", "user": "bob"}])
    expect(tab_a.page.locator('#invitations li[data-room="hush"] .invitation-text')).to_have_text("dave invited you to #hush")
    tab_b = open_page(chat_server, context=tab_a.context)  # same profile: the remembered name joins again
    tab_b.wait_online()
    expect(tab_b.conv("#news")).to_have_count(1)

    # A room read in one tab is read in the other: its count and the tab titles follow the server's marker.
    acked(dave, [{"type": "message", "room": "news", "msg": f"news {i}"} for i in range(1, 4)])
    for tab in (tab_a, tab_b):
        expect(tab.conv("#news").locator(".badge")).to_have_text("3")
        expect(tab.page).to_have_title("(3) Chat")
    tab_a.open("#news")
    expect(tab_a.messages("news 3")).to_have_count(1)
    for tab in (tab_a, tab_b):
        expect(tab.conv("#news").locator(".badge")).to_be_hidden()
        expect(tab.page).to_have_title("Chat")

    # The tab opened after the invitation learns of it from the listing; dismissed there, it stays in the other tab,
    # whose Join puts the (private) room in both lists.
    invitation_b = tab_b.page.locator('#invitations li[data-room="hush"]')
    expect(invitation_b.locator(".invitation-text")).to_have_text("You are invited to #hush")
    invitation_b.locator(".invitation-dismiss").click()
    expect(tab_b.page.locator("#invitations")).to_be_hidden()
    tab_a.page.locator('#invitations li[data-room="hush"] .invitation-join').click()
    expect(tab_a.conv("#hush")).to_have_class(ACTIVE)
    expect(tab_a.page.locator("#invitations")).to_be_hidden()
    expect(tab_b.conv("#hush")).to_have_count(1)
    for tab in (tab_a, tab_b):
        expect(private_mark(tab, "#hush")).to_be_visible()
    expect(private_mark(tab_a, "#news")).to_be_hidden()
