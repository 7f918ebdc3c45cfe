"""Message search (issue 15), end to end over real sockets on each store and across two processes: words found in what
you can see, newest first, paged to the end; nothing of a private room you are not in, of a room you were kicked from,
of others' one-to-ones or of an earlier holder of your name; edited and deleted messages; hostile queries; the time
limit and the rate limit; the index made for an existing database; the query plan of each store; wscat."""
import json
import sqlite3
import uuid

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from chat.messaging.protocol import ProtocolError, Search, parse_inbound
from chat.messaging.search import SearchLimits, build_query
from chat.store.search import boolean_expression, fts5_expression, words
from tests.support.bystanders import Bystanders
from tests.support.clients import acked, answer
from tests.support.clients import make_room as support_make_room
from tests.support.databases import db_execute
from tests.support.polling import wait_until
from tests.support.servers import connect_when_free
from tests.support.wscat import Wscat

GUEST_HOLD = 3  # seconds: a short hold, so that a guest name changes hands soon


def word():
    """A word no other test uses (letters and digits: one word to both indexes)."""
    return "w" + uuid.uuid4().hex[:12]


def unique(short):
    return f"{short}-{uuid.uuid4().hex[:6]}"


def post(client, text, to=None):
    """Send a message (a direct with `to`); its ack with the text as "msg" (other events before the ack are skipped)."""
    payload = {"type": "message", "msg": text} if to is None else {"type": "direct", "to": to, "msg": text}
    return {**acked(client, payload), "msg": text}


def search(client, q, **fields):
    event = answer(client, {"type": "search", "q": q, **fields})
    assert event["type"] == "search", event
    return event


def refused(client, q, **fields):
    event = answer(client, {"type": "search", "q": q, **fields})
    assert event["type"] == "error", event
    return event


def answered(client):
    """The next search or error event (deliveries and the rest before it skipped)."""
    while True:
        event = client.recv()
        if event["type"] in ("search", "error"):
            return event


def ids(event):
    return [r["id"] for r in event["results"]]


def make_room(owner, members, private=True):
    return support_make_room(owner, members, unique("r"), private)


# ---- what you can see ---------------------------------------------------------------------------------------------


def test_a_search_finds_the_words_in_everything_you_can_see_newest_first(chat):
    alice, bob, carol = chat.connect("alice"), chat.connect("bob"), chat.connect("carol")
    w = word()
    room = make_room(alice, [bob])
    in_general = post(alice, f"{w} in general")
    in_room = acked(bob, {"type": "message", "room": room, "msg": f"{w.upper()} in the room"})
    direct = post(bob, f"psst, {w}!", to=alice.name)
    others = post(bob, f"{w} between bob and carol", to=carol.name)
    post(alice, "another word")  # no match
    found = search(alice, w)
    assert ids(found) == [direct["id"], in_room["id"], in_general["id"]] and found["more"] is False
    assert found["q"] == w
    assert found["results"][0] == {"type": "direct", "id": direct["id"], "user": bob.name, "to": alice.name,
                                   "msg": f"psst, {w}!", "ts": direct["ts"]}
    assert found["results"][1] == {"type": "message", "id": in_room["id"], "room": room, "user": bob.name,
                                   "msg": f"{w.upper()} in the room", "ts": in_room["ts"]}
    assert ids(search(carol, w)) == [others["id"], in_general["id"]]  # not the private room, not alice's one-to-one
    # one conversation only
    assert ids(search(alice, w, room=room)) == [in_room["id"]]
    assert ids(search(alice, w, room="general")) == [in_general["id"]]
    assert ids(search(alice, w, **{"with": bob.name})) == [direct["id"]]
    assert ids(search(carol, w, **{"with": bob.name})) == [others["id"]]
    # every word must be there, in any order, whatever the case and punctuation
    assert ids(search(alice, f"IN, the ... {w}!")) == [in_room["id"]]


