"""Hostile uploaders against the real server: pictures of many pixels in few bytes, upload floods, quota races across
processes, forged Host headers, and uploads under a small app-wide body limit. Each attack fails and two honest
bystanders keep chatting (tests/support/bystanders.py); each limit is tested at its boundary."""
import io
import os
import subprocess
import sys
import threading

import pytest
import requests
from PIL import Image, ImageDraw

from tests.support import filesamples as samples
from tests.support.bystanders import Bystanders
from chat.config import load_settings
from chat.uploads.limits import UploadRate
from tests.support.databases import db_execute
from tests.support.servers import ROOT, SUITE_SETTINGS, ServerProcess
from tests.support.webusers import get_token, signed_up

TIMEOUT = 60
EVIL = "evil.example"


@pytest.fixture
def watch_of(start_server):
    """watch_of(server) -> Bystanders on it, closed before the server stops (so it stops at once)."""
    opened = []

    def watch(server):
        opened.append(Bystanders(server))
        return opened[-1]

    yield watch
    for bystanders in opened:
        bystanders.close()


def new_account(server):
    """(name, token) of a freshly registered account."""
    _, name = signed_up(server, "up")
    return name, get_token(server, name)


def upload(server, token, data, filename="notes.txt", headers=None, to=None):
    return requests.post(
        server.http_url + "/files", headers={"Authorization": f"Bearer {token}", **(headers or {})},
        data={"to": to} if to else {}, files={"file": (filename, data, "application/octet-stream")}, timeout=TIMEOUT,
    )


def text_of(size, fill=b"q"):
    """A plain-text file of exactly `size` bytes."""
    return fill * (size - 1) + b"\n"


def stored_bytes(database_url, uploader):
    rows = db_execute(database_url, "SELECT COALESCE(SUM(size), 0), COUNT(*) FROM attachments WHERE uploader = ?", (uploader,))
    return int(rows[0][0]), int(rows[0][1])


def at_once(count, call):
    """Run call(i) for i in range(count) in threads released together; their results in order."""
    results = [None] * count
    start = threading.Barrier(count)

    def run(i):
        start.wait()
        results[i] = call(i)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(TIMEOUT * 2)
    return results


