"""Server RSS with N non-reading sockets replaying (?since=0) a history of escaped-control-character messages.

Usage: python3 bench/hostile_history.py ROOT [--sockets N] [--messages M]
ROOT is a checkout of the chat (e.g. /work/wt/base for "before", this worktree for "after"); the same script
measures both. It starts ROOT/run_server.py on a fresh SQLite file, posts M messages of 64 KiB of \\x01 (6 times
larger once JSON-escaped), then reports what a reading newcomer is sent (frames, bytes, close code) and the server's
RSS before and after N sockets connect with ?since=0 and never read.
"""
import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from tests.support.rawws import RawWebSocket  # noqa: E402

HOSTILE = "\x01" * 65536


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_mb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def settled_rss(pid, quiet=3.0, limit=60.0):
    """RSS once it has not grown for `quiet` seconds (or after `limit`)."""
    start = last_change = time.monotonic()
    peak = rss_mb(pid)
    while time.monotonic() - last_change < quiet and time.monotonic() - start < limit:
        time.sleep(0.25)
        now = rss_mb(pid)
        if now > peak + 1:
            peak, last_change = now, time.monotonic()
    return rss_mb(pid)


def newcomer_view(port, query):
    """(history events, bytes of them, close code or None) for a client that reads everything."""
    client = RawWebSocket.connect(port, f"/ws/reader{time.monotonic_ns() % 10**6}{query}", timeout=30)
    events = size = 0
    try:
        while True:
            _, opcode, payload = client.recv_frame()
            if opcode == 0x8:
                return events, size, int.from_bytes(payload[:2], "big")
            if opcode == 0x1:
                event = json.loads(payload)
                if event["type"] == "history":
                    events += 1
                    size += len(payload)
                    if event.get("complete", True):
                        return events, size, None
    finally:
        client.close()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root")
    parser.add_argument("--sockets", type=int, default=400)
    parser.add_argument("--messages", type=int, default=10)
    args = parser.parse_args()
    port = free_port()
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, os.path.join(args.root, "run_server.py"), "--port", str(port),
               "--database", f"sqlite:///{tmp}/chat.db", "--rate-limit", "1000000", "--rate-burst", "1000000",
               "--max-connections-per-user", "10", "--ping-interval", "600", "--log-level", "WARNING"]
        server = subprocess.Popen(cmd, cwd=args.root, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        try:
            assert "listening on" in server.stdout.readline().decode()
            attacker = RawWebSocket.connect(port, "/ws/attacker", timeout=30)
            for _ in range(args.messages):
                attacker.send_text(HOSTILE)
            acks = 0
            while acks < args.messages:
                acks += attacker.recv_event()["type"] == "ack"
            connect_view = newcomer_view(port, "")
            replay_view = newcomer_view(port, "?since=0")
            before = settled_rss(server.pid)
            sockets = []
            for i in range(args.sockets):
                sockets.append(RawWebSocket.connect(port, f"/ws/idle{i}?since=0", timeout=30, rcvbuf=4096))
            after = settled_rss(server.pid)
            still_open = 0
            for s in sockets:
                s.sock.setblocking(False)
                try:
                    still_open += s.sock.recv(1) != b""
                except BlockingIOError:
                    still_open += 1
                except OSError:
                    pass
            print(json.dumps({
                "root": args.root, "messages": args.messages, "sockets": args.sockets,
                "newcomer (events, bytes, close)": connect_view, "?since=0 (events, bytes, close)": replay_view,
                "rss_before_mb": round(before), "rss_after_mb": round(after),
                "per_socket_kb": round((after - before) * 1024 / max(1, args.sockets)),
                "sockets_still_open": still_open,
            }))
            for s in sockets:
                s.close()
        finally:
            server.terminate()
            server.wait(30)


if __name__ == "__main__":
    main()
