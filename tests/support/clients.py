"""Real websocket clients of the chat (websocket-client) that read JSON events, and the reading helpers built on them."""
import json
import uuid

import websocket  # websocket-client

from tests.support.polling import wait_until

RECV_TIMEOUT = 10.0


def presence_changes(event):
    """[(user, online)] from a presence event in either form: one change, or several batched under "changes"."""
    if "changes" in event:
        return [(c["user"], c["online"]) for c in event["changes"]]
    return [(event["user"], event["online"])]


class ChatClient:
    """A real websocket client (websocket-client) that reads JSON events."""

    def __init__(self, ws):
        self.ws = ws
        self.on_welcome = None  # called with the welcome event (ServerProcess.connect: keeps the resume token)

    @classmethod
    def connect(cls, url, timeout=RECV_TIMEOUT, **kwargs):
        ws = websocket.create_connection(url, timeout=timeout, **kwargs)
        return cls(ws)

    def send(self, payload):
        self.ws.send(payload if isinstance(payload, str) else json.dumps(payload))

    def recv(self, timeout=RECV_TIMEOUT):
        self.ws.settimeout(timeout)
        event = json.loads(self.ws.recv())
        if self.on_welcome is not None and event.get("type") == "welcome":
            self.on_welcome(event)
        return event

    def recv_type(self, *types, timeout=RECV_TIMEOUT):
        """The next event of one of `types`, skipping presence events and pongs in between."""
        while True:
            event = self.recv(timeout)
            if event["type"] in types:
                return event
            if event["type"] not in ("presence",):
                raise AssertionError(f"expected {types}, got {event}")

    def wait_presence(self, user, online, timeout=RECV_TIMEOUT):
        """Read until a presence event (single or batched form) says `user` went online/offline."""
        while True:
            event = self.recv_type("presence", timeout=timeout)
            if (user, online) in presence_changes(event):
                return event

    def handshake(self):
        """Read the welcome and history events every connection starts with."""
        welcome = self.recv_type("welcome")
        history = self.recv_type("history")
        return welcome, history

    def recv_close(self, timeout=RECV_TIMEOUT):
        """Read until the server's close frame; returns (code, reason). Other frames are skipped."""
        self.ws.settimeout(timeout)
        while True:
            opcode, data = self.ws.recv_data(control_frame=True)
            if opcode == websocket.ABNF.OPCODE_CLOSE:
                code = int.from_bytes(data[:2], "big") if len(data) >= 2 else 1005
                return code, data[2:].decode("utf-8", "replace")

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        try:
            self.ws.close(timeout=1)
        except Exception:
            pass


def wait_presence(client, user, online):
    """Read `client`'s events until a presence event says `user` went online/offline.

    Returns every presence change read, up to and including that event's, as (user, online) pairs.
    Only presence events may come in between (anything else is a test failure).
    """
    seen = []
    while True:
        changes = presence_changes(client.recv_type("presence"))
        seen += changes
        if (user, online) in changes:
            return seen


def connect_and_leave(clients, server, observer, name):
    """Make `name` a known user who is offline now, and wait until the server has recorded the leave.

    The observer first sees `name` come online (so the leave is not folded into the same presence
    batch), then go offline; the server records the leave before it announces it.
    """
    client = clients(server, name)
    wait_presence(observer, name, True)
    client.close()
    wait_presence(observer, name, False)


def next_message(client, timeout=RECV_TIMEOUT):
    return client.recv_type("message", "direct", timeout=timeout)


def post(client, text, to=None, ref=None):
    """Send a group message (or a direct one `to` someone) and return its ack."""
    payload = {"type": "direct", "to": to, "msg": text} if to else {"type": "message", "msg": text}
    if ref is not None:
        payload["ref"] = ref
    client.send(payload)
    while True:  # the writer's own copies of others' messages are not what these tests look at
        event = client.recv_type("ack", "message", "direct")
        if event["type"] == "ack":
            return event


def online_everywhere(client, *users):
    """Ask `client`'s server who is online until the answer lists all `users` (presence crosses processes asynchronously)."""

    def all_online():
        online, after, more = [], None, True
        while more:  # who answers a page at a time (max_online_listed names)
            client.send({"type": "who"} if after is None else {"type": "who", "after": after})
            page = client.recv_type("who")
            online += page["online"]
            more = page.get("online_more", False) and bool(page["online"])
            after = page["online"][-1] if page["online"] else None
        return online if set(users) <= set(online) else None

    return wait_until(all_online, timeout=10, interval=0, message=f"{users} all online for {client}")


def answer(client, payload):
    """Send `payload` and return the event that answers it: for a JSON request (a dict, sent with a fresh ref) the event
    carrying that ref; for a text frame (a slash command carries no ref) the first ack or error. Whatever comes in
    between (deliveries, presence) is skipped."""
    if isinstance(payload, dict):
        ref = uuid.uuid4().hex[:8]
        client.send({**payload, "ref": ref})
        while True:
            event = client.recv()
            if event.get("ref") == ref:
                return event
    client.send(payload)
    while True:
        event = client.recv()
        if event["type"] in ("ack", "error"):
            return event


def acked(client, payload):
    """answer(), which must be an ack."""
    event = answer(client, payload)
    assert event["type"] == "ack", event
    return event


def make_room(owner, members, room, private=True):
    """Create `room` as `owner` and have each of `members` in it (invited first when it is private). With two processes
    the room reaches a member's process with its event: until then it is no room there, so the join is retried."""
    acked(owner, {"type": "create", "room": room, "private": private})
    for member in members:
        if private:
            acked(owner, {"type": "invite", "room": room, "user": member.name})
        wait_until(lambda: answer(member, {"type": "join", "room": room})["type"] == "ack", timeout=10, interval=0.05,
                   message=f"{member.name} to join {room}")
    return room