def flat_picture(width, height):
    """Many pixels in few bytes: a flat PNG (7000 x 7000 is 49 megapixels in about 170 KiB)."""
    image = Image.new("RGB", (width, height), (30, 90, 160))
    ImageDraw.Draw(image).ellipse((0, 0, width // 2, height // 2), fill=(200, 40, 40))
    out = io.BytesIO()
    image.save(out, "PNG", compress_level=9)
    return out.getvalue()


# ---- pictures: pixels per picture and decodes at once -------------------------------------------------------


def test_large_pixel_pictures_at_once_wait_for_a_decode_slot_then_get_503(watch_of, start_server, sqlite_url):
    """Six 49-megapixel pictures of 170 KiB each, sent together: one decodes, the rest wait image_decode_wait for the
    slot and are told when to try again; nothing is stored for them and the chat goes on. A picture of exactly
    max_image_pixels is accepted, one with a column more is refused before any pixel is decoded."""
    server = start_server(sqlite_url, max_image_pixels=7000 * 7000, image_decode_concurrency=1, image_decode_wait=0.05)
    watch = watch_of(server)
    name, token = new_account(server)
    bomb = flat_picture(7000, 7000)
    assert len(bomb) < 300 * 1024
    answers = at_once(6, lambda i: upload(server, token, bomb, f"big{i}.png"))
    statuses = sorted(a.status_code for a in answers)
    assert set(statuses) <= {201, 503}, [a.text for a in answers]
    assert 201 in statuses and 503 in statuses, statuses
    for busy in (a for a in answers if a.status_code == 503):
        assert busy.json()["limit"] == "image_decode_concurrency"
        assert busy.headers["Retry-After"] == "1"
    assert stored_bytes(server.database_url, name)[1] == statuses.count(201)
    watch.check()
    # Once the slot is free, a picture goes through; one pixel column past max_image_pixels does not.
    assert upload(server, token, samples.png(640, 480), "after.png").status_code == 201
    refused = upload(server, token, flat_picture(7001, 7000), "one-column-more.png")
    assert refused.status_code == 422, refused.text
    assert "7001x7000 pixels, at most 49,000,000" in refused.json()["error"]
    watch.check()


# ---- upload rate ------------------------------------------------------------------------------------------------


def test_an_upload_flood_is_refused_with_429_after_the_burst(watch_of, start_server, sqlite_url):
    server = start_server(sqlite_url, upload_rate=1, upload_burst=3)
    watch = watch_of(server)
    _, token = new_account(server)
    for i in range(3):  # the burst: accepted
        assert upload(server, token, b"one of three\n").status_code == 201, i
    flood = upload(server, token, b"the fourth at once\n")
    assert flood.status_code == 429, flood.text
    body = flood.json()
    assert body["limit"] == "upload_rate" and "at most 1 a minute (3 at once)" in body["error"]
    assert 1 <= int(flood.headers["Retry-After"]) <= 60
    _, other = new_account(server)  # the limit is per user: someone else uploads as usual
    assert upload(server, other, b"not me\n").status_code == 201
    watch.check()


def test_upload_rate_buckets_stay_bounded_and_forget_only_the_full_ones():
    rate = UploadRate(per_minute=60, burst=2, max_users=100)
    for i in range(100):
        assert rate.take(f"u{i}", now=0.0) == 0.0
    assert rate.take("u0", now=0.0) == 0.0 and rate.take("u0", now=0.0) == pytest.approx(1.0)  # burst of 2, then 1/s
    for i in range(1000):  # a stream of new names, two seconds later: the buckets full by then make room
        rate.take(f"new{i}", now=2.0)
    assert len(rate) <= 100
    assert rate.take("u0", now=2.0) == 0.0  # forgotten when full, so it is as it would have been


# ---- quotas: per user per day, and in total ---------------------------------------------------------------------


def test_the_daily_quota_takes_exactly_its_bytes_and_refuses_one_more(watch_of, start_server, database_url):
    quota = 500 * 1024
    server = start_server(database_url, upload_quota_per_day=quota)
    watch = watch_of(server)
    name, token = new_account(server)
    assert upload(server, token, text_of(1000)).status_code == 201
    assert upload(server, token, text_of(quota - 1000)).status_code == 201  # exactly at the quota
    over = upload(server, token, b"\n")  # one byte past it
    assert over.status_code == 413, over.text
    body = over.json()
    assert (body["limit"], body["allowed"], body["used"]) == ("upload_quota_per_day", quota, quota)
    assert "after 00:00 UTC" in body["error"] and 1 <= int(over.headers["Retry-After"]) <= 86400
    assert stored_bytes(server.database_url, name) == (quota, 2)
    other, token = new_account(server)  # per user; a picture counts with its thumbnail
    posted = upload(server, token, samples.png(800, 600), "counted.png")
    assert posted.status_code == 201
    size, thumb = db_execute(server.database_url, "SELECT size, LENGTH(thumbnail) FROM attachments WHERE id = ?",
                             (posted.json()["attachment"]["id"],))[0]
    used = db_execute(server.database_url, "SELECT bytes FROM upload_usage WHERE uploader = ?", (other,))
    assert thumb > 0 and [tuple(r) for r in used] == [(size + thumb,)]
    watch.check()


def test_the_total_takes_exactly_its_bytes_and_then_refuses_everyone_with_507(watch_of, start_server, database_url):
    total = 2500
    server = start_server(database_url, upload_total_bytes=total)
    watch = watch_of(server)
    _, alice = new_account(server)
    _, bob = new_account(server)
    assert upload(server, alice, text_of(1000)).status_code == 201
    assert upload(server, bob, text_of(total - 1000)).status_code == 201  # exactly at the total
    for token in (alice, bob):
        full = upload(server, token, b"\n")
        assert full.status_code == 507, full.text
        assert (full.json()["limit"], full.json()["allowed"], full.json()["used"]) == ("upload_total_bytes", total, total)
    assert db_execute(server.database_url, "SELECT COALESCE(SUM(size), 0) FROM attachments")[0][0] == total
    watch.check()


def test_the_total_survives_a_restart_and_counts_files_from_before(start_server, sqlite_url):
    server = start_server(sqlite_url)
    _, token = new_account(server)
    assert upload(server, token, text_of(1500)).status_code == 201
    server.stop()
    db_execute(sqlite_url, "DROP TABLE upload_totals")  # as on a database from before the quotas
    server.settings["upload_total_bytes"] = 2000
    server.start()
    _, token = new_account(server)
    assert upload(server, token, text_of(501)).status_code == 507
    assert upload(server, token, text_of(500)).status_code == 201


def test_concurrent_uploads_on_two_processes_cannot_pass_the_quotas_together(watch_of, start_server, database_url, redis_server):
    """30 uploads of 1000 bytes at once, spread over two server processes on one database: exactly the quota's worth
    is stored, for one user (per day) and then for everyone (in total)."""
    common = dict(redis_url=redis_server.url, bots="", upload_quota_per_day=7000, upload_total_bytes=12000)
    a, b = start_server(database_url, **common), start_server(database_url, **common)
    watch = watch_of(a)
    name, token = new_account(a)
    answers = at_once(30, lambda i: upload((a, b)[i % 2], token, text_of(1000, b"%c" % (97 + i % 26))))
    statuses = [r.status_code for r in answers]
    assert statuses.count(201) == 7 and statuses.count(413) == 23, statuses
    assert stored_bytes(database_url, name) == (7000, 7)
    # The total: 5000 bytes are left; three more users race for them.
    others = [new_account((a, b)[i % 2])[1] for i in range(3)]
    answers = at_once(24, lambda i: upload((a, b)[i % 2], others[i % 3], text_of(1000)))
    statuses = [r.status_code for r in answers]
    assert statuses.count(201) == 5 and statuses.count(507) == 19, statuses
    assert db_execute(database_url, "SELECT COALESCE(SUM(size), 0) FROM attachments")[0][0] == 12000
    watch.check()


# ---- links the server writes ------------------------------------------------------------------------------------


FORGED = [
    {"Host": EVIL},
    {"X-Forwarded-Host": EVIL, "X-Forwarded-Proto": "https"},
    {"Host": EVIL, "X-Forwarded-Host": EVIL, "Forwarded": f"host={EVIL}"},
]


@pytest.mark.parametrize(
    "trust_proxy, public_url", [(False, ""), (True, "https://chat.example.com")], ids=["direct-relative", "proxy-public-url"]
)
def test_a_forged_host_never_reaches_a_chat_message_or_an_answer(watch_of, start_server, sqlite_url, trust_proxy, public_url):
    server = start_server(sqlite_url, trust_proxy=trust_proxy, public_url=public_url)
    watch = watch_of(server)
    _, token = new_account(server)
    for headers in FORGED:
        posted = upload(server, token, b"look at my link\n", headers=headers)
        assert posted.status_code == 201, posted.text
        body = posted.json()
        file_id = body["attachment"]["id"]
        expected = f"{public_url}/files/{file_id}"
        assert EVIL not in posted.text and EVIL not in posted.headers.get("Location", "")
        assert body["url"] == posted.headers["Location"] == expected
        assert body["msg"].endswith(" " + expected)
        seen = watch.one.recv_type("message")  # what everyone in the chat got
        assert seen["id"] == body["id"] and seen["msg"] == body["msg"] and EVIL not in str(seen)
    stored = db_execute(server.database_url, "SELECT body FROM messages WHERE body LIKE ?", (f"%{EVIL}%",))
    assert stored == []
    watch.check()


def test_public_url_must_be_an_http_address():
    assert load_settings(public_url=" https://chat.example.com/ ").public_url == "https://chat.example.com"
    assert load_settings(public_url="http://10.0.0.5:8080/chat").public_url == "http://10.0.0.5:8080/chat"
    for bad in ("chat.example.com", "ftp://chat.example.com", "https://user@chat.example.com", "https://", "https://a/?x=1"):
        with pytest.raises(ValueError, match="public_url must be http"):
            load_settings(public_url=bad)


# ---- a small app-wide body limit ---------------------------------------------------------------------------------


APP_WIDE_LIMIT = 64 * 1024
# run_server.py with Flask's MAX_CONTENT_LENGTH set for every endpoint, as a deployment (or the transport hardening)
# does: POST /files must keep its own, larger limit.
LAUNCHER = f"""
import sys
sys.argv[0] = {os.path.join(ROOT, "run_server.py")!r}
sys.path.insert(0, {ROOT!r})
import run_server

def create_app(settings, _create=run_server.create_app):
    app = _create(settings)
    app.config["MAX_CONTENT_LENGTH"] = {APP_WIDE_LIMIT}
    return app

run_server.create_app = create_app
sys.exit(run_server.main())
"""


class LimitedServer(ServerProcess):
    """run_server.py through LAUNCHER."""

    def start(self):
        args = [sys.executable, "-c", LAUNCHER, "--port", str(self.port), "--database", self.database_url]
        for key, value in SUITE_SETTINGS.items():
            args += ["--" + key.replace("_", "-"), str(value)]
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(args, cwd=ROOT, env=dict(os.environ, PYTHONUNBUFFERED="1"), stdout=subprocess.PIPE, stderr=self._log)
        line = self.proc.stdout.readline().decode()
        if "listening on" not in line:
            self.proc.wait(10)
            raise RuntimeError(f"server did not start: {self.read_log()[-3000:]}")
        return self


def test_uploads_keep_their_own_limit_under_a_small_app_wide_one(sqlite_url, tmp_path):
    server = LimitedServer(sqlite_url, tmp_path / "server.log").start()
    watch = None
    try:
        watch = Bystanders(server)
        name, token = new_account(server)
        big_json = requests.post(server.http_url + "/api/token", json={"username": name, "password": "x" * (2 * APP_WIDE_LIMIT)},
                                 timeout=TIMEOUT)
        assert big_json.status_code == 413  # the app-wide limit is in force
        posted = upload(server, token, text_of(1024 * 1024))  # 16 x the app-wide limit
        assert posted.status_code == 201, posted.text
        assert requests.get(server.http_url + posted.json()["url"], timeout=TIMEOUT).content == text_of(1024 * 1024)
        assert upload(server, token, text_of(5 * 1024 * 1024 + 1)).status_code == 413  # and its own still holds
        watch.check()
    finally:
        if watch is not None:
            watch.close()
        server.stop()
