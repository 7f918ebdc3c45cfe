"""Accounts against the real server: registration and sign-in through the real forms, password hashes, server-side
sessions and API tokens in each place they can live (SQLite, MariaDB, Redis), sign-out, token revocation and operator
removal closing live sockets with 4001, and the secret key's instance file.

The hostile cases (wrong, expired, revoked or someone else's credentials, CSRF, Origin, floods) are in test_access_control.py.
"""
import hashlib
import json
import os
import queue
import stat
import subprocess
import threading
import time
from urllib.parse import urlsplit

import pytest
import requests

from tests.support.databases import db_execute
from tests.support.wscat import Wscat, wscat_on_a_terminal
from tests.support.webusers import (
    PASSWORD,
    WebUser,
    account,
    admin,
    admin_settings,
    get_token,
    on,
    refused,
    signed_up,
    token_socket,
    unique,
)

CLOSE_CREDENTIALS_ENDED = 4001


@pytest.fixture
def server(shared_auth_server):
    return shared_auth_server


@pytest.fixture
def form_server(_shared_auth_servers):
    """For checks that never reach the store (form validation): the shared SQLite server."""
    return _shared_auth_servers.get("sqlite")


db_rows = db_execute  # rows straight from the server's database (read-only checks of what it stored)


def send_and_ack(client, text):
    client.send({"type": "message", "msg": text, "ref": "r"})
    while True:
        event = client.recv_type("ack", "message", "direct")
        if event["type"] == "ack":
            return event


# ---- registration ---------------------------------------------------------------------------------


def test_register_signs_in_and_the_page_connects_as_that_user(server):
    user = WebUser(server)
    name = unique("reg")
    response = user.register(name)
    assert response.status_code == 302 and urlsplit(response.headers["Location"]).path == "/"
    page = user.http.get(user.url("/"))
    assert f'data-user="{name}"' in page.text and 'id="logout-form"' in page.text
    with user.socket(name, handshake=False) as ws:
        welcome, _ = ws.handshake()
        assert welcome["user"] == name


@on("sqlite", "mysql")
def test_password_is_stored_only_as_a_salted_hash(server):
    names = [signed_up(server, "hash")[1] for _ in range(2)]  # the same password twice
    rows = db_rows(server.database_url, "SELECT name, password_hash FROM accounts WHERE name IN (?, ?)", tuple(names))
    hashes = [h for _, h in rows]
    assert len(hashes) == 2 and hashes[0] != hashes[1], "the same password must hash differently (salt)"
    for h in hashes:
        assert h.startswith("scrypt:") and PASSWORD not in h


@pytest.mark.parametrize(
    "fields, field, message",
    [
        ({"username": "a b"}, "username", "Use 1-32 characters"),
        ({"username": "x" * 33}, "username", "Use 1-32 characters"),
        ({"username": ".dot"}, "username", "Use 1-32 characters"),
        ({"username": ""}, "username", "Choose a user name."),
        ({"password": "short", "confirm": "short"}, "password", "Use 8 to 1024 characters."),
        ({"confirm": PASSWORD + "!"}, "confirm", "The two passwords differ."),
        ({"confirm": ""}, "confirm", "Type the password again."),
    ],
    ids=["space", "too-long", "leading-dot", "empty-name", "short-password", "mismatch", "no-confirm"],
)
def test_registration_errors_show_next_to_the_field(form_server, fields, field, message):
    user = WebUser(form_server)
    data = {"username": unique("val"), "password": PASSWORD, "confirm": PASSWORD, **fields}
    response = user.post_form("/register", data, csrf_from="/register")
    assert response.status_code == 400
    error = f'<p id="{field}-error" class="field-error" role="alert">'
    assert error + message in response.text, response.text
    assert 'data-user=""' in user.http.get(user.url("/")).text  # not signed in


@on("sqlite", "mysql")
def test_names_are_unique_ignoring_case(server):
    user, name = signed_up(server, "case")
    response = WebUser(server).register(name.upper())
    assert response.status_code == 409
    assert '<p id="username-error" class="field-error" role="alert">That name is taken.' in response.text


@on("sqlite")
def test_registering_a_name_disconnects_guests_using_it(server, clients):
    name = unique("guest")
    guest = clients(server, name)
    WebUser(server).register(name)
    assert guest.recv_close() == (CLOSE_CREDENTIALS_ENDED, "name registered by another user")


# ---- sign-in and sign-out ------------------------------------------------------------------------------


def test_login_with_the_right_password_signs_in(server):
    _, name, _ = account(server, "alice")
    browser = WebUser(server)
    response = browser.login(name.upper())  # names are not case-sensitive
    assert response.status_code == 302
    with browser.socket(name) as ws:
        assert send_and_ack(ws, "signed in")["id"] > 0


