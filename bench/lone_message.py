"""The cost of a lone message (issue 16): server CPU per message paced against the same messages in a burst, for one
or more source trees side by side (servers of the trees alternate), with the naive peer and two floors.

    python3 bench/lone_message.py --tree /tmp/base --tree .            # about 6 minutes
    python3 bench/lone_message.py --tree . --store mariadb --repeats 1

Rows, each a fresh server of each tree (`run_server.py`, the flags of bench/run.py), pinned to core 1, driven by
bench/loadgen.py on core 0; CPU is the server's (all its threads), per message sent:
- lone: `latency` with 1 receiver, one sender paced at --lone-rate messages/s (the message handled on its own);
- lone burst: `fanout` with 1 receiver, 300 messages back to back (the same messages in a burst);
- paced: `latency` with 100 receivers at 200 messages/s (20,000 deliveries/s), with its p50 and p99;
- burst: `fanout` with 100 receivers, 300 messages back to back.
The naive seed peer (bench/peers/naive_seed.py) runs the two paced rows too (--no-naive to skip). The floors are a
bare Python epoll loop on this machine, no chat code: it wakes for one frame and writes two (lone), and it writes
one frame to each of 100 loopback sockets every 5 ms (paced), or 30 frames per write (burst).
"""
import argparse
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
PY = sys.executable
FLAGS = ["--bots", "", "--max-connections-per-address", "1000000", "--rate-limit", "1e9", "--rate-burst", "1000000000"]
READY = re.compile(r"listening on http://([0-9.]+):(\d+)/")


