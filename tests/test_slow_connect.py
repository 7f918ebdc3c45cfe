"""A connect that waits long for the database (a reconnect herd on MariaDB queues connects for tens of seconds) is not
closed by the presence changes of others meanwhile: presence before its welcome is in the welcome's online list, so
it is not held for it. Only a table lock can hold a MariaDB read back, so this runs on MariaDB."""
from urllib.parse import unquote, urlsplit

import pymysql
import pytest

from tests.support.clients import acked
from tests.support.servers import ServerProcess

QUEUE = 10  # send_queue_messages: the held frames a connect may gather before it is closed with 1008
CHURN = 3 * QUEUE  # the users who leave while it waits: one presence event each


def lock_read_markers(database_url):
    """A connection holding `read_markers` write-locked: every read of it by the server (the conversation listing of a
    connect) waits until it is closed. A returning guest's handshake reads other tables: the socket is upgraded and
    waits in the hub."""
    url = urlsplit(database_url)
    conn = pymysql.connect(host=url.hostname, port=url.port or 3306, user=unquote(url.username or "root"),
                           password=unquote(url.password or ""), database=url.path.lstrip("/"), autocommit=True)
    conn.cursor().execute("LOCK TABLES read_markers WRITE")
    return conn


@pytest.fixture
def server(mysql_databases, tmp_path):
    server = ServerProcess(mysql_databases.create(), tmp_path / "server.log", bots="", send_queue_messages=QUEUE,
                           max_connections_per_address=1000).start()
    yield server
    server.stop()


def test_presence_while_a_connect_waits_for_the_database_neither_closes_it_nor_is_lost(server):
    watcher = server.connect("watcher")
    watcher.handshake()
    first = server.connect("slow")  # a guest that comes back with its resume token (a new one clears read markers)
    first.handshake()
    watcher.wait_presence("slow", True)
    first.close()
    watcher.wait_presence("slow", False)
    churners = []
    for i in range(CHURN):
        churner = server.connect(f"churner{i}")
        churner.handshake()
        watcher.wait_presence(f"churner{i}", True)
        churners.append(churner)
    lock = lock_read_markers(server.database_url)
    try:
        slow = server.connect("slow")  # upgraded; its welcome waits for the listing
        for i, churner in enumerate(churners):
            churner.close()
            watcher.wait_presence(f"churner{i}", False)  # one presence event per leave: CHURN of them
    finally:
        lock.close()  # the lock goes with the connection
    welcome, history = slow.handshake()
    assert welcome["online"] == ["slow", "watcher"] and welcome["online_count"] == 2
    assert history["type"] == "history"
    # It chats on: nothing was closed, and the watcher hears it come online and speak.
    watcher.wait_presence("slow", True)
    sent = acked(slow, {"type": "message", "msg": "I waited"})
    assert watcher.recv_type("message")["id"] == sent["id"]
    slow.close()
    watcher.close()


def test_with_many_online_presence_changes_are_gathered_longer(tmp_path):
    """presence_sends_per_second 1 with 3 online: a window of 3 s (the 50 ms floor would split these): two users who
    come online one after the other reach the watcher in one presence event."""
    from tests.support.clients import presence_changes

    server = ServerProcess(f"sqlite:///{tmp_path / 'chat.db'}", tmp_path / "server.log", bots="",
                           presence_sends_per_second=1).start()
    try:
        watcher = server.connect("watcher")
        watcher.handshake()
        first, second = server.connect("first"), server.connect("second")
        first.handshake()
        second.handshake()
        event = watcher.recv_type("presence")
        assert {("first", True), ("second", True)} <= set(presence_changes(event))
    finally:
        server.stop()
