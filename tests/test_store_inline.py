"""SQLite: small batches of messages committed on the event loop's thread (chat/store/inline.py), the rest and any batch
that finds the write lock taken in the thread pool; WAL checkpoints in the thread pool."""
import sqlite3

import gevent
import pytest

from chat.records import MessageRecord
from chat.store import Store, StoreUnavailable
from chat.store import inline as inline_module


def rec(id, body=None):
    return MessageRecord(id, "alice", None, body if body is not None else f"m{id}", 1_700_000_000_000 + id)


@pytest.fixture
def path(tmp_path):
    return str(tmp_path / "chat.db")


@pytest.fixture
def store(path):
    s = Store(f"sqlite:///{path}", pool_size=2, connect_timeout=3)
    s.ensure_schema()
    yield s
    s.close()


def test_a_small_batch_commits_here_and_a_large_one_in_the_pool(store, path):
    inline = store._inline
    store.insert_messages([rec(1), rec(2)])
    assert inline.committed == 1
    big = [rec(i) for i in range(3, 3 + inline_module.INLINE_MAX_RECORDS + 1)]
    store.insert_messages(big)
    assert inline.committed == 1  # the large batch went to the pool
    store.insert_messages([rec(100, "x" * (inline_module.INLINE_MAX_BYTES + 1))])
    assert inline.committed == 1  # and so did a batch of much text
    other = sqlite3.connect(path)
    try:
        assert other.execute("SELECT COUNT(*) FROM messages").fetchone()[0] == 2 + len(big) + 1
    finally:
        other.close()


def test_a_batch_that_finds_the_write_lock_taken_waits_for_it_in_the_pool(store, path):
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    writer = gevent.spawn(store.insert_messages, [rec(1)])
    gevent.sleep(0.3)
    assert not writer.ready()  # waiting in a worker thread; the loop runs meanwhile
    assert store._inline.deferred == 1
    holder.execute("COMMIT")
    holder.close()
    assert writer.get(timeout=5) == [rec(1)]
    assert store.count_messages() == 1
    store.insert_messages([rec(2)])  # the next one is committed here again
    assert store._inline.committed == 1


def test_a_refused_batch_is_rolled_back_and_the_connection_still_commits(store):
    store.insert_messages([rec(1)])
    with pytest.raises(sqlite3.IntegrityError):
        store.insert_messages([rec(2), rec(1)])
    assert store.count_messages() == 1
    store.insert_messages([rec(2)])
    assert store.count_messages() == 2
    assert store._inline.committed == 2


def test_a_database_failure_is_store_unavailable(store):
    def broken(cur):
        cur.execute("INSERT INTO no_such_table VALUES (1)")

    with pytest.raises(StoreUnavailable):
        store._inline.run(broken, ())
    store.insert_messages([rec(1)])
    assert store.count_messages() == 1


def test_commits_here_are_checkpointed_in_a_thread_and_restart_the_wal(store, path, monkeypatch):
    monkeypatch.setattr(inline_module, "CHECKPOINT_DELAY", 0.05)
    for i in range(1, 11):
        store.insert_messages([rec(i)])
    with gevent.Timeout(5):
        while store._inline.checkpoints.runs < 1:
            gevent.sleep(0.02)
    reader = sqlite3.connect(path)
    try:
        # Every frame of those commits is in the database file: a checkpoint finds at most the restart's own frame.
        busy, frames, copied = reader.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        assert (busy, frames - copied) == (0, 0)
        assert frames <= 2
        assert reader.execute("SELECT COUNT(*) FROM messages").fetchone()[0] == 10
    finally:
        reader.close()
    store.insert_messages([rec(11)])
    assert store.count_messages() == 11