def test_paging_with_before_reaches_the_end_with_nothing_missing_or_repeated(chat):
    alice = chat.connect("alice")
    w = word()
    sent = [post(alice, f"number {i} {w}")["id"] for i in range(23)]
    seen, before, pages = [], None, 0
    while True:
        page = search(alice, w, limit=5, **({} if before is None else {"before": before}))
        pages += 1
        assert len(page["results"]) <= 5
        seen += ids(page)
        if not page["more"]:
            break
        before = ids(page)[-1]
        assert page["before" if pages > 1 else "q"]  # "before" is echoed once given
    assert seen == sorted(sent, reverse=True) and pages == 5
    assert ids(search(alice, w, limit=10_000))[:3] == sorted(sent, reverse=True)[:3]  # lowered to search_max_page
    assert len(search(alice, w)["results"]) == 20  # search_page


def test_nothing_of_a_private_room_you_are_not_in_or_were_kicked_from(chat):
    alice, bob, carol = chat.connect("alice"), chat.connect("bob"), chat.connect("carol")
    w = word()
    room = make_room(alice, [bob])
    secret = acked(alice, {"type": "message", "room": room, "msg": f"the plan is {w}"})
    assert ids(search(bob, w)) == [secret["id"]]
    assert search(carol, w)["results"] == []
    assert refused(carol, w, room=room)["code"] == "no_such_room"  # as for a room that does not exist
    assert refused(carol, w, room=unique("nothere"))["code"] == "no_such_room"
    acked(alice, {"type": "kick", "room": room, "user": bob.name})
    wait_until(lambda: search(bob, w)["results"] == [], timeout=10, interval=0.05, message="the kick to take effect")
    assert refused(bob, w, room=room)["code"] == "no_such_room"
    # a public room: a member's search; outsiders are told to join
    public = make_room(alice, [], private=False)
    said = acked(alice, {"type": "message", "room": public, "msg": f"open {w}"})
    assert ids(search(alice, w)) == [said["id"], secret["id"]]
    assert refused(carol, w, room=public)["code"] == "not_member"
    assert search(carol, w)["results"] == []
    acked(carol, {"type": "join", "room": public})
    assert ids(search(carol, w)) == [said["id"]]
    acked(carol, {"type": "leave", "room": public})
    assert search(carol, w)["results"] == []


def test_nothing_of_others_one_to_ones(chat):
    alice, bob, carol = chat.connect("alice"), chat.connect("bob"), chat.connect("carol")
    w = word()
    post(bob, f"{w} for carol", to=carol.name)
    post(carol, f"{w} for bob", to=bob.name)
    assert search(alice, w)["results"] == []
    assert search(alice, w, **{"with": bob.name})["results"] == []
    assert search(alice, w, **{"with": carol.name})["results"] == []
    assert refused(alice, w, **{"with": unique("nobody")})["code"] == "unknown_user"
    assert refused(alice, w, **{"with": alice.name})["code"] == "bad_field"


def test_the_next_holder_of_a_guest_name_finds_none_of_the_earlier_holders_directs(start_server, database_url):
    server = start_server(database_url, guest_hold=GUEST_HOLD, bots="")
    name, friend_name, w = unique("victim"), unique("friend"), word()
    friend = server.connect(friend_name)
    friend.handshake()
    victim = server.connect(name, resume=False)
    victim.handshake()
    secret = post(friend, f"the door code is {w}", to=name)
    public = post(friend, f"everyone: {w}")
    assert ids(search(victim, w)) == [public["id"], secret["id"]]
    victim.close()
    attacker, _ = connect_when_free(server, name)
    attacker.recv_type("welcome")
    attacker.recv_type("history")
    assert ids(search(attacker, w)) == [public["id"]]
    assert search(attacker, w, **{"with": friend_name})["results"] == []
    fresh = post(friend, f"hello again {w}", to=name)
    assert ids(search(attacker, w, **{"with": friend_name})) == [fresh["id"]]
    for client in (friend, attacker):
        client.close()


# ---- edits and deletions ------------------------------------------------------------------------------------------


