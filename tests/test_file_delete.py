"""DELETE /files/<id> against the real server over real HTTP and websockets, on SQLite and MariaDB: the uploader, a
server admin, everyone else refused (403 where they see the file, 404 where they do not), the browser's CSRF and Origin
rules, the live tombstone of the message carrying the file, 410 afterwards, the stored total counted down, and hostile
ids and races (the same file deleted twice at once: one deletion, one event)."""
import threading

import pytest
import requests

from chat.store import Store
from chat.store.attachments import AttachmentQueries, Quotas
from tests.support import filesamples as samples
from tests.support.databases import db_execute
from tests.support.webusers import CSRF_RE, account, admin, signed_up, get_token, token_socket, unique

TIMEOUT = 30


@pytest.fixture
def server(shared_server):
    return shared_server


def bearer(token):
    return {"Authorization": f"Bearer {token}"} if token else {}


def uploaded(server, token, filename, data, to=None):
    response = requests.post(server.http_url + "/files", headers=bearer(token), data={"to": to} if to else {},
                             files={"file": (filename, data)}, timeout=TIMEOUT)
    assert response.status_code == 201, response.text
    return response.json()


def delete(server, file_id, token=None, **kwargs):
    return requests.delete(f"{server.http_url}/files/{file_id}", headers={**bearer(token), **kwargs.pop("headers", {})},
                           timeout=TIMEOUT, **kwargs)


def fetch(server, path, token=None):
    return requests.get(server.http_url + path, headers=bearer(token), timeout=TIMEOUT)


def stored_total(server):
    return db_execute(server.database_url, "SELECT bytes FROM upload_totals WHERE id = 1")[0][0]


def delete_events(server, message_id):
    return db_execute(server.database_url, "SELECT COUNT(*) FROM messages WHERE kind = 'delete' AND target_id = ?",
                      (message_id,))[0][0]


def next_event(client):
    """The next event that is not presence."""
    return client.recv_type("message", "direct", "delete", "ack", "error")


def marker(sender, readers, text):
    """Send a group message and read each reader up to it: every event before it is returned (order proves absence)."""
    sender.send({"type": "message", "msg": text, "ref": text})
    seen = {}
    for reader in readers:
        got = []
        while True:
            event = next_event(reader)
            if event.get("msg") == text:
                break
            got.append(event)
        seen[reader] = got
    return seen


# ---- who may ------------------------------------------------------------------------------------------------------


def test_the_uploader_deletes_a_file_everyone_sees_its_message_tombstoned_live_and_get_answers_410(server, clients):
    _, alice, alice_token = account(server, "alice")
    _, bob, bob_token = account(server, "bob")
    bob_ws, alice_ws = token_socket(server, bob, bob_token), token_socket(server, alice, alice_token)
    guest = clients(server, unique("guest"))  # a bystander chatting in general
    body = uploaded(server, alice_token, "plan.png", samples.png(800, 600))
    file_id, message_id = body["attachment"]["id"], body["id"]
    for client in (bob_ws, alice_ws, guest):
        assert next_event(client)["id"] == message_id
    before = stored_total(server)
    fetch_thumb = fetch(server, body["attachment"]["thumb_url"]).content

    response = delete(server, file_id, alice_token)
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["id"] == file_id and answer["message"] == message_id and answer["event"] > message_id
    tombstone = {"type": "delete", "id": answer["event"], "of": message_id, "user": alice}
    for client in (bob_ws, alice_ws, guest):  # the uploader's own sockets too: the HTTP answer is no socket's ack
        event = next_event(client)
        event.pop("ts")
        assert event == tombstone
    assert fetch(server, body["url"]).status_code == 410
    assert fetch(server, body["attachment"]["thumb_url"]).status_code == 410
    assert delete(server, file_id, alice_token).status_code == 410  # already deleted
    thumb = len(fetch_thumb)
    assert stored_total(server) == before - body["attachment"]["size"] - thumb
    row = db_execute(server.database_url, "SELECT LENGTH(data), deleted_ms IS NOT NULL FROM attachments WHERE id = ?", (file_id,))
    assert tuple(row[0]) == (0, 1)
    # History shows the message deleted; a ?since= replay has it in its current state and the delete event once.
    alice_ws.send({"type": "history", "limit": 200, "ref": "h"})
    page = {m["id"]: m for m in alice_ws.recv_type("history")["messages"]}
    assert page[message_id].get("deleted") is True and "attachment" not in page[message_id]
    since = clients(server, unique("late"), f"?since={message_id - 1}", handshake=False)
    since.recv_type("welcome")
    items = since.recv_type("history")["messages"]  # a guest sees general: the message (deleted), its delete event once
    assert [m["id"] for m in items].count(answer["event"]) == 1
    assert [m for m in items if m["id"] == message_id][0].get("deleted") is True
    # the bystander chats on: nothing was lost for him
    seen = marker(guest, [bob_ws], "still here")
    assert seen[bob_ws] == []
    for client in (bob_ws, alice_ws):
        client.close()


