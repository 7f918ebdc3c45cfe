"""Honest bystanders for the hostile-client tests: two users chatting before, during and after an attack."""
import json
import uuid

from tests.support.databases import db_execute


class Bystanders:
    """Two honest clients on `server`; `check()` proves they still chat, with every message acknowledged and stored.

    Use: `watch = Bystanders(server)` before the attack, `watch.check()` after it (and as often as you like).
    Each check sends one group message and one direct message, waits for both acks, checks each is delivered
    to the other bystander, and checks both are in the server's database with the acknowledged ids.
    """

    def __init__(self, server, database_url=None, prefix="bystander"):
        self.server = server
        self.database_url = database_url or server.database_url
        tag = uuid.uuid4().hex[:6]
        self.names = (f"{prefix}a{tag}", f"{prefix}b{tag}")
        self.one = server.connect(self.names[0])
        self.one.handshake()
        self.two = server.connect(self.names[1])
        self.two.handshake()
        self.acked = []  # (id, text) of every acknowledged message
        self._count = 0

    def check(self):
        self._count += 1
        text = f"still chatting {self._count}"
        self.one.send({"type": "message", "msg": text, "ref": f"g{self._count}"})
        group = self._ack_and_delivery(f"g{self._count}", "message", text)
        self.two.send({"type": "direct", "to": self.names[0], "msg": text + " (direct)", "ref": f"d{self._count}"})
        direct = self._ack_and_delivery(f"d{self._count}", "direct", text + " (direct)", sender=self.two, receiver=self.one)
        self.acked += [(group, text), (direct, text + " (direct)")]
        self.assert_stored()

    def _ack_and_delivery(self, ref, kind, text, sender=None, receiver=None):
        sender = sender or self.one
        receiver = receiver or self.two
        ack = _next(sender, "ack", lambda e: e.get("ref") == ref)
        delivered = _next(receiver, kind, lambda e: e["id"] == ack["id"])
        assert delivered["msg"] == text
        return ack["id"]

    def assert_stored(self):
        """Every message the bystanders had acknowledged is in the database, with its text."""
        ids = [i for i, _ in self.acked]
        marks = ",".join("?" * len(ids))
        rows = dict(db_execute(self.database_url, f"SELECT id, body FROM messages WHERE id IN ({marks})", ids))
        assert {i: rows.get(i) for i in ids} == dict(self.acked)

    def close(self):
        self.one.close()
        self.two.close()


def _next(client, kind, match, limit=10_000):
    """The client's next event of `kind` that `match`es, skipping anything else (deliveries, presence, history)."""
    for _ in range(limit):
        event = client.recv()
        if event["type"] == kind and match(event):
            return event
        if event["type"] == "error":
            raise AssertionError(f"bystander got an error: {json.dumps(event)}")
    raise AssertionError(f"no {kind} event in {limit} events")

