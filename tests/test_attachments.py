"""Attachments against the real server over real HTTP and websockets, on SQLite and MariaDB: upload (token or browser
session with CSRF), the message that carries the file (live, in history, in ?since= catch-up), serving with its headers,
the size and type checks, metadata stripping, and who may fetch what.

The pure parts (sniffing, names, re-encoding) are tested in test_filetypes.py; the page in test_attachments_browser.py.
"""
import hashlib
import io
import random
import re
import uuid
from urllib.parse import urlsplit

import pymysql
import pytest
import requests
from PIL import Image

from tests.support import filesamples as samples
from chat.store import Store
from chat.store.attachments import AttachmentQueries
from tests.support.clients import ChatClient
from tests.support.databases import db_execute
from tests.support.webusers import CSRF_RE, account, token_socket, unique

MiB = 1024 * 1024
TIMEOUT = 30


@pytest.fixture
def server(shared_server):
    """One server per store for the module; every test uses accounts and names of its own or shared read-only ones."""
    return shared_server


def bearer(token):
    return {"Authorization": f"Bearer {token}"}


def upload(server, token, filename, data, to=None, content_type="application/octet-stream", **kwargs):
    fields = {"to": to} if to is not None else {}
    headers = bearer(token) if token else {}
    return requests.post(
        server.http_url + "/files", headers=headers, data=fields, files={"file": (filename, data, content_type)},
        timeout=TIMEOUT, **kwargs,
    )


def uploaded(server, token, filename, data, to=None):
    response = upload(server, token, filename, data, to)
    assert response.status_code == 201, response.text
    return response.json()


def fetch(server, path, token=None, headers=None):
    return requests.get(server.http_url + path, headers={**(bearer(token) if token else {}), **(headers or {})}, timeout=TIMEOUT)


def next_message(client, *types):
    """The next message/direct event, skipping presence."""
    return client.recv_type(*(types or ("message", "direct")))


def online(server, name, token):
    """A terminal client of an account, past its welcome and history."""
    return token_socket(server, name, token)


# ---- upload and fetch ------------------------------------------------------------------------------


def test_picture_upload_posts_a_message_and_is_served_with_safe_headers(server):
    _, alice, token = account(server, "alice")
    _, bob, bob_token = account(server, "bob")
    listener = online(server, bob, bob_token)
    own = online(server, alice, token)
    original = samples.png(800, 600)

    response = upload(server, token, "sunset.png", original, content_type="image/png")
    assert response.status_code == 201, response.text
    body = response.json()
    file_id = body["attachment"]["id"]
    url = f"/files/{file_id}"  # no public_url set: a path on this server, never the request's Host
    assert response.headers["Location"] == url == body["url"]
    assert body["attachment"] == {
        "id": file_id, "name": "sunset.png", "type": "image/png", "size": body["attachment"]["size"],
        "url": f"/files/{file_id}", "thumb_url": f"/files/{file_id}/thumb", "image": True,
    }
    assert re.fullmatch(rf"\[image\] sunset\.png \([\d.]+ KiB\) {re.escape(url)}", body["msg"]), body["msg"]
    assert "to" not in body and body["ts"].endswith("Z")

    # Everyone in the conversation gets the message live, the uploader's own sockets included (there is no ack).
    for client in (listener, own):
        event = next_message(client, "message")
        assert event == {"type": "message", "id": body["id"], "user": alice, "msg": body["msg"], "ts": body["ts"],
                         "attachment": body["attachment"]}
    # Answered only after the message was committed.
    rows = db_execute(server.database_url, "SELECT sender, attachment_id FROM messages WHERE id = ?", (body["id"],))
    assert rows and tuple(rows[0]) == (alice, file_id)

    served = fetch(server, f"/files/{file_id}")  # guests are allowed on this server: no credentials needed
    assert served.status_code == 200
    h = served.headers
    assert h["Content-Type"] == "image/png"
    assert h["X-Content-Type-Options"] == "nosniff"
    assert h["Content-Disposition"] == 'inline; filename="sunset.png"'
    assert h["ETag"] == f'"{hashlib.sha256(served.content).hexdigest()}"'  # strong: no W/
    assert h["Cache-Control"] == "public, max-age=31536000, immutable"
    assert "sandbox" in h["Content-Security-Policy"] and "default-src 'none'" in h["Content-Security-Policy"]
    assert h["Cross-Origin-Resource-Policy"] == "same-origin"
    assert int(h["Content-Length"]) == len(served.content) == body["attachment"]["size"]
    picture = Image.open(io.BytesIO(served.content))
    assert picture.format == "PNG" and picture.size == (800, 600)

    thumb = fetch(server, f"/files/{file_id}/thumb")
    assert thumb.status_code == 200 and thumb.headers["Content-Type"] == "image/webp"
    assert Image.open(io.BytesIO(thumb.content)).size == (320, 240)
    assert thumb.headers["ETag"] != h["ETag"]

    again = fetch(server, f"/files/{file_id}", headers={"If-None-Match": h["ETag"]})
    assert again.status_code == 304 and again.content == b"" and again.headers["ETag"] == h["ETag"]
    for client in (listener, own):
        client.close()