def test_others_are_refused_403_where_they_see_the_file_404_where_they_do_not(server):
    _, alice, alice_token = account(server, "alice")
    _, bob, bob_token = account(server, "bob")
    _, carol, carol_token = account(server, "carol")
    token_socket(server, bob, bob_token).close()  # bob is a known user: a direct file can be sent to him
    group = uploaded(server, alice_token, "group.txt", b"for everyone\n")
    direct = uploaded(server, alice_token, "for-bob.txt", b"for bob\n", to=bob)
    missing = delete(server, 2**62, carol_token)
    assert missing.status_code == 404 and missing.json() == {"error": "no such file"}

    refused = delete(server, group["attachment"]["id"], bob_token)
    assert refused.status_code == 403 and "uploader" in refused.json()["error"]
    assert delete(server, direct["attachment"]["id"], bob_token).status_code == 403  # bob sees it, may not delete it
    hidden = delete(server, direct["attachment"]["id"], carol_token)
    assert (hidden.status_code, hidden.json()) == (404, missing.json())  # exactly like a missing file
    unsigned = delete(server, group["attachment"]["id"])
    assert unsigned.status_code == 401 and unsigned.headers["WWW-Authenticate"].startswith("Bearer")
    assert delete(server, group["attachment"]["id"], "chat_forged").status_code == 401
    for body, token in ((group, None), (direct, bob_token)):
        assert fetch(server, body["url"], token).status_code == 200  # nothing was deleted
    assert delete_events(server, group["id"]) == 0

    assert delete(server, direct["attachment"]["id"], alice_token).status_code == 200
    assert fetch(server, direct["url"], bob_token).status_code == 410


def test_a_server_admin_deletes_group_files_but_never_others_one_to_one_files(server):
    _, alice, alice_token = account(server, "alice")
    _, bob, bob_token = account(server, "bob")
    token_socket(server, bob, bob_token).close()
    _, root = signed_up(server, "root")
    root_token = get_token(server, root)
    group = uploaded(server, alice_token, "spam.txt", b"buy now\n")
    direct = uploaded(server, alice_token, "private.txt", b"just for bob\n", to=bob)
    assert delete(server, group["attachment"]["id"], root_token).status_code == 403  # not an admin yet
    assert admin("grant-admin", root, "--database", server.database_url)[0] == 0
    with token_socket(server, bob, bob_token) as bob_ws:
        response = delete(server, group["attachment"]["id"], root_token)
        assert response.status_code == 200, response.text
        event = next_event(bob_ws)
        assert (event["type"], event["of"], event["user"]) == ("delete", group["id"], root)
    assert delete(server, direct["attachment"]["id"], root_token).status_code == 404
    assert fetch(server, direct["url"], bob_token).status_code == 200
    assert admin("revoke-admin", root, "--database", server.database_url)[0] == 0


