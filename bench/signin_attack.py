"""Sign-in attacks measured on one source tree: CPU a flood of correct sign-ins costs the server, and whether the owner
signs in during a wrong-password flood from other addresses.

    python3 bench/signin_attack.py --tree /path/to/checkout [--seconds 10] [--threads 8] [--count N]

Runs that tree's run_server.py on a fresh SQLite file (trust_proxy on, so X-Forwarded-For simulates addresses),
registers an owner through the form, then:
1. flood: `--threads` clients send correct POST /api/token from one address for `--seconds` (or until `--count`
   requests were answered); the server's CPU seconds
   (utime + stime from /proc) and the answers by status are printed, with a guest's message round trip meanwhile;
2. lockout: 30 wrong passwords for the owner from 10 other addresses, then the owner signs in from their own.
Only 127.0.0.1 is contacted; every loop is bounded in time and count.
"""
import argparse
import collections
import itertools
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

import requests
import websocket

PASSWORD = "correct horse battery"
CSRF_RE = re.compile(r'name="csrf_token"[^>]*?value="([^"]+)"')


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_seconds(pid):
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def start(tree, directory, port):
    args = [sys.executable, os.path.join(tree, "run_server.py"), "--port", str(port), "--database",
            f"sqlite:///{directory}/chat.db", "--trust-proxy", "--bots", "", "--instance-dir", f"{directory}/instance"]
    proc = subprocess.Popen(args, cwd=tree, stdout=subprocess.PIPE, stderr=open(f"{directory}/server.log", "ab"))
    line = proc.stdout.readline().decode()
    if "listening on" not in line:
        proc.kill()
        raise SystemExit(f"server did not start: see {directory}/server.log")
    return proc


def register(url, name, address):
    http = requests.Session()
    http.headers["X-Forwarded-For"] = address
    token = CSRF_RE.search(http.get(url + "/register", timeout=30).text).group(1)
    r = http.post(url + "/register", data={"username": name, "password": PASSWORD, "confirm": PASSWORD,
                                           "csrf_token": token}, allow_redirects=False, timeout=30)
    assert r.status_code == 302, r.text


def token(url, name, password, address):
    return requests.post(url + "/api/token", json={"username": name, "password": password},
                         headers={"X-Forwarded-For": address}, timeout=30)


def guest_round_trips(url, stop, out):
    ws = websocket.create_connection(url.replace("http", "ws") + "/ws/bystander", timeout=30)
    count = 0
    while not stop.is_set():
        count += 1
        sent = time.monotonic()
        ws.send(json.dumps({"type": "message", "msg": f"hello {count}", "ref": str(count)}))
        while json.loads(ws.recv()).get("type") != "ack":
            pass
        out.append(time.monotonic() - sent)
        stop.wait(0.1)
    ws.close()


def flood(url, pid, name, seconds, threads, count):
    statuses = collections.Counter()
    tickets = iter(range(count)) if count else itertools.count()
    lock = threading.Lock()
    deadline = time.monotonic() + seconds

    def client():
        session = requests.Session()
        while time.monotonic() < deadline:
            with lock:
                if next(tickets, None) is None:
                    return
            r = session.post(url + "/api/token", json={"username": name, "password": PASSWORD},
                             headers={"X-Forwarded-For": "198.51.100.99"}, timeout=30)
            with lock:
                statuses[r.status_code] += 1

    stop, trips = threading.Event(), []
    watcher = threading.Thread(target=guest_round_trips, args=(url, stop, trips))
    watcher.start()
    before, started = cpu_seconds(pid), time.monotonic()
    workers = [threading.Thread(target=client) for _ in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    used, elapsed = cpu_seconds(pid) - before, time.monotonic() - started
    stop.set()
    watcher.join()
    return used, elapsed, dict(statuses), trips


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tree", required=True)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--count", type=int, default=0, help="stop the flood after this many requests (0: no limit)")
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as directory:
        port = free_port()
        proc = start(os.path.abspath(options.tree), directory, port)
        url = f"http://127.0.0.1:{port}"
        try:
            register(url, "owner", "192.0.2.10")
            assert token(url, "owner", PASSWORD, "192.0.2.10").status_code == 200
            used, elapsed, statuses, trips = flood(url, proc.pid, "owner", options.seconds, options.threads, options.count)
            print(f"flood of correct sign-ins from one address, {elapsed:.1f} s, {options.threads} clients: "
                  f"server CPU {used:.1f} s; answers {statuses}; guest message round trip median "
                  f"{statistics.median(trips) * 1000:.0f} ms, max {max(trips) * 1000:.0f} ms ({len(trips)} messages)")
            wrong = collections.Counter(
                token(url, "owner", "wrong guess", f"203.0.113.{i % 10}").status_code for i in range(30)
            )
            owner = token(url, "owner", PASSWORD, "192.0.2.10")
            print(f"30 wrong passwords from 10 other addresses: answers {dict(wrong)}; then the owner from their own "
                  f"address: {owner.status_code} {owner.text.strip()[:80] if owner.status_code != 200 else 'signed in'}")
        finally:
            proc.terminate()
            proc.wait(15)


if __name__ == "__main__":
    main()
