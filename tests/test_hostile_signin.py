"""Hostile sign-ins against the real server, one attack per test: a wrong-password flood that tries to lock the owner
out, a password spray from one address, a flood of correct sign-ins (CPU), weak passwords at registration, and a socket
that outlives its token or browser session. Each asserts that the attack fails and that honest bystanders keep chatting.

Addresses are simulated with trust_proxy and X-Forwarded-For (the server believes one proxy hop). Accounts live in the
database (SQLite, MariaDB); the throttles and credentials live in Redis when the server has redis_url.
"""
import threading
import time

import pytest
import requests

from tests.support.bystanders import Bystanders
from tests.support.databases import db_execute
from tests.support.webusers import (
    PASSWORD,
    WebUser,
    token_socket,
    unique,
)

CLOSE_CREDENTIALS_ENDED = 4001
# Throttle counters live in the process, or in Redis with redis_url; accounts in the database (SQLite is enough here).
THROTTLE_STORES = pytest.mark.parametrize("backend", ["sqlite", "redis"], indirect=True)
OWNER = "192.0.2.10"  # where the owner usually signs in from
ATTACKERS = [f"198.51.100.{i}" for i in range(1, 40)]
STRANGER = "203.0.113.7"  # an address nobody signed in from before


@pytest.fixture
def start_signin_server(start_auth_server):
    """start_signin_server(**settings): a server on this test's backend that shuts down without waiting long for
    the close replies of sockets the test left open."""
    return lambda **settings: start_auth_server(close_timeout=0.5, **settings)


def post(server, path, body, address=None):
    headers = {"X-Forwarded-For": address} if address else {}
    return requests.post(server.http_url + path, json=body, headers=headers, timeout=30)


def token_request(server, name, password, address=None, **extra):
    return post(server, "/api/token", {"username": name, "password": password, **extra}, address)


def register(server, short, address=None, password=PASSWORD):
    name = unique(short)
    response = post(server, "/api/register", {"username": name, "password": password}, address)
    assert response.status_code == 201, response.text
    return name


def assert_throttled(response, message):
    assert response.status_code == 429, response.text
    assert int(response.headers["Retry-After"]) >= 1
    assert response.json()["error"] == f"{message}; try again later"
    assert response.json()["retry_after"] == int(response.headers["Retry-After"])


def page_login(server, name, password, address):
    user = WebUser(server)
    user.http.headers["X-Forwarded-For"] = address
    return user.login(name, password)


# ---- a wrong-password flood cannot lock the owner out ---------------------------------------------------------


@THROTTLE_STORES
def test_wrong_password_flood_from_other_addresses_does_not_lock_the_owner_out(start_signin_server):
    server = start_signin_server(trust_proxy=True, login_max_failures=3, login_max_failures_per_address=100,
                               login_max_failures_per_name=7)
    watch = Bystanders(server)
    owner = register(server, "owner")
    assert token_request(server, owner, PASSWORD, OWNER).status_code == 200  # the owner's usual address

    # One address: at the limit (3 failures) it may still try; one past it is refused, even with the right password.
    first = ATTACKERS[0]
    for _ in range(3):
        assert token_request(server, owner, "wrong guess", first).status_code == 401
    assert_throttled(token_request(server, owner, PASSWORD, first), "too many failed sign-ins")
    page = page_login(server, owner, PASSWORD, first)
    assert page.status_code == 429 and int(page.headers["Retry-After"]) >= 1
    assert "Too many failed sign-ins. Try again in" in page.text

    # Meanwhile the owner signs in from their own address, and from a new one.
    assert token_request(server, owner, PASSWORD, OWNER).status_code == 200
    assert token_request(server, owner, PASSWORD, STRANGER).status_code == 200

    # The flood spreads over more addresses, up to 7 failures in all for the name (the slower global limit).
    for address in (ATTACKERS[1], ATTACKERS[1], ATTACKERS[2]):
        assert token_request(server, owner, "wrong guess", address).status_code == 401
    assert token_request(server, owner, "wrong guess", ATTACKERS[3]).status_code == 401  # the 7th, still answered
    assert_throttled(token_request(server, owner, PASSWORD, ATTACKERS[4]), "too many failed sign-ins")  # a new address
    # Addresses that signed in to the name before are exempt from the name's limit: the owner still gets in.
    assert token_request(server, owner, PASSWORD, OWNER).status_code == 200
    assert page_login(server, owner, PASSWORD, OWNER).status_code == 302
    assert token_request(server, owner, PASSWORD, STRANGER).status_code == 200
    other = register(server, "other")  # other names are not affected
    assert token_request(server, other, PASSWORD, ATTACKERS[4]).status_code == 200
    watch.check()