def test_an_edited_message_is_found_by_its_new_text_only_and_a_deleted_one_not_at_all(chat):
    alice, bob = chat.connect("alice"), chat.connect("bob")
    old, new, other = word(), word(), word()
    sent = post(alice, f"see you at {old}")
    edit = acked(alice, {"type": "edit", "of": sent["id"], "msg": f"see you at {new}"})
    assert search(bob, old)["results"] == []  # the old text is gone from the index
    found = search(bob, new)
    assert ids(found) == [sent["id"]]  # the message, not the edit row that keeps the text for replays
    assert found["results"][0]["msg"] == f"see you at {new}" and found["results"][0]["edited"] == edit["ts"]
    reply = post(bob, f"ok {other}")
    acked(bob, {"type": "react", "of": reply["id"], "key": "👍"})
    assert search(alice, other)["results"][0]["reactions"] == {"👍": [bob.name]}  # as history shows it
    acked(alice, {"type": "delete", "of": sent["id"]})
    assert search(bob, new)["results"] == [] and search(bob, old)["results"] == []
    # room events are no hits: a room whose name and topic hold the word
    room = unique(other)
    acked(alice, {"type": "create", "room": room, "topic": f"about {other}"})
    assert ids(search(alice, other)) == [reply["id"]]


def test_what_each_store_finds(chat):
    """docs/protocol.md's table: whole words, any case and accents, common words; short words only on SQLite."""
    alice = chat.connect("alice")
    w = word()
    sent = post(alice, f"{w} The Café wasn't open: foo_bar e-mail Straße 東京 日本語のテキスト ok")
    mysql = chat.server.database_url.startswith("mysql")
    for q in (w, f"{w} the", f"{w} CAFE", f"{w} café", f"{w} wasn", f"{w} foo_bar", f"{w} mail", f"{w} straße",
              f"{w} 日本語のテキスト", f"{w}!!! THE"):
        assert ids(search(alice, q)) == [sent["id"]], q
    for q in (f"{w} foo", f"{w} 日本語", f"{w} cafes", f"{w.upper()[:-1]}"):
        assert search(alice, q)["results"] == [], q
    short = search(alice, f"{w} ok t")
    if mysql:  # under innodb_ft_min_token_size: left out, and said so
        assert ids(short) == [sent["id"]] and short["ignored"] == ["ok", "t"]
        assert refused(alice, "ok t")["code"] == "bad_field"
        assert ids(search(alice, f"{w} strasse")) == [sent["id"]]
        assert search(alice, f"{w} 東京")["ignored"] == ["東京"]
    else:
        assert ids(short) == [sent["id"]] and "ignored" not in short  # every word counts ("t" of "wasn't" too)
        assert search(alice, f"{w} ok x")["results"] == []
        assert ids(search(alice, f"{w} 東京")) == [sent["id"]]
        assert search(alice, f"{w} strasse")["results"] == []


# ---- hostile input ------------------------------------------------------------------------------------------------

HOSTILE = [
    '"', '""', '"unclosed', "*", "w*", "NEAR(a b)", "NEAR", "a NEAR/2 b", "-a", "+a", "a -b", "body:secret",
    "{body}: x", "(a OR b)", "a AND NOT b", "^start", "a @3", "~a", "<a >b", "a\\b", "'; DROP TABLE messages; --",
    '") OR 1=1 --', "' OR '1'='1", "%_%", "\x00", "a\x00b", "\u202eevil\u202c", "\u200b\u200d", "e\u0301", "🔥🔥🔥",
    "﷽", "𝔘𝔫𝔦𝔠𝔬𝔡𝔢", "ǅ", "\ufeff", "İstanbul", "ß", "a" * 200, "東京 日本語",
]


