"""Where an idle connection's memory goes: RSS, the Python heap (tracemalloc) and the C stacks greenlet keeps for
switched-out greenlets, per connection, on a fresh server and on one with history.

    .venv/bin/python bench/idle_anatomy.py --connections 2000 [--history 20000] [--database URL]

It starts run_server.py under this file (`serve` mode: a SIGUSR1 writes a report of the process to a file), opens the
idle connections from here (asyncio `websockets`, all as the user `idle`, each reading its welcome and history), and
prints the difference per connection as JSON (file descriptors too). Loopback only; it stops by itself."""
import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# ---- the server side (`serve`): run_server.py plus a report on SIGUSR1 -------------------------------------------------


def serve(report_path, trace, argv):
    sys.path.insert(0, ROOT)
    if trace:
        import tracemalloc

        tracemalloc.start(1)
    import run_server  # patches gevent in first
    import gevent

    def report():
        import gc

        import greenlet

        gc.collect()
        stacks = [g._stack_saved for g in gc.get_objects() if isinstance(g, greenlet.greenlet)]
        result = {"greenlets": len(stacks), "greenlet_stack_bytes": sum(stacks), "rss_kb": _rss_kb(),
                  "fds": len(os.listdir("/proc/self/fd"))}
        if trace:
            import tracemalloc

            result["python_heap_bytes"] = tracemalloc.get_traced_memory()[0]
            top = tracemalloc.take_snapshot().statistics("filename")[:12]
            result["python_heap_by_file"] = {os.path.relpath(s.traceback[0].filename, ROOT): s.size for s in top}
        with open(report_path + ".tmp", "w") as f:
            json.dump(result, f)
        os.replace(report_path + ".tmp", report_path)

    gevent.signal_handler(signal.SIGUSR1, lambda: gevent.spawn(report))
    sys.exit(run_server.main(argv))


def _rss_kb():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


# ---- the driver ----------------------------------------------------------------------------------------------------------


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ask(proc, path):
    if os.path.exists(path):
        os.remove(path)
    proc.send_signal(signal.SIGUSR1)
    for _ in range(600):
        if os.path.exists(path):
            with open(path) as f:
                return json.load(f)
        time.sleep(0.05)
    raise RuntimeError("no report from the server")


async def open_idle(port, count, concurrency):
    import asyncio

    import websockets

    gate = asyncio.Semaphore(concurrency)
    sockets = []
    resume = []  # the guest name's resume token, from the first welcome: the others come back with it

    async def one(i):
        async with gate:
            # One user with many connections (as loadgen's memory scenario): distinct users would each be told of every
            # later one, and these sockets do not read, so the server's send queues would be measured too.
            query = f"?resume={resume[0]}" if resume else ""
            ws = await websockets.connect(f"ws://127.0.0.1:{port}/ws/idle{query}", ping_interval=None, max_size=2**24,
                                          open_timeout=120)
            while True:
                event = json.loads(await ws.recv())
                if event["type"] == "welcome" and not resume:
                    resume.append(event["resume"])
                if event["type"] == "history" and event.get("complete") is not False:
                    break
            sockets.append(ws)

    await one(0)
    await asyncio.gather(*(one(i) for i in range(1, count)))
    return sockets


async def seed(port, messages):
    import asyncio

    import websockets

    async with websockets.connect(f"ws://127.0.0.1:{port}/ws/seeder", ping_interval=None) as ws:
        for start in range(0, messages, 500):
            n = min(500, messages - start)
            for i in range(n):
                await ws.send(json.dumps({"type": "message", "msg": f"history message {start + i} with some words", "ref": i}))
            acked = 0
            while acked < n:
                if json.loads(await ws.recv())["type"] == "ack":
                    acked += 1
        await asyncio.sleep(0)


def drive(args):
    import asyncio

    directory = tempfile.mkdtemp(prefix="anatomy-")
    database = args.database or f"sqlite:///{directory}/chat.db"
    port = free_port()
    report = os.path.join(directory, "report.json")
    cmd = [sys.executable, os.path.abspath(__file__), "serve", "--report", report, *(["--trace"] if args.trace else []), "--",
           "--port", str(port), "--database", database, "--instance-dir", directory, "--bots", "",
           "--max-connections-per-address", "1000000", "--max-connections-per-user", "1000000", "--rate-limit", "1e9", "--rate-burst", "1000000000",
           "--log-level", "WARNING"]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    try:
        if "listening on" not in proc.stdout.readline().decode():
            raise RuntimeError("the server did not start")

        async def run():
            if args.history:
                await seed(port, args.history)
            await asyncio.sleep(1)
            before = ask(proc, report)
            sockets = await open_idle(port, args.connections, args.concurrency)
            await asyncio.sleep(2)  # settle: presence batches, writer
            after = ask(proc, report)
            for ws in sockets:
                await ws.close()
            return before, after

        before, after = asyncio.run(run())
    finally:
        proc.terminate()
        proc.wait(10)
    n = args.connections
    result = {
        "connections": n, "history": args.history, "database": database.split(":")[0],
        "rss_kb_per_connection": round((after["rss_kb"] - before["rss_kb"]) / n, 2),
        "greenlets_per_connection": round((after["greenlets"] - before["greenlets"]) / n, 2),
        "greenlet_stack_kb_per_connection": round((after["greenlet_stack_bytes"] - before["greenlet_stack_bytes"]) / n / 1024, 2),
        "fds_per_connection": round((after["fds"] - before["fds"]) / n, 2),
    }
    if args.trace:
        result["python_heap_kb_per_connection"] = round((after["python_heap_bytes"] - before["python_heap_bytes"]) / n / 1024, 2)
        grown = {f: after["python_heap_by_file"].get(f, 0) - before["python_heap_by_file"].get(f, 0) for f in after["python_heap_by_file"]}
        result["python_heap_kb_per_connection_by_file"] = {
            f: round(v / n / 1024, 2) for f, v in sorted(grown.items(), key=lambda kv: -kv[1])[:8] if v > 0
        }
    print(json.dumps(result))


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "serve":
        p = argparse.ArgumentParser()
        p.add_argument("--report", required=True)
        p.add_argument("--trace", action="store_true")
        split = sys.argv.index("--")
        args = p.parse_args(sys.argv[2:split])
        return serve(args.report, args.trace, sys.argv[split + 1:])
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--connections", type=int, default=2000)
    p.add_argument("--history", type=int, default=0, help="messages sent before the idle connections open")
    p.add_argument("--database", default=None, help="default: SQLite in a temporary directory")
    p.add_argument("--concurrency", type=int, default=100, help="handshakes in flight")
    p.add_argument("--trace", action="store_true", help="also tracemalloc the server (slower; its own overhead is in RSS)")
    drive(p.parse_args())


if __name__ == "__main__":
    main()
