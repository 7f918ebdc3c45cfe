"""The in-memory recent history of general (chat/messaging/recent.py): whatever messages, replies, edits, deletions and
reactions are posted, in whatever order, what it holds is what the store's history shows (property-based, on both
stores); and over real sockets, a connect's history (read from memory) equals a history request (read from the store),
before and after a restart."""
import itertools

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chat.messaging.protocol import message_event
from chat.messaging.recent import RecentGeneral
from chat.messaging.service import _in_replay
from chat.messaging.stream import RecentStream
from chat.records import MessageRecord, reaction_body
from chat.store import Store
from chat.store.lifecycle import LifecycleQueries, quote_of
from tests.support.clients import acked, answer
from tests.support.databases import fresh_database_url
from tests.support.servers import ServerProcess

USERS = ("ann", "bob", "cy")
KEYS = ("👍", "🎉", "x")
SIZE = 4  # small, so that replies and changes reach messages that fell out of it

_created = itertools.count(1_700_000_000_000)

operation = st.one_of(
    st.tuples(st.just("send"), st.sampled_from(USERS), st.none() | st.integers(0, 6)),
    st.tuples(st.just("edit"), st.integers(0, 6), st.text(min_size=1, max_size=8)),
    st.tuples(st.just("delete"), st.integers(0, 6), st.sampled_from(USERS)),
    st.tuples(st.just("react"), st.integers(0, 6), st.sampled_from(USERS), st.sampled_from(KEYS), st.sampled_from(["add", "remove"])),
)


@pytest.fixture(scope="module", params=["sqlite", "mysql"])
def store(request, tmp_path_factory):
    store = Store(fresh_database_url(request, request.param, tmp_path_factory.mktemp("recent")))
    store.ensure_schema()
    yield store
    store.close()


def shown(records):
    return [message_event(r) for r in records]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(operations=st.lists(operation, min_size=1, max_size=25))
def test_whatever_is_posted_the_recent_history_shows_what_the_store_shows(store, operations):
    current = LifecycleQueries(store).current
    recent = RecentGeneral(SIZE)
    recent.load(current(store.group_page(SIZE)))
    messages = []  # the messages posted in this example
    next_id = store.max_message_id() + 1
    for op in operations:
        if op[0] != "send" and not messages:
            continue
        if op[0] == "send":
            reply_to, state = None, None
            if op[2] is not None and messages:
                (target,) = store.messages_with_ids([messages[-1 - op[2] % len(messages)].id])
                if target.body == "":
                    continue  # the service refuses a reply to a deleted message
                reply_to, state = target.id, {"quote": quote_of(target.sender, target.body)}
            record = MessageRecord(next_id, op[1], None, f"text {next_id}", next(_created), target_id=reply_to, state=state)
            messages.append(record)
        else:
            target = messages[-1 - op[1] % len(messages)]  # mostly the newest: those kept
            if op[0] == "edit":
                record = MessageRecord(next_id, target.sender, None, op[2], next(_created), kind="edit", target_id=target.id)
            elif op[0] == "delete":
                record = MessageRecord(next_id, op[2], None, "", next(_created), kind="delete", target_id=target.id)
            else:
                record = MessageRecord(
                    next_id, op[2], None, reaction_body(op[3], op[4]), next(_created), kind="reaction", target_id=target.id
                )
        store.insert_messages([record._replace(state=None)])
        recent.apply(record)
        next_id += 1
    assert shown(recent.newest(SIZE)) == shown(current(store.group_page(SIZE)))