def start(tree, kind, workdir):
    db = None
    if kind == "naive":
        cmd = [PY, os.path.join(tree, "bench", "peers", "naive_seed.py"), "--port", "0"]
    elif kind == "sqlite":
        cmd = [PY, os.path.join(tree, "run_server.py"), "--port", "0", "--database", f"sqlite:///{workdir}/chat.db", *FLAGS]
    else:
        import pymysql

        db = f"lone_{os.getpid()}_{int(time.time() * 1000) % 10**8}"
        conn = pymysql.connect(host="127.0.0.1", user="root")
        conn.cursor().execute(f"CREATE DATABASE {db}")
        conn.close()
        cmd = [PY, os.path.join(tree, "run_server.py"), "--port", "0", "--database", f"mysql://root@127.0.0.1:3306/{db}", *FLAGS]
    log_path = os.path.join(workdir, "server.log")
    log = open(log_path, "wb")
    env = dict(os.environ, PYTHONHASHSEED="0", PYTHONUNBUFFERED="1")
    proc = subprocess.Popen(["taskset", "-c", "1", *cmd], cwd=workdir, stdout=log, stderr=subprocess.STDOUT, env=env,
                            stdin=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with open(log_path, "rb") as f:
            m = READY.search(f.read().decode("utf-8", "replace"))
        if m:
            return proc, int(m.group(2)), db
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    proc.kill()
    raise RuntimeError(f"{tree} {kind} did not start: see {log_path}")


def stop(proc, db):
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    if db:
        import pymysql

        conn = pymysql.connect(host="127.0.0.1", user="root")
        conn.cursor().execute(f"DROP DATABASE IF EXISTS {db}")
        conn.close()


ROWS = {
    # name: (loadgen scenario, arguments, messages per round)
    "lone": ("latency", lambda a: ["--clients", "1", "--rate", str(a.lone_rate), "--duration", "5"], lambda a: int(a.lone_rate * 5)),
    "lone burst": ("fanout", lambda a: ["--clients", "1", "--messages", "300"], lambda a: 300),
    "paced": ("latency", lambda a: ["--clients", "100", "--rate", "200", "--duration", "5"], lambda a: 1000),
    "burst": ("fanout", lambda a: ["--clients", "100", "--messages", "300"], lambda a: 300),
}


def run_row(tree, kind, row, args):
    scenario, extra, messages = ROWS[row]
    rounds = {"latency": args.rounds, "fanout": args.rounds * 3}[scenario]
    workdir = tempfile.mkdtemp(prefix="chat-lone-")
    proc, port, db = start(tree, kind, workdir)
    try:
        cmd = ["taskset", "-c", "0", PY, os.path.join(HERE, "loadgen.py"), scenario, "--url", f"ws://127.0.0.1:{port}",
               "--pid", str(proc.pid), "--rounds", str(rounds), "--warmup", "1", "--quiet-wait", str(args.quiet_wait),
               "--retries", "1", *extra(args)]
        if kind != "naive":
            cmd.append("--wait-history")
        out = subprocess.run(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, timeout=600).stdout
        result = json.loads(out.decode().strip().splitlines()[-1])
    finally:
        stop(proc, db)
    if not result.get("ok"):
        return dict(failure=result.get("failure"))
    rounds = result["rounds"]
    n = messages(args)
    return dict(
        cpu_us_per_message=[r["cpu_s"] / n * 1e6 for r in rounds],
        p50_ms=[r["p50_ms"] for r in rounds if "p50_ms" in r],
        p99_ms=[r["p99_ms"] for r in rounds if "p99_ms" in r],
        others=[r.get("others_cores", 0.0) for r in rounds],
    )


def floors():
    code = os.path.join(HERE, "lone_message_floor.py")
    out = subprocess.run([PY, code], stdout=subprocess.PIPE, timeout=120).stdout.decode()
    return json.loads(out.strip().splitlines()[-1])


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tree", action="append", required=True, help="a source tree (repeat: they alternate)")
    p.add_argument("--store", default="sqlite", choices=("sqlite", "mariadb"))
    p.add_argument("--repeats", type=int, default=2, help="server starts per tree and row, alternating the trees")
    p.add_argument("--rounds", type=int, default=2, help="measured latency rounds per server (fanout: 3x)")
    p.add_argument("--lone-rate", type=float, default=100.0)
    p.add_argument("--quiet-wait", type=float, default=10.0)
    p.add_argument("--no-naive", action="store_true")
    p.add_argument("--json", help="write every figure here too")
    args = p.parse_args()
    columns = [(os.path.abspath(t), args.store) for t in args.tree]
    if not args.no_naive:
        columns.append((os.path.abspath(args.tree[0]), "naive"))
    figures = {}
    for repeat in range(args.repeats):
        for row in ROWS:
            for tree, kind in columns:
                if kind == "naive" and row not in ("lone", "paced"):
                    continue
                got = run_row(tree, kind, row, args)
                cell = figures.setdefault(row, {}).setdefault(f"{tree} {kind}", {})
                if "failure" in got:
                    cell.setdefault("failures", []).append(got["failure"])
                    print(f"[{repeat}] {row} {tree} {kind}: FAILED {got['failure']}", file=sys.stderr)
                    continue
                for key, values in got.items():
                    cell.setdefault(key, []).extend(values)
                print(f"[{repeat}] {row} {tree} {kind}: CPU/message {statistics.median(got['cpu_us_per_message']):.0f} us"
                      + (f", p99 {statistics.median(got['p99_ms']):.2f} ms" if got["p99_ms"] else "")
                      + f", others {max(got['others']):.2f} cores", file=sys.stderr)
    floor = floors()
    names = [f"{t} {k}" for t, k in columns]
    med = lambda cell, key: statistics.median(cell[key]) if cell.get(key) else None  # noqa: E731
    print(f"| server CPU per message (us), median | " + " | ".join(names) + " |")
    print("|---|" + "---:|" * len(names))
    for row in ROWS:
        cells = [med(figures[row].get(n, {}), "cpu_us_per_message") for n in names]
        print(f"| {row} | " + " | ".join("" if c is None else f"{c:,.0f}" for c in cells) + " |")
    for row, ref in (("lone", "lone burst"), ("paced", "burst")):
        cells = []
        for n in names:
            a, b = med(figures[row].get(n, {}), "cpu_us_per_message"), med(figures[ref].get(n, {}), "cpu_us_per_message")
            cells.append("" if a is None or b is None else f"{a / b:.1f}x")
        print(f"| {row} / {ref} | " + " | ".join(cells) + " |")
    for key in ("p50_ms", "p99_ms"):
        cells = [med(figures["paced"].get(n, {}), key) for n in names]
        print(f"| paced: latency {key[:3]} (ms) | " + " | ".join("" if c is None else f"{c:.2f}" for c in cells) + " |")
    worst = max((max(c.get("others", [0])) for r in figures.values() for c in r.values()), default=0)
    print(f"\nFloors (bare Python epoll loop, no chat code): lone {floor['lone_us']:.0f} us per message; paced to 100 "
          f"sockets {floor['paced_us']:.0f} us per message ({floor['paced_us'] / 100:.1f} us per write); 30 frames per "
          f"write {floor['burst_us']:.0f} us per message. Other processes used up to {worst:.2f} cores during the rounds.")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(dict(figures=figures, floors=floor), f, indent=1)


if __name__ == "__main__":
    main()