@THROTTLE_STORES
def test_password_spray_from_one_address_is_stopped_there(start_signin_server):
    server = start_signin_server(trust_proxy=True, login_max_failures_per_address=4)
    watch = Bystanders(server)
    victim = register(server, "victim")
    sprayer = ATTACKERS[10]
    for i in range(4):  # at the limit: four names tried once each
        assert token_request(server, unique(f"spray{i}"), "wrong guess", sprayer).status_code == 401
    assert_throttled(token_request(server, victim, "wrong guess", sprayer), "too many failed sign-ins")
    assert token_request(server, victim, PASSWORD, OWNER).status_code == 200  # from elsewhere, unaffected
    watch.check()



@pytest.mark.parametrize("backend", ["redis"], indirect=True)
def test_throttles_hold_across_processes_sharing_redis(start_signin_server):
    """Two processes on one database and one Redis: guesses spread over both count once, in Redis."""
    settings = dict(trust_proxy=True, login_max_failures=3, login_rate_per_address=5, bots="")
    one, two = start_signin_server(**settings), start_signin_server(**settings)
    watch = Bystanders(one)
    owner = register(one, "owner", OWNER)
    guesser = ATTACKERS[30]
    for server in (one, two, one):  # at the limit, over both processes
        assert token_request(server, owner, "wrong guess", guesser).status_code == 401
    assert_throttled(token_request(two, owner, PASSWORD, guesser), "too many failed sign-ins")
    assert token_request(two, owner, PASSWORD, OWNER).status_code == 200  # the owner is not locked out
    flooder = ATTACKERS[31]  # attempts per address: 5 in the minute over both processes
    for server in (one, two, one, two, one):
        assert token_request(server, owner, PASSWORD, flooder).status_code == 200
    assert_throttled(token_request(two, owner, PASSWORD, flooder), "too many sign-ins from this address")
    watch.check()

# ---- a flood of correct sign-ins cannot eat the CPU -------------------------------------------------------------