def test_hostile_queries_get_results_or_a_clear_error_and_a_bystander_keeps_chatting(chat):
    watch = Bystanders(chat.server)
    alice = chat.connect("alice")
    w = word()
    tricky = post(alice, f'{w} "quoted" NEAR(a b) -minus +plus body:col (paren) * \'; DROP TABLE messages; --')
    for q in HOSTILE:
        event = answer(alice, {"type": "search", "q": q})
        assert event["type"] == "search" or (event["type"] == "error" and event["code"] == "bad_field"), (q, event)
    # the operators are words like any other (or separators): the message is found by them
    for q in (f'{w} "quoted"', f"{w} NEAR", f"{w} -minus", f"{w} body:col", f"{w} (paren)", f"{w} DROP TABLE"):
        assert ids(search(alice, q)) == [tricky["id"]], q
    # too long, too many words, nothing to search for
    assert refused(alice, "x" * 64 * 1000)["code"] == "bad_field"
    assert refused(alice, "a" * 201)["code"] == "bad_field"
    assert refused(alice, " ".join(f"t{i}" for i in range(10_000)))["code"] == "bad_field"
    assert refused(alice, " ".join(f"t{i}" for i in range(9)))["code"] == "bad_field"
    for q in ("", "   ", "!!! ... ???", "🔥", "\x00\x01"):
        assert refused(alice, q)["code"] == "bad_field", q
    for fields in ({"q": 5}, {"q": None}, {"q": ["a"]}, {"q": "a", "limit": 0}, {"q": "a", "limit": "5"},
                   {"q": "a", "before": "x"}, {"q": "a", "before": 0}, {"q": "a", "room": "general", "with": "x"},
                   {"q": "a", "room": 5}, {"q": "a", "with": "not a name!"}):
        event = answer(alice, {"type": "search", **fields})
        assert event["type"] == "error" and event["code"] in ("bad_field", "bad_name"), (fields, event)
    alice.send('{"type":"search","q":"\\ud800 x","ref":"s1"}')  # an unpaired surrogate
    assert answered(alice) == {"type": "error", "code": "bad_field", "ref": "s1",
                                        "message": '"q" holds an unpaired surrogate (\\ud800-\\udfff): not text'}
    watch.check()
    assert ids(search(alice, w)) == [tricky["id"]]  # nothing was dropped either
    watch.close()


def test_slash_search_everywhere_or_in_one_conversation(chat):
    alice, bob = chat.connect("alice"), chat.connect("bob")
    w = word()
    room = make_room(alice, [bob])
    here = post(alice, f"{w} in general")
    there = acked(alice, {"type": "message", "room": room, "msg": f"{w} in the room"})
    direct = post(bob, f"{w} to alice", to=alice.name)
    alice.send(f"/search {w}")
    assert ids(answered(alice)) == [direct["id"], there["id"], here["id"]]
    alice.send(f"/room #{room}")
    alice.recv_type("room")
    alice.send(f"/search {w}")  # the current room does not narrow it: everything you can see
    assert ids(answered(alice)) == [direct["id"], there["id"], here["id"]]
    alice.send(f"/search #{room} {w}")
    assert ids(answered(alice)) == [there["id"]]
    alice.send(f"/search @{bob.name}\t{w}")
    assert answered(alice) == {"type": "search", "q": w, "with": bob.name, "results": ids_only(direct, bob, alice, w),
                                         "more": False}
    for line in ("/search", "/search   ", f"/search #{room}"):
        alice.send(line)
        assert answered(alice)["code"] == "bad_command", line
    alice.send("/search !!!")
    assert answered(alice)["code"] == "bad_field"


def ids_only(direct, sender, receiver, w):
    return [{"type": "direct", "id": direct["id"], "user": sender.name, "to": receiver.name, "msg": f"{w} to alice",
             "ts": direct["ts"]}]


# ---- limits -------------------------------------------------------------------------------------------------------

HIDDEN = 10**12  # ids of rows written straight into the database, far above the server's until then


def fill(database_url, count, text):
    """`count` messages in a room nobody is in, written straight into the database (the index follows)."""
    if database_url.startswith("sqlite"):
        sql = (f"WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < {count}) INSERT INTO messages "
               f"(id, sender, recipient, body, created_ms, room) SELECT {HIDDEN} + x, 'zed', NULL, '{text} ' || x, x, 'hidden' FROM c")
    else:
        sql = (f"INSERT INTO messages (id, sender, recipient, body, created_ms, room) "
               f"SELECT {HIDDEN} + seq, 'zed', NULL, CONCAT('{text} ', seq), seq, 'hidden' FROM seq_1_to_{count}")
    db_execute(database_url, sql)
    # as the server's own writes do: ids come from chat_meta, so the next one it hands out is above these
    db_execute(database_url, f"UPDATE chat_meta SET next_id = {HIDDEN + count + 1} WHERE id = 1")