@pytest.mark.parametrize(
    "filename, data, served_name, content_type",
    [
        ("notes.txt", "shopping list: ünïcode, 😀\n".encode(), "notes.txt", "text/plain; charset=utf-8"),
        ("page.html", b"plain words, no markup\n", "page.html.txt", "text/plain; charset=utf-8"),
        ("report.pdf", samples.pdf(), "report.pdf", "application/pdf"),
        ("archive.zip", samples.zip_archive(), "archive.zip", "application/zip"),
    ],
    ids=["text", "text-named-html", "pdf", "zip"],
)
def test_other_files_are_served_as_downloads_byte_for_byte(server, filename, data, served_name, content_type):
    _, _, token = account(server, "alice")
    body = uploaded(server, token, filename, data)
    a = body["attachment"]
    assert (a["name"], a["type"], a["size"], a["image"], a["thumb_url"]) == (served_name, content_type, len(data), False, None)
    assert body["msg"].startswith(f"[file] {served_name} (")
    served = fetch(server, a["url"])
    assert served.status_code == 200 and served.content == data
    assert served.headers["Content-Type"] == content_type
    assert served.headers["Content-Disposition"] == f'attachment; filename="{served_name}"'
    assert served.headers["ETag"] == f'"{hashlib.sha256(data).hexdigest()}"'
    assert fetch(server, a["url"] + "/thumb").status_code == 404


def test_small_picture_has_no_thumbnail_and_an_animation_keeps_its_frames(server):
    _, _, token = account(server, "alice")
    small = uploaded(server, token, "icon.png", samples.png(64, 48))["attachment"]
    assert small["image"] is True and small["thumb_url"] is None
    assert fetch(server, small["url"] + "/thumb").status_code == 404
    gif = uploaded(server, token, "dance.gif", samples.animated_gif(400, 300, frames=4))["attachment"]
    served = fetch(server, gif["url"])
    assert served.headers["Content-Type"] == "image/gif"
    assert Image.open(io.BytesIO(served.content)).n_frames == 4
    assert fetch(server, gif["thumb_url"]).status_code == 200


def test_jpeg_with_gps_exif_is_served_without_any_metadata(server):
    _, _, token = account(server, "alice")
    original = samples.jpeg_with_gps(1200, 800, orientation=6)
    assert samples.has_location_or_camera_data(original)
    a = uploaded(server, token, "IMG_0001.JPG", original)["attachment"]
    assert a["type"] == "image/jpeg"
    served = fetch(server, a["url"]).content
    thumb = fetch(server, a["thumb_url"]).content
    assert not samples.has_location_or_camera_data(served)
    assert not samples.has_location_or_camera_data(thumb)
    assert Image.open(io.BytesIO(served)).size == (800, 1200)  # turned upright before the orientation tag went
    assert Image.open(io.BytesIO(thumb)).size == (213, 320)
    stored = db_execute(server.database_url, "SELECT data, thumbnail FROM attachments WHERE id = ?", (a["id"],))[0]
    assert bytes(stored[0]) == served and bytes(stored[1]) == thumb  # what is kept is the clean copy only


