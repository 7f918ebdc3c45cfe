"""Benchmark peer: the `websockets` asyncio library's broadcast server (websockets.broadcast for group messages, no persistence)."""
import argparse
import asyncio
import itertools
import json
import signal
import sys
import time

from websockets.asyncio.server import broadcast, serve

clients = {}  # name -> connection
ids = itertools.count(1)
# Compact JSON, the same bytes on the wire as our server's events.
dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


def now_iso():
    t = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + ".%03dZ" % (int(t * 1000) % 1000)


async def handler(ws):
    path = ws.request.path
    if not path.startswith("/ws/") or len(path) <= 4:
        await ws.close(1008, "use /ws/NAME")
        return
    name = path[4:]
    clients[name] = ws
    try:
        async for text in ws:
            if not isinstance(text, str) or not text.strip():
                continue
            mid = next(ids)
            ts = now_iso()
            if text.startswith("{"):
                try:
                    obj = json.loads(text)
                    to, body = obj["to"], obj["msg"]
                except (ValueError, KeyError, TypeError):
                    await ws.send(dumps({"type": "error", "code": "bad_json", "message": "bad JSON"}))
                    continue
                out = dumps({"type": "direct", "id": mid, "user": name, "to": to, "msg": body, "ts": ts})
                target = clients.get(to)
                if target is not None:
                    try:
                        await target.send(out)
                    except Exception:
                        pass
                await ws.send(dumps({"type": "ack", "id": mid, "ts": ts, "to": to}))
            else:
                out = dumps({"type": "message", "id": mid, "user": name, "msg": text, "ts": ts})
                broadcast([c for c in clients.values() if c is not ws], out)
                await ws.send(dumps({"type": "ack", "id": mid, "ts": ts}))
    except Exception:
        pass
    finally:
        if clients.get(name) is ws:
            del clients[name]


async def amain(args):
    stop = asyncio.get_running_loop().create_future()
    for signum in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(signum, lambda: stop.done() or stop.set_result(None))
    kwargs = {} if args.backlog is None else {"backlog": args.backlog}
    async with serve(handler, args.host, args.port, **kwargs) as server:
        host, port = server.sockets[0].getsockname()[:2]
        print(f"websockets peer listening on http://{host}:{port}/ (websocket ws://{host}:{port}/ws/NAME)", flush=True)
        await stop


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=5002)
    parser.add_argument("--backlog", type=int, default=None, help="listen backlog (default: asyncio's own, 100)")
    args = parser.parse_args()
    asyncio.run(amain(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
