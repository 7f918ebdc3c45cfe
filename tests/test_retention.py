"""Retention and export against the real server on SQLite and MariaDB: the purge (as `python3 -m chat.admin purge` and
periodically in the server) deletes old messages with their edits, reactions and files and never the rooms' member and
topic events (a restarted server still has its rooms and members), works in batches, runs from two processes at once,
never loses a recent message while people chat; a `?since=` from before it says `purged`; old uploads go (410, total
counted down). `python3 -m chat.admin export [--user NAME]` is parsed and checked: no password hash, nothing private of
others in a user's export. And a backup restored into a fresh database is served by a fresh server."""
import json
import subprocess
import sys

import pytest
import requests

from tests.support.databases import db_execute
import itertools
from tests.support.polling import wait_until
from tests.support.rooms import act, answer, room_name, say
from tests.support.servers import ROOT
from tests.support.webusers import account, admin, token_socket, unique

DAY_MS = 86400 * 1000
TIMEOUT = 30


_refs = itertools.count(1)


def post(client, text, to=None):
    """Send a group message (or a direct one `to` someone) and return its ack, passing over any other event."""
    ref = f"p{next(_refs)}"
    client.send({"type": "direct", "to": to, "msg": text, "ref": ref} if to else {"type": "message", "msg": text, "ref": ref})
    while True:
        event = client.recv()
        assert event["type"] != "error", event
        if event["type"] == "ack" and event.get("ref") == ref:
            return event


def sql(server, query, params=()):
    return db_execute(server.database_url, query, params)


def age(server, below_id, days):
    """Make every message (and file) with an id below `below_id` (files: all so far) `days` older."""
    sql(server, "UPDATE messages SET created_ms = created_ms - ? WHERE id < ?", (days * DAY_MS, below_id))


def purge(server, *flags):
    code, out = admin("purge", "--database", server.database_url, *flags)
    assert code == 0, out
    return out


def uploaded(server, token, filename, data):
    response = requests.post(server.http_url + "/files", headers={"Authorization": f"Bearer {token}"},
                             files={"file": (filename, data)}, timeout=TIMEOUT)
    assert response.status_code == 201, response.text
    return response.json()


def replay(server, name, since, query=""):
    client = server.connect(name, f"?since={since}{query}")
    client.recv_type("welcome")
    history = client.recv_type("history")
    client.close()
    return history


def test_purge_deletes_old_messages_with_their_events_and_files_and_keeps_the_rooms(start_server, database_url, clients):
    server = start_server(database_url, bots="")
    alice, bob = clients(server, "alice"), clients(server, "bob")
    room = room_name("dev")
    act(alice, {"type": "create", "room": room, "topic": "old topic"})
    act(bob, {"type": "join", "room": room})
    act(alice, {"type": "role", "room": room, "user": "bob", "role": "moderator"})
    old = post(alice, "old words")
    old_room = say(alice, room, "old room words")
    bob.send({"type": "react", "of": old["id"], "key": "👍", "ref": "r"})
    alice.send({"type": "edit", "of": old["id"], "msg": "old words, edited", "ref": "e"})
    _, _, token = account(server, "carol")
    old_file = uploaded(server, token, "old.txt", b"an old file\n" * 10)
    last_old = post(alice, "last old one")
    total_before = sql(server, "SELECT bytes FROM upload_totals")[0][0]
    age(server, last_old["id"] + 1, 40)
    fresh = post(alice, "fresh words")
    fresh_room = say(bob, room, "fresh room words")
    fresh.pop("ref", None)

    out = purge(server, "--message-retention-days", "30", "--retention-batch", "2")
    assert out.startswith("purged ")
    remaining = {row[0] for row in sql(server, "SELECT id FROM messages")}
    for gone in (old, old_room, last_old):
        assert gone["id"] not in remaining
    assert old_file["id"] not in remaining
    assert {fresh["id"], fresh_room["id"]} <= remaining
    assert sql(server, "SELECT COUNT(*) FROM messages WHERE target_id = ? AND kind IN ('edit', 'reaction')", (old["id"],))[0][0] == 0
    assert sql(server, "SELECT COUNT(*) FROM reactions WHERE message_id = ?", (old["id"],))[0][0] == 0
    kinds = [row[0] for row in sql(server, "SELECT kind FROM messages WHERE id < ? ORDER BY id", (last_old["id"],))]
    assert kinds == ["member", "member", "member"][:len(kinds)] and set(kinds) <= {"member", "topic"} and kinds
    assert requests.get(server.http_url + old_file["url"], timeout=TIMEOUT).status_code == 410
    assert sql(server, "SELECT bytes FROM upload_totals")[0][0] == total_before - old_file["attachment"]["size"]
    assert purge(server, "--message-retention-days", "30") == "purged 0 messages and 0 files\n"  # nothing left to do

    # A replay from before the purge says so; one from after it does not.
    history = replay(server, "bob", 0)
    assert history["purged"] > last_old["id"] and fresh["id"] in [m["id"] for m in history["messages"]]
    assert "purged" not in replay(server, "bob", fresh["id"] - 1)

    # Restarted: the rooms are the fold of events the purge kept, so the room, its topic and its roles are intact.
    for client in (alice, bob):
        client.close()
    server.restart()
    bob = clients(server, "bob")
    members = answer(bob, {"type": "members", "room": room}, "members")
    assert {m["user"]: m["role"] for m in members["members"]} == {"alice": "owner", "bob": "moderator"}
    rooms = answer(bob, {"type": "rooms"}, "rooms")["rooms"]
    assert [r["topic"] for r in rooms if r["room"] == room] == ["old topic"]
    history = answer(bob, {"type": "history", "room": room, "limit": 50}, "history")
    texts = [m.get("msg") for m in history["messages"] if m["type"] == "message"]
    assert texts == ["fresh room words"]


