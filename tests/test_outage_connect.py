"""Connecting while the database is down (one process): a guest coming back with the resume token this process
confirmed gets its welcome, marked partial, with general's recent history from memory, and chats live; nobody else is
admitted from memory; once the database is back, the directs the guest missed come at its next connect."""
import pytest
import websocket

from chat.accounts.holds import RememberingHolds
from chat.accounts.live import LiveSockets
from chat.clock import now_ms
from chat.records import Kick
from tests.support.clients import next_message, post, wait_presence
from tests.support.mariadb_instance import needs_mariadb_binaries

def refused_status(server, name, resume=True, query=""):
    with pytest.raises(websocket.WebSocketBadStatusException) as refused:
        server.connect(name, query, resume=resume)
    return refused.value.status_code


@needs_mariadb_binaries
def test_a_guest_comes_back_while_the_database_is_down_and_gets_what_it_missed_after(start_server, throwaway_mariadb, clients):
    db = throwaway_mariadb
    server = start_server(db.url, db_connect_timeout=1, bots="", rate_limit=1e9, rate_burst=10**9)
    amy = clients(server, "amy")
    gus = clients(server, "gus")
    wait_presence(amy, "gus", True)  # else a join and leave inside one presence batch cancel out
    before = [post(amy, f"before {i}")["id"] for i in range(3)]
    assert [next_message(gus)["id"] for _ in before] == before
    gus.close()
    wait_presence(amy, "gus", False)
    missed = post(amy, "for gus while he is away", to="gus")["id"]

    db.stop()
    back = clients(server, "gus", handshake=False)
    welcome, history = back.handshake()
    assert welcome["partial"] == ["directs", "conversations"] and welcome["conversations"] == []
    assert [m["id"] for m in history["messages"]] == before  # general's, from memory; not the direct
    amy.send({"type": "message", "msg": "during the outage", "ref": "d"})
    assert next_message(back)["msg"] == "during the outage"  # live as ever (stored when the database is back)
    # Nobody the process cannot vouch for: a new name, the same name without its token or with another.
    assert refused_status(server, "zed") == 503
    assert refused_status(server, "gus", resume=False) == 503
    assert refused_status(server, "gus", resume=False, query="?resume=" + "x" * 43) == 503
    # A ?since= replay needs the store (it holds directs and rooms, and must not skip any): refused, to retry.
    since = clients(server, "gus", query=f"?since={before[-1]}", handshake=False)
    assert since.recv_close()[0] == 1011
    back.close()
    wait_presence(amy, "gus", False)

    db.start()
    assert amy.recv_type("ack", timeout=30)["ref"] == "d"
    again = clients(server, "gus", handshake=False)
    welcome, history = again.handshake()
    assert "partial" not in welcome
    assert missed in [m["id"] for m in history["messages"] if m["type"] == "direct"]


# ---- the remembered holds (pure) -------------------------------------------------------------------------------------


class FakeHolds:
    """Holds as the guest_holds table keeps them, on the wall clock: name -> (digest, expires_ms)."""

    def __init__(self):
        self.held = {}
        self.extensions = 0

    def holder(self, name):
        return self.held.get(name, (None,))[0]

    def hold_of(self, name):
        found = self.held.get(name)
        return found if found is not None and found[1] > now_ms() else None

    def claim(self, name, digest, hold):
        if name in self.held:
            return False
        self.held[name] = (digest, now_ms() + int(hold * 1000))
        return True

    def extend(self, name, digest, hold):
        if self.holder(name) != digest:
            return False
        self.extensions += 1
        self.held[name] = (digest, now_ms() + int(hold * 1000))
        return True

    def drop(self, name):
        self.held.pop(name, None)

    def purge(self):
        return 0


def test_a_remembered_hold_admits_only_its_token_within_the_hold_and_a_kick_or_drop_forgets_it():
    now = [1000.0]
    holds = RememberingHolds(FakeHolds(), hold_seconds=60, clock=lambda: now[0])
    assert holds.claim("gus", "d1", 60) and holds.confirmed("gus", "d1")
    assert not holds.confirmed("gus", "d2") and not holds.confirmed("amy", "d1")
    assert not holds.claim("gus", "d2", 60) and not holds.confirmed("gus", "d2")  # a refused claim confirms nothing
    now[0] += 59
    assert holds.confirmed("gus", "d1")
    now[0] += 2
    assert not holds.confirmed("gus", "d1")  # past the hold: the name may have changed hands
    assert holds.extend("gus", "d1", 60) and holds.confirmed("gus", "d1")
    assert not holds.extend("gus", "d9", 60) and holds.confirmed("gus", "d1")
    LiveSockets(on_kick=holds.forget).close(Kick("gus", "banned", None, False))
    assert not holds.confirmed("gus", "d1")
    holds.extend("gus", "d1", 60)
    holds.drop("gus")  # a registration takes the name
    assert not holds.confirmed("gus", "d1")


def test_remembered_holds_past_their_time_are_swept():
    now = [0.0]
    holds = RememberingHolds(FakeHolds(), hold_seconds=10, clock=lambda: now[0])
    for i in range(1000):
        holds.claim(f"g{i}", "d", 10)
        now[0] += 1
    assert len(holds._until) < 100  # only those within the hold, and a sweep's slack


def test_a_guest_coming_back_costs_a_read_and_a_commit_only_past_half_its_hold():
    fake = FakeHolds()
    holds = RememberingHolds(fake, hold_seconds=3600)
    assert holds.claim("gus", "d1", 3600)
    assert holds.running("gus", "d1", 3600) and fake.extensions == 0 and holds.confirmed("gus", "d1")
    assert not holds.running("gus", "d2", 3600) and not holds.running("amy", "d1", 3600)
    fake.held["gus"] = ("d1", now_ms() + 1000 * 1000)  # less than half of the hour left
    assert holds.running("gus", "d1", 3600) and fake.extensions == 1
    assert fake.held["gus"][1] > now_ms() + 3500 * 1000
