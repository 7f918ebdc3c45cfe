"""Mentions (issue 15): `@name` in general or a named room counts in the mentioned user's conversation list (`mentions`
beside `unread`), end to end over real sockets on each store and across two processes: a read resets it, edits and
deletes move it, a private room's outsider is never told, a name's next holder never inherits it, `?since=` and history
agree with it, and a message full of `@`s costs at most `max_mentions_per_message` rows while a bystander chats on.
The rule itself (chat/store/mentions.py) is tested as a pure function, with hypothesis, and against the page's copy."""
import json
import subprocess
import time
import uuid

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chat.names import NAME_PATTERN
from chat.store.mentions import mentioned_names
from tests.support.bystanders import Bystanders
from tests.support.clients import acked, answer, online_everywhere, post
from tests.support.clients import make_room as support_make_room
from tests.support.databases import db_execute
from tests.support.polling import wait_until
from tests.support.servers import ROOT, connect_when_free

MAX_ID = 2**63 - 1
GUEST_HOLD = 3  # seconds: a short hold, so that the name changes hands soon


def unique(short):
    return f"{short}-{uuid.uuid4().hex[:6]}"


def listing(client):
    event = answer(client, {"type": "conversations"})
    assert event["type"] == "conversations", event
    return event["conversations"]


def entry(entries, room=None, other=None):
    found = [e for e in entries if (room is not None and e.get("room") == room) or (other is not None and e.get("with") == other)]
    assert len(found) <= 1, found
    return found[0] if found else None


def mentions_in(client, room="general"):
    """`client`'s mention count in `room` (None: the room is not listed to it)."""
    found = entry(listing(client), room=room)
    return None if found is None else found["mentions"]


def mention_rows(server, message_id):
    return sorted(tuple(r) for r in db_execute(server.database_url, "SELECT user, conversation FROM mentions WHERE message_id = ?",
                                                [message_id]))


def make_room(owner, members, private=True):
    return support_make_room(owner, members, unique("dev"), private)


# ---- the rule, as a pure function -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("text, names", [
    ("@bob hi", ["bob"]),
    ("hi @Bob, and @BOB again", ["bob"]),
    ("thanks @bob.", ["bob"]),
    ("see @bob... later", ["bob"]),
    ("@bob.smith and @bob_2 and @bob-3", ["bob.smith", "bob_2", "bob-3"]),
    ("(@bob) '@carol' @dave: @erin!", ["bob", "carol", "dave", "erin"]),
    ("mail bob@example.com", []),
    ("@@bob", []),
    ("x@bob", []),
    ("é@bob", []),
    ("@bobé", []),
    ("@_bob @.bob @-bob", []),
    ("@", []),
    ("@" + "a" * 64, ["a" * 64]),
    ("@" + "a" * 65, []),
    ("no at sign", []),
])
def test_which_names_a_text_mentions(text, names):
    assert mentioned_names(text, 20) == names


def test_the_first_names_written_count_up_to_the_limit():
    text = " ".join(f"@u{i}" for i in range(5000))
    assert mentioned_names(text, 20) == [f"u{i}" for i in range(20)]
    assert mentioned_names("@a @b", 0) == []
    assert mentioned_names("@a " * 10000 + "@b", 2) == ["a", "b"]


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.sampled_from("@aZ9_.- é,@\n"), max_size=80), st.integers(min_value=0, max_value=5))
def test_every_name_found_is_a_valid_distinct_lower_case_name_written_after_an_at_sign(text, limit):
    names = mentioned_names(text, limit)
    assert len(names) <= limit and len(set(names)) == len(names)
    for name in names:
        assert NAME_PATTERN.fullmatch(name) and not name.endswith(".")
        assert "@" + name in text.lower()


@settings(max_examples=200, deadline=None)
@given(st.from_regex(NAME_PATTERN, fullmatch=True).filter(lambda n: len(n) <= 64 and not n.endswith(".")),
       st.sampled_from(["", " ", "hi ", "(", "\n"]), st.sampled_from(["", " ", ", there", ")", ". ", "!", "?"]))
def test_a_name_written_after_an_at_sign_between_spaces_or_punctuation_is_found(name, before, after):
    assert mentioned_names(f"{before}@{name}{after}", 20) == [name]


def test_the_page_applies_the_same_rule():
    """static/js/mentions.js (the page's copy) finds the same names in the same texts as the server."""
    texts = ["@bob hi", "hi @Bob, and @BOB again", "thanks @bob.", "mail bob@example.com", "@@bob", "x@bob", "é@bob", "@bobé",
             "@bob.smith and @bob_2", "(@bob) '@carol' @dave: @erin!", "@" + "a" * 65, " ".join(f"@u{i}" for i in range(30)),
             "@_bob @.bob @-bob", "@a.b.c.. @ab-"]
    script = (
        "import('./static/js/mentions.js').then(m => { const texts = JSON.parse(process.argv[1]);"
        " console.log(JSON.stringify(texts.map(t => m.mentionedNames(t, 20)))); });"
    )
    out = subprocess.run(["node", "--input-type=module", "-e", script, json.dumps(texts)], cwd=ROOT, capture_output=True,
                         text=True, timeout=30, check=True)
    assert json.loads(out.stdout) == [mentioned_names(t, 20) for t in texts]


