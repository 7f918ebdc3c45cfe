"""Resource-exhaustion attacks of issue 12 against one or more source trees: server RSS and descriptors before and after.

    python3 bench/exhaustion.py --tree /work/wt/base --tree .          # every attack, both trees, one table
    python3 bench/exhaustion.py --tree . --attacks pings,body            # some attacks only

Each attack gets a fresh server (`run_server.py` of that tree, fresh SQLite file, bots off, rate limit lifted) and
reports the server's resident memory (VmRSS from /proc/PID/status: at rest, peak during the attack) and its open
descriptors (/proc/PID/fd: at rest, at the end of the attack, and once the attacker has gone). See bench/README.md.
"""
import argparse
import base64
import json
import os
import re
import resource
import select
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time

PY = sys.executable
ATTACKS = ("hogs", "hogs_nocap", "fragments", "pings", "body", "halfopen", "fdloop")
FLAGS = [("--bots", ""), ("--rate-limit", "1e9"), ("--rate-burst", "1000000000")]


# ---- the server under attack ------------------------------------------------------------------------


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def supported_flags(tree, wanted):
    helptext = subprocess.run([PY, "run_server.py", "--help"], cwd=tree, capture_output=True, text=True, timeout=60).stdout
    flags = []
    for flag, value in wanted:
        if re.search(re.escape(flag) + r"\b", helptext):
            flags += [flag, value]
    return flags


class Server:
    def __init__(self, tree, workdir, extra=(), env=None):
        self.port = free_port()
        args = [PY, "run_server.py", "--port", str(self.port), "--database", f"sqlite:///{workdir}/chat-{self.port}.db"]
        args += supported_flags(tree, FLAGS + list(extra))
        self.log = open(os.path.join(workdir, f"server-{self.port}.log"), "wb")
        self.proc = subprocess.Popen(args, cwd=tree, stdout=subprocess.PIPE, stderr=self.log, env=dict(os.environ, **(env or {})))
        line = self.proc.stdout.readline().decode()
        if "listening on" not in line:
            raise RuntimeError(f"server in {tree} did not start")
        self.pid = self.proc.pid

    def rss_mb(self):
        try:
            with open(f"/proc/{self.pid}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        return int(line.split()[1]) / 1024
        except OSError:
            pass
        return float("nan")

    def fds(self):
        try:
            return len(os.listdir(f"/proc/{self.pid}/fd"))
        except OSError:
            return -1

    def answers(self, timeout=5.0):
        """True when GET /healthz is answered within `timeout` seconds."""
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=timeout) as s:
                s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                return s.recv(12).startswith(b"HTTP/1.1 200")
        except OSError:
            return False

    def stop(self):
        self.proc.kill()
        self.proc.wait()
        self.log.close()


class PeakRss:
    """Samples the server's RSS every 50 ms in a thread; `peak` is the highest seen."""

    def __init__(self, server):
        self.server = server
        self.peak = server.rss_mb()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        while not self._stop.wait(0.05):
            rss = self.server.rss_mb()
            if rss == rss:
                self.peak = max(self.peak, rss)

    def stop(self):
        self._stop.set()
        self._thread.join()
        return self.peak


# ---- client side ----------------------------------------------------------------------------------


