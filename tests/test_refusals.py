"""Handshake refusals a terminal client can read: without an Origin (wscat, scripts) a refused socket is upgraded and
closed with 4000 + (the HTTP status - 400) and the reason; a browser (it always sends Origin) keeps the HTTP refusal;
the sockets being closed count against their address, and an honest user keeps chatting meanwhile."""
import uuid

import pytest

from tests.support.clients import ChatClient, post
from tests.support.rawws import RawWebSocket
from tests.support.wscat import wscat_on_a_terminal

GUESTS_OFF = dict(allow_guests=False)


def unique(short):
    return f"{short}-{uuid.uuid4().hex[:6]}"


def closed_with(server, path, origin=None):
    """(HTTP status, close code, close reason) of a handshake to `path` (with `origin` if given)."""
    headers = () if origin is None else (f"Origin: {origin}",)
    raw, response = RawWebSocket.open_http(server.port, path, extra_headers=headers)
    try:
        if response.status != 101:
            return response.status, None, response.json()["error"]
        code, reason = raw.recv_close()
        assert raw.finish_close(code), "the server ends the TCP connection after the close handshake"
        return 101, code, reason
    finally:
        raw.sock.close()


@pytest.fixture
def guests_off(start_server, sqlite_url):
    return start_server(sqlite_url, **GUESTS_OFF)


@pytest.fixture
def plain(start_server, sqlite_url):
    return start_server(sqlite_url)


@pytest.fixture
def capped(start_server, sqlite_url):
    return start_server(sqlite_url, max_connections_per_user=1, max_connections_per_address=6)


def test_guests_off_closes_a_terminal_client_with_4003_and_says_why(guests_off):
    status, code, reason = closed_with(guests_off, f"/ws/{unique('guest')}")
    assert (status, code) == (101, 4003)
    assert reason.startswith("guests are not allowed here: register")


def test_a_browser_keeps_the_http_refusal(guests_off):
    status, code, reason = closed_with(guests_off, f"/ws/{unique('guest')}", origin=guests_off.http_url)
    assert (status, code) == (403, None) and reason.startswith("guests are not allowed here")


def test_a_cross_site_handshake_is_refused_before_the_upgrade(guests_off):
    status, code, reason = closed_with(guests_off, f"/ws/{unique('guest')}", origin="https://evil.example")
    assert (status, code) == (403, None) and reason.startswith("origin not allowed")


def test_a_bad_name_closes_with_4000(capped):
    status, code, reason = closed_with(capped, "/ws/%20bad%20name")
    assert (status, code) == (101, 4000) and reason.startswith("invalid user name")


def test_a_name_another_guest_holds_closes_with_4009_and_the_holder_chats_on(plain):
    name = unique("held")
    holder = ChatClient.connect(plain.ws_url(f"/ws/{name}"), suppress_origin=True)
    holder.handshake()
    try:
        status, code, reason = closed_with(plain, f"/ws/{name}")
        assert (status, code) == (101, 4009) and f"the name {name} is in use by another guest" in reason
        assert post(holder, "still here")["id"] > 0
    finally:
        holder.close()


def test_too_many_connections_for_a_user_closes_with_4029(capped):
    name = unique("one")
    first = ChatClient.connect(capped.ws_url(f"/ws/{name}"), suppress_origin=True)
    welcome, _ = first.handshake()
    try:
        resume = welcome["resume"]
        status, code, reason = closed_with(capped, f"/ws/{name}?resume={resume}")
        assert (status, code) == (101, 4029) and reason.startswith(f"too many connections for {name}")
    finally:
        first.close()


def test_refused_sockets_count_against_their_address_until_closed_and_past_the_cap_it_is_http_429(capped):
    # Refusals the client never answers (no close frame back) stay open up to close_timeout, counted against the
    # address (cap 6 here): the seventh is an HTTP 429, not one more socket.
    held = []
    try:
        for _ in range(6):
            raw, response = RawWebSocket.open_http(capped.port, "/ws/%20bad")
            assert response.status == 101
            held.append(raw)
        raw, response = RawWebSocket.open_http(capped.port, "/ws/%20bad")
        raw.sock.close()
        assert response.status == 429
    finally:
        for raw in held:
            raw.sock.close()


def test_wscat_prints_the_code_and_the_reason(guests_off, wscat_path):
    said = wscat_on_a_terminal(wscat_path, guests_off.ws_url(f"/ws/{unique('term')}"))
    assert 'Disconnected (code: 4003, reason: "guests are not allowed here: register' in said, said