def test_the_server_purges_periodically_and_nothing_recent_is_lost_while_people_chat(start_server, database_url, clients):
    server = start_server(database_url, bots="", message_retention_days=30, retention_interval=0.2, retention_batch=7)
    alice, bob = clients(server, "alice"), clients(server, "bob")
    old = [post(alice, f"old {i}")["id"] for i in range(60)]
    age(server, old[-1] + 1, 31)
    recent = []
    for i in range(200):  # chatting while the purge runs, batch after batch
        recent.append(post(bob, f"new {i}")["id"])
    wait_until(lambda: sql(server, "SELECT COUNT(*) FROM messages WHERE id <= ?", (old[-1],))[0][0] == 0, timeout=20,
               message="the periodic purge to delete the old messages")
    stored = {row[0] for row in sql(server, "SELECT id FROM messages WHERE id >= ?", (recent[0],))}
    assert set(recent) <= stored
    got = []
    while len(got) < 200:  # alice received every one of bob's messages live
        event = alice.recv_type("message")
        got.append(event["id"])
    assert got == recent


def test_two_purges_at_once_take_turns_and_delete_each_message_once(start_server, database_url, clients):
    server = start_server(database_url, bots="")
    alice = clients(server, "alice")
    ids = [post(alice, f"old {i}")["id"] for i in range(150)]
    age(server, ids[-1] + 1, 10)
    keep = post(alice, "keep me")["id"]
    args = [sys.executable, "-m", "chat.admin", "purge", "--database", server.database_url, "--message-retention-days", "5",
            "--retention-batch", "10", "--retention-pause", "0"]
    runs = [subprocess.Popen(args, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for _ in range(2)]
    outs = [run.communicate(timeout=60)[0] for run in runs]
    assert [run.returncode for run in runs] == [0, 0], outs
    purged = sum(int(out.split()[1]) for out in outs)
    assert purged == 150, outs
    assert [row[0] for row in sql(server, "SELECT id FROM messages")] == [keep]


def test_old_uploads_are_deleted_and_their_messages_stay_as_text(start_server, database_url):
    server = start_server(database_url, bots="")
    _, alice, token = account(server, "alice")
    old = uploaded(server, token, "old.txt", b"x" * 500)
    new = uploaded(server, token, "new.txt", b"y" * 300)
    sql(server, "UPDATE attachments SET created_ms = created_ms - ? WHERE id = ?", (3 * DAY_MS, old["attachment"]["id"]))
    assert purge(server, "--upload-retention-days", "2") == "purged 0 messages and 1 files\n"
    assert requests.get(server.http_url + old["url"], timeout=TIMEOUT).status_code == 410
    assert requests.get(server.http_url + new["url"], timeout=TIMEOUT).content == b"y" * 300
    assert sql(server, "SELECT bytes FROM upload_totals")[0][0] == 300
    with token_socket(server, alice, token) as ws:
        ws.send({"type": "history", "limit": 10})
        by_id = {m["id"]: m for m in ws.recv_type("history")["messages"]}
    assert by_id[old["id"]]["msg"] == old["msg"] and "attachment" not in by_id[old["id"]]
    assert by_id[new["id"]]["attachment"] == new["attachment"]


# ---- export --------------------------------------------------------------------------------------------------------


def export(server, *flags):
    done = subprocess.run([sys.executable, "-m", "chat.admin", "export", "--database", server.database_url, *flags],
                          cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return [json.loads(line) for line in done.stdout.splitlines()]


def test_export_and_a_users_export_hold_what_they_should_and_nothing_private_of_others(start_server, database_url, clients):
    server = start_server(database_url, bots="")
    _, alice, alice_token = account(server, "alice")
    _, bob, bob_token = account(server, "bob")
    a, b = token_socket(server, alice, alice_token), token_socket(server, bob, bob_token)
    carol = clients(server, unique("carol"))
    room, secret_room = room_name("dev"), room_name("secret")
    act(a, {"type": "create", "room": room})
    act(b, {"type": "create", "room": secret_room, "private": True})
    hello = post(a, "hello all")
    edited = post(a, "typo")
    a.send({"type": "edit", "of": edited["id"], "msg": "fixed", "ref": "e"})
    gone = post(a, "regret")
    a.send({"type": "delete", "of": gone["id"], "ref": "d"})
    to_bob = post(a, "psst bob", to=bob)
    from_bob = post(b, "hi alice", to=alice)
    private = post(carol, "carol to bob only", to=bob)
    in_room = say(a, room, "room words")
    in_secret = say(b, secret_room, "bob's secret room words")
    bobs_general = post(b, "bob in general")
    file = uploaded(server, alice_token, "notes.txt", b"alice's notes\n")
    post(a, "flush")  # the edit and delete above are stored before this one is acknowledged

    lines = export(server)
    assert lines[0]["type"] == "export" and lines[0]["user"] is None
    text = json.dumps(lines)
    assert "pbkdf2" not in text and "scrypt" not in text and "password" not in text
    accounts = {line["name"]: line for line in lines if line["type"] == "account"}
    assert set(accounts[alice]) == {"type", "name", "created", "removed", "admin"}
    items = {line["id"]: line for line in lines if "id" in line and line["type"] in ("message", "direct", "member")}
    assert items[edited["id"]]["msg"] == "fixed" and "edited" in items[edited["id"]]
    assert items[gone["id"]].get("deleted") is True and "msg" not in items[gone["id"]]
    assert {hello["id"], to_bob["id"], private["id"], in_secret["id"], file["id"]} <= set(items)
    assert not any(line["type"] == "edit" for line in lines)  # events are folded into their messages' state
    rooms = {line["room"]: line for line in lines if line["type"] == "room"}
    assert rooms[secret_room]["members"] == {bob: "owner"} and rooms[secret_room]["private"] is True
    assert [line["name"] for line in lines if line["type"] == "file" and line["id"] == file["attachment"]["id"]] == ["notes.txt"]

    mine = export(server, "--user", alice.upper())
    assert mine[0]["user"] == alice
    kinds = {line["type"] for line in mine}
    assert {"account", "user", "membership", "read_markers", "file", "message", "direct"} <= kinds
    ids = {line["id"] for line in mine if line["type"] in ("message", "direct")}
    assert {hello["id"], edited["id"], to_bob["id"], from_bob["id"], in_room["id"]} <= ids
    assert not ids & {private["id"], in_secret["id"], bobs_general["id"]}  # others' words alice was not party to
    text = json.dumps(mine)
    assert "carol to bob only" not in text and "secret room words" not in text and secret_room not in text
    assert [line["room"] for line in mine if line["type"] == "membership"] == [room]
    assert [line["name"] for line in mine if line["type"] == "account"] == [alice]
    for client in (a, b):
        client.close()


# ---- backup and restore --------------------------------------------------------------------------------------------


def test_a_backup_taken_while_the_server_runs_restores_into_a_server_that_serves_its_history(start_server, database_url,
                                                                                          clients, tmp_path, request):
    server = start_server(database_url, bots="")
    alice = clients(server, "alice")
    said = [post(alice, f"before the backup {i}")["id"] for i in range(20)]
    if database_url.startswith("sqlite"):
        import sqlite3

        source = sqlite3.connect(database_url[len("sqlite:///"):])
        target_path = tmp_path / "restored.db"
        target = sqlite3.connect(target_path)
        source.backup(target)  # the online backup API: the server keeps running and writing
        target.close()
        source.close()
        restored_url = f"sqlite:///{target_path}"
    else:
        restored_url = request.getfixturevalue("mysql_databases").create()
        source_db, target_db = database_url.rsplit("/", 1)[1], restored_url.rsplit("/", 1)[1]
        dump = subprocess.run(["mariadb-dump", "-h127.0.0.1", "-uroot", "--single-transaction", source_db],
                              capture_output=True, check=True, timeout=60)
        subprocess.run(["mariadb", "-h127.0.0.1", "-uroot", target_db], input=dump.stdout, check=True, timeout=60)
    after = post(alice, "after the backup")["id"]
    restored = start_server(restored_url, bots="")
    reader = restored.connect("reader", "?since=0")
    reader.recv_type("welcome")
    ids = [m["id"] for m in reader.recv_type("history")["messages"] if m["type"] == "message"]
    reader.close()
    assert set(said) <= set(ids) and after not in ids
    # New messages on the restored database get ids above everything it holds (never one a client saw before).
    writer = clients(restored, "writer")
    assert post(writer, "on the restored server")["id"] > said[-1]