def test_a_search_past_the_time_limit_is_stopped_and_refused_and_others_keep_chatting(start_server, database_url):
    # 20 ms: far less than a search through the filled rows takes (SQLite ~90 ms, MariaDB ~1 s here), far more than
    # a search for a rare word
    from chat.store import Store

    # Filled before the server starts, as a server's own writes would (ids from chat_meta): on SQLite the index's mark
    # never passes an id the server may still commit (chat/store/search.py), and indexes them at start.
    store = Store(database_url, pool_size=1, connect_timeout=3)
    store.ensure_schema()
    store.close()
    w = word()
    fill(database_url, 100_000 if database_url.startswith("sqlite") else 50_000, w)
    server = start_server(database_url, search_timeout=0.02, bots="")
    watch = Bystanders(server)
    alice = server.connect(unique("alice"))
    alice.handshake()
    event = refused(alice, w)
    assert event["code"] == "search_timeout" and "took too long" in event["message"]
    mine = post(alice, f"rare {word()}")
    assert ids(search(alice, mine["msg"].split()[1])) == [mine["id"]]  # a narrow search still answers
    watch.check()
    watch.close()
    alice.close()


def test_a_page_of_results_stays_within_history_frame_bytes_and_paging_still_finds_all(start_server, database_url):
    server = start_server(database_url, history_frame_bytes=4096, bots="")
    alice = server.connect(unique("alice"))
    alice.handshake()
    w = word()
    sent = [post(alice, f"{w} {i} " + "x" * (5000 if i == 3 else 1500))["id"] for i in range(6)]
    seen, before, sizes = [], None, []
    while True:
        page = search(alice, w, limit=50, **({} if before is None else {"before": before}))
        sizes.append([len(json.dumps(r, ensure_ascii=False).encode()) for r in page["results"]])
        seen += ids(page)
        if not page["more"]:
            break
        before = seen[-1]
    assert seen == sorted(sent, reverse=True)
    assert all(len(page) == 1 or sum(page) <= 4096 for page in sizes) and max(map(len, sizes)) == 2, sizes
    assert [1] == [len(page) for page in sizes if max(page) > 4096]  # the large one went alone
    alice.close()


def test_searches_count_against_the_rate_limit(start_server, database_url):
    server = start_server(database_url, rate_limit=0.5, rate_burst=3, bots="")
    alice = server.connect(unique("alice"))
    alice.handshake()
    answers = [answer(alice, {"type": "search", "q": "anything"}) for _ in range(3)]
    assert [a["type"] for a in answers] == ["search"] * 3
    assert answer(alice, {"type": "search", "q": "anything"})["code"] == "rate_limited"
    alice.close()


def test_searches_past_search_concurrency_wait_then_are_refused_as_busy(sqlite_url):
    """In one process (the rule, not the socket): a search that finds every slot taken for search_timeout is refused."""
    import gevent
    from gevent.event import Event

    from chat.config import Settings
    from chat.messaging.search import SearchService
    from chat.store import Store
    from chat.store.search import SearchQueries

    store = Store(sqlite_url, pool_size=2)
    store.ensure_schema()
    release, entered = Event(), Event()

    class HeldQueries(SearchQueries):
        def message_ids(self, *args):
            entered.set()
            release.wait()
            return super().message_ids(*args)

    service = SearchService(Settings(search_concurrency=1, search_timeout=0.2).validate(), HeldQueries(store), None,
                            lambda name: True, lambda records: records, store.messages_with_ids)
    first = gevent.spawn(service.search, "alice", Search("hello", room="general"))
    entered.wait(5)
    with pytest.raises(ProtocolError) as refusal:
        service.search("bob", Search("hello", room="general", ref=7))
    assert (refusal.value.code, refusal.value.ref) == ("search_busy", 7)
    release.set()
    assert first.get(timeout=5)["results"] == []
    assert service.search("bob", Search("hello", room="general"))["more"] is False  # the slot is free again
    store.close()


# ---- two processes ------------------------------------------------------------------------------------------------


def test_search_across_two_processes_sees_rooms_and_kicks_of_the_other(pair, clients):
    a, b = pair
    names = [unique(n) for n in ("alice", "bob", "carol")]
    alice, bob, carol = clients(a, names[0]), clients(b, names[1]), clients(b, names[2])
    for client, name in zip((alice, bob, carol), names):
        client.name = name
    w = word()
    room = make_room(alice, [bob])  # made on one process, joined on the other
    secret = acked(alice, {"type": "message", "room": room, "msg": f"{w} for members"})["id"]
    # acked, not post: bob's member event (his join on b) may still reach alice over the bus after her last ack
    public = acked(alice, {"type": "message", "msg": f"{w} for everyone"})["id"]
    direct = post(carol, f"{w} for bob", to=bob.name)["id"]
    assert ids(search(bob, w)) == [direct, public, secret]  # an ack means stored: found from either process
    assert ids(search(alice, w)) == [public, secret]
    assert ids(search(carol, w)) == [direct, public]
    assert refused(carol, w, room=room)["code"] == "no_such_room"
    acked(alice, {"type": "kick", "room": room, "user": bob.name})
    wait_until(lambda: ids(search(bob, w)) == [direct, public], timeout=10, interval=0.05, message="the kick to reach b")
    assert refused(bob, w, room=room)["code"] == "no_such_room"