@THROTTLE_STORES
def test_correct_signin_flood_is_limited_per_address(start_signin_server):
    server = start_signin_server(trust_proxy=True, login_rate_per_address=4)
    watch = Bystanders(server)
    name = register(server, "flood", ATTACKERS[20])  # one of the address's four
    flooder = ATTACKERS[20]
    for _ in range(3):  # at the limit: four in the minute
        assert token_request(server, name, PASSWORD, flooder).status_code == 200
    assert_throttled(token_request(server, name, PASSWORD, flooder), "too many sign-ins from this address")
    page = page_login(server, name, PASSWORD, flooder)
    assert page.status_code == 429 and "Too many sign-ins from this address. Try again in" in page.text
    refused = post(server, "/api/register", {"username": unique("more"), "password": PASSWORD}, flooder)
    assert_throttled(refused, "too many sign-ins from this address")  # registration hashes too
    assert token_request(server, name, PASSWORD, OWNER).status_code == 200  # another address is not affected
    watch.check()


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)  # the gate is per process
def test_concurrent_password_hashing_is_bounded(start_signin_server):
    """Many addresses at once (each within its own limits): beyond one hash running and none waiting, 503 + Retry-After."""
    server = start_signin_server(trust_proxy=True, password_hash_concurrency=1, password_hash_queue=0)
    watch = Bystanders(server)
    name = register(server, "busy")
    statuses = []
    for attempt in range(5):  # a burst of simultaneous requests; repeated in case the first arrives spread out
        barrier = threading.Barrier(8)
        results = [None] * 8

        def sign_in(i, attempt=attempt):
            barrier.wait()
            results[i] = token_request(server, name, PASSWORD, f"198.18.{attempt}.{i}")

        threads = [threading.Thread(target=sign_in, args=(i,)) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        statuses += [r.status_code for r in results]
        busy = [r for r in results if r.status_code == 503]
        if busy:
            break
    assert set(statuses) <= {200, 503} and 200 in statuses, statuses
    assert busy, f"8 simultaneous sign-ins never found the hasher busy: {statuses}"
    assert int(busy[0].headers["Retry-After"]) >= 1
    assert busy[0].json()["error"] == "the server is busy checking other passwords; try again later"
    assert token_request(server, name, PASSWORD, OWNER).status_code == 200  # once the burst is over
    watch.check()


# ---- weak passwords -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("backend", ["sqlite", "mysql"], indirect=True)
def test_common_passwords_and_the_name_are_refused_at_registration(start_signin_server):
    server = start_signin_server(min_password_length=8)
    watch = Bystanders(server)
    name = unique("alice")
    refusals = {
        "12345678": "This is one of the most common passwords: choose one that others do not use.",
        "P@ssw0rd": "This is one of the most common passwords: choose one that others do not use.",
        "Password123!": "This is a common password with digits or symbols added: choose one that others do not use.",
        name: "The password must not contain your user name (forwards or backwards).",
        name.upper() + "!": "The password must not contain your user name (forwards or backwards).",
        "x" + name[::-1]: "The password must not contain your user name (forwards or backwards).",
        "zq8#mv2": "Use 8 to 1024 characters.",  # one under the boundary
    }
    for password, message in refusals.items():
        response = post(server, "/api/register", {"username": name, "password": password})
        assert (response.status_code, response.json()) == (400, {"error": message, "field": "password"}), password
        page = WebUser(server).register(name, password)
        assert page.status_code == 400 and message in page.text, password
    assert list(db_execute(server.database_url, "SELECT name FROM accounts WHERE name = ?", (name,))) == []
    assert post(server, "/api/register", {"username": name, "password": "zq8#mv2k"}).status_code == 201  # at the boundary
    assert token_request(server, name, "zq8#mv2k").status_code == 200
    watch.check()


# ---- a socket does not outlive its credential ----------------------------------------------------------------


def test_socket_closes_when_its_token_or_session_expires(start_signin_server, backend):
    server = start_signin_server(session_lifetime=3)
    watch = Bystanders(server)
    user = WebUser(server)
    name = unique("expiring")
    assert user.register(name).status_code == 302  # signed in for session_lifetime (3 s)
    browser = user.socket(name)
    response = token_request(server, name, PASSWORD, expires_in=1)
    assert response.status_code == 200 and response.json()["expires_in"] == 1
    short = token_socket(server, name, response.json()["token"])
    lasting = token_socket(server, name, token_request(server, name, PASSWORD).json()["token"])

    assert short.recv_close(timeout=10) == (CLOSE_CREDENTIALS_ENDED, "token expired")
    assert browser.recv_close(timeout=10) == (CLOSE_CREDENTIALS_ENDED, "session expired")
    lasting.send({"type": "message", "msg": "still here", "ref": "x"})  # its token lasts a day: still posting
    while (event := lasting.recv())["type"] != "ack":
        assert event["type"] in ("presence", "message"), event
    stored = db_execute(server.database_url, "SELECT body FROM messages WHERE id = ?", (event["id"],))
    assert list(stored) == [("still here",)]
    lasting.close()
    watch.check()


# ---- the pure parts ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("password, name, refused", [
    ("12345678", "bob", True),
    ("qwerty123", "bob", True),
    ("P@ssw0rd", "bob", True),
    ("Password123!", "bob", True),
    ("alice2024", "alice", True),
    ("ECILA-xyz9", "alice", True),
    ("al1ce-1s-here", "alice", True),  # letters swapped for digits
    ("lice-ali", "malice-alice", True),  # the password inside the name
    ("correct horse battery", "bob", False),
    ("zq8#mv2k", "bob", False),
    ("bob-was-here-42", "bo", False),  # names under 3 characters are not looked for
])
def test_password_rules(password, name, refused):
    from chat.accounts.passwords import password_problem

    assert (password_problem(password, name, 8) is not None) == refused


def test_expiry_sweeper_calls_back_once_and_forgets_discarded_entries():
    import gevent
    from gevent.event import Event

    from chat.accounts.expiry import ExpirySweeper

    expired, done = [], Event()

    def on_expire(item):
        expired.append(item)
        done.set()

    sweeper = ExpirySweeper(on_expire)
    far = [sweeper.watch(time.time() + 3600, f"far{i}") for i in range(1000)]
    for entry in far:
        sweeper.discard(entry)
    assert len(sweeper) == 0 and sweeper.heap_size < 100  # rebuilt once most of it was discarded
    gone = sweeper.watch(time.time() + 0.05, "discarded")
    sweeper.watch(time.time() + 0.1, "due")
    sweeper.discard(gone)
    assert done.wait(10)
    gevent.sleep(0)
    assert expired == ["due"] and len(sweeper) == 0
    sweeper.stop()
