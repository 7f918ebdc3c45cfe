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
from chat.records import MessageRecord, reaction_body
from chat.store import Store
from chat.store.lifecycle import LifecycleQueries, quote_of
from tests.support.clients import ChatClient, acked, answer
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


# ---- over real sockets ---------------------------------------------------------------------------------------------


def connect_history(server, name, resume=None):
    """(the welcome's resume token, a fresh connect's history, the answer to a history request: the store's)."""
    with ChatClient.connect(server.ws_url(f"/ws/{name}" + (f"?resume={resume}" if resume else ""))) as client:
        welcome, history = client.handshake()
        stored = answer(client, {"type": "history", "limit": 50})
        return welcome.get("resume"), history["messages"], stored["messages"]


def post_and_change(server):
    with ChatClient.connect(server.ws_url("/ws/writer")) as ws:
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
        resume, history, stored = connect_history(server, "reader")
        assert history == stored
        texts = {m.get("msg") for m in history}
        assert {"m0 edited", "answer", "answer 2"} <= texts and not {"m2", "m3"} & texts
        assert next(m for m in history if m.get("msg") == "answer")["quote"] == {"user": "writer", "msg": "m0 edited"}
        assert next(m for m in history if m.get("msg") == "answer 2")["quote"] == {"deleted": True}
        assert next(m for m in history if m.get("msg") == "m1")["reactions"] == {"👍": ["writer"]}
        assert sum(1 for m in history if m.get("deleted")) == 2
        server.stop()
        server.start()
        _, again, stored_again = connect_history(server, "reader", resume)
        assert again == stored_again == history
    finally:
        server.stop()