ROOMS = ("#r1", "#r2")
stream_operation = st.one_of(
    st.tuples(st.just("send"), st.sampled_from(USERS), st.sampled_from([None, *USERS, *ROOMS]), st.none() | st.integers(0, 3)),
    st.tuples(st.just("edit"), st.integers(0, 3), st.text(min_size=1, max_size=8)),
    st.tuples(st.just("delete"), st.integers(0, 3), st.sampled_from(USERS)),
    st.tuples(st.just("react"), st.integers(0, 3), st.sampled_from(USERS), st.sampled_from(KEYS), st.sampled_from(["add", "remove"])),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(operations=st.lists(stream_operation, min_size=1, max_size=25), size=st.integers(1, 12), data=st.data())
def test_whatever_is_posted_a_replay_from_the_recent_stream_is_what_the_store_replays(store, operations, size, data):
    current = LifecycleQueries(store).current
    first = store.max_message_id() + 1
    stream = RecentStream(size)
    rows = store.newest_records(size)
    stream.load(current(rows), 0 if len(rows) < size else rows[0].id - 1)
    messages = []
    next_id = first
    for op in operations:
        if op[0] != "send" and not messages:
            continue
        if op[0] == "send":
            to = op[2]
            recipient = to if to in USERS else None
            room = to[1:] if to in ROOMS else None
            reply_to, state = None, None
            if op[3] is not None and messages:
                (target,) = store.messages_with_ids([messages[-1 - op[3] % len(messages)].id])
                if target.body == "" or (target.recipient, target.room) != (recipient, room):
                    continue  # the service refuses a reply to a deleted message or to another conversation's
                reply_to, state = target.id, {"quote": quote_of(target.sender, target.body)}
            record = MessageRecord(next_id, op[1], recipient, f"text {next_id}", next(_created), room=room, target_id=reply_to, state=state)
            messages.append(record)
        else:
            target = messages[-1 - op[1] % len(messages)]
            if store.messages_with_ids([target.id])[0].body == "":
                continue  # the service refuses any change to a deleted message (not_found)
            where = dict(recipient=target.recipient, room=target.room)
            if op[0] == "edit":
                record = MessageRecord(next_id, target.sender, body=op[2], created_ms=next(_created), kind="edit", target_id=target.id, **where)
            elif op[0] == "delete":
                record = MessageRecord(next_id, op[2], body="", created_ms=next(_created), kind="delete", target_id=target.id, **where)
            else:
                record = MessageRecord(next_id, op[2], body=reaction_body(op[3], op[4]), created_ms=next(_created), kind="reaction",
                                       target_id=target.id, **where)
        store.insert_messages([record._replace(state=None)])
        stream.apply(record)
        next_id += 1
    user = data.draw(st.sampled_from(USERS))
    rooms = frozenset(data.draw(st.sets(st.sampled_from([r[1:] for r in ROOMS]))))
    since = min(first - 2 + data.draw(st.integers(0, 28)), next_id)  # drawn apart from the ids: they grow across examples
    if not stream.covers(since):
        return
    from_store = current(store.visible_since(user, since, 10_000, rooms))
    from_memory = [r for r in stream.after(since) if _in_replay(r, user, rooms, lambda: 0)]
    assert shown(from_memory) == shown(from_store)
    directs = [r for r in from_memory if r.recipient == user and r.kind is None]
    assert shown(directs) == shown(current(store.directs_to_since(user, since, 10_000)))


# ---- over real sockets ---------------------------------------------------------------------------------------------


def connect_history(server, name):
    """(the welcome's resume token, a fresh connect's history, the answer to a history request: the store's)."""
    with server.connect(name) as client:
        welcome, history = client.handshake()
        stored = answer(client, {"type": "history", "limit": 50})
        return welcome.get("resume"), history["messages"], stored["messages"]


def post_and_change(server):
    with server.connect("writer") as ws:
        ws.handshake()
        ids = [acked(ws, {"type": "message", "msg": f"m{i}"})["id"] for i in range(6)]
        acked(ws, {"type": "message", "msg": "answer", "reply_to": ids[0]})
        acked(ws, {"type": "edit", "of": ids[0], "msg": "m0 edited"})
        acked(ws, {"type": "react", "of": ids[1], "key": "👍", "op": "add"})
        acked(ws, {"type": "delete", "of": ids[2]})
        acked(ws, {"type": "message", "msg": "answer 2", "reply_to": ids[3]})
        acked(ws, {"type": "delete", "of": ids[3]})


def test_a_connects_history_from_memory_equals_the_stores_before_and_after_a_restart(database_url, tmp_path):
    server = ServerProcess(database_url, tmp_path / "server.log", bots="").start()
    try:
        post_and_change(server)
        _, history, stored = connect_history(server, "reader")
        assert history == stored
        texts = {m.get("msg") for m in history}
        assert {"m0 edited", "answer", "answer 2"} <= texts and not {"m2", "m3"} & texts
        assert next(m for m in history if m.get("msg") == "answer")["quote"] == {"user": "writer", "msg": "m0 edited"}
        assert next(m for m in history if m.get("msg") == "answer 2")["quote"] == {"deleted": True}
        assert next(m for m in history if m.get("msg") == "m1")["reactions"] == {"👍": ["writer"]}
        assert sum(1 for m in history if m.get("deleted")) == 2
        server.stop()
        server.start()
        _, again, stored_again = connect_history(server, "reader")
        assert again == stored_again == history
    finally:
        server.stop()


def replay(server, name, since):
    with server.connect(name, f"?since={since}") as client:
        _, event = client.handshake()
        events = event["messages"]
        while event.get("complete") is False:  # a replay in several history events
            event = client.recv_type("history")
            events += event["messages"]
        return events


def test_a_replay_from_memory_is_the_replay_from_the_database(database_url, tmp_path):
    server = ServerProcess(database_url, tmp_path / "server.log", bots="").start()
    try:
        post_and_change(server)
        with server.connect("writer") as writer, server.connect("reader") as reader:
            writer.handshake(), reader.handshake()
            acked(writer, {"type": "create", "room": "den", "private": True})
            acked(writer, {"type": "invite", "room": "den", "user": "reader"})
            acked(reader, {"type": "join", "room": "den"})
            den = acked(writer, {"type": "message", "room": "den", "msg": "in the den"})["id"]
            acked(reader, {"type": "react", "of": den, "key": "🎉", "op": "add"})
            to_reader = acked(writer, {"type": "direct", "to": "reader", "msg": "just you"})["id"]
            acked(writer, {"type": "edit", "of": to_reader, "msg": "just you, edited"})
        from_memory = {since: replay(server, "reader", since) for since in (0, 3, den - 1)}
        assert any(m.get("msg") == "just you, edited" for m in from_memory[0])
        assert any(m.get("reactions") == {"🎉": ["reader"]} for m in from_memory[0])
        server.stop()
        server.settings["recent_records"] = 0
        server.start()
        for since, events in from_memory.items():
            assert replay(server, "reader", since) == events
    finally:
        server.stop()


def test_the_kept_records_are_out_of_the_garbage_collectors_reach():
    """20,000 records the collector tracks would be promoted to its oldest generation and set off full collections
    (+6 us per direct message in bench/ab.py): what the stream keeps is plain tuples of strings, ints and None, which
    the collector untracks, and what it gives back is MessageRecords again."""
    import gc

    stream = RecentStream(50)
    stream.load([], 0)
    for i in range(1, 101):
        stream.apply(MessageRecord(i, "ann", "bob" if i % 2 else None, f"text {i}", 1_700_000_000_000 + i))
    gc.collect()
    assert len(stream) == 50
    assert not any(gc.is_tracked(kept) for kept in stream._by_id.values())
    replayed = stream.after(0)
    assert [r.id for r in replayed] == list(range(51, 101))
    assert all(type(r) is MessageRecord for r in replayed) and replayed[0].body == "text 51"