# ---- size and type checks ---------------------------------------------------------------------------


def test_a_6_mib_file_is_refused_with_413_and_a_clear_message(server):
    _, _, token = account(server, "alice")
    response = upload(server, token, "big.txt", b"a" * (6 * MiB))
    assert response.status_code == 413
    assert response.json() == {"error": "the file is too large: at most 5 MiB (5242880 bytes)", "max_size": 5 * MiB}


@pytest.mark.parametrize("kind", ["text", "binary"])
def test_a_file_of_exactly_the_limit_is_accepted(server, kind):
    _, _, token = account(server, "alice")
    if kind == "text":
        data = (b"0123456789abcdef" * (5 * MiB // 16))[: 5 * MiB - 1] + b"\n"
    else:  # random bytes behind a ZIP signature: every byte value, line breaks and boundary-like dashes included
        data = (b"PK\x03\x04" + random.Random(5).randbytes(5 * MiB))[: 5 * MiB]
    body = uploaded(server, token, f"five.{'txt' if kind == 'text' else 'zip'}", data)
    assert body["attachment"]["size"] == 5 * MiB
    assert fetch(server, body["attachment"]["url"]).content == data
    one_more = upload(server, token, "five.txt", data + b"x")
    assert one_more.status_code == 413


def test_a_photo_sized_picture_is_accepted(server):
    """A few MiB of JPEG (binary data full of line breaks, as a phone photo is) goes through the multipart parser."""
    _, _, token = account(server, "alice")
    noisy = Image.effect_noise((2000, 1500), 60).convert("RGB")
    out = io.BytesIO()
    noisy.save(out, "JPEG", quality=92)
    assert 1 * MiB < len(out.getvalue()) < 5 * MiB
    a = uploaded(server, token, "photo.jpg", out.getvalue())["attachment"]
    assert Image.open(io.BytesIO(fetch(server, a["url"]).content)).size == (2000, 1500)


def _chunked_multipart(filename, pieces):
    """A multipart body sent with Transfer-Encoding: chunked (requests does that for a generator): no Content-Length."""
    boundary = uuid.uuid4().hex

    def body():
        yield (f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{filename}"\r\n'
               "Content-Type: application/octet-stream\r\n\r\n").encode()
        yield from pieces
        yield f"\r\n--{boundary}--\r\n".encode()

    return {"Content-Type": f"multipart/form-data; boundary={boundary}"}, body()


def test_a_chunked_upload_without_content_length_is_capped_while_streaming(server):
    _, _, token = account(server, "alice")
    headers, body = _chunked_multipart("small.txt", [b"chunked ", b"and fine\n"])
    ok = requests.post(server.http_url + "/files", headers={**headers, **bearer(token)}, data=body, timeout=TIMEOUT)
    assert ok.status_code == 201, ok.text
    assert fetch(server, ok.json()["attachment"]["url"]).content == b"chunked and fine\n"

    def pieces():
        for _ in range(60):  # 6 MiB in 100 KiB chunks
            yield b"x" * (100 * 1024)

    headers, body = _chunked_multipart("big.txt", pieces())
    big = requests.post(server.http_url + "/files", headers={**headers, **bearer(token)}, data=body, timeout=TIMEOUT)
    assert big.status_code == 413 and "at most 5 MiB" in big.json()["error"]


@pytest.mark.parametrize(
    "filename, data, status, message",
    [
        ("cat.png", samples.HTML_PAGE, 415, "HTML, SVG and XML documents are not accepted"),
        ("logo.svg", samples.SVG_WITH_SCRIPT, 415, "HTML, SVG and XML documents are not accepted"),
        ("logo.png", samples.BARE_SVG, 415, "HTML, SVG and XML documents are not accepted"),
        ("broken.png", samples.truncated_png(), 422, "looks like a PNG picture but could not be decoded"),
        ("tool.txt", samples.ELF_BINARY, 415, "this kind of file is not accepted; allowed: png, jpeg, gif, webp, pdf, text, zip"),
        ("empty.txt", b"", 415, "the file is empty"),
    ],
    ids=["renamed-html", "svg-with-script", "svg-named-png", "truncated-png", "binary", "empty"],
)
def test_types_are_judged_by_content(server, filename, data, status, message):
    _, _, token = account(server, "alice")
    before = db_execute(server.database_url, "SELECT COUNT(*) FROM attachments")[0][0]
    response = upload(server, token, filename, data, content_type="image/png")
    assert response.status_code == status, response.text
    assert message in response.json()["error"]
    assert db_execute(server.database_url, "SELECT COUNT(*) FROM attachments")[0][0] == before  # nothing stored


def test_an_upload_needs_exactly_one_file_field(server):
    _, _, token = account(server, "alice")
    none = requests.post(server.http_url + "/files", headers=bearer(token), data={"to": ""}, timeout=TIMEOUT)
    assert none.status_code == 400 and '"file"' in none.json()["error"]
    two = requests.post(server.http_url + "/files", headers=bearer(token), timeout=TIMEOUT,
                        files=[("file", ("a.txt", b"a")), ("file", ("b.txt", b"b"))])
    assert two.status_code == 400


# ---- who may upload ----------------------------------------------------------------------------------


def test_guests_cannot_upload_and_a_name_in_the_form_counts_for_nothing(server):
    _, alice, _ = account(server, "alice")
    response = requests.post(server.http_url + "/files", data={"user": alice, "username": alice}, timeout=TIMEOUT,
                             files={"file": ("a.txt", b"hello")})
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert "guests cannot upload" in response.json()["error"]
    bad = upload(server, "chat_not-a-real-token", "a.txt", b"hello")
    assert bad.status_code == 401 and bad.json()["error"] == "the token is invalid, expired or revoked"


def test_browser_session_uploads_need_the_csrf_token(server):
    user, alice, _ = account(server, "alice")
    url = server.http_url + "/files"
    files = {"file": ("note.txt", b"from the browser\n")}
    assert user.http.post(url, files=files, timeout=TIMEOUT).status_code == 400
    wrong = user.http.post(url, files=files, headers={"X-CSRFToken": "nope"}, timeout=TIMEOUT)
    assert wrong.status_code == 400 and "CSRF" in wrong.json()["error"]
    page = user.http.get(server.http_url + "/", timeout=TIMEOUT).text
    assert 'enctype="multipart/form-data"' in page and 'accept="image/png,image/jpeg' in page
    csrf = CSRF_RE.search(page).group(1)
    by_field = user.http.post(url, files=files, data={"csrf_token": csrf}, timeout=TIMEOUT)
    by_header = user.http.post(url, files=files, headers={"X-CSRFToken": csrf}, timeout=TIMEOUT)
    for response in (by_field, by_header):
        assert response.status_code == 201, response.text
        assert response.json()["msg"].startswith("[file] note.txt")
    event_user = db_execute(server.database_url, "SELECT sender FROM messages WHERE id = ?", (by_header.json()["id"],))
    assert event_user[0][0] == alice


# ---- direct conversations --------------------------------------------------------------------------


def test_direct_attachment_reaches_only_its_two_users_and_only_they_may_fetch_it(server):
    alice_web, alice, alice_token = account(server, "alice")
    _, bob, bob_token = account(server, "bob")
    _, carol, carol_token = account(server, "carol")
    bob_ws, carol_ws, alice_ws = online(server, bob, bob_token), online(server, carol, carol_token), online(server, alice, alice_token)

    body = uploaded(server, alice_token, "secret-plan.png", samples.png(640, 480), to=bob.upper())
    a = body["attachment"]
    assert body["to"] == bob
    for client in (bob_ws, alice_ws):
        event = next_message(client, "direct")
        assert (event["id"], event["user"], event["to"], event["attachment"]) == (body["id"], alice, bob, a)
    # Carol's next message is the group one sent afterwards: the direct one never reached her.
    alice_ws.send({"type": "message", "msg": "marker after the direct file", "ref": 1})
    assert next_message(carol_ws)["msg"] == "marker after the direct file"

    for path in (a["url"], a["thumb_url"]):
        assert fetch(server, path, alice_token).status_code == 200
        assert fetch(server, path, bob_token).status_code == 200
        assert alice_web.http.get(server.http_url + path, timeout=TIMEOUT).status_code == 200  # the page's cookie
        for refused in (fetch(server, path, carol_token), fetch(server, path)):
            assert refused.status_code == 404 and refused.json() == {"error": "no such file"}
        assert fetch(server, path, "chat_forged").status_code == 401
    private = fetch(server, a["url"], bob_token)
    assert private.headers["Cache-Control"] == "private, max-age=31536000, immutable"
    assert fetch(server, "/files/999999999", bob_token).status_code == 404  # the same answer as for someone else's
    for client in (bob_ws, carol_ws, alice_ws):
        client.close()


def test_direct_upload_refusals(server, clients):
    _, alice, token = account(server, "alice")
    guest = unique("guest")
    clients(server, guest).close()  # a guest who has connected: a known name, but with no account
    cases = [
        (alice, 422, "you cannot send a file to yourself"),
        ("nobody-" + uuid.uuid4().hex[:8], 422, "has ever connected"),
        (guest, 422, f"{guest} has no account, so could not open the file"),
        ("eliza", 422, "eliza has no account"),
        ("not a name!", 400, '"to" is not a valid name'),
    ]
    for to, status, message in cases:
        response = upload(server, token, "a.txt", b"hello", to=to)
        assert response.status_code == status, (to, response.text)
        assert message in response.json()["error"]


# ---- history and catch-up ---------------------------------------------------------------------------


def test_history_and_since_include_attachment_messages(server):
    _, alice, alice_token = account(server, "alice")
    _, bob, bob_token = account(server, "bob")
    online(server, bob, bob_token).close()  # bob is a known user
    group = uploaded(server, alice_token, "group.txt", b"for everyone\n")
    direct = uploaded(server, alice_token, "for-bob.pdf", samples.pdf(), to=bob)

    # Catch-up after an id: both, with their attachment objects.
    since = ChatClient.connect(server.ws_url(f"/ws/{bob}?since={group['id'] - 1}&token={bob_token}"), suppress_origin=True)
    since.recv_type("welcome")
    replay = since.recv_type("history")
    by_id = {m["id"]: m for m in replay["messages"]}
    assert by_id[group["id"]]["attachment"] == group["attachment"]
    assert by_id[direct["id"]]["attachment"] == direct["attachment"] and by_id[direct["id"]]["type"] == "direct"

    # History pages: the group, and the one-to-one conversation.
    since.send({"type": "history", "limit": 50, "ref": "g"})
    page = since.recv_type("history")
    assert [m["attachment"] for m in page["messages"] if m["id"] == group["id"]] == [group["attachment"]]
    since.send({"type": "history", "with": alice, "limit": 50, "ref": "d"})
    page = since.recv_type("history")
    assert [m["attachment"] for m in page["messages"] if m["id"] == direct["id"]] == [direct["attachment"]]
    since.close()


def test_a_deleted_attachment_is_gone_and_its_message_stays_as_text(server):
    _, alice, token = account(server, "alice")
    body = uploaded(server, token, "oops.txt", b"delete me\n")
    db_execute(server.database_url, "UPDATE attachments SET deleted_ms = 1 WHERE id = ?", (body["attachment"]["id"],))
    assert fetch(server, body["attachment"]["url"]).status_code == 410
    with token_socket(server, alice, token) as ws:
        ws.send({"type": "history", "limit": 200, "ref": "h"})
        messages = {m["id"]: m for m in ws.recv_type("history")["messages"]}
    assert messages[body["id"]]["msg"] == body["msg"] and "attachment" not in messages[body["id"]]


# ---- a server for members only -------------------------------------------------------------------------


def test_members_only_server_serves_group_files_to_signed_in_users_only(start_server, sqlite_url):
    server = start_server(sqlite_url, allow_guests=False)
    _, _, token = account(server, "member")
    a = uploaded(server, token, "minutes.txt", b"members only\n")["attachment"]
    anonymous = fetch(server, a["url"])
    assert anonymous.status_code == 401 and anonymous.headers["WWW-Authenticate"].startswith("Bearer")
    served = fetch(server, a["url"], token)
    assert served.status_code == 200 and served.headers["Cache-Control"] == "private, max-age=31536000, immutable"
    assert served.content == b"members only\n"


# ---- the store ---------------------------------------------------------------------------------------


OLD_SCHEMA = {
    "sqlite": "CREATE TABLE messages (id INTEGER PRIMARY KEY, sender TEXT NOT NULL, recipient TEXT, body TEXT NOT NULL,"
              " created_ms INTEGER NOT NULL)",
    "mysql": "CREATE TABLE messages (id BIGINT NOT NULL PRIMARY KEY, sender VARCHAR(64) NOT NULL, recipient VARCHAR(64) NULL,"
             " body MEDIUMTEXT NOT NULL, created_ms BIGINT NOT NULL) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin",
}


def test_a_database_from_before_attachments_gets_the_column_and_keeps_its_messages(database_url):
    from chat.records import AttachmentRef, MessageRecord

    kind = database_url.split(":", 1)[0]
    db_execute(database_url, OLD_SCHEMA[kind])
    db_execute(database_url, "INSERT INTO messages (id, sender, recipient, body, created_ms) VALUES (1, 'old', NULL, 'from before', 5)")
    store = Store(database_url, pool_size=2, connect_timeout=3)
    try:
        store.ensure_schema()
        store.ensure_schema()  # idempotent
        assert store.group_page(10) == [MessageRecord(1, "old", None, "from before", 5)]
        files = AttachmentQueries(store)
        file_id = files.insert("old", None, "a.txt", "text/plain; charset=utf-8", b"hi", hashlib.sha256(b"hi").hexdigest())
        ref = AttachmentRef(file_id, "a.txt", "text/plain; charset=utf-8", 2, False)
        store.insert_messages([MessageRecord(2, "old", None, "[file] a.txt", 6, ref)])
        assert store.group_page(10)[-1] == MessageRecord(2, "old", None, "[file] a.txt", 6, ref)
        assert files.data(file_id) == b"hi" and files.data(file_id, thumbnail=True) is None
        assert files.meta(file_id).uploader == "old" and files.meta(file_id + 1) is None
    finally:
        store.close()


def test_uploads_can_be_turned_off(start_server, sqlite_url):
    server = start_server(sqlite_url, upload_types="")
    user, _, token = account(server, "alice")
    page = user.http.get(server.http_url + "/", timeout=TIMEOUT).text
    assert 'data-uploads="false"' in page and 'id="attach"' not in page and 'id="file-input"' not in page
    response = upload(server, token, "a.txt", b"hello")
    assert response.status_code == 415 and "uploads are off" in response.json()["error"]


def test_upload_answers_503_when_its_message_is_not_committed_in_time(start_server, mysql_databases):
    """The file is stored and its message delivered live, but the message's commit is held up (here: the messages
    table is locked): the upload answers 503 after upload_commit_timeout; the message is stored once the lock goes."""
    url = mysql_databases.create()
    server = start_server(url, upload_commit_timeout=0.5)
    _, name, token = account(server, "slow")
    listener = online(server, name, token)  # before the lock: connecting reads the history
    p = urlsplit(url)
    lock = pymysql.connect(host=p.hostname, port=p.port, user=p.username, password=p.password or "", database=p.path[1:])
    try:
        with lock.cursor() as cur:
            cur.execute("LOCK TABLES messages WRITE")
        response = upload(server, token, "late.txt", b"late but not lost\n")
        assert response.status_code == 503, response.text
        body = response.json()
        assert "not confirmed yet" in body["error"] and body["attachment"]["name"] == "late.txt"
        assert next_message(listener, "message")["id"] == body["id"]  # delivered live all the same
    finally:
        with lock.cursor() as cur:
            cur.execute("UNLOCK TABLES")
        lock.close()
    # Acks follow commit order: once a later message is acknowledged, the file's message is stored.
    listener.send({"type": "message", "msg": "after the lock", "ref": "later"})
    assert listener.recv_type("ack", timeout=30)["ref"] == "later"
    assert db_execute(url, "SELECT body FROM messages WHERE id = ?", (body["id"],))[0][0] == body["msg"]
    assert fetch(server, body["attachment"]["url"]).content == b"late but not lost\n"
    listener.close()
