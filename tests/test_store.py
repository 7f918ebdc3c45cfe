"""The Store class directly, on SQLite and on MySQL/MariaDB (each test gets a fresh database of each kind)."""
import time

import pytest

from chat.records import MessageRecord
from chat.store import Store

EMOJI = "emoji 😀🎉👍🏽 and 中文, ñ, 𝄞, Ω, العربية"


@pytest.fixture
def store(database_url):
    s = Store(database_url, pool_size=2, connect_timeout=3)
    s.ensure_schema()
    yield s
    s.close()


def rec(id, sender="alice", recipient=None, body=None, ms=None):
    return MessageRecord(id, sender, recipient, body if body is not None else f"m{id}", ms or 1_700_000_000_000 + id)


def test_kind_matches_the_url(store, database_url):
    assert store.kind == database_url.split(":", 1)[0]
    store.ping()


def test_schema_is_idempotent_and_keeps_data(store, database_url):
    store.insert_messages([rec(1), rec(2)])
    store.add_user("alice")
    first = store.reserve_ids(10)
    store.ensure_schema()  # again, on the same store
    other = Store(database_url, pool_size=1)
    try:
        other.ensure_schema()  # and from a second store, as a restarted server would
        assert other.count_messages() == 2
        assert other.get_user("alice") == ("alice", 0)
        assert other.reserve_ids(10) >= first + 10  # the id counter was not reset
    finally:
        other.close()


def test_reserve_ids_is_monotonic_and_never_overlaps(store):
    blocks = [(store.reserve_ids(n), n) for n in (1, 5, 1000, 1, 3)]
    assert blocks[0][0] >= 1
    for (start, n), (next_start, _) in zip(blocks, blocks[1:]):
        assert next_start >= start + n


def test_reserve_ids_starts_after_existing_messages(store, database_url):
    """A database that has messages but no id counter (e.g. from before the counter existed) continues above them."""
    store.insert_messages([rec(41), rec(42)])
    with store.cursor() as cur:
        cur.execute("DELETE FROM chat_meta")
    other = Store(database_url, pool_size=1)
    try:
        other.ensure_schema()
        assert other.reserve_ids(5) > 42
    finally:
        other.close()


def test_insert_messages_batch(store):
    records = [rec(i, sender=f"u{i % 7}", body=f"body {i}") for i in range(1, 501)]
    store.insert_messages(records)
    assert store.count_messages() == 500
    assert store.group_page(500) == records


def test_insert_messages_one_transaction(store):
    """A batch with a duplicate id fails as a whole: nothing of it is stored."""
    store.insert_messages([rec(1)])
    with pytest.raises(Exception):
        store.insert_messages([rec(2), rec(3), rec(1)])
    assert store.count_messages() == 1
    store.insert_messages([rec(2)])  # the pool still works afterwards
    assert store.count_messages() == 2


def test_record_fields_round_trip(store):
    now = int(time.time() * 1000)
    records = [rec(1, "alice", None, "group", now), rec(2, "alice", "bob", "direct", now + 1)]
    store.insert_messages(records)
    assert store.group_page(10) == [records[0]]
    assert store.conversation_page("bob", "alice", 10) == [records[1]]
    got = store.visible_since("bob", 0, 10)
    assert got == records
    assert all(type(r.id) is int and type(r.created_ms) is int for r in got)


def test_utf8mb4_round_trip(store):
    body = EMOJI + " " + "😀" * 1000
    store.insert_messages([rec(1, body=body), rec(2, "alice", "bob", body=EMOJI)])
    assert store.group_page(1)[0].body == body
    assert store.directs_to_since("bob", 0, 10)[0].body == EMOJI


def test_large_body_round_trip(store):
    body = "é" * 40000  # 80,000 bytes: more than a MySQL TEXT column holds
    store.insert_messages([rec(1, body=body)])
    assert store.group_page(1)[0].body == body


def test_group_page_oldest_first_with_limit_and_before(store):
    group = [rec(i) for i in range(1, 21)]
    directs = [rec(100 + i, "alice", "bob") for i in range(5)]
    store.insert_messages(group + directs)
    assert [r.id for r in store.group_page(5)] == [16, 17, 18, 19, 20]
    assert [r.id for r in store.group_page(5, before=16)] == [11, 12, 13, 14, 15]
    assert [r.id for r in store.group_page(5, before=3)] == [1, 2]
    assert store.group_page(5, before=1) == []
    assert len(store.group_page(100)) == 20  # no direct messages