# ---- counts over real sockets -----------------------------------------------------------------------------------------------


def test_mentions_count_for_the_mentioned_user_and_a_read_resets_them(chat):
    alice, bob, carol = chat.connect("alice"), chat.connect("bob"), chat.connect("carol")
    a = alice.name
    welcome_entry = entry(chat.connect("alice", handshake=False).recv_type("welcome")["conversations"], room="general")
    assert welcome_entry["mentions"] == 0
    post(bob, f"@{a} hi")
    post(bob, f"hello @{a.upper()}, and again @{a}.")  # one message mentioning alice twice counts once
    post(bob, f"write to {a}@example.com or @{a}x")  # no mention of alice
    post(alice, f"@{a} talking to myself")  # your own never count
    last = post(carol, f"@{bob.name} @{a}")
    assert mentions_in(alice) == 3
    assert mentions_in(bob) == 1
    assert mentions_in(carol) == 0
    # one-to-ones have no mentions: each direct is for its reader
    post(bob, f"@{a} psst", to=a)
    assert "mentions" not in entry(listing(alice), other=bob.name)
    # the welcome of a new connection carries the same count
    tab = chat.connect("alice", handshake=False)
    assert entry(tab.recv_type("welcome")["conversations"], room="general")["mentions"] == 3
    # a read resets it (as far as it reads)
    acked_read = answer(alice, {"type": "read", "room": "general", "id": last["id"] - 1})
    assert acked_read["type"] == "read"
    assert mentions_in(alice) == 1
    answer(alice, {"type": "read", "room": "general", "id": MAX_ID})
    assert mentions_in(alice) == 0
    assert mentions_in(bob) == 1  # bob's own reading is his own


def test_a_private_rooms_mention_of_an_outsider_is_neither_counted_nor_revealed(chat):
    alice, bob, carol = chat.connect("alice"), chat.connect("bob"), chat.connect("carol")
    room = make_room(alice, [bob])
    sent = acked(alice, {"type": "message", "room": room, "msg": f"@{carol.name} cannot read this, @{bob.name} can"})
    assert mentions_in(bob, room) == 1
    assert mentions_in(carol, room) is None  # not listed to her at all
    assert [e for e in listing(carol) if e.get("mentions")] == []  # nor counted anywhere else
    assert entry(listing(alice), room=room)["mentions"] == 0
    # a member who leaves is not told of later mentions either: the room is no longer theirs
    acked(bob, {"type": "leave", "room": room})
    acked(alice, {"type": "message", "room": room, "msg": f"@{bob.name} are you gone?"})
    assert mentions_in(bob, room) is None
    assert sent["id"] > 0


def test_edits_and_deletes_move_the_counts(chat):
    alice, bob, carol = chat.connect("alice"), chat.connect("bob"), chat.connect("carol")
    room = make_room(bob, [alice, carol], private=False)
    sent = acked(bob, {"type": "message", "room": room, "msg": f"@{alice.name} a question"})
    assert (mentions_in(alice, room), mentions_in(carol, room)) == (1, 0)
    acked(bob, {"type": "edit", "of": sent["id"], "msg": "a question for anyone"})
    assert (mentions_in(alice, room), mentions_in(carol, room)) == (0, 0)
    acked(bob, {"type": "edit", "of": sent["id"], "msg": f"a question for @{carol.name} and @{alice.name}"})
    assert (mentions_in(alice, room), mentions_in(carol, room)) == (1, 1)
    server = chat.server
    assert mention_rows(server, sent["id"]) == sorted([(alice.name, "#" + room), (carol.name, "#" + room)])
    acked(bob, {"type": "delete", "of": sent["id"]})
    assert (mentions_in(alice, room), mentions_in(carol, room)) == (0, 0)
    assert mention_rows(server, sent["id"]) == []


