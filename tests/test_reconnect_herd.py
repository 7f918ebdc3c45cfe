"""The reconnect herd: HERD clients are connected when the server is killed; after it starts again they all reconnect
at once with ?since= (and their guest resume tokens) while messages keep coming. On each store, every client ends up
with every message exactly once and in id order: what it missed in its replay, the rest live. How fast the herd is
back is measured in bench/ (loadgen herd), never here."""
import asyncio
import json

import pytest
import websockets

from tests.support.servers import ServerProcess

HERD = 300
BEFORE, WHILE_DOWN, DURING = 20, 20, 20  # messages sent before the kill, after the restart, while the herd reconnects
TIMEOUT = 60


class Member:
    """One herd client: every message id it received, in order, across its two connections."""

    def __init__(self, name):
        self.name = name
        self.ids = []
        self.resume = None
        self.ws = None

    def url(self, server, since):
        query = f"?since={since}" + (f"&resume={self.resume}" if self.resume else "")
        return server.ws_url(f"/ws/{self.name}{query}")

    async def connect(self, server, since):
        self.ws = await websockets.connect(self.url(server, since), max_size=2**24, ping_interval=None,
                                           open_timeout=TIMEOUT, close_timeout=1)
        while True:  # the welcome, then the replay's history events
            event = json.loads(await asyncio.wait_for(self.ws.recv(), TIMEOUT))
            if event["type"] == "welcome":
                self.resume = event.get("resume", self.resume)
            elif event["type"] == "history":
                self.note(event["messages"])
                assert "next" not in event, "the replay was capped"
                if event.get("complete") is not False:
                    return

    def note(self, messages):
        self.ids += [m["id"] for m in messages if m["type"] == "message" and "to" not in m]

    async def receive_until(self, count):
        while len(self.ids) < count:
            event = json.loads(await asyncio.wait_for(self.ws.recv(), TIMEOUT))
            if event["type"] == "message":
                self.note([event])


    async def receive_until_closed(self):
        """Read until the socket closes: a batched presence event may still come after the last message."""
        with pytest.raises(websockets.ConnectionClosed):
            while True:
                event = json.loads(await asyncio.wait_for(self.ws.recv(), TIMEOUT))
                if event["type"] == "message":
                    self.note([event])


async def send_acked(ws, texts):
    """Send each text and wait for its ack (so it is committed); their ids."""
    ids = []
    for i, text in enumerate(texts):
        await ws.send(json.dumps({"type": "message", "msg": text, "ref": f"r{i}"}))
        while True:
            event = json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT))
            if event["type"] == "ack" and event.get("ref") == f"r{i}":
                ids.append(event["id"])
                break
            assert event["type"] != "error", event
    return ids


async def speaker(server, resume=None):
    """The client that talks: (socket, its resume token)."""
    query = "?since=0" + (f"&resume={resume}" if resume else "")
    ws = await websockets.connect(server.ws_url(f"/ws/herdspeaker{query}"), ping_interval=None, open_timeout=TIMEOUT)
    while True:
        event = json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT))
        if event["type"] == "welcome":
            resume = event.get("resume")
        if event["type"] == "history" and event.get("complete") is not False:
            return ws, resume


async def herd_run(server):
    members = [Member(f"herd{i}") for i in range(HERD)]
    await asyncio.gather(*(m.connect(server, 0) for m in members))
    talk, resume = await speaker(server)
    sent = await send_acked(talk, [f"before {i}" for i in range(BEFORE)])
    await asyncio.gather(*(m.receive_until(BEFORE) for m in members))
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, server.kill)  # kill -9 with everyone connected
    await asyncio.gather(*(m.receive_until_closed() for m in members))
    await loop.run_in_executor(None, server.start)
    talk, resume = await speaker(server, resume)
    sent += await send_acked(talk, [f"while away {i}" for i in range(WHILE_DOWN)])
    # everyone at once, each from the last id it saw, while the speaker goes on
    during = asyncio.ensure_future(send_acked(talk, [f"during {i}" for i in range(DURING)]))
    await asyncio.gather(*(m.connect(server, m.ids[-1]) for m in members))
    sent += await during
    await asyncio.gather(*(m.receive_until(len(sent)) for m in members))
    await asyncio.gather(*(m.ws.close() for m in members), talk.close())
    return members, sent


def test_a_herd_reconnecting_after_a_kill_gets_every_message_once_in_order(database_url, tmp_path):
    server = ServerProcess(database_url, tmp_path / "server.log", bots="", max_connections_per_address=HERD + 10).start()
    try:
        members, sent = asyncio.run(herd_run(server))
    finally:
        server.stop()
    assert len(sent) == BEFORE + WHILE_DOWN + DURING and sent == sorted(sent)
    wrong = [(m.name, m.ids) for m in members if m.ids != sent]
    assert not wrong, f"{len(wrong)} of {HERD} clients got another sequence, e.g. {wrong[0]}"
