"""Who is online, in pages (issue 16): a welcome lists at most `max_online_listed` names with the count of everyone
online, and `who` pages on with `after`, in one process and across two over Redis; over real sockets."""
import pytest

from tests.support.clients import online_everywhere
from tests.support.polling import wait_until

NAMES = ["ann", "bob", "cat", "dan", "eve"]


def who(client, after=None, ref="w"):
    client.send({"type": "who", "ref": ref} if after is None else {"type": "who", "after": after, "ref": ref})
    while True:
        event = client.recv_type("who", "error")
        if event.get("ref") == ref:
            return event


def every_page(client):
    """Everyone online, page by page: (the names in order, the pages' online_count values)."""
    names, counts, after, more = [], set(), None, True
    while more:
        page = who(client, after)
        assert page["type"] == "who", page
        names += page["online"]
        counts.add(page["online_count"])
        more = page["online_more"]
        after = page["online"][-1] if page["online"] else None
    return names, counts


@pytest.fixture
def small_pages(start_server, sqlite_url):
    return start_server(sqlite_url, max_online_listed=2, bots="")


def test_a_welcome_lists_a_page_and_counts_everyone(small_pages, clients):
    first = [clients(small_pages, name) for name in NAMES[:4]]
    online_everywhere(first[0], *NAMES[:4])
    last = clients(small_pages, "eve", handshake=False)
    welcome = last.recv_type("welcome")
    last.recv_type("history")
    assert (welcome["online"], welcome["online_count"], welcome["online_more"]) == (["ann", "bob"], 5, True)
    assert every_page(last) == (NAMES, {5})
    first[1].close()
    # A join and a leave inside one presence_batch_delay cancel out (no presence event at all): ask until who says it.
    wait_until(lambda: every_page(last) == (["ann", "cat", "dan", "eve"], {4}), timeout=10, interval=0.05,
               message="bob's leave in every page")
    assert who(last, after="zzz") == {"type": "who", "online": [], "online_count": 4, "online_more": False, "ref": "w"}


@pytest.mark.parametrize("after", [7, "", "not a name!", "x" * 65, ["ann"]])
def test_a_bad_after_is_refused(small_pages, clients, after):
    client = clients(small_pages, "ann")
    client.send({"type": "who", "after": after, "ref": "bad"})
    event = client.recv_type("error")
    assert (event["code"] in ("bad_field", "bad_name"), event["ref"]) == (True, "bad")
    client.send({"type": "who", "after": "ann", "room": "dev", "ref": "room"})
    assert client.recv_type("error")["code"] == "bad_field"
    assert who(client)["online"] == ["ann"]  # still chatting


def test_pages_count_everyone_across_processes(start_server, sqlite_url, redis_server, clients):
    from tests.support.servers import health

    a, b = (start_server(sqlite_url, redis_url=redis_server.url, bots="", max_online_listed=2) for _ in range(2))
    wait_until(lambda: health(a)["instances"] == 2 and health(b)["instances"] == 2, timeout=10,
               message="both processes to see each other")
    on_a = [clients(a, name) for name in ("ann", "cat", "eve")]
    on_b = [clients(b, name) for name in ("bob", "dan")]
    also_on_b = clients(b, "ann")  # online in both: counted once
    online_everywhere(on_b[0], *NAMES)
    assert every_page(on_b[0]) == (NAMES, {5})
    assert every_page(on_a[0]) == (NAMES, {5})
    welcome = clients(a, "zed", handshake=False).recv_type("welcome")
    assert (welcome["online"], welcome["online_count"]) == (["ann", "bob"], 6)
    on_a[0].close()  # ann is still on b
    also_on_b.close()
    wait_until(lambda: every_page(on_b[1]) == (["bob", "cat", "dan", "eve", "zed"], {5}), timeout=10, interval=0.05,
               message="ann's leave in every page on both processes")
