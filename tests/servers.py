"""A server shared by the tests of one module (one per store), and per-test user names so those tests stay independent.

Starting a server takes about half a second; tests that only need live delivery share one and
use names no other test uses. Tests that look at global state (who is online, presence, group
history, restarts) use conftest's fresh `server` fixture instead.
"""
import itertools

import pytest

from conftest import ServerProcess, fresh_database_url

_tags = itertools.count(1)


@pytest.fixture(scope="module", params=["sqlite", "mysql"])
def shared_server(request, tmp_path_factory):
    """One running server per store for the whole module (fresh database)."""
    directory = tmp_path_factory.mktemp("shared")
    server = ServerProcess(fresh_database_url(request, request.param, directory), directory / "server.log").start()
    yield server
    server.stop()


class Chat:
    """Names unique to one test: chat.name("alice") is e.g. "alice-t7"; chat.connect("alice") connects as it."""

    def __init__(self, server, clients):
        self.server = server
        self._clients = clients
        self.tag = f"t{next(_tags)}"

    def name(self, short):
        return f"{short}-{self.tag}"

    def connect(self, short, query="", handshake=True):
        client = self._clients(self.server, self.name(short), query, handshake)
        client.name = self.name(short)
        return client


@pytest.fixture
def chat(shared_server, clients):
    return Chat(shared_server, clients)


def presence_changes(event):
    """[(user, online)] from a presence event in either form: one change, or several batched under "changes"."""
    if "changes" in event:
        return [(c["user"], c["online"]) for c in event["changes"]]
    return [(event["user"], event["online"])]


def wait_presence(client, user, online):
    """Read `client`'s events until a presence event says `user` went online/offline.

    Returns every presence change read, up to and including that event's, as (user, online) pairs.
    Only presence events may come in between (anything else is a test failure).
    """
    seen = []
    while True:
        changes = presence_changes(client.recv_type("presence"))
        seen += changes
        if (user, online) in changes:
            return seen


def connect_and_leave(clients, server, observer, name):
    """Make `name` a known user who is offline now, and wait until the server has recorded the leave.

    The observer first sees `name` come online (so the leave is not folded into the same presence
    batch), then go offline; the server records the leave before it announces it.
    """
    client = clients(server, name)
    wait_presence(observer, name, True)
    client.close()
    wait_presence(observer, name, False)