# ---- the index and its plan ---------------------------------------------------------------------------------------


@pytest.fixture
def store(database_url):
    from chat.store import Store

    s = Store(database_url, pool_size=2, connect_timeout=3)
    s.ensure_schema()
    yield s
    s.close()


def _records():
    from chat.records import MessageRecord

    return [
        MessageRecord(1, "alice", None, "Hello older world", 1),
        MessageRecord(2, "bob", "alice", "older secret", 2),
        MessageRecord(3, "alice", None, "text now edited", 3, kind="edit", target_id=1),
        MessageRecord(4, "carol", None, '{"change":"joined","created":true}', 4, room="older", kind="member", subject="carol"),
        MessageRecord(5, "carol", None, "older room talk", 5, room="older"),
    ]


def _drop_index(store):
    from chat.store.search import MYSQL_COLUMN, MYSQL_INDEX, SQLITE_TABLE

    with store.cursor() as cur:
        if store.kind == "sqlite":
            for trigger in ("messages_fts_forget", "messages_fts_change"):
                cur.execute(f"DROP TRIGGER {trigger}")
            cur.execute(f"DROP TABLE {SQLITE_TABLE}")
            cur.execute("DROP TABLE search_mark")
        else:
            cur.execute(f"ALTER TABLE messages DROP INDEX {MYSQL_INDEX}, DROP COLUMN {MYSQL_COLUMN}")


def test_the_index_is_made_at_start_for_a_database_that_has_none(store):
    from chat.store.search import SearchQueries

    _drop_index(store)  # a database from before search
    store.insert_messages(_records())
    store.ensure_schema()
    queries = SearchQueries(store)
    everywhere = ("everywhere", "alice", frozenset({"older"}))
    assert queries.message_ids(queries.expression(["older"]), everywhere, 2**62, 10, 5.0) == [5, 2]  # not 1: edited
    assert queries.message_ids(queries.expression(["edited"]), everywhere, 2**62, 10, 5.0) == [1]  # the message, not row 3
    assert queries.message_ids(queries.expression(["joined"]), everywhere, 2**62, 10, 5.0) == []  # no room event
    store.ensure_schema()  # again: nothing twice
    assert queries.message_ids(queries.expression(["older"]), everywhere, 2**62, 10, 5.0) == [5, 2]


def test_an_index_of_the_queueing_version_is_completed_and_kept_by_the_mark(store):
    from chat.store.search import SQLITE_TABLE, SearchQueries

    if store.kind != "sqlite":
        pytest.skip("SQLite only: MariaDB's index is InnoDB's own")
    store.insert_messages(_records())
    with store.cursor() as cur:  # the second version: rows 1 and 2 indexed, row 5 still queued
        for trigger in ("messages_fts_forget", "messages_fts_change"):
            cur.execute(f"DROP TRIGGER {trigger}")
        cur.execute("DROP TABLE search_mark")
        cur.execute(f"INSERT INTO {SQLITE_TABLE} ({SQLITE_TABLE}) VALUES ('delete-all')")  # external content: empty it so
        cur.execute(f"INSERT INTO {SQLITE_TABLE} (rowid, body) SELECT id, body FROM messages WHERE id IN (1, 2)")
        cur.execute("CREATE TABLE search_pending (id INTEGER PRIMARY KEY)")
        cur.execute("INSERT INTO search_pending (id) VALUES (5)")
    store.ensure_schema()
    queries = SearchQueries(store)
    everywhere = ("everywhere", "alice", frozenset({"older"}))
    assert queries.message_ids(queries.expression(["older"]), everywhere, 2**62, 10, 5.0) == [5, 2]
    with store.cursor() as cur:
        cur.execute("SELECT name FROM sqlite_master WHERE name = 'search_pending'")
        assert cur.fetchall() == []
        cur.execute("SELECT upto FROM search_mark")
        assert cur.fetchall() == [(5,)]
        cur.execute("UPDATE messages SET body = 'renamed' WHERE id = 2")  # indexed: the trigger keeps the index right
    assert queries.message_ids(queries.expression(["older"]), everywhere, 2**62, 10, 5.0) == [5]
    assert queries.message_ids(queries.expression(["renamed"]), everywhere, 2**62, 10, 5.0) == [2]