def test_a_browser_session_needs_the_csrf_token_and_its_own_origin(server):
    user, alice, _ = account(server, "alice")
    page = user.http.get(server.http_url + "/", timeout=TIMEOUT).text
    csrf = CSRF_RE.search(page).group(1)
    body = uploaded(server, get_token(server, alice), "note.txt", b"from the browser\n")
    url = f"{server.http_url}/files/{body['attachment']['id']}"
    no_token = user.http.delete(url, headers={"Origin": server.http_url}, timeout=TIMEOUT)
    assert no_token.status_code == 400 and "CSRF" in no_token.json()["error"]
    assert user.http.delete(url, headers={"X-CSRFToken": "forged"}, timeout=TIMEOUT).status_code == 400
    # A page of another site: even with a token it could not have read, the Origin refuses it.
    cross = user.http.delete(url, headers={"X-CSRFToken": csrf, "Origin": "http://evil.example"}, timeout=TIMEOUT)
    assert cross.status_code == 403 and "origin" in cross.json()["error"]
    other_port = user.http.delete(url, headers={"X-CSRFToken": csrf, "Origin": "http://127.0.0.1:1"}, timeout=TIMEOUT)
    assert other_port.status_code == 403
    assert fetch(server, body["url"]).status_code == 200
    done = user.http.delete(url, headers={"X-CSRFToken": csrf, "Origin": server.http_url}, timeout=TIMEOUT)
    assert done.status_code == 200, done.text
    assert fetch(server, body["url"]).status_code == 410


def test_a_file_no_message_carries_is_deleted_alone_by_its_uploader(server):
    _, alice, alice_token = account(server, "alice")
    _, _, bob_token = account(server, "bob")
    store = Store(server.database_url, pool_size=1)
    try:  # an upload whose message was never stored (the database refused it): only the file row exists
        file_id = AttachmentQueries(store).insert(alice, None, "orphan.txt", "text/plain; charset=utf-8", b"x" * 1000,
                                                  "0" * 64, quotas=Quotas(10**12, 10**15))
    finally:
        store.close()
    before = stored_total(server)
    assert delete(server, file_id, bob_token).status_code == 403
    response = delete(server, file_id, alice_token)
    assert (response.status_code, response.json()) == (200, {"id": file_id, "message": None})
    assert stored_total(server) == before - 1000
    assert fetch(server, f"/files/{file_id}").status_code == 410


# ---- hostile -------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["99999999999999999999999999", str(2**63), "-1", "0", "abc", "1.5", "%00", "1%2F2", "1/thumb",
                                  "１２"])
def test_hostile_ids_are_404_and_cost_nothing(server, path):
    _, _, token = account(server, "alice")
    response = requests.delete(f"{server.http_url}/files/{path}", headers=bearer(token), timeout=TIMEOUT)
    assert response.status_code in (404, 405), (path, response.status_code)


def test_the_same_file_deleted_twice_at_once_is_deleted_once_with_one_event(server):
    _, alice, alice_token = account(server, "alice")
    _, bob, bob_token = account(server, "bob")
    for attempt in range(3):
        body = uploaded(server, alice_token, f"race{attempt}.txt", b"race me\n" * 100)
        before = stored_total(server)
        answers = []
        start = threading.Barrier(4)

        def racer():
            start.wait()
            answers.append(delete(server, body["attachment"]["id"], alice_token).status_code)

        threads = [threading.Thread(target=racer) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sorted(answers) == [200, 410, 410, 410]
        assert delete_events(server, body["id"]) == 1
        assert stored_total(server) == before - 800
    with token_socket(server, bob, bob_token) as bob_ws:
        bob_ws.send({"type": "history", "since": body["id"] - 1, "limit": 200, "ref": "s"})
        items = bob_ws.recv_type("history")["messages"]
        assert [m.get("of") for m in items if m["type"] == "delete"] == [body["id"]]