def test_since_and_history_agree_with_the_counts(chat):
    alice, bob = chat.connect("alice"), chat.connect("bob")
    a = alice.name
    answer(alice, {"type": "read", "room": "general", "id": MAX_ID})
    before = post(bob, "before")
    kept = post(bob, f"@{a} kept")
    edited_away = post(bob, f"@{a} soon gone")
    edited_in = post(bob, "no one yet")
    deleted = post(bob, f"@{a} deleted")
    acked(bob, {"type": "edit", "of": edited_away["id"], "msg": "nobody"})
    acked(bob, {"type": "edit", "of": edited_in["id"], "msg": f"now @{a}"})
    acked(bob, {"type": "delete", "of": deleted["id"]})
    answer(alice, {"type": "read", "room": "general", "id": before["id"]})

    replay = chat.connect("alice", f"?since={before['id']}", handshake=False)
    welcome = replay.recv_type("welcome")
    count = entry(welcome["conversations"], room="general")["mentions"]
    texts = {}
    while True:  # apply the replay as a client does: messages, then their edits and deletions in id order
        history = replay.recv_type("history")
        for event in history["messages"]:
            if event["type"] == "message" and "room" not in event:
                texts[event["id"]] = event.get("msg")
            elif event["type"] == "edit" and event["of"] in texts:
                texts[event["of"]] = event["msg"]
            elif event["type"] == "delete" and event["of"] in texts:
                texts[event["of"]] = None
        if history.get("complete", True):
            break
    mentioned = sorted(i for i, t in texts.items() if t and a in mentioned_names(t, 20) and i > before["id"])
    assert mentioned == [kept["id"], edited_in["id"]]
    assert count == 2
    # and a history page shows the same messages as they stand
    page = answer(alice, {"type": "history", "limit": 200})
    current = {m["id"]: m.get("msg") for m in page["messages"] if m["id"] > before["id"] and m["type"] == "message"}
    assert sorted(i for i, t in current.items() if t and a in mentioned_names(t, 20)) == mentioned


def test_the_next_holder_of_a_guest_name_inherits_no_mention(start_server, database_url):
    server = start_server(database_url, guest_hold=GUEST_HOLD, bots="")
    name, friend_name = unique("victim"), unique("friend")
    friend = server.connect(friend_name)
    friend.handshake()
    victim = server.connect(name, resume=False)
    victim.handshake()
    post(friend, f"@{name} the door code is 4711")
    assert mentions_in(victim) == 1
    victim.close()
    post(friend, f"@{name} sent after you left")
    attacker, _ = connect_when_free(server, name)
    welcome = attacker.recv_type("welcome")
    attacker.recv_type("history")
    assert entry(welcome["conversations"], room="general")["mentions"] == 0
    post(friend, f"@{name} hello, whoever you are")
    assert mentions_in(attacker) == 1
    for client in (friend, attacker):
        client.close()


# ---- hostile input ------------------------------------------------------------------------------------------------------------


@pytest.fixture
def capped(start_server, database_url):
    return start_server(database_url, max_mentions_per_message=5, bots="")


def test_a_message_full_of_mentions_costs_at_most_the_cap_and_a_bystander_chats_on(capped, clients):
    watch = Bystanders(capped)
    watch.check()
    attacker, victim = clients(capped, "attacker"), clients(capped, "victim")
    names = [f"u{i}" for i in range(6000)]
    flood = " ".join("@" + n for n in names)[:65000]
    started = time.monotonic()
    full = post(attacker, flood)
    repeated = post(attacker, "@victim " * 8000)  # one name many times: one row
    late = post(attacker, "@a @b @c @d @e @victim")  # the sixth name is past the cap
    elapsed = time.monotonic() - started
    watch.check()
    assert mention_rows(capped, full["id"]) == [(n, "#general") for n in sorted(names[:5])]
    assert mention_rows(capped, repeated["id"]) == [("victim", "#general")]
    assert len(mention_rows(capped, late["id"])) == 5
    assert mentions_in(victim) == 1
    # edits of it cost the same: the rows are replaced, never added to
    for i in range(3):
        acked(attacker, {"type": "edit", "of": full["id"], "msg": " ".join(f"@v{i}x{j}" for j in range(3000))})
    assert len(mention_rows(capped, full["id"])) == 5
    total = db_execute(capped.database_url, "SELECT COUNT(*) FROM mentions", [])[0][0]
    assert total == 5 + 1 + 5
    watch.check()
    watch.close()
    print(f"three hostile messages (64 KB of @names, 8000 x the same @name, six names) stored in {elapsed:.3f} s; "
          f"{total} mention rows")


# ---- several processes -----------------------------------------------------------------------------------------------------------


def test_mentions_and_their_reads_cross_processes(pair, clients):
    a, b = pair
    alice, bob, tab = clients(a, "alice"), clients(b, "bob"), clients(b, "alice")
    online_everywhere(alice, "alice", "bob")
    bob.name, alice.name = "bob", "alice"
    room = make_room(bob, [alice])
    acked(bob, {"type": "message", "room": room, "msg": "@alice in the room"})
    # acked, not post: the room's member event (alice joined, over the bus) may still reach bob after his last ack
    general = acked(bob, {"type": "message", "msg": "@alice in general"})
    sent = acked(bob, {"type": "message", "room": room, "msg": "@alice once more"})
    for client in (alice, tab):
        wait_until(lambda c=client: mentions_in(c, room) == 2 and mentions_in(c) == 1, timeout=10, interval=0.05,
                   message="both processes to count alice's mentions")
    answer(alice, {"type": "read", "room": room, "id": MAX_ID})
    assert mentions_in(tab, room) == 0 and mentions_in(tab) == 1
    acked(bob, {"type": "delete", "of": general["id"]})
    assert mentions_in(alice) == 0
    acked(bob, {"type": "edit", "of": sent["id"], "msg": "never mind"})
    assert mention_rows(a, sent["id"]) == []