def test_the_mark_never_passes_an_id_the_process_may_still_commit(store):
    from chat.records import MessageRecord
    from chat.store.search import SearchQueries

    if store.kind != "sqlite":
        pytest.skip("SQLite only: MariaDB's index is InnoDB's own")
    settled = [3]  # ids 3 and 4 assigned, not committed yet
    queries = SearchQueries(store, lambda: settled[0])
    everywhere = ("everywhere", "alice", frozenset())
    store.insert_messages([MessageRecord(1, "alice", None, "alpha one", 1), MessageRecord(2, "alice", None, "alpha two", 2),
                           MessageRecord(5, "alice", None, "alpha five", 5)])
    assert queries.message_ids(queries.expression(["alpha"]), everywhere, 2**62, 10, 5.0) == [2, 1]  # 5 waits for 3, 4
    store.insert_messages([MessageRecord(3, "alice", None, "alpha three", 3), MessageRecord(4, "alice", None, "beta", 4)])
    with store.cursor() as cur:
        cur.execute("UPDATE messages SET body = 'alpha four' WHERE id = 4")  # above the mark: the batch takes it as it is
    settled[0] = 6
    assert queries.message_ids(queries.expression(["alpha"]), everywhere, 2**62, 10, 5.0) == [5, 4, 3, 2, 1]
    assert queries.message_ids(queries.expression(["beta"]), everywhere, 2**62, 10, 5.0) == []


SCOPES = [("everywhere", "alice", frozenset({"dev", "ops"})), ("everywhere", "alice", frozenset()), ("general",),
          ("room", "dev"), ("with", "alice", "bob")]


@pytest.mark.parametrize("scope", SCOPES, ids=lambda s: s[0] + str(len(s)))
def test_the_query_plan_uses_the_full_text_index(store, scope):
    from chat.store.search import MYSQL_INDEX, SearchQueries

    store.insert_messages(_records())
    queries = SearchQueries(store)
    plan = queries.explain(queries.expression(["older", "world"]), scope)
    text = "\n".join(" ".join(row) for row in plan)
    if store.kind == "sqlite":
        # the FTS table walks its matches (newest first, no sort of its own), each message looked up by its key
        assert "SCAN f VIRTUAL TABLE INDEX" in text and "SEARCH m USING INTEGER PRIMARY KEY (rowid=?)" in text, text
        assert "SCAN m" not in text and "TEMP B-TREE" not in text, text
    else:
        (row,) = [r for r in plan if r[2] == "m"]
        assert (row[3], row[5]) == ("fulltext", MYSQL_INDEX), plan


# ---- the query builder (pure) ----------------------------------------------------------------------------------------

_FTS5 = sqlite3.connect(":memory:")
_FTS5.execute("CREATE VIRTUAL TABLE t USING fts5(body, tokenize=\"unicode61 remove_diacritics 2 tokenchars '_'\")")
_FTS5.execute("INSERT INTO t (body) VALUES ('some text')")
_LIMITS = {"sqlite": SearchLimits(200, 8, 1, None), "mysql": SearchLimits(200, 8, 3, 84)}
_BUILDERS = {"sqlite": fts5_expression, "mysql": boolean_expression}


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=st.one_of(st.text(max_size=250), st.text(alphabet='"*-+():^~<>@ NEARANDORNOT_ab\x00\'', max_size=60)),
       store=st.sampled_from(["sqlite", "mysql"]))