def test_conversation_page_is_one_conversation_both_ways(store):
    store.insert_messages(
        [
            rec(1, "alice", "bob"),
            rec(2, "bob", "alice"),
            rec(3, "alice", "carol"),
            rec(4, "carol", "bob"),
            rec(5, "alice", None),
            rec(6, "bob", "alice"),
            rec(7, "alice", "bob"),
        ]
    )
    assert [r.id for r in store.conversation_page("alice", "bob", 10)] == [1, 2, 6, 7]
    assert [r.id for r in store.conversation_page("bob", "alice", 10)] == [1, 2, 6, 7]
    assert [r.id for r in store.conversation_page("alice", "bob", 2)] == [6, 7]
    assert [r.id for r in store.conversation_page("alice", "bob", 2, before=6)] == [1, 2]
    assert [r.id for r in store.conversation_page("alice", "carol", 10)] == [3]
    assert store.conversation_page("dave", "alice", 10) == []


def test_visible_since_is_group_plus_own_directs(store):
    store.insert_messages(
        [
            rec(1, "alice", None),
            rec(2, "alice", "bob"),  # to bob
            rec(3, "carol", "alice"),  # not bob's
            rec(4, "bob", "carol"),  # from bob
            rec(5, "carol", None),
            rec(6, "carol", "dave"),  # not bob's
        ]
    )
    assert [r.id for r in store.visible_since("bob", 0, 100)] == [1, 2, 4, 5]
    assert [r.id for r in store.visible_since("bob", 2, 100)] == [4, 5]
    assert [r.id for r in store.visible_since("bob", 0, 2)] == [1, 2]
    assert [r.id for r in store.visible_since("dave", 0, 100)] == [1, 5, 6]
    assert store.visible_since("bob", 6, 100) == []


def test_directs_to_since(store):
    store.insert_messages([rec(1, "alice", "bob"), rec(2, "bob", "alice"), rec(3, "carol", "bob"), rec(4, "x", None), rec(5, "a", "bob")])
    assert [r.id for r in store.directs_to_since("bob", 0, 10)] == [1, 3, 5]
    assert [r.id for r in store.directs_to_since("bob", 1, 10)] == [3, 5]
    assert [r.id for r in store.directs_to_since("bob", 0, 2)] == [1, 3]


def test_users(store):
    assert store.get_user("alice") is None
    store.add_user("alice")
    store.add_user("alice")  # idempotent
    assert store.get_user("alice") == ("alice", 0)
    store.set_last_seen("alice", 10)
    assert store.get_user("alice") == ("alice", 10)
    store.set_last_seen("alice", 5)  # never goes backwards
    assert store.get_user("alice") == ("alice", 10)
    store.set_last_seen("nobody", 5)  # unknown user: nothing happens
    assert store.get_user("nobody") is None


def test_queries_are_parameterised(store):
    """Names and bodies with SQL metacharacters are data, not SQL."""
    nasty = "x'); DROP TABLE messages; --"
    store.insert_messages([rec(1, sender="alice", recipient=nasty, body=nasty + ' "\\ %_')])
    assert store.directs_to_since(nasty, 0, 10)[0].body == nasty + ' "\\ %_'
    assert store.get_user(nasty) is None
    assert store.count_messages() == 1


SPARSE = {"messages_kind_id": "kind", "messages_subject_id": "subject", "messages_target_id": "target_id",
          "messages_attachment_id": "attachment_id"}


def test_sqlite_indexes_on_mostly_null_columns_are_partial_also_after_an_upgrade(store, database_url):
    if store.kind != "sqlite":
        pytest.skip("SQLite only: InnoDB has no partial indexes")

    def index_sql():
        with store.cursor() as cur:
            cur.execute("SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = 'messages'")
            return dict(cur.fetchall())

    for name, column in SPARSE.items():
        assert index_sql()[name].endswith(f"WHERE {column} IS NOT NULL"), name
    with store.cursor() as cur:  # an older version's full indexes
        for name, column in SPARSE.items():
            cur.execute(f"DROP INDEX {name}")
            cur.execute(f"CREATE INDEX {name} ON messages ({column})")
    restarted = Store(database_url, pool_size=1)
    restarted.ensure_schema()  # a restart with this version
    restarted.close()
    for name, column in SPARSE.items():
        assert index_sql()[name].endswith(f"WHERE {column} IS NOT NULL"), name
    with store.cursor() as cur:  # and the lifecycle's lookups still use them
        cur.execute("EXPLAIN QUERY PLAN SELECT id FROM messages WHERE target_id = ? AND kind = 'edit'", (1,))
        plan = " ".join(str(row) for row in cur.fetchall())
    assert "USING INDEX messages_target_id" in plan or "USING INDEX messages_kind_id" in plan, plan
    with store.cursor() as cur:
        cur.execute("EXPLAIN QUERY PLAN SELECT id FROM messages WHERE attachment_id = ? AND kind IS NULL", (1,))
        plan = " ".join(str(row) for row in cur.fetchall())
    assert "USING INDEX messages_attachment_id" in plan, plan
