"""What `python3 -m chat.admin export [--user NAME]` writes: JSON lines, read from the store a page at a time (bounded
memory however big the database). Every line is an object with a "type"; docs/operations.md lists them.

Whole export: accounts (never password hashes), rooms with their members, files' metadata (never their bytes: a
database backup keeps those), then every message and room event in its current state, as history shows it.
`--user NAME`: that name's account and user facts, its rooms and roles, read markers, the files it uploaded or was
sent, and the messages it sent, the directs it received and the room events about it, above the name's floors (what an
earlier holder of the name had is not this user's), so nothing private of anyone else beyond what NAME could see."""
import json

from chat.clock import now_ms
from chat.messaging.protocol import iso_timestamp, message_json
from chat.messaging.rooms import RoomDirectory
from chat.store.export import ExportQueries
from chat.store.lifecycle import LifecycleQueries

PAGE = 500  # rows read at once
FORMAT_VERSION = 1


def _line(obj):
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"))


def export_lines(store, user=None, page=PAGE):
    """The export's lines (str, no newline), lazily."""
    queries = ExportQueries(store)
    yield _line({"type": "export", "version": FORMAT_VERSION, "at": iso_timestamp(now_ms()), "store": store.kind, "user": user})
    directory = RoomDirectory()
    directory.load(store)
    floor = file_floor = 0
    if user is None:
        after = ""
        while True:
            accounts = queries.accounts(after, page)
            for account in accounts:
                yield _line({"type": "account", **_account_fields(account)})
            if len(accounts) < page:
                break
            after = accounts[-1]["name"]
        for room in sorted(directory.rooms(), key=lambda r: r.name):
            yield _line({"type": "room", "room": room.name, "private": room.private, "topic": room.topic,
                         "members": dict(sorted(room.members.items()))})
    else:
        account = queries.account(user)
        if account is not None:
            yield _line({"type": "account", **_account_fields(account)})
        known = queries.user(user)
        if known is not None:
            created, last_seen_id, floor, file_floor = known
            yield _line({"type": "user", "name": user, "first_seen": iso_timestamp(created), "last_seen_id": last_seen_id})
        for name in sorted(directory.rooms_of(user)):
            room = directory.get(name)
            yield _line({"type": "membership", "room": name, "role": room.members.get(user), "private": room.private,
                         "topic": room.topic})
        yield _line({"type": "read_markers", "markers": queries.read_markers(user)})
    after = 0
    while True:
        files = queries.files(after, page, user, file_floor)
        for f in files:
            f = {**f, "created": iso_timestamp(f.pop("created_ms")), "deleted": f["deleted_ms"] is not None}
            f.pop("deleted_ms")
            yield _line({"type": "file", **f})
        if len(files) < page:
            break
        after = files[-1]["id"]
    lifecycle = LifecycleQueries(store)
    after = 0
    while True:
        records = store.export_page(after, page, user)
        for record in lifecycle.current(records) if records else records:
            yield message_json(record)
        if len(records) < page:
            break
        after = records[-1].id


def _account_fields(account):
    return {"name": account["name"], "created": iso_timestamp(account["created_ms"]), "removed": account["removed"],
            "admin": account["admin"]}