def test_whatever_text_goes_in_the_expression_is_well_formed_or_refused_with_bad_field(text, store):
    try:
        query = build_query(text, _LIMITS[store], _BUILDERS[store])
    except ProtocolError as e:
        assert e.code == "bad_field"
        return
    assert 1 <= len(query.terms) <= 8 and len(text) <= 200
    assert all(t == t.lower() and '"' not in t and not any(c.isspace() for c in t) for t in query.terms)
    if store == "sqlite":
        assert query.expression == " AND ".join(f'"{t}"' for t in query.terms)
        _FTS5.execute("SELECT rowid FROM t WHERE t MATCH ?", (query.expression,)).fetchall()  # FTS5 parses it
    else:
        assert query.expression == " ".join(f'+"{t}"' for t in query.terms)
        assert all(3 <= len(t) <= 84 for t in query.terms)
    assert set(query.terms) | set(query.ignored) == set(words(text))


@pytest.fixture(scope="module")
def mariadb_match(mysql_databases):
    """run(expression): MariaDB's MATCH ... AGAINST (expression IN BOOLEAN MODE) on a one-row FULLTEXT table."""
    import pymysql

    url = mysql_databases.create()
    db_execute(url, "CREATE TABLE t (id INT PRIMARY KEY, words MEDIUMTEXT CHARACTER SET utf8mb4 COLLATE "
                    "utf8mb4_unicode_520_ci, FULLTEXT (words)) ENGINE=InnoDB")
    db_execute(url, "INSERT INTO t VALUES (1, 'some text here')")
    from urllib.parse import urlsplit

    p = urlsplit(url)
    conn = pymysql.connect(host=p.hostname, port=p.port, user=p.username, password=p.password or "", database=p.path[1:])
    yield lambda expression: conn.cursor().execute("SELECT id FROM t WHERE MATCH (words) AGAINST (%s IN BOOLEAN MODE)",
                                                   (expression,))
    conn.close()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(text=st.one_of(st.text(max_size=120), st.text(alphabet='"*-+():^~<>@ NEARANDORNOT_ab\x00\'\\', max_size=60)))
def test_mariadb_parses_every_expression_the_builder_makes(mariadb_match, text):
    try:
        query = build_query(text, _LIMITS["mysql"], boolean_expression)
    except ProtocolError as e:
        assert e.code == "bad_field"
        return
    mariadb_match(query.expression)  # raises on a syntax error


def test_words_split_like_the_indexes():
    assert words('Hello, "World" hello-foo_bar NEAR(x) ÉCOLE e\u0301 東京 🔥 a\x00b') == [
        "hello", "world", "foo_bar", "near", "x", "école", "e\u0301", "東京", "a", "b"]
    with pytest.raises(ValueError):
        fts5_expression(['a"b'])
    with pytest.raises(ValueError):
        boolean_expression([])


def test_the_search_frames_parse():
    options = dict(max_name_length=32, default_history=50, max_history=200)
    assert parse_inbound('{"type":"search","q":"a b","room":"Dev","before":9,"limit":3,"ref":"r"}', **options) == Search(
        "a b", "dev", None, 9, 3, "r")
    assert parse_inbound("/search  hello  world ", **options) == Search("hello  world")
    assert parse_inbound("/search #dev hello", **options) == Search("hello", room="dev")
    assert parse_inbound("/search @Bob hello", **options) == Search("hello", with_user="bob")


# ---- a terminal -----------------------------------------------------------------------------------------------------


def test_wscat_searches_from_a_terminal(chat, wscat_path):
    bob = chat.connect("bob")
    w = word()
    sent = post(bob, f"where is the {w} key")
    term_name = chat.name("term")
    term = Wscat(wscat_path, chat.server.ws_url(f"/ws/{term_name}"))
    try:
        searched_from_a_terminal(term, bob, sent, w)
    finally:
        term.quit()


def searched_from_a_terminal(term, bob, sent, w):
    term.expect(lambda e: e["type"] == "welcome")
    term.send_line(f"/search {w} KEY")
    found = term.expect(lambda e: e["type"] == "search")
    assert found == {"type": "search", "q": f"{w} KEY", "results": [{"type": "message", "id": sent["id"], "user": bob.name,
                     "msg": f"where is the {w} key", "ts": sent["ts"]}], "more": False}
    term.send_line("/search ***")
    assert term.expect(lambda e: e["type"] == "error")["code"] == "bad_field"