@on("sqlite", "mysql")
def test_login_with_a_wrong_password_shows_the_error_by_the_password(server):
    _, name, _ = account(server, "alice")
    response = WebUser(server).login(name, PASSWORD + "x")
    assert response.status_code == 401
    assert '<p id="password-error" class="field-error" role="alert">Wrong user name or password.' in response.text


def test_logout_closes_only_that_sessions_sockets(server):
    first, name = signed_up(server, "bye")
    second = WebUser(server)
    assert second.login(name).status_code == 302
    token = get_token(server, name)
    a1, a2 = first.socket(name), first.socket(name)
    b = second.socket(name)
    terminal = token_socket(server, name, token)
    old_cookie = first.cookie

    assert first.logout().status_code == 302
    assert a1.recv_close() == (CLOSE_CREDENTIALS_ENDED, "signed out")
    assert a2.recv_close() == (CLOSE_CREDENTIALS_ENDED, "signed out")
    # The other browser and the terminal keep chatting.
    assert send_and_ack(b, "still here")["id"] > 0
    assert send_and_ack(terminal, "me too")["id"] > 0
    # The old cookie is dead on the server, even if someone kept a copy.
    origin = f"Origin: {server.http_url}"
    status, reason = refused(server, f"/ws/{name}", f"Cookie: {old_cookie}", origin)
    assert status == 401 and "registered name" in reason
    page = requests.get(server.http_url + "/", headers={"Cookie": old_cookie}, timeout=10)
    assert 'data-user=""' in page.text
    for ws in (b, terminal):
        ws.close()


# ---- tokens --------------------------------------------------------------------------------------


def test_token_api_returns_a_bearer_token_that_expires(server):
    _, name, _ = account(server, "alice")
    response = requests.post(server.http_url + "/api/token", json={"username": name, "password": PASSWORD}, timeout=10)
    assert response.status_code == 200 and response.headers["Cache-Control"] == "no-store"
    body = response.json()
    assert body["user"] == name and body["token_type"] == "Bearer" and body["expires_in"] == 86400
    assert body["token"].startswith("chat_") and len(body["token"]) > 40


@on("sqlite")
def test_token_api_accepts_form_fields(server):
    _, name, _ = account(server, "alice")
    response = requests.post(server.http_url + "/api/token", data={"username": name, "password": PASSWORD}, timeout=10)
    assert response.status_code == 200 and response.json()["user"] == name


@on("sqlite")
def test_token_api_wrong_password_is_401(server):
    _, name, _ = account(server, "alice")
    response = requests.post(server.http_url + "/api/token", json={"username": name, "password": "nope"}, timeout=10)
    assert response.status_code == 401 and "token" not in response.json()


@pytest.mark.parametrize("header", [False, True], ids=["query", "authorization-header"])
def test_token_opens_a_socket(server, header):
    _, name, token = account(server, "alice")
    with token_socket(server, name, token, header=header, handshake=False) as ws:
        welcome, _ = ws.handshake()
        assert welcome["user"] == name
        assert send_and_ack(ws, "from a terminal")["id"] > 0


def test_revoking_a_token_closes_its_sockets_and_it_stops_working(server):
    _, name = signed_up(server, "revoke")
    token, other = get_token(server, name), get_token(server, name)
    ws = token_socket(server, name, token)
    keeps = token_socket(server, name, other)
    response = requests.delete(server.http_url + "/api/token", headers={"Authorization": f"Bearer {token}"}, timeout=10)
    assert response.status_code == 204
    assert ws.recv_close() == (CLOSE_CREDENTIALS_ENDED, "token revoked")
    assert send_and_ack(keeps, "other token still works")["id"] > 0
    again = requests.delete(server.http_url + "/api/token", headers={"Authorization": f"Bearer {token}"}, timeout=10)
    assert again.status_code == 401
    keeps.close()


# ---- operator removal ---------------------------------------------------------------------------------


def test_operator_removal_closes_sockets_and_revokes_everything(server):
    user, name = signed_up(server, "removed")
    token = get_token(server, name)
    browser_ws, terminal = user.socket(name), token_socket(server, name, token)

    code, output = admin("remove-user", name, *admin_settings(server))
    assert code == 0, output
    assert "closed 2 open connection(s)" in output, output
    assert browser_ws.recv_close() == (CLOSE_CREDENTIALS_ENDED, "account removed")
    assert terminal.recv_close() == (CLOSE_CREDENTIALS_ENDED, "account removed")

    assert refused(server, f"/ws/{name}?token={token}")[0] == 401
    assert WebUser(server).login(name).status_code == 401
    # The name stays reserved: nobody can take it as a guest or register it again.
    status, reason = refused(server, f"/ws/{name}")
    assert status == 403 and "removed" in reason
    assert WebUser(server).register(name).status_code == 409


