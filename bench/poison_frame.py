"""Issue 12 case 1, measured: how many honest messages are acknowledged after one frame with a lone surrogate.

python3 bench/poison_frame.py [--tree DIR] [--messages N] [--database sqlite|mysql]
Starts DIR/run_server.py (default: this tree) on a fresh database on 127.0.0.1, sends the hostile frame from one
guest, then N honest messages from another, and prints how many of those were acknowledged within a deadline.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid

import pymysql
import websocket

POISON = '{"type":"message","msg":"x\\ud800y","ref":"poison"}'


def free_port():
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def database(kind, directory):
    if kind == "sqlite":
        return f"sqlite:///{directory}/chat.db", lambda: None
    name = "chat_poison_" + uuid.uuid4().hex[:8]
    conn = pymysql.connect(host="127.0.0.1", user="root", autocommit=True)
    conn.cursor().execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin")

    def drop():
        conn.cursor().execute(f"DROP DATABASE `{name}`")
        conn.close()

    return f"mysql://root@127.0.0.1:3306/{name}", drop


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tree", default=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    parser.add_argument("--messages", type=int, default=20)
    parser.add_argument("--database", choices=("sqlite", "mysql"), default="sqlite")
    parser.add_argument("--deadline", type=float, default=5.0, help="seconds to wait for the acknowledgements")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as directory:
        url, drop = database(args.database, directory)
        port = free_port()
        log = open(os.path.join(directory, "server.log"), "wb")
        server = subprocess.Popen(
            [sys.executable, "run_server.py", "--port", str(port), "--database", url, "--bots", ""],
            cwd=args.tree, stdout=subprocess.PIPE, stderr=log, env=dict(os.environ, PYTHONUNBUFFERED="1"),
        )
        try:
            assert "listening on" in server.stdout.readline().decode()
            attacker = websocket.create_connection(f"ws://127.0.0.1:{port}/ws/mallory", timeout=5)
            honest = websocket.create_connection(f"ws://127.0.0.1:{port}/ws/alice", timeout=5)
            attacker.send(POISON)
            answer = None
            attacker.settimeout(2)
            try:
                while answer is None:
                    event = json.loads(attacker.recv())
                    if event["type"] in ("ack", "error"):
                        answer = event
            except (websocket.WebSocketTimeoutException, websocket.WebSocketConnectionClosedException):
                pass
            for i in range(args.messages):
                honest.send(json.dumps({"type": "message", "msg": f"honest {i}", "ref": i}))
            acked = 0
            deadline = time.monotonic() + args.deadline
            while acked < args.messages and time.monotonic() < deadline:
                honest.settimeout(max(0.01, deadline - time.monotonic()))
                try:
                    event = json.loads(honest.recv())
                except websocket.WebSocketTimeoutException:
                    break
                acked += event["type"] == "ack"
            with_health = subprocess.run(
                ["curl", "-s", f"http://127.0.0.1:{port}/healthz"], capture_output=True, text=True, timeout=10
            ).stdout
            print(f"tree: {args.tree} ({args.database})")
            print(f"answer to the hostile frame: {answer}")
            print(f"honest messages acknowledged after it: {acked} of {args.messages}")
            print(f"/healthz: {with_health}")
        finally:
            server.terminate()
            try:
                server.wait(15)
            except subprocess.TimeoutExpired:
                server.kill()
            drop()


if __name__ == "__main__":
    main()
