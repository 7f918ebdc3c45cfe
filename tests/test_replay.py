"""Honest replay (issue 17): a ?since= reconnect with more to replay than max_replay says so ("complete": false and
"next"), and a history request with "since" pages on from there until everything missed came, each item once, in
order, and nothing the user may not see; on each store."""
import uuid

import pytest

from tests.support.clients import post

REPLAY = 5


def unique(short):
    return f"{short}-{uuid.uuid4().hex[:6]}"


@pytest.fixture
def capped(start_server, database_url):
    return start_server(database_url, max_replay=REPLAY, bots="")


def history_until_done(client):
    """The messages of history events until one is the last (complete, or capped with "next"), and that last event."""
    messages = []
    while True:
        event = client.recv_type("history")
        messages += event["messages"]
        if event.get("complete", True) or "next" in event:
            return messages, event


def test_a_replay_past_max_replay_says_so_and_pages_on_to_everything_once(capped, clients):
    alice, bob, carol = unique("alice"), unique("bob"), unique("carol")
    sender = clients(capped, alice)
    others = clients(capped, carol)
    clients(capped, bob).close()  # bob has been here: directs to him are accepted while he is away
    first = post(sender, "before the gap")["id"]
    missed = [post(sender, f"group {i}")["id"] for i in range(7)]
    missed += [post(sender, f"to bob {i}", to=bob)["id"] for i in range(3)]
    post(others, "carol to alice only", to=alice)  # bob may not see it: never in his replay
    missed.sort()

    replay = clients(capped, bob, f"?since={first}", handshake=False)
    replay.recv_type("welcome")
    got, last = history_until_done(replay)
    assert [m["id"] for m in got] == missed[:REPLAY]
    assert (last["complete"], last["next"], last["since"]) == (False, missed[REPLAY - 1], first)
    seen = [m["id"] for m in got]
    while "next" in last:
        replay.send({"type": "history", "since": last["next"], "limit": 3, "ref": "on"})
        page, last = history_until_done(replay)
        assert last["ref"] == "on" and len(page) <= 3
        seen += [m["id"] for m in page]
    assert seen == missed  # each once, in order, and carol's direct to alice is not among them
    assert all(m["user"] == alice for m in got)


def test_a_replay_within_max_replay_is_complete_as_before(capped, clients):
    alice = unique("alice")
    sender = clients(capped, alice)
    first = post(sender, "a")["id"]
    ids = [post(sender, f"m{i}")["id"] for i in range(REPLAY)]  # exactly max_replay: nothing more to say
    replay = clients(capped, unique("bob"), f"?since={first}", handshake=False)
    replay.recv_type("welcome")
    got, last = history_until_done(replay)
    assert [m["id"] for m in got] == ids and "next" not in last and last.get("complete", True)


@pytest.mark.parametrize("bad", [
    {"since": "5"}, {"since": -1}, {"since": 2**63}, {"since": 1.5}, {"since": True},
    {"since": 1, "room": "general"}, {"since": 1, "with": "someone"}, {"since": 1, "before": 9},
])
def test_a_bad_since_in_a_history_request_is_a_bad_field_and_the_connection_goes_on(capped, clients, bad):
    client = clients(capped, unique("hostile"))
    client.send({"type": "history", **bad, "ref": "x"})
    error = client.recv_type("error")
    assert (error["code"], error["ref"]) == ("bad_field", "x")
    assert post(client, "still here")["id"] > 0
