"""Known users with one process (chat/messaging/known.py): a connect of a name seen before reads nothing of the users
table, new names and leaves are written behind in batches, a shutdown writes what is left, and what a fresh connect is
sent of the directs it missed still follows the written last_seen."""
from tests.support.clients import next_message, post
from tests.support.databases import db_execute
from tests.support.polling import wait_until
from tests.support.servers import ServerProcess


def users_row(database_url, name):
    rows = db_execute(database_url, "SELECT name, last_seen_id FROM users WHERE name = ?" if database_url.startswith("sqlite")
                      else "SELECT name, last_seen_id FROM users WHERE name = %s", (name,))
    return rows[0] if rows else None


def test_names_and_leaves_are_written_behind_and_a_shutdown_writes_the_rest(database_url, tmp_path):
    server = ServerProcess(database_url, tmp_path / "server.log", bots="", users_write_interval=0.2).start()
    try:
        with server.connect("amy") as amy, server.connect("ben") as ben:
            amy.handshake(), ben.handshake()
            wait_until(lambda: users_row(database_url, "amy") and users_row(database_url, "ben"), message="both names written")
            first = post(amy, "one")["id"]
            next_message(ben)
        # Each leave is written within the interval, with the last message each was there for.
        wait_until(lambda: users_row(database_url, "ben") == ("ben", first), message="ben's leave written")
        with server.connect("amy") as amy:
            amy.handshake()
            directs = [post(amy, f"for ben {i}", to="ben")["id"] for i in range(3)]
        server.stop()  # a graceful stop writes the leave it has not written yet
        assert users_row(database_url, "amy")[1] >= directs[-1]
        server.start()
        with server.connect("ben") as ben:
            welcome, history = ben.handshake()
            got = [m["id"] for m in history["messages"] if m["type"] == "direct"]
            assert got == directs  # what ben missed, once: his last_seen was written before the directs
        wait_until(lambda: users_row(database_url, "ben")[1] >= directs[-1], message="ben's second leave written")
        with server.connect("ben") as ben:
            welcome, history = ben.handshake()
            assert [m for m in history["messages"] if m["type"] == "direct"] == []  # and not again
    finally:
        server.stop()
