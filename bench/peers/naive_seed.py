"""Benchmark peer: the seed's naive design (Flask + gevent-websocket's own handler, a dict of sockets, a synchronous send loop, no persistence)."""
from gevent import monkey

monkey.patch_all()

import argparse  # noqa: E402
import itertools  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

from flask import Flask, Response, request  # noqa: E402
from gevent.pywsgi import WSGIServer  # noqa: E402
from geventwebsocket.handler import WebSocketHandler  # noqa: E402

app = Flask(__name__)
clients = {}  # name -> gevent-websocket WebSocket (the seed kept one socket per name)
ids = itertools.count(1)
# Compact JSON, the same bytes on the wire as our server's events.
dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


def now_iso():
    t = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + ".%03dZ" % (int(t * 1000) % 1000)


@app.route("/ws/<name>", websocket=True)
def chat(name):
    ws = request.environ["wsgi.websocket"]
    clients[name] = ws
    try:
        while True:
            text = ws.receive()
            if text is None:
                break
            if not isinstance(text, str) or not text.strip():
                continue
            mid = next(ids)
            ts = now_iso()
            if text.startswith("{"):
                try:
                    obj = json.loads(text)
                    to, body = obj["to"], obj["msg"]
                except (ValueError, KeyError, TypeError):
                    ws.send(dumps({"type": "error", "code": "bad_json", "message": "bad JSON"}))
                    continue
                out = dumps({"type": "direct", "id": mid, "user": name, "to": to, "msg": body, "ts": ts})
                target = clients.get(to)
                if target is not None:
                    try:
                        target.send(out)
                    except Exception:
                        pass
                ws.send(dumps({"type": "ack", "id": mid, "ts": ts, "to": to}))
            else:
                out = dumps({"type": "message", "id": mid, "user": name, "msg": text, "ts": ts})
                for other in list(clients.values()):  # the synchronous send loop
                    if other is not ws:
                        try:
                            other.send(out)
                        except Exception:
                            pass
                ws.send(dumps({"type": "ack", "id": mid, "ts": ts}))
    finally:
        if clients.get(name) is ws:
            del clients[name]
    return Response()


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=5001)
    parser.add_argument("--backlog", type=int, default=None, help="listen backlog (default: gevent's own, 128)")
    args = parser.parse_args()
    server = WSGIServer((args.host, args.port), app, handler_class=WebSocketHandler, backlog=args.backlog, log=None)
    server.start()
    host, port = server.address[:2]
    print(f"naive seed peer listening on http://{host}:{port}/ (websocket ws://{host}:{port}/ws/NAME)", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
