"""Benchmark peer: Flask-SocketIO on gevent (gevent-websocket), what a Flask user picks instead; broadcasts and directs, no persistence."""
from gevent import monkey

monkey.patch_all()

import argparse  # noqa: E402
import itertools  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

from flask import Flask, request  # noqa: E402
from flask_socketio import SocketIO, emit  # noqa: E402
from gevent.pywsgi import WSGIServer  # noqa: E402
from geventwebsocket.handler import WebSocketHandler  # noqa: E402

app = Flask(__name__)
# Library defaults otherwise (ping every 25 s, 20 s to answer); the load client sends no Origin.
socketio = SocketIO(app, async_mode="gevent", cors_allowed_origins="*")
sids = {}  # name -> sid (one connection per name, as the other peers keep one socket per name)
names = {}  # sid -> name
ids = itertools.count(1)


def now_iso():
    t = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + ".%03dZ" % (int(t * 1000) % 1000)


@socketio.on("connect")
def on_connect(auth=None):
    # The user name comes in the handshake's query (?name=), like the other peers' /ws/NAME, or in the connect auth.
    name = request.args.get("name") or (auth.get("name") if isinstance(auth, dict) else None)
    if not name:
        return False
    sids[name] = request.sid
    names[request.sid] = name


@socketio.on("disconnect")
def on_disconnect(*_reason):
    name = names.pop(request.sid, None)
    if name is not None and sids.get(name) == request.sid:
        del sids[name]


@socketio.on("message")
def on_message(text):
    """A group message: to everyone else connected (one emit to the namespace, skipping the sender), then the ack."""
    if not isinstance(text, str) or not text.strip():
        return
    mid, ts = next(ids), now_iso()
    socketio.emit("message", {"type": "message", "id": mid, "user": names.get(request.sid), "msg": text, "ts": ts},
                  skip_sid=request.sid)
    emit("ack", {"type": "ack", "id": mid, "ts": ts})


@socketio.on("direct")
def on_direct(data):
    """{"to": NAME, "msg": TEXT}: to that name's connection (if any), then the ack."""
    try:
        to, body = data["to"], data["msg"]
    except (KeyError, TypeError):
        emit("error", {"type": "error", "code": "bad_json", "message": "bad JSON"})
        return
    mid, ts = next(ids), now_iso()
    target = sids.get(to)
    if target is not None:
        socketio.emit("direct", {"type": "direct", "id": mid, "user": names.get(request.sid), "to": to, "msg": body,
                                 "ts": ts}, to=target)
    emit("ack", {"type": "ack", "id": mid, "ts": ts, "to": to})


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=5003)
    parser.add_argument("--backlog", type=int, default=None, help="listen backlog (default: gevent's own, 128)")
    args = parser.parse_args()
    # What socketio.run(app) does in gevent mode with gevent-websocket installed, on a port we can read back.
    server = WSGIServer((args.host, args.port), app, handler_class=WebSocketHandler, backlog=args.backlog, log=None)
    server.start()
    host, port = server.address[:2]
    print(f"flask-socketio peer listening on http://{host}:{port}/ "
          f"(ws://{host}:{port}/socket.io/?EIO=4&transport=websocket&name=NAME)", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