@on("sqlite", "mysql")
def test_operator_removal_with_release_frees_the_name(server, clients):
    _, name = signed_up(server, "released")
    code, output = admin("remove-user", name, "--release", *admin_settings(server))
    assert code == 0 and "deleted account" in output, output
    guest = clients(server, name)  # a guest may use it now
    assert send_and_ack(guest, "the name is free")["id"] > 0


@on("sqlite")
def test_operator_removal_of_an_unknown_account_says_so(server):
    code, output = admin("remove-user", unique("nobody"), *admin_settings(server))
    assert code == 1 and "no account named" in output


@on("sqlite")
def test_disconnect_endpoint_needs_the_operators_signature(server):
    _, name, token = account(server, "alice")
    with token_socket(server, name, token) as ws:
        response = requests.post(server.http_url + "/admin/disconnect", data='{"name": "%s"}' % name, timeout=10)
        assert response.status_code == 403
        assert send_and_ack(ws, "still connected")["id"] > 0


# ---- where sessions live -----------------------------------------------------------------------------


def test_sessions_and_tokens_live_in_the_configured_store(server):
    user, name = signed_up(server, "where")
    token = get_token(server, name)
    backend = server.backend

    def stored():
        """[(kind, digest)] of this user's live credentials, wherever the server keeps them."""
        if backend.kind != "redis":
            return sorted(db_rows(server.database_url, "SELECT kind, secret_hash FROM auth_credentials WHERE name = ?", (name,)))
        assert db_rows(server.database_url, "SELECT kind FROM auth_credentials WHERE name = ?", (name,)) == []
        digests = [d.decode() for d in backend.redis.smembers(f"{backend.prefix}user:{name}")]
        found = []
        for digest in digests:
            raw = backend.redis.get(f"{backend.prefix}cred:{digest}")
            if raw is not None:
                found.append((json.loads(raw)["kind"], digest))
        return sorted(found)

    before = stored()
    assert [kind for kind, _ in before] == ["session", "token"]
    # Only SHA-256 digests are stored, never the secrets themselves.
    assert ("token", hashlib.sha256(token.encode()).hexdigest()) in before
    assert all(token not in digest for _, digest in before)
    user.logout()
    assert [kind for kind, _ in stored()] == ["token"]


# ---- the secret key ---------------------------------------------------------------------------------


def test_secret_key_is_generated_once_into_the_instance_dir(start_server, sqlite_url, tmp_path):
    instance = tmp_path / "instance"
    server = start_server(sqlite_url, instance_dir=instance)
    key_file = instance / "secret_key"
    assert stat.S_IMODE(os.stat(key_file).st_mode) == 0o600
    key = key_file.read_text()
    user, name = signed_up(server, "keep")
    server.restart()  # the same key again: the sign-in survives the restart
    assert key_file.read_text() == key
    with user.socket(name) as ws:
        assert send_and_ack(ws, "after a restart")["id"] > 0


# ---- the documented wscat commands ---------------------------------------------------------------


class _WscatArgs(Wscat):
    """test_wscat.Wscat with any wscat arguments (-H for a header)."""

    def __init__(self, path, *args):  # noqa: super().__init__ is replaced, not extended
        self.proc = subprocess.Popen([path, *args], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     env=dict(os.environ, NO_COLOR="1", FORCE_COLOR="0"))
        self.lines = queue.Queue()
        self.output = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()


@on("sqlite")
@pytest.mark.parametrize("how", ["query", "header"])
def test_wscat_with_a_token(server, wscat_path, how):
    _, name, token = account(server, "alice")
    if how == "query":  # wscat -c "ws://HOST:PORT/ws/alice?token=..."
        args = ["-c", server.ws_url(f"/ws/{name}?token={token}")]
    else:  # wscat -c ws://HOST:PORT/ws/alice -H "Authorization: Bearer ..."
        args = ["-c", server.ws_url(f"/ws/{name}"), "-H", f"Authorization: Bearer {token}"]
    term = _WscatArgs(wscat_path, *args)
    try:
        assert term.expect(lambda e: e["type"] == "welcome")["user"] == name
        term.send_line("typed in wscat")
        assert term.expect(lambda e: e["type"] == "ack")["id"] > 0
    finally:
        term.quit()


@on("sqlite")
def test_wscat_without_a_token_is_refused(server, wscat_path):
    # wscat prints no HTTP body, and prints what happens to the connection only on a terminal: give it one.
    _, name, _ = account(server, "alice")
    said = wscat_on_a_terminal(wscat_path, server.ws_url(f"/ws/{name}"))
    assert 'Disconnected (code: 4001, reason: "alice' in said and "is a registered name: sign in" in said, said