def mask(payload, key):
    n = len(payload)
    if not n:
        return b""
    k = (key * (n // 4 + 1))[:n]
    return (int.from_bytes(payload, "little") ^ int.from_bytes(k, "little")).to_bytes(n, "little")


def frame(opcode, payload=b"", fin=True):
    key = os.urandom(4)
    n = len(payload)
    first = (0x80 if fin else 0) | opcode
    if n < 126:
        head = struct.pack("!BB", first, 0x80 | n)
    elif n < 65536:
        head = struct.pack("!BBH", first, 0x80 | 126, n)
    else:
        head = struct.pack("!BBQ", first, 0x80 | 127, n)
    return head + key + mask(payload, key)


def open_ws(port, path, rcvbuf=None, read_status=True, timeout=30):
    """A socket after the upgrade request; (socket, HTTP status or None when not read)."""
    s = socket.socket()
    if rcvbuf:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    s.settimeout(timeout)
    s.connect(("127.0.0.1", port))
    key = base64.b64encode(os.urandom(16)).decode()
    s.sendall(
        f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
    )
    if not read_status:
        return s, None
    status = b""
    while len(status) < 12:
        chunk = s.recv(12 - len(status))
        if not chunk:
            break
        status += chunk
    return s, int(status[9:12]) if len(status) == 12 else None


def read_until_ack(s, buf=b""):
    """Read frames until an ack event (crudely: until b'"type":"ack"' shows up)."""
    while b'"type":"ack"' not in buf:
        chunk = s.recv(65536)
        if not chunk:
            raise EOFError
        buf = buf[-64:] + chunk
    return b""


def post_history(port, count, size):
    s, status = open_ws(port, "/ws/historian")
    assert status == 101, status
    for i in range(count):
        s.sendall(frame(0x1, json.dumps({"type": "message", "msg": f"{i:03d}" + "h" * size, "ref": i}).encode()))
        read_until_ack(s)
    s.close()


def next_frame(s, buf):
    """(opcode, payload, rest of buf) of the next server frame on `s`; `buf` holds bytes already read."""
    def need(n):
        nonlocal buf
        while len(buf) < n:
            chunk = s.recv(65536)
            if not chunk:
                raise EOFError
            buf += chunk

    need(2)
    opcode, n, head = buf[0] & 0x0F, buf[1] & 0x7F, 2
    if n == 126:
        need(4)
        n, head = struct.unpack("!H", buf[2:4])[0], 4
    elif n == 127:
        need(10)
        n, head = struct.unpack("!Q", buf[2:10])[0], 10
    need(head + n)
    return opcode, buf[head : head + n], buf[head + n :]


def skip_handshake(s):
    """Read the rest of the 101 response and the welcome and history events."""
    buf = b""
    while b"\r\n\r\n" not in buf:
        buf += s.recv(4096)
    buf = buf.split(b"\r\n\r\n", 1)[1]
    while True:
        opcode, payload, buf = next_frame(s, buf)
        if opcode == 0x1 and payload.startswith(b'{"type":"history"'):
            return


def close_code(s):
    """What the server's close frame says, if one comes (skipping any other frames)."""
    s.settimeout(2)
    buf = b""
    try:
        while True:
            opcode, payload, buf = next_frame(s, buf)
            if opcode == 0x8:
                return f"closed with {struct.unpack('!H', payload[:2])[0]} {payload[2:].decode(errors='replace')!r}"
    except (OSError, EOFError):
        return "no close frame"


def settle(seconds=1.0):
    time.sleep(seconds)


# ---- the attacks -------------------------------------------------------------------------------------


def attack_hogs(server, sockets=600):
    """600 sockets that never read, each sent the connect-time history (50 messages of 60 kB, about 3 MB)."""
    post_history(server.port, 50, 60_000)
    held, refused = [], 0
    for i in range(sockets):
        try:
            s, status = open_ws(server.port, f"/ws/hog{i}", rcvbuf=4096)
        except OSError:
            refused += 1
            continue
        if status == 101:
            held.append(s)
        else:
            refused += 1
            s.close()
    settle(5.0)
    return held, f"{len(held)} upgraded, {refused} refused"


def attack_hogs_nocap(server):
    """The same with the cap per address lifted (--max-connections-per-address 100000): the send budget alone."""
    return attack_hogs(server)


def attack_fragments(server, seconds=10.0):
    """One socket sending one endless message in empty continuation frames for 10 s."""
    s, _ = open_ws(server.port, "/ws/fragmenter", read_status=False)
    skip_handshake(s)
    s.sendall(frame(0x1, b"{", fin=False))
    blob = b"".join(frame(0x0, b"", fin=False) for _ in range(10_000))
    sent = 0
    end = time.monotonic() + seconds
    try:
        while time.monotonic() < end:
            s.sendall(blob)
            sent += 10_000
            if select.select([s], [], [], 0)[0]:  # the server answered (its close frame): stop before a reset eats it
                break
    except OSError:
        pass
    return [s], f"{sent} frames sent; {close_code(s)}"


def attack_pings(server, pings=300_000):
    """One socket that never reads, sending 300,000 pings of 125 bytes (38 MB of pongs if all were kept)."""
    s, status = open_ws(server.port, "/ws/pinger", rcvbuf=4096)
    blob = b"".join(frame(0x9, b"%08d" % i + b"." * 117) for i in range(1000))
    sent = 0
    try:
        while sent < pings:
            s.sendall(blob)
            sent += 1000
    except OSError:
        return [s], f"closed by the server after {sent} pings"
    settle(3.0)  # let the server finish reading them
    return [s], f"{sent} pings sent"


def attack_body(server, megabytes=200):
    """A 200 MB JSON body to POST /api/token."""
    size = megabytes * 1024 * 1024
    s = socket.create_connection(("127.0.0.1", server.port), timeout=60)
    s.sendall(
        f"POST /api/token HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {size}\r\n\r\n".encode()
    )
    body = b'{"username":"' + b"x" * (size - 15) + b'"}'
    view = memoryview(body)
    sent = 0
    try:
        while sent < size:
            sent += s.send(view[sent : sent + (1 << 20)])
    except OSError:
        pass
    try:
        answer = s.recv(64).split(b"\r\n")[0].decode()
    except OSError as e:
        answer = type(e).__name__
    return [s], f"{sent // (1024 * 1024)} MB sent; answer: {answer or 'none'}"


def attack_halfopen(server, count=1000, wait=15.0):
    """1,000 HTTP requests whose headers never end, held 15 s (past the default header timeout of 10 s)."""
    held = []
    for i in range(count):
        s = socket.create_connection(("127.0.0.1", server.port), timeout=30)
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        held.append(s)
    at_once = server.fds()
    time.sleep(wait)
    closed = 0
    for s in held:
        s.setblocking(False)
        try:
            if s.recv(1) == b"":
                closed += 1
        except (BlockingIOError, OSError):
            pass
    return held, f"{at_once} server fds right after; {closed}/{count} closed by the server after {wait:.0f} s"


SITECUSTOMIZE = (
    "import gc, os, resource\n"
    "gc.disable()\n"
    "resource.setrlimit(resource.RLIMIT_NOFILE, (int(os.environ['EXHAUSTION_NOFILE']),) * 2)\n"
)


def attack_fdloop(server, loops=1024):
    """Connect and close 1,024 websockets (4x the server's limit of 256 descriptors; its gc is off)."""
    failed = 0
    for i in range(loops):
        try:
            s, status = open_ws(server.port, f"/ws/loop{i}", timeout=2)
            if status != 101:
                failed += 1
            s.close()
        except OSError:
            failed += 1
            if failed >= 20:
                return [], f"gave up after {i + 1} connects: 20 failed; /healthz {'answered' if server.answers() else 'NOT answered'}"
    settle(2.0)
    answers = server.answers()
    return [], f"{failed} connects failed; /healthz {'answered' if answers else 'NOT answered'} afterwards"


def run_attack(tree, name, workdir):
    extra, env = [], None
    if name == "fdloop":
        site = os.path.join(workdir, "site")
        os.makedirs(site, exist_ok=True)
        with open(os.path.join(site, "sitecustomize.py"), "w") as f:
            f.write(SITECUSTOMIZE)
        env = {"PYTHONPATH": site, "EXHAUSTION_NOFILE": "256"}
        extra = [("--max-connections-per-address", "100000")]
    elif name == "hogs_nocap":
        extra = [("--max-connections-per-address", "100000")]
    server = Server(tree, workdir, extra, env)
    try:
        settle(1.0)
        rest_rss, rest_fds = server.rss_mb(), server.fds()
        sampler = PeakRss(server)
        held, note = globals()[f"attack_{name}"](server)
        end_fds = server.fds()
        peak = sampler.stop()
        for s in held:
            s.close()
        settle(2.0)
        return dict(rest_rss=rest_rss, peak_rss=peak, rest_fds=rest_fds, end_fds=end_fds, after_fds=server.fds(), note=note)
    finally:
        server.stop()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tree", action="append", required=True, help="a source tree with run_server.py (repeatable)")
    parser.add_argument("--attacks", default=",".join(ATTACKS), help=f"comma-separated, from {', '.join(ATTACKS)}")
    parser.add_argument("--json", help="also write the results to this file")
    args = parser.parse_args(argv)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # the client holds up to 1,000 sockets
    results = []
    with tempfile.TemporaryDirectory(prefix="exhaustion-") as workdir:
        for name in args.attacks.split(","):
            for tree in args.tree:
                label = os.path.basename(os.path.abspath(tree))
                print(f"... {name} on {label}", file=sys.stderr, flush=True)
                r = run_attack(os.path.abspath(tree), name, workdir)
                results.append(dict(attack=name, tree=label, **r))
    print(f"| attack | tree | RSS at rest MB | peak RSS MB | fds at rest | fds at end of attack | fds after | what happened |")
    print("|---|---|---:|---:|---:|---:|---:|---|")
    for r in results:
        print(
            f"| {r['attack']} | {r['tree']} | {r['rest_rss']:.0f} | {r['peak_rss']:.0f} | {r['rest_fds']} | {r['end_fds']} "
            f"| {r['after_fds']} | {r['note']} |"
        )
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
